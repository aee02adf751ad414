"""The evaluation protocol on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from item2vec.base import Recommender
from item2vec.evaluation import evaluate, make_prefixes, metrics_from_ranks
from item2vec.exceptions import EmptyDataError, NotFittedError


class FixedOrder(Recommender):
    """Always ranks the catalogue in one given order (a real Recommender, for known ranks)."""

    name = "fixed"

    def __init__(self, order):
        self.order = order

    def _fit(self, sessions):
        pass

    def score_batch(self, prefixes):
        scores = np.zeros((len(prefixes), self.n_items_ + 1), dtype=np.float32)
        for rank, item in enumerate(self.order):
            scores[:, item] = len(self.order) - rank
        return scores


def test_make_prefixes_every_position():
    pre = make_prefixes([np.array([1, 2, 3]), np.array([4, 5])])
    assert [p.tolist() for p in pre.prefixes] == [[1], [1, 2], [4]]
    assert pre.targets.tolist() == [2, 3, 5]
    capped = make_prefixes([np.array([1, 2, 3, 4])], max_prefix=2)
    assert [p.tolist() for p in capped.prefixes] == [[1], [1, 2], [2, 3]]


def test_metrics_from_ranks_by_hand():
    m = metrics_from_ranks(np.array([1, 2, 0, 25]), k=20)
    assert m["hr@20"] == pytest.approx(0.5)
    assert m["mrr@20"] == pytest.approx((1 + 0.5) / 4)
    assert m["ndcg@20"] == pytest.approx((1 + 1 / math.log2(3)) / 4)


def test_evaluate_with_known_ranks():
    model = FixedOrder([3, 2, 1, 4, 5]).fit([np.array([1, 2, 3, 4, 5])], n_items=5)
    # targets 2 (rank 2), 3 (rank 1), 5 (rank 5)
    res = evaluate(model, [np.array([1, 2, 3]), np.array([4, 5])], k=3)
    assert res["n_predictions"] == 3
    assert res["hr@3"] == pytest.approx(2 / 3)
    assert res["mrr@3"] == pytest.approx((0.5 + 1) / 3)
    res5 = evaluate(model, [np.array([1, 2, 3]), np.array([4, 5])], k=5)
    assert res5["mrr@5"] == pytest.approx((0.5 + 1 + 0.2) / 3)


def test_evaluate_batches_do_not_change_results():
    model = FixedOrder([5, 4, 3, 2, 1]).fit([np.array([1, 2, 3, 4, 5])], n_items=5)
    sessions = [np.array([1, 2, 3, 4, 5]), np.array([2, 1]), np.array([5, 3, 1])]
    a = evaluate(model, sessions, k=2, batch_size=1)
    b = evaluate(model, sessions, k=2, batch_size=100)
    assert {k: a[k] for k in ("hr@2", "mrr@2", "ndcg@2")} == {k: b[k] for k in ("hr@2", "mrr@2", "ndcg@2")}


def test_evaluate_errors():
    model = FixedOrder([1, 2])
    with pytest.raises(NotFittedError):
        model.recommend([1], k=2)
    model.fit([np.array([1, 2])], n_items=2)
    with pytest.raises(EmptyDataError, match="2 or more items"):
        evaluate(model, [np.array([1])])
    with pytest.raises(ValueError, match="positive integer"):
        evaluate(model, [np.array([1, 2])], k=0)
