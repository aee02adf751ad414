"""Blend: weights chosen on validation from a grid, one scale per model, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from item2vec.base import Recommender
from item2vec.blend import Blend, _unit_rows, weight_grid
from item2vec.evaluation import evaluate
from item2vec.exceptions import DataError
from item2vec.recommenders import load_recommender, make_recommender


class _Fixed(Recommender):
    """Scores the same given row for every prefix (a model right on a known set of predictions)."""

    name = "fixed"

    def __init__(self, row):
        self.row = np.asarray(row, dtype=np.float32)

    def _fit(self, sessions):
        pass

    def score_batch(self, prefixes):
        return np.tile(self.row, (len(prefixes), 1))


def test_weight_grid_is_the_simplex_first_model_alone_first():
    assert weight_grid(2, 0.5) == [(1.0, 0.0), (0.5, 0.5), (0.0, 1.0)]
    g = weight_grid(3, 0.1)
    assert len(g) == 66 and g[0] == (1.0, 0.0, 0.0) and all(abs(sum(w) - 1) < 1e-9 for w in g)
    for bad in (0, 0.3, 1.5):
        with pytest.raises(ValueError, match="step"):
            weight_grid(2, bad)


def test_every_row_goes_to_zero_one_softmax_first_for_logits():
    s = np.array([[-np.inf, 2.0, 0.0, 1.0], [-np.inf, -3.0, -3.0, -1.0]])
    u = _unit_rows(s, logits=False)
    np.testing.assert_allclose(u, [[0, 1, 0, 0.5], [0, 0, 0, 1]])
    p = _unit_rows(s, logits=True)
    np.testing.assert_allclose(p[0], [0, 1, np.exp(-2), np.exp(-1)])
    assert p[:, 0].tolist() == [0, 0]


def test_weights_are_chosen_on_validation_and_the_blend_beats_each_model():
    # item 1 follows on half the sessions, item 2 on the other half; model a ranks 1 first then
    # 3, 4; model b ranks 2 first. Neither alone has both in its top 2; the blend has.
    a = _Fixed([0, 1.0, 0.0, 0.3, 0.2, 0.0])
    b = _Fixed([0, 0.0, 1.0, 0.3, 0.2, 0.0])
    sessions = [np.array([5, 1]), np.array([5, 2])] * 20
    blend = Blend([a, b], step=0.25).fit(sessions, n_items=5, repeats_dropped=False, valid=sessions)
    assert blend.weights_ == (0.5, 0.5)
    table = {t["weights"]: t["mrr@20"] for t in blend.valid_table_}
    assert table[(0.5, 0.5)] > max(table[(1.0, 0.0)], table[(0.0, 1.0)])
    got = evaluate(blend, sessions, k=2)
    assert got["hr@2"] == 1.0 and evaluate(a, sessions, k=2)["hr@2"] == 0.5


def test_the_first_model_alone_wins_a_tie_and_fixed_weights_skip_the_choice():
    a, b = _Fixed([0, 1.0, 0.5, 0.2]), _Fixed([0, 1.0, 0.2, 0.5])
    sessions = [np.array([3, 1])] * 5
    assert Blend([a, b]).fit(sessions, 3, valid=sessions).weights_ == (1.0, 0.0)
    fixed = Blend([a, b], weights=[0.2, 0.8]).fit(sessions, 3)
    assert fixed.weights_ == (0.2, 0.8) and fixed.valid_table_ == []
    np.testing.assert_allclose(fixed.score_batch([np.array([3])])[0, 1:], [1.0, 0.2 * 0.5 + 0.8 * 0.2, 0.2 * 0.2 + 0.8 * 0.5],
                               rtol=1e-6)


def test_errors_name_what_was_expected():
    sessions = [np.array([1, 2, 3])] * 4
    with pytest.raises(ValueError, match="pass valid="):
        Blend([make_recommender("pop"), make_recommender("markov")]).fit(sessions, 3)
    with pytest.raises(TypeError, match="two or more Recommender"):
        Blend([make_recommender("pop")])
    with pytest.raises(ValueError, match="2 weights >= 0"):
        Blend([make_recommender("pop"), make_recommender("markov")], weights=[1.0, -1.0])
    other = make_recommender("pop").fit(sessions, n_items=7)
    with pytest.raises(DataError, match="fitted on 7 items, the blend on 3"):
        Blend([other, make_recommender("markov")], weights=[1, 1]).fit(sessions, 3)


def test_a_validation_split_without_predictions_and_an_array_of_sessions():
    sessions = [np.array([1, 2, 3])] * 4
    models = [make_recommender("pop"), make_recommender("markov")]
    with pytest.raises(ValueError, match="hold no prediction"):
        Blend(models).fit(sessions, 3, valid=[np.array([2])])  # a short log: one-item sessions only
    valid = np.empty(2, dtype=object)
    valid[:] = [np.array([1, 2]), np.array([2, 3])]
    assert Blend(models).fit(sessions, 3, valid=valid).weights_ in weight_grid(2, 0.1)


def test_a_blend_with_a_bilstm_saves_loads_and_serves(tmp_path):
    from item2vec.data import ItemVocab
    from item2vec.embeddings import Item2Vec
    from item2vec.nextitem import NextItemRecommender
    from item2vec.recommenders import load_recommender
    from item2vec.serving import ServedModel

    rng = np.random.default_rng(0)
    # integer external ids, as a shop's log has them: 101..130 for indices 1..30
    vocab = ItemVocab.from_list([101 + i for i in range(30)])
    sessions = [rng.integers(1, 31, size=int(rng.integers(2, 6))) for _ in range(200)]
    valid = [rng.integers(1, 31, size=3) for _ in range(30)]
    emb = Item2Vec(vector_size=8, epochs=2, workers=1, random_state=0).fit([vocab.lookup(s).tolist() for s in sessions])
    lstm = NextItemRecommender(embeddings=emb.embeddings_, vocab=vocab, embedding_dim=8, hidden_size=8, epochs=1,
                               num_threads=1, show_progress=False)
    blend = Blend([lstm, make_recommender("sknn"), make_recommender("markov")], step=0.5, vocab=vocab)
    blend.fit(sessions, 30, repeats_dropped=True, valid=valid)
    loaded = load_recommender(blend.save(tmp_path / "blend"))
    assert isinstance(loaded, Blend) and [m.name for m in loaded.models] == [m.name for m in blend.models]
    assert loaded.weights_ == blend.weights_ and loaded.valid_table_ == blend.valid_table_
    assert loaded.vocab.to_list() == vocab.to_list() and loaded.repeats_dropped_ is True
    np.testing.assert_allclose(loaded.score_batch(valid), blend.score_batch(valid), rtol=1e-5, atol=1e-6)
    # behind the served model, in external ids, through a save and load of the whole of it
    served = ServedModel.load(ServedModel(emb.embeddings_, blend).save(tmp_path / "served"))
    assert isinstance(served.next_model, Blend)
    (row,) = served.predict_records({"session": [[101, 102, 999]]}, k=5)
    want = vocab.lookup(blend.recommend(np.array([1, 2]), k=5)[0]).tolist()
    assert row["item_ids"] == want and row["n_ignored"] == 1


def test_a_blend_saves_only_when_it_is_fitted_and_every_model_saves(tmp_path):
    from item2vec.exceptions import NotFittedError

    sessions = [np.array([1, 2, 3])] * 4
    with pytest.raises(NotFittedError, match="not fitted"):
        Blend([make_recommender("pop"), make_recommender("markov")], weights=[1, 1]).save(tmp_path / "a")
    fixed = Blend([_Fixed([0, 1.0, 0.5, 0.2]), make_recommender("markov")], weights=[1, 1]).fit(sessions, 3)
    with pytest.raises(TypeError, match=r"\['fixed'\] cannot be saved"):
        fixed.save(tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_where_repeats_were_kept_the_last_items_factor_is_chosen_on_validation(tmp_path):
    # a model that always ranks the prefix's last item first; the log never repeats: factor 0 wins
    class _Last(_Fixed):
        name = "last"

        def score_batch(self, prefixes):
            out = np.tile(self.row, (len(prefixes), 1))
            for i, p in enumerate(prefixes):
                out[i, p[-1]] = 2.0
            return out

    a = _Last([0, 1.0, 0.5, 0.4, 0.0])
    b = _Fixed([0, 1.0, 0.8, 0.5, 0.0])
    never = [np.array([3, 1]), np.array([1, 2])] * 10
    blend = Blend([a, b], step=0.5).fit(never, 4, repeats_dropped=False, valid=never)
    assert blend.last_item_factor_ == 0.0
    factors = {t["last_item_factor"]: t["mrr@20"] for t in blend.valid_table_ if "last_item_factor" in t}
    assert set(factors) == {1.0, 0.0, 0.25, 0.5, 2.0, 4.0} and factors[0.0] > factors[1.0]
    assert blend.recommend(np.array([1]), k=1)[0].tolist() == [2]  # not 1, the last item
    # a log where the last item repeats half the time: the factor keeps it in front
    often = [np.array([1, 1]), np.array([2, 2]), np.array([1, 3])] * 10
    kept = Blend([a, b], step=0.5).fit(often, 4, repeats_dropped=False, valid=often)
    assert kept.last_item_factor_ >= 1.0 and kept.recommend(np.array([2]), k=1)[0].tolist() == [2]
    # saved and read back; where repeats were dropped the factor is 1 and nothing is tried
    saves = Blend([make_recommender("pop"), make_recommender("markov")], weights=[1, 0], last_item_factor=0.5)
    saves.fit(often, 4, repeats_dropped=False)
    loaded = load_recommender(saves.save(tmp_path / "b"))
    assert loaded.last_item_factor_ == 0.5
    np.testing.assert_allclose(loaded.score_batch([np.array([1])]), saves.score_batch([np.array([1])]))
    dropped = Blend([a, b], step=0.5).fit(never, 4, repeats_dropped=True, valid=never)
    assert dropped.last_item_factor_ == 1.0 and not any("last_item_factor" in t for t in dropped.valid_table_)
    fixed = Blend([a, b], weights=[1, 1], last_item_factor=0.25).fit(never, 4, repeats_dropped=False, valid=never)
    assert fixed.last_item_factor_ == 0.25
    with pytest.raises(ValueError, match="last_item_factor must be a number >= 0"):
        Blend([a, b], last_item_factor=-1)
