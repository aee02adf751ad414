"""The served model (similar items + next items in external ids), its pyfunc, and loading by alias."""

from __future__ import annotations

import json
from pathlib import Path

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
def test_log_register_and_load_by_alias(tmp_path, emb, next_model, monkeypatch):
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
    # no input schema: MLflow does not check and rebuild each request's frame (a third of a served
    # request's time); the model checks the columns itself, and the example shows them
    assert sig.inputs is None and sig.params.to_dict()[0]["name"] == "k"
    assert [c.name for c in sig.outputs.inputs] == ["query", "item_ids", "scores", "unknown", "n_ignored"]
    assert set(pyfunc.input_example.columns) == {"item_id", "session"}

    def no_schema_check(*a, **kw):
        raise AssertionError("MLflow's input-schema check ran on the request path")

    monkeypatch.setattr(mlflow.pyfunc, "_enforce_schema", no_schema_check)
    with pytest.raises(mlflow.exceptions.MlflowException, match=r"expected a column 'item_id' .* got \['itemid'\]"):
        pyfunc.predict(pd.DataFrame({"itemid": [a]}))
    out = pyfunc.predict(pd.DataFrame({"item_id": [a, "nope"]}), params={"k": 2})
    assert [len(x) for x in out["item_ids"]] == [2, 0] and out["unknown"].tolist() == [False, True]
    out = pyfunc.predict(pd.DataFrame({"session": [[a, b]]}), params={"k": 3})
    assert out["item_ids"][0] == served.recommend([a, b], 3)[0].tolist()
    # the served pyfunc answers item requests from a neighbour table built at load (a small catalogue)
    from item2vec.registry import NEIGHBOUR_CACHE_K

    assert pyfunc.unwrap_python_model().served.embeddings.neighbour_cache_k == min(NEIGHBOUR_CACHE_K, len(emb) - 1)
    with use_tracking_uri(uri):
        plain = mlflow.pyfunc.load_model("models:/toy@champion", model_config={"neighbour_cache": 0})
    assert plain.unwrap_python_model().served.embeddings.neighbour_cache_k == 0
    assert plain.predict(pd.DataFrame({"item_id": [a]}), params={"k": 4})["item_ids"][0] == \
        pyfunc.predict(pd.DataFrame({"item_id": [a]}), params={"k": 4})["item_ids"][0]


# ---------------------------------------------------------------------------
# one id policy: ids keep their type; the other spelling works; nulls are skipped
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def int_served() -> ServedModel:
    rng = np.random.default_rng(0)
    return ServedModel(ItemEmbeddings([13931, 32902, 7, 40, 51], rng.normal(size=(5, 8)).astype(np.float32)))


@pytest.fixture(scope="module")
def str_served() -> ServedModel:
    rng = np.random.default_rng(1)
    ids = ["85123A", "71053", "7", "22633", "POST"]  # digit-only codes that are strings in the data
    return ServedModel(ItemEmbeddings(ids, rng.normal(size=(5, 8)).astype(np.float32)))


def test_int_catalogue_takes_both_spellings_and_names_its_type(int_served):
    want = int_served.similar_items(32902, 3)[0]
    assert want.dtype.kind == "i"
    for spelling in ("32902", " 32902", np.int64(32902), 32902.0):
        np.testing.assert_array_equal(int_served.similar_items(spelling, 3)[0], want)
    for bad in ("abc", 1.5, True):
        with pytest.raises(UnknownItemError, match="this catalogue holds integer ids"):
            int_served.similar_items(bad, 3)
    with pytest.raises(UnknownItemError, match="integer ids"):
        int_served.similar_items(99999, 3)


def test_plain_embeddings_name_the_catalogue_type_of_an_unknown_id(int_served, str_served):
    with pytest.raises(UnknownItemError, match=r"'32902' \(str\): this catalogue holds integer ids"):
        int_served.embeddings.similar_items("32902", 2)
    with pytest.raises(UnknownItemError, match=r"71053 \(int\): this catalogue holds string ids"):
        str_served.embeddings.similar_items(71053, 2)


