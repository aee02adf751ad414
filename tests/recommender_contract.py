"""The contract every :class:`~item2vec.base.Recommender` keeps, as a test mixin.

As implicit's ``recommender_base_test.py``: a test class joins by subclassing
:class:`RecommenderContract` and defining :meth:`~RecommenderContract.make` (an
unfitted model); the mixin fits it on a small synthetic log of string ids
(encoded, as evaluation sees it) and checks the shared promises: scores shape,
batch answers equal single answers, ``k <= 0`` and non-integer prefixes raise,
an unfitted model raises, padding and unknown indices are dropped, the last item
is masked exactly when ``repeats_dropped_`` says so, and a model that saves loads
back with the same answers.
"""

from __future__ import annotations

import numpy as np
import pytest

from item2vec.base import Recommender
from item2vec.data import PrepareConfig, make_sessions, prepare
from item2vec.exceptions import DataError, NotFittedError


def contract_data():
    """A small prepared log (string ids, repeats dropped), made once per process."""
    global _DATA
    if _DATA is None:
        events, _ = make_sessions(n_sessions=300, n_clusters=4, items_per_cluster=10, p_follow=0.9, days=10,
                                  random_state=3)
        _DATA = prepare(events, PrepareConfig(test_fraction=0.2, valid_fraction=0.1, min_item_support=1))
    return _DATA


_DATA = None


class RecommenderContract:
    """Mixin: subclasses define ``make(data)`` returning an unfitted model for that data."""

    k = 5

    def make(self, data) -> Recommender:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def fit(self, data, repeats_dropped: bool) -> Recommender:
        return self.make(data).fit(data.train, n_items=data.n_items, repeats_dropped=repeats_dropped)

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls):
        """``(data, {repeats_dropped: fitted model})``, fitted once per class."""
        data = contract_data()
        return data, {rd: cls().fit(data, rd) for rd in (True, False)}

    @staticmethod
    def _prefixes(data):
        return [s[:t] for s in data.test[:12] for t in (1, 3) if len(s) > t] + [np.array([], dtype=np.int64)]

    def test_scores_shape(self, fitted):
        data, models = fitted
        prefixes = self._prefixes(data)
        assert models[True].score_batch(prefixes).shape == (len(prefixes), data.n_items + 1)
        ids, scores = models[True].recommend_batch(prefixes, k=self.k)
        assert ids.shape == scores.shape == (len(prefixes), self.k)

    def test_batch_equals_single_calls(self, fitted):
        data, models = fitted
        prefixes = self._prefixes(data)
        ids, scores = models[True].recommend_batch(prefixes, k=self.k)
        for p, row_ids, row_scores in zip(prefixes, ids, scores, strict=True):
            one_ids, one_scores = models[True].recommend(p, k=self.k)
            np.testing.assert_array_equal(one_ids, row_ids)
            np.testing.assert_allclose(one_scores, row_scores, rtol=1e-5, atol=1e-6)

    @pytest.mark.parametrize("bad_k", [0, -3, 2.5, True])
    def test_k_must_be_a_positive_int(self, fitted, bad_k):
        _, models = fitted
        with pytest.raises(ValueError, match="k must be a positive integer"):
            models[True].recommend([1], k=bad_k)
        with pytest.raises(ValueError, match="k must be a positive integer"):
            models[True].recommend_batch([[1]], k=bad_k)

    def test_not_fitted_raises(self):
        with pytest.raises(NotFittedError, match="not fitted"):
            self.make(contract_data()).recommend([1], k=3)

    @pytest.mark.parametrize("bad", [[1.5], ["a", "b"]])
    def test_a_prefix_that_is_not_integers_raises(self, fitted, bad):
        _, models = fitted
        with pytest.raises(DataError, match="integer item indices"):
            models[True].recommend(bad, k=3)

    def test_padding_and_out_of_range_indices_are_dropped(self, fitted):
        data, models = fitted
        n, p = data.n_items, data.test[0][:2]
        dirty = np.concatenate([[0], p[:1], [n + 5, -1], p[1:]])
        ids, scores = models[True].recommend(dirty, k=self.k)
        ids0, scores0 = models[True].recommend(p, k=self.k)
        np.testing.assert_array_equal(ids, ids0)
        np.testing.assert_allclose(scores, scores0, rtol=1e-5, atol=1e-6)

    def test_last_item_mask_follows_repeats_dropped(self, fitted):
        data, models = fitted
        prefixes = [s[:t] for s in data.test[:12] for t in (1, 2) if len(s) > t]
        for rd, model in models.items():
            assert model.repeats_dropped_ is rd
            ids, scores = model.recommend_batch(prefixes, k=data.n_items + 1)
            last = np.array([scores[i][ids[i] == p[-1]][0] for i, p in enumerate(prefixes)])
            assert np.isneginf(last).all() if rd else np.isfinite(last).all()

    def test_save_load_round_trip(self, fitted, tmp_path):
        from item2vec.recommenders import load_recommender

        data, models = fitted
        model = models[True]
        if not hasattr(model, "save"):
            pytest.skip(f"{type(model).__name__} does not save")
        loaded = load_recommender(model.save(tmp_path / "m"))
        prefixes = self._prefixes(data)
        a, b = model.recommend_batch(prefixes, k=self.k), loaded.recommend_batch(prefixes, k=self.k)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_allclose(a[1], b[1], rtol=1e-5, atol=1e-6)
        assert loaded.repeats_dropped_ is model.repeats_dropped_
