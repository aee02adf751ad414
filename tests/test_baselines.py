"""Baselines: the shared Recommender contract, and known answers per model."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from item2vec.baselines import (
    BASELINES,
    ImplicitItemItem,
    Markov,
    Pop,
    SessionKNN,
    UnknownBaselineError,
    make_baseline,
)
from item2vec.data import PrepareConfig, make_sessions, prepare
from item2vec.evaluation import evaluate, make_prefixes
from item2vec.exceptions import DataError, NotFittedError


def _s(*sessions: list[int]) -> list[np.ndarray]:
    return [np.asarray(s, dtype=np.int64) for s in sessions]


@pytest.fixture(scope="module")
def small_data():
    events, _ = make_sessions(n_sessions=400, n_clusters=4, items_per_cluster=10, random_state=3)
    return prepare(events, PrepareConfig(test_fraction=0.2, valid_fraction=0.1, min_item_support=1))


# ----------------------------------------------------------------------------- shared contract


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_contract(name, small_data):
    d = small_data
    model = make_baseline(name)
    assert model.name == name
    with pytest.raises(NotFittedError):
        model.recommend([1, 2], k=5)

    assert model.fit(d.train, n_items=d.n_items) is model
    prefixes = make_prefixes(d.test).prefixes[:37]

    scores = model.score_batch(prefixes)
    assert scores.shape == (len(prefixes), d.n_items + 1)
    assert scores.dtype == np.float32
    assert np.isfinite(scores[:, 1:]).all()

    # batch equals single calls
    ids, vals = model.recommend_batch(prefixes, k=7)
    assert ids.shape == vals.shape == (len(prefixes), 7)
    for i, p in enumerate(prefixes):
        one_ids, one_vals = model.recommend(p, k=7)
        np.testing.assert_array_equal(one_ids, ids[i])
        np.testing.assert_allclose(one_vals, vals[i], rtol=1e-5, atol=1e-6)  # BLAS sums by batch size
    assert (ids >= 1).all() and (ids <= d.n_items).all()
    assert (np.diff(vals, axis=1) <= 0).all()

    for bad_k in (0, -3, 2.5, True):
        with pytest.raises(ValueError):
            model.recommend(prefixes[0], k=bad_k)
    # one prefix policy for every model (base.clean_prefixes): indices outside 1..n_items are dropped
    for dirty, clean in (([0], []), ([d.n_items + 1], []), ([1, -2], [1]), ([0, 2, d.n_items + 5], [2])):
        np.testing.assert_array_equal(model.recommend(dirty, k=3)[0], model.recommend(clean, k=3)[0])
    with pytest.raises(DataError, match="integer item indices"):
        model.recommend([1.5], k=3)

    # an empty prefix still gets a ranking (the popularity fallback at least)
    ids0, _ = model.recommend([], k=3)
    assert len(ids0) == 3 and (ids0 >= 1).all()

    # hyperparameters round-trip; same data and seed give the same scores; pickling keeps them
    again = type(model)(**model.get_params()).fit(d.train, n_items=d.n_items)
    np.testing.assert_allclose(again.score_batch(prefixes), scores, rtol=1e-5, atol=1e-6)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.score_batch(prefixes), scores)

    # a sequential or co-occurrence model must beat popularity on clustered data
    res = evaluate(model, d.test, k=10)
    pop = evaluate(Pop().fit(d.train, n_items=d.n_items), d.test, k=10)
    if name != "pop":
        assert res["hr@10"] > pop["hr@10"] + 0.1, (res, pop)


def test_make_baseline_unknown_name_lists_known():
    with pytest.raises(ValueError, match="markov") as info:
        make_baseline("markvo")
    assert isinstance(info.value, UnknownBaselineError)
    assert "sknn" in str(info.value) and "markvo" in str(info.value)


def test_make_baseline_passes_params():
    m = make_baseline("sknn", k_neighbors=5, sample_size=None)
    assert isinstance(m, SessionKNN) and m.k_neighbors == 5 and m.sample_size is None


# ----------------------------------------------------------------------------- Pop


def test_pop_ranks_by_count():
    m = Pop().fit(_s([3, 1], [3, 2], [3, 2, 4], [2, 3]), n_items=5)
    ids, _ = m.recommend([5], k=5)
    # counts: 3 -> 4, 2 -> 3, 1 -> 1, 4 -> 1, 5 -> 0 (and the last item); ties by lower index
    np.testing.assert_array_equal(ids, [3, 2, 1, 4, 5])


# ----------------------------------------------------------------------------- Markov


def test_markov_counts_transitions_and_puts_successor_first():
    train = _s([1, 2, 3], [1, 2, 3], [4, 2, 5], [2, 3])
    m = Markov().fit(train, n_items=5)
    assert sp.issparse(m.transitions_) and m.transitions_.format == "csr"
    assert m.transitions_[2, 3] == 3 and m.transitions_[2, 5] == 1 and m.transitions_[1, 2] == 2
    assert m.transitions_.sum() == 7  # one count per consecutive pair
    assert m.recommend([5, 1], k=1)[0][0] == 2  # only the last item matters
    ids, _ = m.recommend([4, 2], k=2)
    np.testing.assert_array_equal(ids, [3, 5])
    # item 3 has no successor: popularity fallback ranks everything, 2 first (4 events)
    assert m.recommend([3], k=1)[0][0] == 2


def test_markov_reaches_near_perfect_hr_on_deterministic_successors():
    events, _ = make_sessions(
        n_sessions=300, n_clusters=3, items_per_cluster=8, p_follow=1.0, random_state=0
    )
    d = prepare(events, PrepareConfig(test_fraction=0.2, valid_fraction=0.1, min_item_support=1))
    res = evaluate(Markov().fit(d.train, n_items=d.n_items), d.test, k=5)
    assert res["n_predictions"] > 100
    assert res["hr@5"] > 0.98
    pop = evaluate(Pop().fit(d.train, n_items=d.n_items), d.test, k=5)
    assert pop["hr@5"] < 0.8


# ----------------------------------------------------------------------------- SessionKNN


def test_sknn_recommends_from_the_most_similar_session():
    train = _s([1, 2, 3, 9], [4, 5, 6], [7, 8, 2, 6], [10, 11])
    m = SessionKNN(k_neighbors=1).fit(train, n_items=11)
    # [1, 2, 3] shares three items with session 0 and one with session 2: only session 0 votes
    scores = m.score_batch([[1, 2, 3]])[0]
    assert set(np.flatnonzero(scores > 1e-3)) == {1, 2, 3, 9}
    np.testing.assert_allclose(scores[9], 1 / 3 + 2 / 3 + 1, atol=1e-3)
    assert 9 in m.recommend([1, 2, 3], k=4)[0]
    # with all neighbours voting, session 2's items get session 2's smaller vote
    s_all = SessionKNN().fit(train, n_items=11).score_batch([[1, 2, 3]])[0]
    np.testing.assert_allclose(s_all[[9, 7, 6, 4]], [2.0, 2 / 3, 2 / 3, 0.0], atol=1e-3)


def test_sknn_weights_recent_items_more():
    # session 0 holds the older prefix item, session 1 the latest one
    train = _s([1, 10], [2, 20])
    m = SessionKNN(k_neighbors=1).fit(train, n_items=20)
    scores = m.score_batch([[1, 2]])[0]
    assert scores[20] > scores[10]  # weight 1 vs 1/2: only session 1 is the neighbour
    assert scores[10] < 1e-3  # session 0 lost the neighbour slot: fallback only
    both = SessionKNN(k_neighbors=2).fit(train, n_items=20).score_batch([[1, 2]])[0]
    np.testing.assert_allclose([both[10], both[20]], [0.5, 1.0], atol=1e-3)


def test_sknn_samples_only_recent_candidates():
    # both sessions share item 1 with the prefix; session 1 is more recent
    train = _s([1, 5], [1, 6])
    m = SessionKNN(sample_size=1).fit(train, n_items=6)
    scores = m.score_batch([[1]])[0]
    assert scores[6] >= 1.0 and scores[5] < 1e-3
    m_all = SessionKNN(sample_size=None).fit(train, n_items=6)
    s_all = m_all.score_batch([[1]])[0]
    assert s_all[5] >= 1.0 and s_all[6] >= 1.0


def _sknn_reference(train, prefix, n_items, sample_size, normalize):
    """V-SKNN written out with loops, all neighbours voting."""
    w = {}
    for pos, item in enumerate(prefix, start=1):
        w[int(item)] = pos / len(prefix)
    sets = [set(map(int, s)) for s in train]
    cands = [i for i in range(len(train)) if sets[i] & w.keys()]
    if sample_size is not None:
        cands = sorted(cands)[-sample_size:]
    scores = np.zeros(n_items + 1)
    qn = np.sqrt(sum(v * v for v in w.values()))
    for i in cands:
        sim = sum(w[j] for j in sets[i] & w.keys())
        if normalize:
            sim /= qn * np.sqrt(len(sets[i]))
        for j in sets[i]:
            scores[j] += sim
    return scores


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("sample_size", [None, 15])
def test_sknn_matches_loop_reference(small_data, sample_size, normalize):
    d = small_data
    m = SessionKNN(k_neighbors=10**6, sample_size=sample_size, normalize=normalize)
    m.fit(d.train, n_items=d.n_items)
    prefixes = make_prefixes(d.test).prefixes[:40] + [np.array([3, 5, 3, 7])]
    got = m.score_batch(prefixes) - m._fallback()
    for i, p in enumerate(prefixes):
        want = _sknn_reference(d.train, p, d.n_items, sample_size, normalize)
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-5)


def test_sknn_rejects_bad_hyperparameters():
    with pytest.raises(ValueError, match="k_neighbors"):
        SessionKNN(k_neighbors=0).fit(_s([1, 2]))
    with pytest.raises(ValueError, match="sample_size"):
        SessionKNN(sample_size=-1).fit(_s([1, 2]))


# ----------------------------------------------------------------------------- implicit


# 7 sessions x 6 items (+ padding column): deliberately not square
_COOC = _s([1, 2], [1, 2, 3], [2, 1], [4, 5], [5, 4, 6], [4, 5], [3, 6])


def test_implicit_cosine_returns_the_cooccurring_item():
    m = ImplicitItemItem(K=10).fit(_COOC, n_items=6)
    assert m.recommend([1], k=1)[0][0] == 2
    assert m.recommend([4], k=1)[0][0] == 5
    assert m.score_batch([[1]])[0, 1] < 1e-3  # an item is not its own neighbour: fallback only


def test_implicit_cosine_is_item_item_not_session_session():
    """The transposition trap: implicit silently accepts items x users and swaps the roles."""
    m = ImplicitItemItem(K=100).fit(_COOC, n_items=6)
    assert m.similarity_.shape == (7, 7)  # items + padding, not 7 sessions by chance: check values
    x = np.zeros((len(_COOC), 7))
    for r, s in enumerate(_COOC):
        x[r, s] = 1.0
    norms = np.linalg.norm(x, axis=0)
    norms[norms == 0] = 1.0
    want = (x / norms).T @ (x / norms)
    np.fill_diagonal(want, 0.0)
    np.testing.assert_allclose(m.similarity_.toarray(), want, atol=1e-6)


def test_implicit_cosine_shapes_with_more_items_than_sessions():
    train = _s([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    m = ImplicitItemItem().fit(train, n_items=12)
    assert m.similarity_.shape == (13, 13)
    assert m.recommend([7], k=1)[0][0] in (6, 8, 9, 10)


def test_implicit_als_factors_are_per_item_and_seeded():
    m = ImplicitItemItem(model="als", factors=4, iterations=10, random_state=7)
    assert m.name == "implicit-als"
    m.fit(_COOC * 5, n_items=8)  # 35 sessions, 9 columns; items 7, 8 never seen
    assert m.item_factors_.shape == (9, 4)
    assert not m.item_factors_[[0, 7, 8]].any()
    # cluster {1, 2, 3} vs {4, 5, 6}: the first neighbour stays in the cluster
    assert m.recommend([1], k=1)[0][0] in (2, 3)
    assert m.recommend([4], k=1)[0][0] in (5, 6)
    m2 = ImplicitItemItem(model="als", factors=4, iterations=10, random_state=7).fit(
        _COOC * 5, n_items=8
    )
    np.testing.assert_array_equal(m.item_factors_, m2.item_factors_)


def test_implicit_rejects_unknown_model():
    with pytest.raises(ValueError, match="cosine"):
        ImplicitItemItem(model="bpr").fit(_COOC)


# ----------------------------------------------------------------------------- save / load (serving)


@pytest.mark.parametrize("name", sorted(BASELINES))
@pytest.mark.parametrize("id_kind", ["str", "int"])
def test_save_load_round_trip_keeps_scores_params_and_vocab(name, id_kind, small_data, tmp_path):
    from item2vec.data import ItemVocab
    from item2vec.recommenders import load_recommender

    d = small_data
    ids = d.vocab.ids.tolist() if id_kind == "str" else [1000 + i for i in range(len(d.vocab))]
    params = {"sknn": {"k_neighbors": 7, "sample_size": None}, "implicit": {"K": 5}}.get(name, {})
    # the fact of the data travels with the model: one id kind each way
    model = make_baseline(name, **params).fit(d.train, n_items=d.n_items, repeats_dropped=id_kind == "str")
    model.vocab = ItemVocab(ids)
    model.save(tmp_path / "m")
    assert {f.name for f in (tmp_path / "m").iterdir()} == {"meta.json", "state.npz", "vocab.json"}
    back = load_recommender(tmp_path / "m")
    assert type(back) is type(model) and back.get_params() == model.get_params()
    assert back.vocab == model.vocab and back.vocab.ids.dtype.kind == model.vocab.ids.dtype.kind
    assert back.repeats_dropped_ is model.repeats_dropped_ is (id_kind == "str")
    pre = make_prefixes(d.test).prefixes[:50]
    np.testing.assert_array_equal(back.score_batch(pre), model.score_batch(pre))
    np.testing.assert_array_equal(back.recommend(pre[0], 5)[0], model.recommend(pre[0], 5)[0])


def test_saved_baselines_hold_no_pickle_and_check_their_kind(small_data, tmp_path):
    import json

    from item2vec.baselines import load_baseline
    from item2vec.exceptions import FormatVersionError

    m = Markov().fit(small_data.train, n_items=small_data.n_items)
    m.save(tmp_path / "m")  # without a vocab: no vocab.json, loads with vocab None
    with np.load(tmp_path / "m" / "state.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    assert load_baseline(tmp_path / "m").vocab is None
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    (tmp_path / "m" / "meta.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(FormatVersionError, match="version 99"):
        load_baseline(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="no meta.json"):
        load_baseline(tmp_path / "nothing")
    with pytest.raises(NotFittedError):
        Pop().save(tmp_path / "p")
    with pytest.raises(TypeError, match="ItemVocab"):
        m.vocab = ["a", "b"]


def test_load_recommender_dispatches_on_the_saved_kind(small_data, tmp_path):
    import json

    from item2vec.exceptions import FormatVersionError
    from item2vec.recommenders import load_recommender

    Pop().fit(small_data.train, n_items=small_data.n_items).save(tmp_path / "pop")
    assert isinstance(load_recommender(tmp_path / "pop"), Pop)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "meta.json").write_text(json.dumps({"kind": "something.Else", "format_version": 1}))
    with pytest.raises(FormatVersionError, match="something.Else"):
        load_recommender(tmp_path / "other")
    with pytest.raises(FileNotFoundError, match="no meta.json"):
        load_recommender(tmp_path / "missing")
