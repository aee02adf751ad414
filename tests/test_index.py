"""Nearest-neighbour indexes: exact equals brute force, ANN recall, filters respected."""

from __future__ import annotations

import json

import numpy as np
import pytest

import item2vec.index as index_mod
from item2vec._io import write_checksums
from item2vec.embeddings import ItemEmbeddings
from item2vec.index import (
    ExactIndex,
    HNSWIndex,
    build_index,
    load_index,
    normalize,
    resolve_kind,
    topk,
)

pytest.importorskip("hnswlib")


def clustered(n: int, dim: int = 16, n_clusters: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim))
    which = rng.integers(0, n_clusters, n)
    return (centres[which] + 0.6 * rng.standard_normal((n, dim))).astype(np.float32)


def brute(vectors: np.ndarray, queries: np.ndarray, k: int, banned: set[int] | None = None):
    """Reference answer in float64 with a plain full sort."""
    u = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    s = q.astype(np.float64) @ u.T.astype(np.float64)
    if banned:
        s[:, sorted(banned)] = -np.inf
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(s, order, axis=1)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth, strict=True)]))


# -- topk / normalize ----------------------------------------------------------------
def test_topk_matches_full_sort_and_breaks_ties_by_index():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, size=(7, 30)).astype(np.float32)  # many ties
    idx, vals = topk(s, 4)
    for row, (i, v) in enumerate(zip(idx, vals, strict=True)):
        ref = sorted(range(30), key=lambda c: (-s[row, c], c))[:4]
        assert np.array_equal(np.sort(v)[::-1], np.sort(s[row])[::-1][:4])
        # inside the top k, equal values come in index order
        assert list(i) == sorted(i, key=lambda c: (-s[row, c], c))
        assert np.allclose(s[row, i], s[row, ref])


def test_topk_of_one_row_is_that_row_of_a_batch():
    """One row (a served request) takes a 1-D path: the same items, scores and tie order as inside a batch."""
    rng = np.random.default_rng(1)
    s = rng.integers(0, 4, size=(6, 40)).astype(np.float32)
    s[2, :5] = -np.inf
    idx, vals = topk(s, 7)
    for row in range(len(s)):
        one_idx, one_vals = topk(s[row:row + 1], 7)
        assert one_idx.shape == (1, 7) and one_idx.tolist() == [idx[row].tolist()]
        assert one_vals.tolist() == [vals[row].tolist()]


def test_topk_k_larger_than_columns():
    s = np.array([[0.1, 0.3, 0.2]], dtype=np.float32)
    idx, vals = topk(s, 10)
    assert idx.tolist() == [[1, 2, 0]]
    assert vals.shape == (1, 3)


def test_normalize_keeps_zero_rows():
    v = normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert v.dtype == np.float32
    assert np.allclose(v, [[0.6, 0.8], [0.0, 0.0]])


# -- exact -----------------------------------------------------------------------------
@pytest.mark.parametrize("block_cells", [10**9, 500])  # one block, and many small blocks
def test_exact_equals_brute_force(block_cells):
    x = clustered(600)
    q = clustered(45, seed=1)
    rows, scores = ExactIndex(x, block_cells=block_cells).search(q, 10)
    ref_rows, ref_scores = brute(x, q, 10)
    assert np.allclose(scores, ref_scores, atol=1e-5)
    assert recall(rows, ref_rows) == 1.0


def test_exact_neighbours_exclude_the_row_and_the_filter():
    x = clustered(300)
    idx = ExactIndex(x)
    q_rows = np.arange(20)
    banned = np.arange(100, 150)
    r1, s1 = idx.neighbours(q_rows, 8, exclude_all=banned)
    for i, row in enumerate(r1):
        assert q_rows[i] not in row
        assert not set(row) & set(banned.tolist())
    ref, _ = brute(x, x[:1], 8, banned=set(banned.tolist()) | {0})
    assert set(r1[0]) == set(ref[0])


def test_exact_runs_out_of_candidates_with_minus_inf():
    x = clustered(10)
    rows, scores = ExactIndex(x).search(x[:1], 5, exclude_all=np.arange(1, 8))
    assert np.isfinite(scores[0, :3]).all() and np.isneginf(scores[0, 3:]).all()
    assert set(rows[0, :3]) == {0, 8, 9}


def test_exact_rejects_wrong_dimension():
    with pytest.raises(ValueError, match="shape"):
        ExactIndex(clustered(10)).search(np.ones((1, 3)), 2)


