"""The served model (similar items + next items in external ids), its pyfunc, and loading by alias."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import item2vec
from item2vec.data import ItemVocab
from item2vec.embeddings import Item2Vec, ItemEmbeddings
from item2vec.exceptions import DataError, UnknownItemError
from item2vec.registry import (
    ServedModel,
    get_version_by_alias,
    log_model,
    registry_history,
    set_alias,
)

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def emb(synthetic_data) -> ItemEmbeddings:
    data = synthetic_data
    return Item2Vec(vector_size=16, epochs=5, show_progress=False).fit(data.decode(data.train)).embeddings_


@pytest.fixture(scope="module")
def next_model(synthetic_data, emb):
    from item2vec.nextitem import NextItemRecommender

    data = synthetic_data
    m = NextItemRecommender(embeddings=emb, vocab=data.vocab, epochs=2, hidden_size=16, patience=5,
                            num_threads=1, show_progress=False)
    return m.fit(data.train, n_items=data.n_items, valid=data.valid)


@pytest.fixture(scope="module")
def served(emb) -> ServedModel:
    return ServedModel(emb)


# ---------------------------------------------------------------------------
# ServedModel
# ---------------------------------------------------------------------------
def test_similar_items_stay_in_the_planted_cluster(served, synthetic):
    _, truth = synthetic
    q = "c00_i000"
    ids, scores = served.similar_items(q, k=5)
    assert len(ids) == 5 and q not in ids
    assert np.all(np.diff(scores) <= 1e-6)
    assert sum(truth.cluster[i] == truth.cluster[q] for i in ids) >= 4


def test_recommend_without_next_model_uses_the_last_known_item(served):
    a, b = "c01_i000", "c02_i001"
    ids, _ = served.recommend([a, "unknown-id", b], k=5)
    np.testing.assert_array_equal(ids, served.similar_items(b, k=5)[0])


def test_unknown_ids_raise_by_name(served):
    with pytest.raises(UnknownItemError, match="nope"):
        served.similar_items("nope")
    with pytest.raises(UnknownItemError):
        served.recommend(["nope", "nada"])
    with pytest.raises(ValueError, match="empty"):
        served.recommend([])
    with pytest.raises(TypeError, match="list of item ids"):
        served.recommend("c00_i000")


def test_int_ids_accept_their_string_spelling():
    emb = ItemEmbeddings([10, 20, 30, 40], np.eye(4, dtype=np.float32) + 0.1)
    m = ServedModel(emb)
    np.testing.assert_array_equal(m.similar_items("20", k=2)[0], m.similar_items(20, k=2)[0])
    out = m.predict_frame(pd.DataFrame({"item_id": ["20", 99]}), k=2)
    assert out["unknown"].tolist() == [False, True]


def test_predict_frame_answers_both_kinds_and_flags_unknown_ids(served, emb):
    a, b = emb.ids[:2].tolist()
    frame = pd.DataFrame({"item_id": [a, None, "nope", None], "session": [None, [a, b], None, ["x", "y"]]})
    out = served.predict_frame(frame, k=3)
    assert out["query"].tolist() == ["item_id", "session", "item_id", "session"]
    assert out["item_ids"][0] == served.similar_items(a, 3)[0].tolist()
    assert out["item_ids"][1] == served.recommend([a, b], 3)[0].tolist()
    assert out["unknown"].tolist() == [False, False, True, True]
    assert out["item_ids"][2] == [] and out["scores"][3] == []
    assert out["n_ignored"].tolist() == [0, 0, 0, 2]


def test_predict_frame_refuses_a_frame_without_either_column(served):
    with pytest.raises(DataError, match="item_id.*session"):
        served.predict_frame(pd.DataFrame({"product": ["a"]}))
    with pytest.raises(ValueError, match="k must be"):
        served.predict_frame(pd.DataFrame({"item_id": ["a"]}), k=0)


def test_with_next_model_sessions_go_through_the_bilstm(emb, next_model, synthetic_data):
    m = ServedModel(emb, next_model)
    sess = synthetic_data.decode(synthetic_data.test[:1])[0][:3]
    ids, scores = m.recommend(sess + ["never-seen"], k=4)
    idx, sc = next_model.recommend(synthetic_data.vocab.indices(sess), 4)
    np.testing.assert_array_equal(ids, synthetic_data.vocab.lookup(idx))
    np.testing.assert_allclose(scores, sc, rtol=1e-5)


def test_served_recommender_maps_onto_a_new_vocabulary(emb, next_model, synthetic_data):
    data = synthetic_data
    # a new vocabulary: a brand-new item first, then the known ones in reverse order
    new_vocab = ItemVocab(["brand-new", *data.vocab.ids.tolist()[::-1]])
    enc = {i: new_vocab.index(i) for i in data.vocab.ids.tolist()}
    prefix_ids = data.decode(data.test[:1])[0][:3]
    for nm in (None, next_model):
        m = ServedModel(emb, nm)
        rec = m.recommender(new_vocab).fit([np.asarray([enc[i] for i in prefix_ids])], n_items=len(new_vocab))
        scores = rec.score_batch([np.asarray([enc[i] for i in prefix_ids])])[0]
        assert scores[1] == -np.inf  # the champion cannot recommend an item it never saw
        top, _ = rec.recommend(np.asarray([enc[i] for i in prefix_ids]), k=3)
        want, _ = m.recommend(prefix_ids, k=3)
        assert new_vocab.lookup(top).tolist() == want.tolist()


def test_save_load_round_trip(tmp_path, emb, next_model):
    m = ServedModel(emb, next_model, info={"run_id": "abc"})
    m.save(tmp_path / "served")
    back = ServedModel.load(tmp_path / "served")
    assert back.info == {"run_id": "abc"} and back.next_model is not None
    q = emb.ids[:2].tolist()
    np.testing.assert_array_equal(back.recommend(q, 5)[0], m.recommend(q, 5)[0])
    # a plain embeddings directory opens as a served model too
    emb.save(tmp_path / "emb")
    only = item2vec.load(tmp_path / "emb")
    np.testing.assert_array_equal(only.similar_items(q[0], 3)[0], emb.similar_items(q[0], 3)[0])
    with pytest.raises(FileNotFoundError):
        item2vec.load(tmp_path / "missing")


# ---------------------------------------------------------------------------
# MLflow: pyfunc, signature, aliases
# ---------------------------------------------------------------------------
def test_log_register_and_load_by_alias(tmp_path, emb, next_model):
    from item2vec.tracking import start_run

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    served = ServedModel(emb, next_model)
    with start_run("registry", experiment="registry", tracking_uri=uri):
        info = log_model(served, registered_model_name="toy")
    assert get_version_by_alias("toy", "champion", tracking_uri=uri) is None
    set_alias("toy", info.registered_model_version, "champion", tracking_uri=uri)
    assert str(get_version_by_alias("toy", "champion", tracking_uri=uri).version) == str(info.registered_model_version)
    assert registry_history("toy", tracking_uri=uri)[0]["aliases"] == ["champion"]

    loaded = item2vec.load("models:/toy@champion", tracking_uri=uri)
    a, b = emb.ids[:2].tolist()
    for got, want in ((loaded.similar_items(a, 5), served.similar_items(a, 5)),
                      (loaded.recommend([a, b], 5), served.recommend([a, b], 5))):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_allclose(got[1], want[1], rtol=1e-5)

    from item2vec.tracking import use_tracking_uri

    with use_tracking_uri(uri):
        pyfunc = mlflow.pyfunc.load_model("models:/toy@champion")
    sig = pyfunc.metadata.signature
    assert {c.name: c.required for c in sig.inputs.inputs} == {"item_id": False, "session": False}
    assert sig.params.to_dict()[0]["name"] == "k"
    out = pyfunc.predict(pd.DataFrame({"item_id": [a, "nope"]}), params={"k": 2})
    assert [len(x) for x in out["item_ids"]] == [2, 0] and out["unknown"].tolist() == [False, True]
    out = pyfunc.predict(pd.DataFrame({"session": [[a, b]]}), params={"k": 3})
    assert out["item_ids"][0] == served.recommend([a, b], 3)[0].tolist()
