"""The evaluation protocol on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from item2vec.base import Recommender
from item2vec.evaluation import (
    evaluate,
    make_prefixes,
    metrics_from_ranks,
    paired_bootstrap,
    prediction_ranks,
    reciprocal_ranks,
)
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
    model = FixedOrder([3, 2, 1, 4, 5]).fit([np.array([1, 2, 3, 4, 5])], n_items=5, repeats_dropped=False)
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


def test_prediction_ranks_and_reciprocal_ranks():
    model = FixedOrder([3, 2, 1, 4, 5]).fit([np.array([1, 2, 3, 4, 5])], n_items=5, repeats_dropped=False)
    ranks = prediction_ranks(model, [np.array([1, 2, 3]), np.array([4, 5])], k=3)
    assert ranks.tolist() == [2, 1, 0]  # targets 2, 3, 5: ranks 2, 1, 5 (outside the top 3)
    assert reciprocal_ranks(ranks).tolist() == [0.5, 1.0, 0.0]
    assert reciprocal_ranks(ranks).mean() == pytest.approx(metrics_from_ranks(ranks, 3)["mrr@3"])


def test_paired_bootstrap_interval():
    rng = np.random.default_rng(0)
    b = rng.random(2000)
    better = paired_bootstrap(b + 0.05, b)  # a constant shift: no spread at all
    assert better["diff"] == pytest.approx(0.05) and better["lo"] == pytest.approx(0.05)
    assert better["p_le_0"] == 0.0
    noisy = paired_bootstrap(b + rng.normal(0.0, 0.3, 2000), b, n_boot=2000)
    assert noisy["lo"] < 0 < noisy["hi"] and 0.05 < noisy["p_le_0"] < 0.95
    # the interval is the spread of the mean: about 2 x 1.96 x 0.3 / sqrt(2000) wide
    assert noisy["hi"] - noisy["lo"] == pytest.approx(2 * 1.96 * 0.3 / np.sqrt(2000), rel=0.15)
    with pytest.raises(ValueError, match="paired values"):
        paired_bootstrap(np.array([]), np.array([]))


# -- one model registry; evaluation talks to the Recommender interface only (#13) ------------
def test_run_evaluation_takes_its_models_from_the_registry(synthetic_data, monkeypatch):
    import item2vec.recommenders as recommenders
    from item2vec.evaluation import run_evaluation

    class Oracle(Recommender):
        """Scores nothing but popularity: any Recommender will do."""

        name = "oracle"

        def _fit(self, sessions):
            pass

        def score_batch(self, prefixes):
            return np.tile(self.popularity_, (len(prefixes), 1))

    asked = []

    def fitted_models(data, names, **kw):
        asked.append(list(names))
        for name in names:
            yield name, Oracle().fit(data.train, n_items=data.n_items), 0.5

    monkeypatch.setattr(recommenders, "fitted_models", fitted_models)
    report = run_evaluation(synthetic_data, ["item2vec", "bilstm"], k=5, show_progress=False)
    assert asked == [["item2vec", "bilstm"]]  # no model is special-cased: not even bilstm without a checkpoint
    assert set(report["models"]) == {"item2vec", "bilstm"} and report["models"]["bilstm"]["fit_seconds"] == 0.5


def test_the_registry_names_no_cli_flag_and_knows_every_model(synthetic_data):
    from item2vec.recommenders import ALL_MODEL_NAMES, MODEL_NAMES, fitted_models, make_recommender

    assert set(ALL_MODEL_NAMES) == {*MODEL_NAMES, "bilstm"}
    for name in MODEL_NAMES:
        assert isinstance(make_recommender(name), Recommender)
    with pytest.raises(ValueError, match="needs next_model") as e:
        next(fitted_models(synthetic_data, ["pop", "bilstm"]))
    assert "--" not in str(e.value)
    with pytest.raises(ValueError, match=r"unknown model\(s\) \['nope'\]"):
        next(fitted_models(synthetic_data, ["nope"]))
    (name, model, seconds), = fitted_models(synthetic_data, ["markov"])
    assert name == "markov" and model.n_items_ == synthetic_data.n_items and seconds >= 0
    assert model.repeats_dropped_ is synthetic_data.repeats_dropped


def test_paired_bootstrap_is_scipys_paired_bootstrap():
    from scipy import stats

    rng = np.random.default_rng(1)
    a, b = rng.random(300), rng.random(300) * (rng.random(300) < 0.5)
    got = paired_bootstrap(a, b, n_boot=999, random_state=3)
    ref = stats.bootstrap((a, b), lambda x, y, axis=-1: (x - y).mean(axis=axis), paired=True, n_resamples=999,
                          method="percentile", rng=np.random.default_rng(3))
    assert (got["lo"], got["hi"]) == (ref.confidence_interval.low, ref.confidence_interval.high)
    assert got["p_le_0"] == (ref.bootstrap_distribution <= 0).mean() and got["diff"] == pytest.approx((a - b).mean())
    one = paired_bootstrap(np.array([0.5]), np.array([0.25]))  # one pair resamples to itself
    assert (one["diff"], one["lo"], one["hi"], one["p_le_0"]) == (0.25, 0.25, 0.25, 0.0)
    with pytest.raises(ValueError, match="paired values"):
        paired_bootstrap(np.ones(3), np.ones(4))


def test_topk_ranks_one_rule():
    from item2vec.evaluation import topk_ranks

    ids = np.array([[3, 1, 2], [2, 3, 1], [1, 2, 3]])
    scores = np.array([[0.9, 0.5, 0.5], [1.0, 1.0, -np.inf], [0.3, 0.2, 0.1]])
    # target 2 at place 3; target 1 scored -inf: not ranked; target 4 not in the top 3
    assert topk_ranks(ids, scores, np.array([2, 1, 4])).tolist() == [3, 0, 0]