# -- approximate -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ann_data():
    x = clustered(3000, dim=32, n_clusters=40)
    return x, HNSWIndex(x, M=16, ef_construction=100, ef=64, num_threads=1)


def test_ann_recall_at_10(ann_data):
    x, idx = ann_data
    q = x[::30]
    rows, scores = idx.search(q, 10)
    ref, _ = brute(x, q, 10)
    assert recall(rows, ref) >= 0.95
    # scores are exact cosines of the returned rows, best first
    u = normalize(x)
    assert np.allclose(scores, np.einsum("bkd,bd->bk", u[rows], normalize(q)), atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-7).all()


def test_ann_respects_filters_small_and_large(ann_data):
    x, idx = ann_data
    rng = np.random.default_rng(3)
    q_rows = rng.choice(len(x), 25, replace=False)
    ref_plain, _ = brute(x, x[q_rows], 10)
    for n_banned in (30, 2500):  # over-fetching, then the exact fallback
        banned = np.union1d(rng.choice(len(x), n_banned, replace=False), ref_plain[:, 1])
        rows, scores = idx.neighbours(q_rows, 10, exclude_all=banned)
        assert np.isfinite(scores).all()
        for i, row in enumerate(rows):
            assert q_rows[i] not in row
            assert not set(row) & set(banned.tolist())
        ref, _ = brute(x, x[q_rows], 10, banned=set(banned.tolist()))
        # excluding the query per row too: compare to the reference without the query
        ref_rows = [[r for r in rr if r != q] for rr, q in zip(brute(x, x[q_rows], 11, set(banned.tolist()))[0], q_rows, strict=True)]
        assert recall(rows, np.array([r[:10] for r in ref_rows])) >= 0.95
        assert ref.shape == rows.shape


def test_ann_fewer_candidates_than_k(ann_data):
    x, idx = ann_data
    banned = np.arange(3, len(x))
    rows, scores = idx.search(x[:2], 5, exclude_all=banned)
    assert np.isfinite(scores[:, :3]).all() and np.isneginf(scores[:, 3:]).all()
    assert all(set(r[:3]) == {0, 1, 2} for r in rows)


def test_ann_single_equals_batch(ann_data):
    x, idx = ann_data
    rows, scores = idx.search(x[:5], 7)
    for i in range(5):
        r, s = idx.search(x[i], 7)
        assert np.array_equal(r[0], rows[i]) and np.allclose(s[0], scores[i])


def test_ann_save_load_round_trip(ann_data, tmp_path):
    x, idx = ann_data
    idx.save(tmp_path / "ix")
    back = load_index(tmp_path / "ix", x)
    assert isinstance(back, HNSWIndex) and back.params() == idx.params()
    r1, s1 = idx.search(x[:20], 10)
    r2, s2 = back.search(x[:20], 10)
    assert np.array_equal(r1, r2) and np.allclose(s1, s2)
    with pytest.raises(ValueError, match="vectors"):
        load_index(tmp_path / "ix", x[:100])


def test_ann_bad_params():
    with pytest.raises(ValueError, match="M >= 2"):
        HNSWIndex(clustered(10), M=1)


# -- choosing ------------------------------------------------------------------------------
def test_resolve_kind(monkeypatch):
    assert resolve_kind("auto", 10) == "exact"
    assert resolve_kind(None, 10) == "exact"
    assert resolve_kind("ann", 10) == "ann"
    monkeypatch.setattr(index_mod, "ANN_MIN_ITEMS", 50)
    assert resolve_kind("auto", 50) == "ann"
    assert isinstance(build_index(clustered(60), "auto", num_threads=1), HNSWIndex)
    with pytest.raises(ValueError, match="'auto', 'exact' or 'ann'"):
        resolve_kind("faiss", 10)


# -- through ItemEmbeddings ---------------------------------------------------------------
@pytest.fixture(scope="module")
def emb():
    x = clustered(2000, dim=32, n_clusters=30, seed=5)
    return ItemEmbeddings.from_vectors([f"i{i}" for i in range(len(x))], x, index="ann", num_threads=1)


@pytest.fixture(scope="module")
def emb_exact(emb):
    """The same vectors searched exactly: an ItemEmbeddings holds one index."""
    return ItemEmbeddings(emb.vocab, emb.vectors).use_index("exact")


def test_embeddings_ann_agrees_with_exact(emb, emb_exact):
    queries = [f"i{i}" for i in range(0, 2000, 40)]
    ids_a, sc_a = emb.similar_items(queries, k=10)
    ids_e, sc_e = emb_exact.similar_items(queries, k=10)
    assert ids_a.shape == ids_e.shape == (len(queries), 10)
    assert recall(ids_a, ids_e) >= 0.95
    for q, row in zip(queries, ids_a, strict=True):
        assert q not in row
    assert emb.index.kind == "ann" and isinstance(emb.index, HNSWIndex)