def test_str_catalogue_takes_both_spellings_and_names_its_type(str_served):
    want = str_served.similar_items("71053", 3)[0]
    assert all(isinstance(x, str) for x in want.tolist())
    np.testing.assert_array_equal(str_served.similar_items(71053, 3)[0], want)
    np.testing.assert_array_equal(str_served.similar_items(7.0, 3)[0], str_served.similar_items("7", 3)[0])
    with pytest.raises(UnknownItemError, match="this catalogue holds string ids"):
        str_served.similar_items(["85123A"], 3)


@pytest.mark.parametrize("which", ["int_served", "str_served"])
def test_sessions_mix_known_unknown_and_null_entries(which, request):
    served = request.getfixturevalue(which)
    a, b = served.embeddings.ids[:2].tolist()
    want = served.recommend([a, b], 3)[0].tolist()
    session = [a, None, float("nan"), pd.NA, "never-seen", b]
    assert served.recommend(session, 3)[0].tolist() == want
    frame = pd.DataFrame({"item_id": [None, a, None], "session": [session, None, [None, "x"]]})
    out = served.predict_frame(frame, k=3)
    assert out["item_ids"][0] == want and out["n_ignored"][0] == 4
    assert out["item_ids"][1] == served.similar_items(a, 3)[0].tolist()
    assert out["unknown"].tolist() == [False, False, True] and out["n_ignored"][2] == 2
    # a single string is one id, not its characters
    one = served.predict_frame(pd.DataFrame({"session": [str(a)]}), k=3)
    assert one["item_ids"][0] == served.recommend([a], 3)[0].tolist() and one["n_ignored"][0] == 0


def test_requests_as_records_and_columns(int_served):
    a, b = int_served.embeddings.ids[:2].tolist()
    want = int_served.predict_frame(pd.DataFrame({"item_id": [a, b]}), k=2)
    for req in ([{"item_id": a}, {"item_id": b}], {"item_id": [a, b]}, {"item_id": np.array([a, b])},
                pd.DataFrame({"item_id": [[a, b]]})):
        pd.testing.assert_frame_equal(int_served.predict_frame(req, k=2), want)
    # pandas' nullable integers: a gap is pd.NA, not a float
    mixed = pd.DataFrame({"item_id": pd.array([a, None], dtype="Int64"), "session": [None, [a, None, b]]})
    out = int_served.predict_frame(mixed, k=2)
    assert out["item_ids"][0] == want["item_ids"][0] and out["item_ids"][1] == int_served.recommend([a, b], 2)[0].tolist()


@pytest.mark.parametrize("use_next", [False, True])
def test_filter_items_and_exclude_session(use_next, emb, next_model):
    served = ServedModel(emb, next_model if use_next else None)
    a, b = emb.ids[:2].tolist()
    top = served.similar_items(a, 4)[0].tolist()
    got = served.similar_items(a, 4, filter_items=top[:2])[0].tolist()
    assert len(got) == 4 and not set(got) & set(top[:2]) and got[:2] == top[2:]
    plain = served.recommend([a, b], 6)[0].tolist()
    ban = plain[:2]
    got = served.recommend([a, b], 4, filter_items=ban)[0].tolist()
    assert len(got) == 4 and not set(got) & set(ban) and got == [x for x in plain if x not in ban][:4]
    seen = [a, b, *plain[:1]]
    got = served.recommend(seen, 4, exclude_session=True)[0].tolist()
    assert len(got) == 4 and not set(got) & set(seen)
    out = served.predict_frame(pd.DataFrame({"session": [seen]}), k=4, filter_items=ban, exclude_session=True)
    assert not set(out["item_ids"][0]) & (set(seen) | set(ban))


@pytest.mark.parametrize("k", [0, -3, 2.5, True])
def test_k_must_be_positive_everywhere(served, k):
    a = served.embeddings.ids[0]
    for call in (lambda: served.similar_items(a, k), lambda: served.recommend([a], k),
                 lambda: served.predict_frame(pd.DataFrame({"item_id": [a]}), k=k)):
        with pytest.raises(ValueError, match=r"^k must be a positive integer, got"):
            call()


