"""Vectors that travel: gensim KeyedVectors both ways, query vectors, the TensorFlow Embedding Projector's files."""

from __future__ import annotations

import numpy as np
import pytest
from gensim.models import KeyedVectors

from item2vec import Item2Vec
from item2vec.data import make_sessions
from item2vec.embeddings import ItemEmbeddings
from item2vec.exceptions import DataError, EmptyDataError


@pytest.fixture(scope="module")
def fitted():
    """Item2Vec on a synthetic log with string ids, and its gensim model."""
    events, _ = make_sessions(n_sessions=400, n_clusters=4, items_per_cluster=15, random_state=5)
    sessions = events.group_by("session_id", maintain_order=True).agg("item_id")["item_id"].to_list()
    return Item2Vec(vector_size=12, epochs=3, show_progress=False, compute_loss=False).fit(sessions)


def _random(ids, dim=8, seed=0):
    return ItemEmbeddings(ids, np.random.default_rng(seed).normal(size=(len(ids), dim)))


@pytest.mark.parametrize("ids", [[7, 3, 250, 12, 9, 40], ["b", "a", "x y", "85123A", "0", "é"]], ids=["int", "str"])
def test_keyed_vectors_round_trip_keeps_ids_their_type_and_vectors(ids):
    emb = _random(ids)
    kv = emb.to_keyed_vectors()
    assert isinstance(kv, KeyedVectors)
    assert kv.index_to_key == ids and all(type(k) is type(i) for k, i in zip(kv.index_to_key, ids, strict=True))
    np.testing.assert_array_equal(kv.vectors, emb.vectors)
    kv.vectors[0] += 1.0  # a copy: the embeddings are not changed through it
    assert not np.allclose(kv.vectors[0], emb.vectors[0])
    back = ItemEmbeddings.from_keyed_vectors(emb.to_keyed_vectors())
    assert back.vocab.to_list() == ids and back.ids.dtype == emb.ids.dtype
    np.testing.assert_array_equal(back.vectors, emb.vectors)
    for item in ids:
        np.testing.assert_array_equal(back.similar_items(item, k=3)[0], emb.similar_items(item, k=3)[0])


@pytest.mark.parametrize("ids", [list(range(100, 130)), [f"p{i}" for i in range(30)]], ids=["int", "str"])
def test_gensim_answers_match_similar_items(ids):
    emb = _random(ids, dim=10, seed=1)
    kv = emb.to_keyed_vectors()
    a, b, c = ids[3], ids[8], ids[17]
    # most_similar(one id) is similar_items(that id)
    got = kv.most_similar(a, topn=5)
    want_ids, want_scores = emb.similar_items(a, k=5)
    assert [k for k, _ in got] == want_ids.tolist()
    np.testing.assert_allclose([s for _, s in got], want_scores, atol=1e-5)
    # analogies: gensim's mean of unit vectors equals a query vector here, the query items filtered out
    got = kv.most_similar(positive=[a, b], negative=[c], topn=4)
    unit = emb.vectors / np.linalg.norm(emb.vectors, axis=1, keepdims=True)
    query = (unit[emb.row(a)] + unit[emb.row(b)] - unit[emb.row(c)]) / 3
    want_ids, want_scores = emb.similar_items(query, k=4, filter_items=[a, b, c])
    assert [k for k, _ in got] == want_ids.tolist()
    np.testing.assert_allclose([s for _, s in got], want_scores, atol=1e-5)
    # similar_by_vector: the item itself first
    assert kv.similar_by_vector(emb[a], topn=1)[0][0] == a
    # n_similarity: cosine of the mean vectors
    mean_1, mean_2 = emb[a], (emb[b] + emb[c]) / 2
    cos = float(mean_1 @ mean_2 / np.linalg.norm(mean_1) / np.linalg.norm(mean_2))
    assert kv.n_similarity([a], [b, c]) == pytest.approx(cos, abs=1e-5)