def test_embeddings_ann_filter_and_single(emb, emb_exact):
    ids_e, _ = emb_exact.similar_items("i7", k=10)
    banned = list(ids_e[:5]) + ["not-an-item"]
    ids, scores = emb.similar_items("i7", k=10, filter_items=banned)
    assert ids.ndim == 1 and len(ids) == 10
    assert not set(ids) & set(banned) and "i7" not in ids
    assert set(ids_e[5:]) <= set(ids) | set(ids_e[5:][:1])  # at most one neighbour lost


def test_embeddings_missing_ignore_with_ann(emb):
    assert emb.index.kind == "ann"
    ids, scores = emb.similar_items(["i1", "nope"], k=3, missing="ignore")
    assert ids.shape == (2, 3) and np.isnan(scores[1]).all() and np.isfinite(scores[0]).all()
    with pytest.raises(KeyError, match="nope"):
        emb.similar_items("nope")


def test_embeddings_bad_index_name(emb):
    with pytest.raises(ValueError, match="index must be"):
        ItemEmbeddings(emb.vocab, emb.vectors).use_index("hnsw")
    with pytest.raises(ValueError, match="index must be"):
        ItemEmbeddings.from_vectors(emb.ids, emb.vectors, index="hnsw")


def test_embeddings_hold_one_index_chosen_by_use_index():
    """One strategy per ItemEmbeddings (#13): use_index replaces it, queries take no per-call index."""
    x = clustered(300)
    e = ItemEmbeddings.from_vectors([f"i{j}" for j in range(300)], x)
    assert isinstance(e.index, ExactIndex)  # "auto" below ANN_MIN_ITEMS
    exact_answer = e.similar_items(["i1", "i2"], k=5)
    assert e.use_index("ann", M=8, ef_construction=50, num_threads=1) is e
    assert isinstance(e.index, HNSWIndex) and e.index.M == 8
    ann_answer = e.similar_items(["i1", "i2"], k=5)
    assert recall(ann_answer[0], exact_answer[0]) >= 0.9
    e.use_index("exact")
    assert isinstance(e.index, ExactIndex)
    assert np.array_equal(e.similar_items(["i1", "i2"], k=5)[0], exact_answer[0])
    with pytest.raises(TypeError):
        e.similar_items("i1", k=5, index="exact")
    assert not hasattr(e, "get_index") and not hasattr(e, "build_index") and not hasattr(e, "index_kind")


def test_a_directory_saved_with_an_index_kind_by_the_old_code_loads(tmp_path):
    """meta.json of the format before #13's cut records index_kind ("auto", "exact", "ann"): it still loads."""
    x = clustered(120)
    ids = [f"i{j}" for j in range(120)]
    e = ItemEmbeddings.from_vectors(ids, x)
    want = e.similar_items(["i0", "i5"], k=5)
    for kind in ("auto", "exact", "ann"):
        # what the old save wrote: vectors.npy, ids.json, meta.json with index_kind, checksums.json
        # (and index/ next to "ann")
        d = tmp_path / kind
        d.mkdir()
        np.save(d / "vectors.npy", x.astype(np.float32), allow_pickle=False)
        (d / "ids.json").write_text(json.dumps(ids))
        (d / "meta.json").write_text(json.dumps({
            "kind": "item2vec.ItemEmbeddings", "format_version": 2, "n_items": 120, "dim": x.shape[1],
            "id_type": "str", "index_kind": kind, "metadata": {"from": "old"}}, indent=2))
        if kind == "ann":
            HNSWIndex(x, M=8, ef_construction=50, num_threads=1).save(d / "index")
        write_checksums(d)
        back = ItemEmbeddings.load(d)
        assert back.metadata == {"from": "old"}
        assert back.index.kind == ("ann" if kind == "ann" else "exact")
        got = back.similar_items(["i0", "i5"], k=5)
        assert got[0].shape == (2, 5) and recall(got[0], want[0]) >= 0.9
        if kind != "ann":
            assert np.array_equal(got[0], want[0])


