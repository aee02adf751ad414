"""MLflow tracking helpers and the --mlflow option of fit / evaluate / train-next, on a temporary store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from item2vec import tracking
from item2vec.cli import main
from item2vec.embeddings import ItemEmbeddings

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, synthetic_data) -> Path:
    path = tmp_path_factory.mktemp("prepared") / "data"
    synthetic_data.save(path)
    return path


def _runs(uri: str, experiment: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r}"
    return client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def _artifacts(uri: str, run_id: str, path: str | None = None) -> set[str]:
    client = MlflowClient(uri)
    out: set[str] = set()
    for f in client.list_artifacts(run_id, path):
        out |= _artifacts(uri, run_id, f.path) if f.is_dir else {f.path}
    return out


# ---------------------------------------------------------------------------
def test_tracking_uri_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_tracking_uri() == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking.resolve_tracking_uri() == "http://127.0.0.1:5999"
    assert tracking.resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"
    assert tracking.resolve_tracking_uri(str(tmp_path / "a.db")) == f"sqlite:///{tmp_path / 'a.db'}"


def test_metric_names_and_flat_params():
    assert tracking.metric_key("mrr@20") == "mrr_at_20"
    assert tracking.metric_key("bilstm.val_hr@20") == "bilstm.val_hr_at_20"
    assert tracking.flatten({"a": {"b": 1, "c": {"d": None}}, "e": 2}) == {"a.b": 1, "a.c.d": None, "e": 2}


def test_run_logs_params_epochs_metrics_and_artifacts_under_the_store(store, tmp_path):
    rng = np.random.default_rng(0)
    emb = ItemEmbeddings([f"i{j}" for j in range(30)], rng.normal(size=(30, 8)))
    cats = {f"i{j}": "even" if j % 2 == 0 else "odd" for j in range(30)}
    with tracking.start_run("unit", experiment="unit", tracking_uri=store) as run:
        tracking.log_params({"item2vec": {"vector_size": 8, "window": None}, "baselines": ["pop", "markov"]})
        cb = tracking.epoch_logger("bilstm")
        for epoch, loss in enumerate([3.0, 2.0, 1.5], start=1):
            cb(epoch, {"loss": loss, "val_mrr@20": 0.1 * epoch})
        tracking.log_evaluation({"k": 20, "models": {"pop": {"mrr@20": 0.25, "hr@20": 0.5, "n_predictions": 10}}})
        tracking.log_dataset({"name": "toy", "items": 30, "train": {"sessions": 12}})
        written = tracking.log_embeddings(emb, categories=cats, tsne=True, max_items=30)
    client = MlflowClient(store)
    r = client.get_run(run.info.run_id)
    assert r.info.status == "FINISHED"
    assert r.data.params["item2vec.vector_size"] == "8"
    assert r.data.params["item2vec.window"] == "null"
    assert json.loads(r.data.params["baselines"]) == ["pop", "markov"]
    hist = client.get_metric_history(run.info.run_id, "bilstm.loss")
    assert [(m.step, m.value) for m in hist] == [(1, 3.0), (2, 2.0), (3, 1.5)]
    assert r.data.metrics["test.pop.mrr_at_20"] == 0.25
    assert r.data.metrics["data.train.sessions"] == 12
    arts = _artifacts(store, run.info.run_id)
    assert {"evaluation.json", "dataset_stats.json", "item2vec/vectors.w2v.txt"} <= arts
    assert set(written) <= arts
    # the vectors round-trip through the word2vec text format
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="item2vec/vectors.w2v.txt",
                                                dst_path=str(tmp_path), tracking_uri=store)
    lines = Path(local).read_text().splitlines()
    assert lines[0] == "30 8" and lines[1].split()[0] == "i0"
    np.testing.assert_allclose([float(x) for x in lines[1].split()[1:]], emb.vectors[0], rtol=1e-5)
    # artifacts live beside the temporary database, not in the working directory
    loc = client.get_experiment_by_name("unit").artifact_location
    assert loc.startswith(Path(store[len("sqlite:///"):]).parent.as_uri())


def test_tsne_picture_when_viz_exists(store):
    pytest.importorskip("item2vec.viz")
    rng = np.random.default_rng(1)
    emb = ItemEmbeddings(list(range(1, 41)), rng.normal(size=(40, 6)))
    with tracking.start_run("tsne", experiment="unit", tracking_uri=store) as run:
        written = tracking.log_embeddings(emb, categories={i: str(i % 3) for i in range(1, 41)}, max_items=40)
    assert "item2vec/tsne.png" in written
    assert "item2vec/tsne.png" in _artifacts(store, run.info.run_id)


def test_the_picture_and_the_page_share_one_tsne(store, monkeypatch):
    import item2vec.viz as viz

    calls: list[int] = []
    original = viz.tsne_coordinates
    monkeypatch.setattr(viz, "tsne_coordinates", lambda x, **kw: calls.append(len(x)) or original(x, **kw))
    rng = np.random.default_rng(2)
    ids = [f"p{i}" for i in range(30)]
    emb = ItemEmbeddings(ids, rng.normal(size=(30, 6)))
    with tracking.start_run("one-tsne", experiment="unit", tracking_uri=store):
        written = tracking.log_embeddings(emb, categories={i: i[-1] for i in ids}, max_items=20)
    assert {"item2vec/tsne.png", "item2vec/explore.html"} <= set(written)
    assert calls == [20]  # one t-SNE of the 20-item sample, drawn in the picture and placed on the page


def test_a_failing_block_marks_the_run_failed(store):
    with pytest.raises(RuntimeError, match="boom"):
        with tracking.start_run("fails", experiment="unit", tracking_uri=store) as run:
            raise RuntimeError("boom")
    assert MlflowClient(store).get_run(run.info.run_id).info.status == "FAILED"


def test_tracking_uri_is_restored_after_a_run(store, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with tracking.start_run("restore", experiment="unit", tracking_uri=store):
        assert mlflow.get_tracking_uri() == store
    import os

    assert "MLFLOW_TRACKING_URI" not in os.environ


# ---------------------------------------------------------------------------
# the commands
# ---------------------------------------------------------------------------
def test_fit_evaluate_train_next_log_to_mlflow(store, data_dir, tmp_path, capsys):
    model = tmp_path / "model"
    assert main(["fit", "--data", str(data_dir), "--out", str(model), "--epochs", "3", "--vector-size", "16",
                 "--quiet", "--tracking-uri", store, "--experiment", "cli"]) == 0
    assert main(["evaluate", "--data", str(data_dir), "--models", "pop,markov,item2vec", "--embeddings", str(model),
                 "--quiet", "--tracking-uri", store, "--experiment", "cli"]) == 0
    nxt = tmp_path / "next"
    assert main(["train-next", "--data", str(data_dir), "--embeddings", str(model), "--out", str(nxt),
                 "--epochs", "2", "--hidden-size", "16", "--patience", "5", "--quiet",
                 "--tracking-uri", store, "--experiment", "cli"]) == 0
    fit_run, eval_run, next_run = _runs(store, "cli")
    assert fit_run.data.params["item2vec.vector_size"] == "16"
    assert fit_run.data.metrics["data.train.sessions"] > 0
    assert "item2vec/vectors.w2v.txt" in _artifacts(store, fit_run.info.run_id)
    for name in ("pop", "markov", "item2vec"):
        assert 0 <= eval_run.data.metrics[f"test.{name}.mrr_at_20"] <= 1
    assert eval_run.data.metrics["test.markov.mrr_at_20"] > eval_run.data.metrics["test.pop.mrr_at_20"]
    assert "evaluation.json" in _artifacts(store, eval_run.info.run_id)
    hist = MlflowClient(store).get_metric_history(next_run.info.run_id, "bilstm.loss")
    assert [m.step for m in hist] == [1, 2]
    assert next_run.data.params["bilstm.hidden_size"] == "16"


def test_commands_without_tracking_options_log_nothing(data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["fit", "--data", str(data_dir), "--out", str(tmp_path / "m"), "--epochs", "1", "--quiet"]) == 0
    assert not (tmp_path / "mlflow.db").exists()


def test_fit_with_mlflow_logs_the_loss_of_every_epoch(store, data_dir, tmp_path, capsys):
    assert main(["fit", "--data", str(data_dir), "--out", str(tmp_path / "m"), "--epochs", "4", "--vector-size", "8",
                 "--quiet", "--tracking-uri", store, "--experiment", "loss"]) == 0
    out = capsys.readouterr().out
    assert "items x" in out and "mlflow: " in out  # --quiet hides bars, not results
    (run,) = _runs(store, "loss")
    hist = MlflowClient(store).get_metric_history(run.info.run_id, "item2vec.loss")
    assert [m.step for m in hist] == [1, 2, 3, 4]
    assert all(m.value > 0 for m in hist)


def test_evaluate_with_mlflow_logs_the_report_it_holds(store, data_dir):
    assert main(["evaluate", "--data", str(data_dir), "--models", "pop", "-k", "5", "--quiet",
                 "--tracking-uri", store, "--experiment", "eval-k"]) == 0
    (run,) = _runs(store, "eval-k")
    assert 0 <= run.data.metrics["test.pop.mrr_at_5"] <= run.data.metrics["test.pop.hr_at_5"] <= 1
    assert "evaluation.json" in _artifacts(store, run.info.run_id)


def test_similar_reads_a_registered_model_by_alias(store, synthetic_data, tmp_path, capsys):
    from item2vec.embeddings import Item2Vec
    from item2vec.registry import ServedModel, log_model, set_alias

    data = synthetic_data
    emb = Item2Vec(vector_size=8, epochs=3, show_progress=False).fit(data.decode(data.train)).embeddings_
    with tracking.start_run("register", experiment="similar", tracking_uri=store):
        info = log_model(ServedModel(emb), registered_model_name="similar-cli")
    set_alias("similar-cli", info.registered_model_version, "champion", tracking_uri=store)
    capsys.readouterr()
    q = emb.ids[0]
    assert main(["similar", "--model", "models:/similar-cli@champion", "--tracking-uri", store, q, "-k", "4",
                 "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    want_ids, _ = emb.similar_items(q, k=4)
    assert [r["item_id"] for r in got[q]] == want_ids.tolist()


def test_projector_files_and_explore_page_are_logged_with_the_vectors(store, tmp_path):
    rng = np.random.default_rng(2)
    ids = list(range(100, 140))
    emb = ItemEmbeddings(ids, rng.normal(size=(40, 6)))
    titles = {i: f"item\t{i}" for i in ids[:30]}
    with tracking.start_run("projector", experiment="unit", tracking_uri=store) as run:
        written = tracking.log_embeddings(emb, labels=titles, categories={i: str(i % 3) for i in ids}, max_items=40)
    arts = _artifacts(store, run.info.run_id)
    expected = {"item2vec/projector/vectors.tsv", "item2vec/projector/metadata.tsv", "item2vec/explore.html"}
    assert expected <= arts and expected <= set(written)
    folder = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="item2vec",
                                                 dst_path=str(tmp_path), tracking_uri=store)
    vectors = np.loadtxt(Path(folder) / "projector" / "vectors.tsv", delimiter="\t")
    np.testing.assert_allclose(vectors, emb.vectors, rtol=1e-5, atol=1e-6)
    meta = (Path(folder) / "projector" / "metadata.tsv").read_text().splitlines()
    assert meta[0] == "item_id\ttitle\tcategory" and len(meta) == 41
    assert meta[1] == "100\titem 100\t1" and meta[-1] == "139\t\t1"
    page = (Path(folder) / "explore.html").read_text()
    assert '"mode":"file"' in page and '"n_items":40' in page


@pytest.mark.parametrize("argv", [["fit", "--epochs", "1", "--vector-size", "8"],
                                  ["evaluate", "--models", "pop,markov"]])
def test_mlflow_logs_what_the_command_holds_not_a_reread_of_its_folders(store, data_dir, tmp_path, monkeypatch, argv):
    from item2vec.data import SessionData

    loads = []
    real = SessionData.load.__func__

    def counting(cls, *args, **kwargs):
        loads.append(args)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(SessionData, "load", classmethod(counting))
    out = ["--out", str(tmp_path / "m")] if argv[0] == "fit" else []
    assert main([*argv, "--data", str(data_dir), *out, "--quiet", "--tracking-uri", store,
                 "--experiment", f"memory-{argv[0]}"]) == 0
    assert len(loads) == 1  # the command's own read; logging used the data it held
    (run,) = _runs(store, f"memory-{argv[0]}")
    assert run.data.metrics["data.train.sessions"] > 0


def test_json_and_the_tsne_picture_go_through_mlflows_own_loggers(store, tmp_path, monkeypatch):
    """log_json is mlflow.log_dict (numpy values kept as numbers); the picture is mlflow.log_figure."""
    pytest.importorskip("item2vec.viz")
    calls = []
    for fn in ("log_dict", "log_figure"):
        real = getattr(mlflow, fn)
        monkeypatch.setattr(mlflow, fn, lambda *a, _real=real, _fn=fn, **kw: calls.append(_fn) or _real(*a, **kw))
    emb = ItemEmbeddings(list(range(1, 21)), np.random.default_rng(2).normal(size=(20, 4)))
    with tracking.start_run("loggers", experiment="unit", tracking_uri=store) as run:
        tracking.log_json({"n": np.int64(3), "mrr": np.float32(0.5), "v": np.arange(2)}, "deep/report.json")
        written = tracking.log_embeddings(emb, max_items=20)
    assert calls == ["log_dict", "log_figure"] and "item2vec/tsne.png" in written
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="deep/report.json",
                                                dst_path=str(tmp_path), tracking_uri=store)
    assert json.loads(Path(local).read_text()) == {"n": 3, "mrr": 0.5, "v": [0, 1]}


def test_titles_are_looked_up_in_one_place_with_one_rule(tmp_path):
    """SessionData.titles, tracking.item_titles and the CLI's lookup agree: text titles, missing ones left out."""
    import pandas as pd
    import polars as pl

    from item2vec.cli.embeddings import _titles
    from item2vec.data import PrepareConfig, item_titles, make_sessions, prepare

    events, _ = make_sessions(n_sessions=60, n_clusters=2, items_per_cluster=5, days=6, random_state=0)
    ids = sorted(set(events["item_id"].to_list()))
    frame = pl.DataFrame({"item_id": ids, "title": [None if j == 1 else f"item {i}" for j, i in enumerate(ids)]})
    data = prepare(events, PrepareConfig(test_days=1, valid_days=1, min_item_support=1), metadata=frame)
    kept = {i: f"item {i}" for j, i in enumerate(ids) if j != 1 and i in set(data.vocab.ids.tolist())}
    assert data.titles() == kept
    assert tracking.item_titles(data.metadata) == kept
    data.metadata.write_parquet(tmp_path / "metadata.parquet")
    assert _titles(str(tmp_path)) == kept
    assert item_titles(frame.to_pandas()) == item_titles(frame) and item_titles(pd.DataFrame({"item_id": [1]})) == {}
    assert tracking.item_titles(frame.drop("title")) is None  # no titles at all: the picture labels ids
