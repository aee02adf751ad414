"""Tuning: chosen on validation only, pruned per epoch, one MLflow parent with a child per trial, a params file
that fit / train-next / retrain read, and clear refusals."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from item2vec.cli import main
from item2vec.data import PrepareConfig, make_sessions, prepare
from item2vec.embeddings import ItemEmbeddings
from item2vec.evaluation import evaluate, make_prefixes
from item2vec.exceptions import EmptySplitError, OptionError, SplitWarning
from item2vec.recommenders import Item2VecRecommender

optuna = pytest.importorskip("optuna")

from item2vec.tuning import (  # noqa: E402
    TuneResult,
    params_age_days,
    params_for_retrain,
    read_params,
    tune_bilstm,
    tune_item2vec,
    write_params,
)

#: small, cheap trials: 1-2 epochs of tiny vectors; two clearly different qualities so the pruner has work
SMALL = {"epochs": [2], "vector_size": [4, 16], "window": [1, 3], "ns_exponent": [-0.5, 1.0], "sample": [0.0],
         "negative": [2]}


@pytest.fixture(scope="module")
def data():
    events, _ = make_sessions(n_sessions=600, n_clusters=5, items_per_cluster=12, noise=0.1, random_state=3)
    with warnings.catch_warnings():  # small on purpose: a few fast trials
        warnings.simplefilter("ignore", SplitWarning)
        return prepare(events, PrepareConfig(test_days=3, valid_days=3), name="tune-synthetic")


@pytest.fixture(scope="module")
def data_dir(data, tmp_path_factory):
    return str(data.save(tmp_path_factory.mktemp("tune") / "prepared"))


class _Untouchable(list):
    """A split that fails the test when anything reads it."""

    def _touched(self, *a, **k):
        raise AssertionError("the test split was read during tuning")

    __iter__ = __len__ = __getitem__ = __bool__ = _touched


def _result(params: dict, model: str = "item2vec", tuned_at: str | None = None) -> TuneResult:
    return TuneResult(model=model, params=params, valid={"mrr@20": 0.5, "hr@20": 0.9}, k=20, n_trials=3,
                      n_complete=2, n_pruned=1, seconds=1.0,
                      tuned_at=tuned_at or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                      data={"name": "x", "fingerprint": "sha256:0"})


# ---------------------------------------------------------------------------
# item2vec: validation only, pruning, MLflow
# ---------------------------------------------------------------------------
def test_item2vec_is_chosen_on_validation_only_and_scores_what_fit_trains(data):
    spied = dataclasses.replace(data, test=_Untouchable(data.test))
    res = tune_item2vec(spied, n_trials=4, space=SMALL, show_progress=False)
    done = [t for t in res.trials if t["state"] == "COMPLETE"]
    assert res.valid["mrr@20"] == max(t["value"] for t in done)  # the best trial on validation
    # the chosen score is last-item neighbours of Item2Vec(**params) on every validation prefix
    model = Item2VecRecommender(mode="last", **res.params).fit(data.train, n_items=data.n_items,
                                                               repeats_dropped=data.repeats_dropped)
    again = evaluate(model, make_prefixes(data.valid), k=20)
    assert res.valid["mrr@20"] == pytest.approx(again["mrr@20"], abs=1e-12)
    assert res.valid["hr@20"] == pytest.approx(again["hr@20"], abs=1e-12)
    assert set(res.params) == set(SMALL) and res.n_trials == 4
    assert res.data["fingerprint"].startswith("sha256:") and res.data["name"] == "tune-synthetic"


def test_trials_are_pruned_and_each_is_a_child_run_under_one_parent(data, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    # sub-sampling at 1e-5 drops most of this small log, a window of 1 sees little: such trials fall below
    # the median of the finished ones and are pruned
    space = {"epochs": [3], "vector_size": [8], "window": [1, 3], "sample": [0.0, 1e-5], "negative": [5],
             "ns_exponent": [-0.5, 1.0]}
    res = tune_item2vec(data, n_trials=6, space=space, mlflow=uri, experiment="tune-test", show_progress=False)
    states = [t["state"] for t in res.trials]
    assert "PRUNED" in states and res.n_pruned == states.count("PRUNED") >= 1
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tune-test")
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{res.parent_run_id}'")
    assert len(children) == res.n_trials
    assert {c.data.tags["state"] for c in children} == {"PRUNED", "COMPLETE"}
    pruned = next(c for c in children if c.data.tags["state"] == "PRUNED")
    done = next(c for c in children if c.data.tags["state"] == "COMPLETE" and "repeat_of" not in c.data.tags)
    assert "valid_mrr_at_20" in done.data.metrics and "valid_mrr_at_20" not in pruned.data.metrics
    assert set(space) <= set(done.data.params)
    probe = client.get_metric_history(done.info.run_id, "probe_mrr_at_20")
    assert [m.step for m in probe] == [1, 2, 3]  # one value per epoch
    assert len(client.get_metric_history(pruned.info.run_id, "probe_mrr_at_20")) < 3
    parent = client.get_run(res.parent_run_id)
    assert parent.data.metrics["best.valid_mrr_at_20"] == pytest.approx(res.valid["mrr@20"])


def test_the_bilstm_is_tuned_on_validation_with_pruning_through_the_trainer_callback(data):
    spied = dataclasses.replace(data, test=_Untouchable(data.test))
    res = tune_bilstm(spied, n_trials=4, space={"epochs": [2], "hidden_size": [8], "lr": [1e-4, 3e-2],
                                                "max_prefix": [3], "dropout": [0.0]},
                      item2vec_params={"epochs": 2, "vector_size": 8}, fixed={"num_threads": 1, "batch_size": 512},
                      show_progress=False)
    assert res.model == "bilstm" and set(res.params) == {"epochs", "hidden_size", "lr", "max_prefix", "dropout"}
    assert res.valid["mrr@20"] == max(t["value"] for t in res.trials if t["state"] == "COMPLETE")
    assert res.n_pruned >= 1


# ---------------------------------------------------------------------------
# the params file: fit / train-next read it, explicit options override it
# ---------------------------------------------------------------------------
def test_the_params_file_round_trips_into_fit_and_train_next_and_options_override_it(data_dir, tmp_path, capsys):
    pfile = tmp_path / "params.json"
    write_params(pfile, _result({"vector_size": 12, "window": None, "ns_exponent": -0.5, "sample": 0.0,
                                 "epochs": 3, "negative": 4}))
    write_params(pfile, _result({"hidden_size": 8, "epochs": 1, "lr": 0.01, "max_prefix": 4}, model="bilstm"))
    assert read_params(pfile, "item2vec")["window"] is None and read_params(pfile, "bilstm")["hidden_size"] == 8

    out = tmp_path / "vectors"
    assert main(["fit", "--data", data_dir, "--out", str(out), "--params", str(pfile), "--epochs", "1",
                 "--quiet"]) == 0
    cfg = ItemEmbeddings.load(out).metadata["item2vec"]
    assert (cfg["vector_size"], cfg["window"], cfg["ns_exponent"], cfg["negative"]) == (12, None, -0.5, 4)
    assert cfg["epochs"] == 1  # the option given wins over the file's 3

    nxt = tmp_path / "next"
    assert main(["train-next", "--data", data_dir, "--out", str(nxt), "--params", str(pfile), "--max-prefix", "2",
                 "--quiet"]) == 0
    ck = json.loads((nxt / "checkpoint.json").read_text())
    flat = json.dumps(ck)
    assert '"hidden_size": 8' in flat and '"max_prefix": 2' in flat and '"lr": 0.01' in flat
    assert '"embedding_dim": 12' in flat  # the table is the file's item2vec vectors


def test_tune_command_writes_a_section_and_keeps_the_other(data_dir, tmp_path, capsys):
    pfile = tmp_path / "p.json"
    write_params(pfile, _result({"hidden_size": 8}, model="bilstm"))
    assert main(["tune", "--data", data_dir, "--trials", "2", "--out", str(pfile), "--quiet"]) == 0
    doc = json.loads(pfile.read_text())
    assert doc["bilstm"]["params"] == {"hidden_size": 8}
    assert doc["item2vec"]["tuned"]["trials"] == 2 and doc["item2vec"]["tuned"]["data"]["path"] == str(
        Path(data_dir).resolve())
    assert set(doc["item2vec"]["params"]) == {"window", "ns_exponent", "sample", "epochs", "vector_size", "negative"}


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
def test_bad_params_files_and_budgets_are_one_line_errors(data, data_dir, tmp_path, capsys):
    pfile = tmp_path / "p.json"
    write_params(pfile, _result({"vector_size": 8, "windwo": 3}))
    with pytest.raises(OptionError, match=r"windwo"):
        read_params(pfile)
    assert main(["fit", "--data", data_dir, "--out", str(tmp_path / "v"), "--params", str(pfile)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "windwo" in err and str(pfile) in err
    assert not (tmp_path / "v").exists()

    # no budget: refused before any work, in Python and on the command line
    with pytest.raises(OptionError, match="budget"):
        tune_item2vec(data)
    assert main(["tune", "--data", data_dir, "--out", str(tmp_path / "q.json")]) == 2
    assert "budget" in capsys.readouterr().err
    for bad in ({"n_trials": 0}, {"timeout": -1.0}):
        with pytest.raises(OptionError):
            tune_item2vec(data, **bad)
    with pytest.raises(OptionError, match="unknown parameter"):
        tune_item2vec(data, n_trials=1, space={"windows": [3]})

    # --out that is not a params file is left alone
    other = tmp_path / "notes.json"
    other.write_text('{"mine": 1}')
    assert main(["tune", "--data", data_dir, "--trials", "1", "--out", str(other)]) == 2
    assert "item2vec-params" in capsys.readouterr().err and other.read_text() == '{"mine": 1}'

    # no validation split to choose on
    novalid = dataclasses.replace(data, valid=[])
    with pytest.raises(EmptySplitError, match="validation"):
        tune_item2vec(novalid, n_trials=1)


# ---------------------------------------------------------------------------
# the retraining job: re-tune when the file is older than the schedule
# ---------------------------------------------------------------------------
def test_retune_runs_when_the_file_is_due_and_not_in_between(data, tmp_path):
    pfile = tmp_path / "p.json"
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=10)).isoformat(timespec="seconds")
    write_params(pfile, _result({"vector_size": 8, "epochs": 1}, tuned_at=old))
    write_params(pfile, _result({"hidden_size": 8}, model="bilstm"))
    assert params_age_days(pfile) == pytest.approx(10, abs=0.01)

    before = pfile.read_bytes()
    i2v, bl, rec = params_for_retrain(pfile, data, every_days=14, n_trials=1)  # not due: read as it is
    assert rec["retuned"] is False and i2v == {"vector_size": 8, "epochs": 1} and bl == {"hidden_size": 8}
    assert pfile.read_bytes() == before

    i2v, bl, rec = params_for_retrain(pfile, data, every_days=7, n_trials=2)  # due: tuned again, file rewritten
    assert rec["retuned"] is True and rec["trials"] == 2 and rec["age_days"] == pytest.approx(10, abs=0.01)
    assert params_age_days(pfile) < 0.01 and bl == {"hidden_size": 8}
    assert i2v == read_params(pfile) and set(i2v) == {"window", "ns_exponent", "sample", "epochs", "vector_size",
                                                     "negative"}


def test_the_retrain_job_reads_and_retunes_its_params_file(synthetic, tmp_path):
    from item2vec.retrain import RetrainConfig, load_config, run_retrain

    events, _ = synthetic
    log = tmp_path / "events.csv"
    events.write_csv(log)
    pfile = tmp_path / "p.json"
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=8)).isoformat(timespec="seconds")
    write_params(pfile, _result({"vector_size": 8, "epochs": 1}, tuned_at=old))
    toml = tmp_path / "retrain.toml"
    toml.write_text(f'model_name = "tune-retrain"\nexperiment = "tune-retrain"\nuse_bilstm = false\ntsne = false\n'
                    f'baselines = ["pop"]\nparams = "{pfile}"\nretune_every_days = 7\nretune_trials = 2\n'
                    '[prepare]\ntest_days = 3\nvalid_days = 3\n[item2vec]\nepochs = 2\n')
    cfg = load_config(toml)
    report = run_retrain(log, cfg, tracking_uri=f"sqlite:///{tmp_path}/m.db")
    assert report.status == "ok" and report.tuning["retuned"] is True and report.tuning["trials"] == 2
    tuned = read_params(pfile)
    assert set(tuned) == {"window", "ns_exponent", "sample", "epochs", "vector_size", "negative"}
    assert report.to_dict()["tuning"]["params"] == str(pfile)

    with pytest.raises(OptionError, match="retune_every_days needs params"):
        RetrainConfig(retune_every_days=7)
    with pytest.raises(OptionError, match="retune_every_days"):
        RetrainConfig(params=str(pfile), retune_every_days=0)


def test_a_params_file_needs_its_format(tmp_path):
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"item2vec": {"params": {"epochs": 2}}}))
    with pytest.raises(OptionError, match="format"):
        read_params(p)
    p.write_text("{not json")
    with pytest.raises(OptionError, match="JSON"):
        read_params(p)
    with pytest.raises(FileNotFoundError):
        read_params(tmp_path / "absent.json")
    assert np.isinf(params_age_days(tmp_path / "absent.json"))


def test_retrain_sections_override_the_params_file_but_their_defaults_do_not():
    from item2vec.retrain import RetrainConfig, _over

    tuned = {"epochs": 12, "hidden_size": 32}
    default = RetrainConfig().bilstm  # epochs 5, patience 2, num_threads 1
    flat = default.to_dict()
    assert _over(tuned, default, default) == {**flat, "epochs": 12, "hidden_size": 32}
    written = RetrainConfig.from_dict({"bilstm": {"epochs": 3}}).bilstm
    assert _over(tuned, written, default)["epochs"] == 3  # written in the config: it wins
    assert _over({"window": None}, {"window": 5}, {}) == {"window": 5}


def test_the_shipped_tuned_params_files_read():
    files = sorted((Path(__file__).resolve().parents[1] / "pipelines" / "configs" / "tuned").glob("*.params.json"))
    assert files
    for f in files:
        assert set(read_params(f, "item2vec", required=True)) == {"window", "ns_exponent", "sample", "epochs",
                                                                   "vector_size", "negative"}


def test_the_spark_engine_trains_with_the_params_files_values(monkeypatch):
    from types import SimpleNamespace

    import item2vec.retrain as retrain
    import item2vec.spark.retrain as spark_retrain
    from item2vec.retrain import RetrainConfig

    seen = {}
    monkeypatch.setattr(retrain, "_tuned_params", lambda job: {"vector_size": 48, "window": 3})
    monkeypatch.setattr(spark_retrain, "spark_item2vec", lambda job, config: seen.setdefault("config", config))
    retrain._item2vec(SimpleNamespace(cfg=RetrainConfig(engine="spark"), data=None))
    assert (seen["config"].vector_size, seen["config"].window) == (48, 3)