# ---------------------------------------------------------------------------
# the MLflow model: integer ids log and load; nothing is unpickled; names MLflow refuses
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["int_served", "str_served"])
def test_log_register_and_load_keep_the_id_type(which, request, tmp_path):
    from item2vec.tracking import start_run, use_tracking_uri

    served = request.getfixturevalue(which)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with start_run("ids", experiment="ids", tracking_uri=uri):
        info = log_model(served, registered_model_name="ids")
    set_alias("ids", info.registered_model_version, "champion", tracking_uri=uri)
    back = item2vec.load("models:/ids@champion", tracking_uri=uri)
    assert back.id_type == served.id_type
    a = served.embeddings.ids.tolist()[0]
    np.testing.assert_array_equal(back.similar_items(a, 3)[0], served.similar_items(a, 3)[0])
    with use_tracking_uri(uri):
        pyfunc = mlflow.pyfunc.load_model("models:/ids@champion")
    out = pyfunc.predict(pd.DataFrame({"item_id": [a, None, str(a)], "session": [None, [a, None], None]}),
                         params={"k": 2})
    assert out["item_ids"][0] == out["item_ids"][2] == served.similar_items(a, 2)[0].tolist()
    assert out["unknown"].tolist() == [False, False, False]


def test_the_logged_model_holds_no_pickle_and_loading_reads_none(tmp_path, emb, next_model):
    import pickle

    from item2vec.tracking import start_run, use_tracking_uri

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with start_run("trust", experiment="trust", tracking_uri=uri):
        info = log_model(ServedModel(emb, next_model))
    with use_tracking_uri(uri):
        local = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "model")))
    files = [p for p in local.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".pkl", ".pt", ".pickle", ".joblib")], files
    # a poisoned pickle planted where MLflow used to look: unpickling it would create `marker`
    marker = tmp_path / "unpickled"

    class Poison:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (local / "python_model.pkl").write_bytes(pickle.dumps(Poison()))
    item2vec.load(local)
    mlflow.pyfunc.load_model(str(local)).predict(pd.DataFrame({"item_id": [emb.ids[0]]}))
    assert not marker.exists()


@pytest.mark.parametrize("name", ["", "  ", "a/b", "models:x", "toy@champion", "..", " padded", "a\\b"])
def test_names_mlflow_refuses_are_refused_before_any_work(name, tmp_path):
    from item2vec.registry import check_model_name
    from item2vec.retrain import RetrainConfig

    with pytest.raises(DataError, match="model name"):
        check_model_name(name)
    with pytest.raises(DataError, match="model name"):
        RetrainConfig(model_name=name)


def test_an_experiment_named_dotdot_stays_inside_the_artifact_store(tmp_path):
    from item2vec.tracking import log_json, start_run

    store = tmp_path / "store"
    store.mkdir()
    with start_run("escape", experiment="..", tracking_uri=f"sqlite:///{store}/mlflow.db"):
        log_json({"x": 1}, "probe.json")
    written = [p for p in tmp_path.rglob("probe.json")]
    assert written and all((store / "mlartifacts") in p.parents for p in written)


def test_the_cli_refuses_a_bad_model_name_in_one_line_before_writing(tmp_path, capsys):
    from item2vec.cli import main

    events = tmp_path / "events.csv"
    events.write_text("session_id,item_id,timestamp\n1,a,2024-01-01 00:00:00\n")
    code = main(["retrain", "--events", str(events), "--model-name", "shop/daily",
                 "--tracking-uri", f"sqlite:///{tmp_path}/db/mlflow.db"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "model name 'shop/daily'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "db").exists()


def test_the_cli_follows_the_same_id_policy(int_served, tmp_path, capsys):
    from item2vec.cli import main

    path = int_served.embeddings.save(tmp_path / "emb")
    assert main(["similar", "--model", str(path), "32902", "-k", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["32902"][0]["item_id"] == int_served.similar_items(32902, 2)[0].tolist()[0]
    assert main(["similar", "--model", str(path), "abc"]) == 2
    assert "this catalogue holds integer ids" in capsys.readouterr().err