def test_embeddings_save_load_keeps_the_index(emb, tmp_path):
    emb.save(tmp_path / "m")
    assert (tmp_path / "m" / "index" / "hnsw.bin").exists()
    back = ItemEmbeddings.load(tmp_path / "m")
    assert back.index.kind == "ann" and isinstance(back.index, HNSWIndex)
    q = ["i3", "i99", "i1500"]
    a, sa = emb.similar_items(q, k=10)
    b, sb = back.similar_items(q, k=10)
    assert np.array_equal(a, b) and np.allclose(sa, sb)


def test_small_model_saves_no_index(tmp_path):
    x = clustered(50)
    e = ItemEmbeddings.from_vectors(list(range(50)), x)
    e.similar_items(3, k=5)
    e.save(tmp_path / "m")
    assert not (tmp_path / "m" / "index").exists()
    back = ItemEmbeddings.load(tmp_path / "m")
    assert isinstance(back.index, ExactIndex)
    assert np.array_equal(back.similar_items(3, k=5)[0], e.similar_items(3, k=5)[0])


# -- neighbours of the index's own rows (the similar_items path) ---------------------------
def test_neighbours_equals_search_with_the_row_excluded(ann_data):
    x, idx = ann_data
    exact = ExactIndex(x)
    u = normalize(x)
    for r in (0, 17, 2999):
        rows = np.array([r])
        got, sc = idx.neighbours(rows, 10)  # the thin single-row path
        ref, ref_sc = idx._top(u[rows], 10, None, rows)  # the general path: one over-fetch, re-scored
        assert got.shape == sc.shape == (1, 10) and r not in got[0]
        assert set(got[0]) == set(ref[0])
        # scores are the exact cosines of the returned rows, best first
        assert np.allclose(sc[0], u[got[0]] @ u[r], atol=1e-5)
        assert np.allclose(np.sort(sc[0])[::-1], np.sort(ref_sc[0])[::-1], atol=1e-5)
        assert (np.diff(sc[0]) <= 1e-6).all()
        e_rows, e_sc = exact.neighbours(rows, 10)
        assert recall(got, e_rows) >= 0.9
        assert np.array_equal(e_rows, exact.search(x[r], 11)[0][0][1:][None])


def test_neighbours_batch_and_filters(ann_data):
    x, idx = ann_data
    rows = np.arange(0, 3000, 100)
    got, _ = idx.neighbours(rows, 10)
    for i, r in enumerate(rows):
        single, _ = idx.neighbours(np.array([r]), 10)
        assert r not in got[i] and recall(single, got[i : i + 1]) >= 0.9
    banned = got[:, 0]
    got_f, sc_f = idx.neighbours(rows[:3], 10, exclude_all=banned)
    assert not set(got_f.ravel()) & set(banned.tolist()) and np.isfinite(sc_f).all()


def test_neighbours_k_near_catalogue_size():
    x = clustered(12)
    idx = HNSWIndex(x, M=4, ef_construction=20, ef=4, num_threads=1)
    got, sc = idx.neighbours(np.array([5]), 11)  # every other row: the general (exact) path
    assert sorted(got[0].tolist()) == [i for i in range(12) if i != 5] and np.isfinite(sc).all()
    got, _ = idx.neighbours(np.array([5]), 6)  # fetch 7 > ef 4: ef is raised for the query, then restored
    assert got.shape == (1, 6) and 5 not in got[0] and idx.graph.ef == 4


# -- one unit matrix, one over-fetch, sentinel padding (#13) --------------------------------
def test_every_index_shares_the_embeddings_unit_matrix():
    x = clustered(200)
    e = ItemEmbeddings.from_vectors([f"i{j}" for j in range(200)], x)
    assert np.allclose(np.linalg.norm(e.unit, axis=1), 1.0, atol=1e-5)
    assert e.use_index("exact").index.unit is e.unit
    ann = e.use_index("ann").index
    assert ann.unit is e.unit and ann.exact.unit is e.unit  # the approximate index wraps the exact one


def test_the_index_protocol_has_no_per_query_exclude():
    x = clustered(50)
    for idx in (ExactIndex(x), HNSWIndex(x, M=4, ef_construction=20, num_threads=1)):
        with pytest.raises(TypeError):
            idx.search(x[:2], 3, exclude=np.array([0, 1]))


