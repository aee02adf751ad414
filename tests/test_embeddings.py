"""Item2Vec and ItemEmbeddings: planted clusters, batch = single, persistence, bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from item2vec import Item2Vec, ItemEmbeddings
from item2vec.exceptions import (
    DataError,
    EmptyDataError,
    FormatVersionError,
    NotFittedError,
    OptionError,
    UnknownItemError,
)


@pytest.fixture(scope="module")
def fitted(synthetic_data):
    return Item2Vec(epochs=10, show_progress=False).fit(synthetic_data.decode(synthetic_data.train))


@pytest.fixture(scope="module")
def emb(fitted):
    return fitted.embeddings_


def test_every_neighbour_stays_in_its_cluster(emb, synthetic):
    _, truth = synthetic
    ids, _ = emb.similar_items(list(emb.ids), k=5)
    same = np.array([[truth.cluster[i] == truth.cluster[q] for i in row] for q, row in zip(emb.ids, ids, strict=True)])
    assert same.all(), f"{(~same).sum()} neighbours left their cluster"


def test_batch_equals_single(emb):
    queries = list(emb.ids[:7])
    ids, scores = emb.similar_items(queries, k=6)
    assert ids.shape == scores.shape == (7, 6)
    for q, row_i, row_s in zip(queries, ids, scores, strict=True):
        one_i, one_s = emb.similar_items(q, k=6)
        assert one_i.shape == (6,)
        assert one_i.tolist() == row_i.tolist()
        np.testing.assert_allclose(one_s, row_s, rtol=1e-6)


def test_query_never_in_its_own_answer_and_scores_sorted(emb):
    ids, scores = emb.similar_items(list(emb.ids), k=len(emb))  # ask for everything
    assert ids.shape[1] == len(emb) - 1
    assert all(q not in row for q, row in zip(emb.ids, ids.tolist(), strict=True))
    assert (np.diff(scores, axis=1) <= 1e-6).all()


def test_scores_are_cosines_against_brute_force(emb):
    q = emb.ids[3]
    ids, scores = emb.similar_items(q, k=4)
    v = emb.vectors / np.linalg.norm(emb.vectors, axis=1, keepdims=True)
    cos = v @ v[emb.row(q)]
    np.testing.assert_allclose(scores, [cos[emb.row(i)] for i in ids], rtol=1e-5)


def test_filter_items(emb):
    q = emb.ids[0]
    first, _ = emb.similar_items(q, k=3)
    ids, _ = emb.similar_items(q, k=3, filter_items=list(first[:2]) + ["not-an-item"])
    assert not set(first[:2]) & set(ids)


def test_unknown_id_is_a_keyerror_naming_it(emb):
    with pytest.raises(KeyError, match="nope"):
        emb.similar_items("nope")
    with pytest.raises(UnknownItemError, match="nope"):
        emb.similar_items([emb.ids[0], "nope"])
    ids, scores = emb.similar_items([emb.ids[0], "nope"], k=3, missing="ignore")
    assert np.isnan(scores[1]).all() and list(ids[1]) == [None] * 3
    assert np.isfinite(scores[0]).all()


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_bad_k(emb, k):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        emb.similar_items(emb.ids[0], k=k)


def test_save_load_round_trip(tmp_path, emb):
    path = emb.save(tmp_path / "model")
    back = ItemEmbeddings.load(path)
    assert back.vocab == emb.vocab
    np.testing.assert_array_equal(back.vectors, emb.vectors)
    q = list(emb.ids[:4])
    assert back.similar_items(q, k=5)[0].tolist() == emb.similar_items(q, k=5)[0].tolist()
    mm = ItemEmbeddings.load(path, mmap=True)
    np.testing.assert_array_equal(mm.vectors, emb.vectors)


def test_load_checks_format_version(tmp_path, emb):
    path = emb.save(tmp_path / "model")
    (path / "meta.json").write_text('{"format_version": 42}')
    with pytest.raises(FormatVersionError, match="42"):
        ItemEmbeddings.load(path)


def test_word2vec_text_export_reads_back_with_gensim(tmp_path, emb):
    from gensim.models import KeyedVectors

    path = emb.to_word2vec_format(tmp_path / "vectors.txt")
    kv = KeyedVectors.load_word2vec_format(str(path), binary=False)
    assert len(kv) == len(emb)
    np.testing.assert_allclose(kv[str(emb.ids[0])], emb.vectors[0], rtol=1e-4, atol=1e-5)


def test_int_ids_keep_their_type():
    sessions = [[1, 2, 3], [2, 3, 4], [1, 3, 4]] * 30
    emb = Item2Vec(vector_size=8, epochs=2, show_progress=False).fit(sessions).embeddings_
    assert emb.ids.dtype.kind == "i"
    ids, _ = emb.similar_items(2, k=2)
    assert ids.dtype.kind == "i" and 2 not in ids


def test_one_shot_generator_is_refused_with_the_fix():
    gen = (s for s in [["a", "b"], ["b", "c"]])
    with pytest.raises(TypeError, match=r"one-shot iterator.*list\(sessions\)"):
        Item2Vec().fit(gen)


def test_reiterable_is_accepted(synthetic_data):
    class Corpus:
        def __iter__(self):
            return iter(synthetic_data.decode(synthetic_data.train[:200]))

    emb = Item2Vec(vector_size=8, epochs=1, show_progress=False).fit(Corpus()).embeddings_
    assert len(emb) > 10


def test_no_pairs_is_a_clear_error():
    with pytest.raises(EmptyDataError, match="2 or more items"):
        Item2Vec().fit([["a"], ["b"]])


def test_not_fitted():
    with pytest.raises(NotFittedError, match="fit"):
        _ = Item2Vec().embeddings_


@pytest.mark.parametrize("kind", ["pandas", "polars"])
def test_fit_refuses_an_event_frame_and_says_what_to_pass(kind):
    """A frame used to train on the characters of its column names (pandas) or on its columns (polars)."""
    import polars as pl

    frame = pl.DataFrame({"session_id": [1, 1, 2, 2], "item_id": ["a", "b", "a", "c"]})
    if kind == "pandas":
        frame = frame.to_pandas()
    with pytest.raises(TypeError, match=rf"got a {kind} DataFrame.*prepare\(frame"):
        Item2Vec(vector_size=4, epochs=1, show_progress=False).fit(frame)


def test_fit_refuses_strings_as_sessions():
    with pytest.raises(TypeError, match="a string is not a session"):
        Item2Vec(vector_size=4, epochs=1, show_progress=False).fit(["abc", "bcd"] * 10)
    with pytest.raises(TypeError, match="list of lists of item ids, got str"):
        Item2Vec(vector_size=4, epochs=1, show_progress=False).fit("abcd")


def test_fit_takes_a_series_of_lists_from_a_pandas_groupby():
    import pandas as pd

    df = pd.DataFrame({"session_id": [1, 1, 1, 2, 2, 3, 3] * 10, "item_id": [10, 11, 12, 11, 12, 10, 12] * 10})
    sessions = df.groupby("session_id")["item_id"].agg(list)
    emb = Item2Vec(vector_size=4, epochs=1, show_progress=False).fit(sessions).embeddings_
    assert sorted(emb.ids.tolist()) == [10, 11, 12]


def test_fit_takes_a_polars_series_of_lists():
    import polars as pl

    sessions = pl.Series([[10, 11, 12], [11, 12], [10, 12]] * 10)
    emb = Item2Vec(vector_size=4, epochs=1, show_progress=False).fit(sessions).embeddings_
    assert sorted(emb.ids.tolist()) == [10, 11, 12]


@pytest.mark.parametrize("params, option", [
    ({"window": 0}, "window"),
    ({"window": -2}, "window"),
    ({"window": 2.5}, "window"),
    ({"workers": 0}, "workers"),
    ({"alpha": float("nan")}, "alpha"),
    ({"alpha": 0.0}, "alpha"),
    ({"min_alpha": 0.5}, "min_alpha"),
    ({"epochs": 0}, "epochs"),
    ({"vector_size": 0}, "vector_size"),
    ({"vector_size": "64"}, "vector_size"),
    ({"negative": 0}, "negative"),
    ({"sample": -1e-3}, "sample"),
    ({"ns_exponent": float("inf")}, "ns_exponent"),
    ({"min_count": 0}, "min_count"),
    ({"random_state": True}, "random_state"),
])
def test_hyperparameters_that_cannot_train_are_refused_at_construction(params, option):
    """These used to train nothing and save the random initial vectors with exit status 0."""
    with pytest.raises(OptionError, match=rf"Item2Vec: {option} must be") as e:
        Item2Vec(**params)
    assert option in e.value.options


def test_the_whole_session_window_is_still_none():
    assert Item2Vec(window=None).config.window is None


def test_unknown_hyperparameter():
    with pytest.raises(ValueError, match="unknown Item2Vec option"):
        Item2Vec(windw=3)


def test_bad_vectors():
    with pytest.raises(DataError, match="one id per row"):
        ItemEmbeddings(["a", "b"], np.zeros((3, 2)))
    with pytest.raises(DataError, match="NaN"):
        ItemEmbeddings(["a"], np.array([[np.nan, 1.0]]))


def test_same_seed_same_vectors_across_processes(tmp_path):
    """workers=1 and one random_state give identical vectors, even with a different hash seed."""
    code = (
        "import sys, numpy as np; from item2vec import Item2Vec, make_sessions, prepare;"
        "ev, _ = make_sessions(n_sessions=300, random_state=3); d = prepare(ev);"
        "e = Item2Vec(vector_size=16, epochs=3, workers=1, random_state=7, show_progress=False).fit(d.decode(d.train)).embeddings_;"
        "np.save(sys.argv[1], e.vectors[np.argsort(e.ids.astype(str))])"
    )
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / f"v{seed}.npy"
        subprocess.run([sys.executable, "-c", code, str(out)], check=True, env={"PYTHONHASHSEED": seed, "PATH": ""})
        outs.append(np.load(out))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_warm_start_keeps_space_comparable(synthetic_data):
    train = synthetic_data.decode(synthetic_data.train)
    a = Item2Vec(vector_size=16, epochs=5, random_state=1, show_progress=False).fit(train).embeddings_
    b = Item2Vec(vector_size=16, epochs=1, alpha=0.001, random_state=2, show_progress=False).fit(train, init=a).embeddings_
    cold = Item2Vec(vector_size=16, epochs=1, alpha=0.001, random_state=2, show_progress=False).fit(train).embeddings_
    common = [i for i in a.ids if i in b]

    def drift(x):
        return np.mean([np.linalg.norm(x[i] - a[i]) for i in common])

    assert drift(b) < 0.5 * drift(cold)


def test_loss_history_per_epoch(synthetic_data):
    train = synthetic_data.decode(synthetic_data.train)
    m = Item2Vec(vector_size=16, epochs=5, show_progress=False).fit(train)
    assert len(m.loss_history_) == 5 and all(x > 0 for x in m.loss_history_)
    assert m.loss_history_[-1] < m.loss_history_[0]
    quiet = Item2Vec(vector_size=16, epochs=5, show_progress=False, compute_loss=False).fit(train)
    assert quiet.loss_history_ == [0.0] * 5


def test_fit_runs_the_given_epoch_callbacks_and_one_may_stop_it():
    from gensim.models.callbacks import CallbackAny2Vec

    class Count(CallbackAny2Vec):
        def __init__(self):
            self.epochs, self.sizes = 0, []

        def on_epoch_end(self, model):
            self.epochs += 1
            self.sizes.append(len(model.wv))

    sessions = [[1, 2, 3, 4], [2, 3, 5], [4, 5, 1, 2]] * 5
    count = Count()
    Item2Vec(epochs=3, vector_size=8, min_count=1, show_progress=False).fit(sessions, callbacks=[count])
    assert count.epochs == 3 and count.sizes == [5, 5, 5]

    class Stop(CallbackAny2Vec):
        def on_epoch_end(self, model):
            raise RuntimeError("stop after one epoch")

    with pytest.raises(RuntimeError, match="stop after one epoch"):
        Item2Vec(epochs=3, vector_size=8, min_count=1, show_progress=False).fit(sessions, callbacks=[Stop()])