def test_similar_items_takes_a_vector_or_a_batch_of_vectors():
    ids = [f"i{j}" for j in range(20)]
    emb = _random(ids, dim=6, seed=2)
    found, scores = emb.similar_items(emb["i4"], k=3)
    assert found[0] == "i4" and scores[0] == pytest.approx(1.0, abs=1e-5)  # nothing excluded from a vector's answer
    np.testing.assert_array_equal(found[1:], emb.similar_items("i4", k=2)[0])
    assert found.shape == scores.shape == (3,)
    batch_ids, batch_scores = emb.similar_items(np.stack([emb["i1"], emb["i2"]]), k=2)
    assert batch_ids.shape == batch_scores.shape == (2, 2)
    assert batch_ids[:, 0].tolist() == ["i1", "i2"]
    found, _ = emb.similar_items(emb["i4"] * 3.0, k=2, filter_items=["i4"])  # scale does not matter; filters apply
    np.testing.assert_array_equal(found, emb.similar_items("i4", k=2)[0])
    # an int array is still a batch of ids
    int_emb = _random([5, 6, 7, 8], dim=3, seed=3)
    assert int_emb.similar_items(np.array([5, 6]), k=1)[0].shape == (2, 1)


def test_a_query_vector_of_the_wrong_shape_or_with_nan_is_refused():
    emb = _random(["a", "b", "c"], dim=4)
    with pytest.raises(DataError, match=r"shape \(4,\) or \(n, 4\).*got shape \(5,\)"):
        emb.similar_items(np.zeros(5), k=1)
    with pytest.raises(DataError, match="NaN"):
        emb.similar_items(np.array([np.nan, 0.0, 0.0, 1.0]), k=1)


def test_from_a_gensim_word2vec_model_and_the_word2vec_text_format(fitted, tmp_path):
    emb = fitted.embeddings_
    back = ItemEmbeddings.from_keyed_vectors(fitted.model_)  # a Word2Vec: its .wv
    assert back.vocab.to_list() == emb.vocab.to_list()
    np.testing.assert_array_equal(back.vectors, emb.vectors)
    ints = _random([85123, 22423, 47566, 84879], dim=5, seed=4)
    path = ints.to_word2vec_format(tmp_path / "v.txt")
    kv = KeyedVectors.load_word2vec_format(str(path))
    assert kv.index_to_key == ["85123", "22423", "47566", "84879"]  # the text format loses the type
    back = ItemEmbeddings.from_keyed_vectors(kv, id_type=int)
    assert back.vocab.to_list() == [85123, 22423, 47566, 84879] and back.ids.dtype.kind == "i"
    np.testing.assert_allclose(back.vectors, ints.vectors, rtol=1e-5)
    assert ItemEmbeddings.from_keyed_vectors(ints.to_keyed_vectors(), id_type=str).vocab.to_list()[0] == "85123"


def test_from_keyed_vectors_refuses_what_it_cannot_use():
    with pytest.raises(TypeError, match="expects gensim KeyedVectors.*got dict"):
        ItemEmbeddings.from_keyed_vectors({"a": [1.0]})
    kv = _random(["a", "12"]).to_keyed_vectors()
    with pytest.raises(DataError, match="key 'a' of the gensim vectors is not an integer"):
        ItemEmbeddings.from_keyed_vectors(kv, id_type=int)
    with pytest.raises(TypeError, match="id_type must be None, int or str"):
        ItemEmbeddings.from_keyed_vectors(kv, id_type=float)
    with pytest.raises(EmptyDataError, match="no keys"):
        ItemEmbeddings.from_keyed_vectors(KeyedVectors(vector_size=3))
    mixed = KeyedVectors(vector_size=2)
    mixed.add_vectors([1, "1"], np.ones((2, 2), dtype=np.float32))
    with pytest.raises(DataError, match="duplicate item id '1'"):
        ItemEmbeddings.from_keyed_vectors(mixed, id_type=str)