@pytest.mark.parametrize("kind", ["exact", "ann"])
@pytest.mark.parametrize("id_kind", ["int", "str"])
def test_short_batch_answers_are_padded_with_the_sentinel_never_with_excluded_ids(kind, id_kind):
    n, k = 40, 10
    ids = list(range(100, 100 + n)) if id_kind == "int" else [f"item-{j}" for j in range(n)]
    e = ItemEmbeddings.from_vectors(ids, clustered(n), index=kind)
    queries, banned = ids[:3], ids[5:]  # each query can return at most the other 4 of the first 5
    got, scores = e.similar_items(queries, k=k, filter_items=banned)
    assert got.shape == scores.shape == (3, k)
    sentinel = -1 if id_kind == "int" else None
    assert e.sentinel == sentinel
    for q, row, sc in zip(queries, got, scores, strict=True):
        real = [x for x in row.tolist() if x != sentinel]
        assert sorted(real) == sorted(x for x in ids[:5] if x != q)  # every allowed item, nothing excluded
        assert np.isfinite(sc[:4]).all() and np.isneginf(sc[4:]).all()
        assert all(x == sentinel for x in row[4:].tolist())
    # query vectors (2-D) pad the same way; one query (1-D) answers short instead
    vec_ids, vec_sc = e.similar_items(e.vectors[:2], k=k, filter_items=banned)
    assert all(x == sentinel for x in vec_ids[:, 5:].ravel().tolist()) and np.isneginf(vec_sc[:, 5:]).all()
    one, _ = e.similar_items(queries[0], k=k, filter_items=banned)
    assert len(one) == 4 and not set(one.tolist()) & set(banned)


def test_ann_filters_with_one_over_fetch_and_exact_rows_where_the_graph_falls_short(monkeypatch):
    x = clustered(2000)
    idx = HNSWIndex(x, M=8, ef_construction=50, num_threads=1)
    calls = []
    knn = idx._knn
    monkeypatch.setattr(idx, "_knn", lambda q, fetch: calls.append(fetch) or knn(q, fetch))
    banned = np.arange(100, 130)
    rows, scores = idx.neighbours(np.arange(5), 10, exclude_all=banned)
    assert calls == [10 + 30 + 1]  # one graph query: k + the filter + the row itself
    assert not set(rows.ravel().tolist()) & set(banned.tolist()) and np.isfinite(scores).all()
    # a row whose over-fetch comes back short is answered exactly
    monkeypatch.setattr(idx, "_knn", lambda q, fetch: (np.tile(banned[:fetch], (len(q), 1)),
                                                      np.zeros((len(q), fetch), np.float32)))
    rows, scores = idx.neighbours(np.arange(3), 10, exclude_all=banned)
    np.testing.assert_array_equal(rows, ExactIndex(x).neighbours(np.arange(3), 10, exclude_all=banned)[0])


def test_cached_neighbours_answer_as_the_exact_search_without_searching(monkeypatch):
    """cache_neighbours: a query of <= K neighbours without a filter is a table lookup with the exact search's answer;
    more neighbours, or a filter, search as before; k=0 drops the table."""
    rng = np.random.default_rng(3)
    ids = np.arange(500, 800)
    emb = ItemEmbeddings(ids, rng.standard_normal((300, 16)).astype(np.float32)).use_index("exact")
    want1 = emb.similar_items(ids[4], k=10)
    want = emb.similar_items(ids[:7].tolist() + [-5], k=20, missing="ignore")
    assert emb.cache_neighbours(20) is emb and emb.neighbour_cache_k == 20

    def no_search(*a, **kw):
        raise AssertionError("searched although the cache answers")

    with monkeypatch.context() as m:
        m.setattr(emb.index, "neighbours", no_search)
        got1 = emb.similar_items(ids[4], k=10)
        got = emb.similar_items(ids[:7].tolist() + [-5], k=20, missing="ignore")
        assert emb.similar_items(ids[4], k=5, filter_items=[-1])[0].tolist() == want1[0][:5].tolist()  # unknown filter
    np.testing.assert_array_equal(got1[0], want1[0])
    np.testing.assert_allclose(got1[1], want1[1], rtol=1e-6)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6)  # the unknown query's row: NaN both ways
    # beyond the table, or filtered: the index answers
    assert emb.similar_items(ids[4], k=30)[0][:10].tolist() == want1[0].tolist()
    assert want1[0][0] not in emb.similar_items(ids[4], k=10, filter_items=[want1[0][0]])[0]
    assert emb.cache_neighbours(0).neighbour_cache_k == 0
    with pytest.raises(ValueError, match=r"k must be an integer >= 0, got -1"):
        emb.cache_neighbours(-1)
    # an approximate index's embeddings cache the exact answers
    if index_mod.ann_available():
        ann = ItemEmbeddings(ids, emb.vectors).use_index("ann", random_state=0).cache_neighbours(10)
        assert ann.similar_items(ids[4], k=10)[0].tolist() == want1[0].tolist()