def test_projector_files_line_up_with_the_vectors(tmp_path):
    ids = [3, 1, 2, 10]
    emb = _random(ids, dim=5, seed=6)
    vec_path, meta_path = emb.to_projector(tmp_path / "proj", titles={3: "red\tmug\nlarge", 1: "cup"},
                                           categories={3: "kitchen", 2: "garden"})
    vectors = np.loadtxt(vec_path, delimiter="\t")
    np.testing.assert_allclose(vectors, emb.vectors, rtol=1e-5, atol=1e-6)
    assert meta_path.read_text().splitlines() == [
        "item_id\ttitle\tcategory", "3\tred mug large\tkitchen", "1\tcup\t", "2\t\tgarden", "10\t\t",
    ]
    # one column: the bare ids, no header (the projector's rule)
    _, bare = emb.to_projector(tmp_path / "bare")
    assert bare.read_text().splitlines() == ["3", "1", "2", "10"]
    _, titled = emb.to_projector(tmp_path / "titled", titles={1: "cup"})
    assert titled.read_text().splitlines()[0] == "item_id\ttitle"


@pytest.mark.slow
def test_online_retail_gensim_round_trip_and_projector_files(shared_datasets, tmp_path):
    if not (shared_datasets / "online-retail" / "by-day").is_dir():
        pytest.skip("online-retail is not among the shared datasets")
    from item2vec.data import PrepareConfig, prepare, read_events, read_item_metadata

    path = shared_datasets / "online-retail" / "by-day"
    data = prepare(read_events(path, "online-retail", start="2011-09-01"),
                   PrepareConfig(test_days=7, valid_days=7, max_session_length=50),
                   metadata=read_item_metadata(path, "online-retail"), name="online-retail")
    model = Item2Vec(vector_size=32, epochs=3, show_progress=False, compute_loss=False).fit(data.decode(data.train))
    emb = model.embeddings_
    kv = emb.to_keyed_vectors()
    back = ItemEmbeddings.from_keyed_vectors(kv)
    assert back.vocab.to_list() == emb.vocab.to_list()
    np.testing.assert_array_equal(back.vectors, emb.vectors)
    item = "85123A" if "85123A" in emb else emb.ids[0]  # WHITE HANGING HEART T-LIGHT HOLDER
    assert [k for k, _ in kv.most_similar(item, topn=10)] == emb.similar_items(item, k=10)[0].tolist()
    titles = data.titles()
    vec_path, meta_path = emb.to_projector(tmp_path, titles=titles)
    rows = meta_path.read_text().splitlines()
    assert rows[0] == "item_id\ttitle" and len(rows) == len(emb) + 1
    assert rows[1 + emb.row(item)] == f"{item}\t{titles[item]}"
    assert np.loadtxt(vec_path, delimiter="\t").shape == (len(emb), emb.dim)
    print(f"\nonline retail: {len(emb):,} items x {emb.dim}; {item} {titles[item]!r}: "
          f"{kv.most_similar(item, topn=3)}; projector files {vec_path.stat().st_size:,} + "
          f"{meta_path.stat().st_size:,} bytes")


def test_word2vec_text_format_is_gensims_exact_and_in_order(tmp_path, caplog):
    """Written by gensim: float32 values come back exactly, ids 0..n-1 once each, in the vectors' order."""
    emb = _random([0, 1, 2, 3], dim=6, seed=5)
    with caplog.at_level("WARNING"):
        path = emb.to_word2vec_format(tmp_path / "v.txt")
    assert not caplog.records
    lines = path.read_text().splitlines()
    assert lines[0] == "4 6" and [line.split()[0] for line in lines[1:]] == ["0", "1", "2", "3"]
    kv = KeyedVectors.load_word2vec_format(str(path))
    np.testing.assert_array_equal(kv.vectors, emb.vectors)
    with pytest.raises(DataError, match="whitespace"):
        _random(["a b", "c"]).to_word2vec_format(tmp_path / "w.txt")
    assert not (tmp_path / "w.txt").exists()
