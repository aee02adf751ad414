"""The `item2vec` command: the happy path, and one line + exit 2 for each kind of bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from item2vec.cli import main
from item2vec.data import make_sessions


@pytest.fixture(scope="module")
def log_csv(tmp_path_factory):
    events, _ = make_sessions(n_sessions=800, n_clusters=4, items_per_cluster=15, random_state=2)
    path = tmp_path_factory.mktemp("log") / "events.csv"
    events.write_csv(path)
    return path


@pytest.fixture(scope="module")
def prepared(log_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("prep") / "data"
    assert main(["prepare", "--events", str(log_csv), "--out", str(out), "--test-days", "3",
                 "--valid-days", "3", "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def model_dir(prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m"
    assert main(["fit", "--data", str(prepared), "--out", str(out), "--epochs", "3", "--vector-size", "16", "--quiet"]) == 0
    return out


def test_similar_json(model_dir, capsys):
    assert main(["similar", "--model", str(model_dir), "c00_i001", "c01_i002", "-k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"c00_i001", "c01_i002"}
    assert len(out["c00_i001"]) == 3 and out["c00_i001"][0]["item_id"] != "c00_i001"


def test_evaluate_writes_the_report(prepared, model_dir, tmp_path, capsys):
    report = tmp_path / "r.json"
    assert main(["evaluate", "--data", str(prepared), "--models", "item2vec,item2vec-mean",
                 "--embeddings", str(model_dir), "--k", "20", "--json", str(report), "--quiet"]) == 0
    r = json.loads(report.read_text())
    assert r["k"] == 20 and r["n_predictions"] > 0
    assert set(r["models"]) == {"item2vec", "item2vec-mean"}
    for m in r["models"].values():
        assert {"hr@20", "mrr@20", "ndcg@20", "fit_seconds"} <= set(m)
        assert 0 <= m["mrr@20"] <= m["hr@20"] <= 1
    assert r["dataset"]["test"]["sessions"] > 0


def run_cli(*args):
    """The console script in a subprocess: returns (exit status, stderr lines)."""
    p = subprocess.run([sys.executable, "-m", "item2vec.cli", *args], capture_output=True, text=True)
    return p.returncode, [line for line in p.stderr.splitlines() if line.strip()]


def run_main(argv, capsys):
    """main() in this process: returns (exit status, stderr lines)."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse usage errors
        code = e.code
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.mark.parametrize("argv, message", [
    (["similar", "--model", "/no/such/model", "x"], "not an item2vec model directory"),
    (["prepare", "--events"], "expected one argument"),
])
def test_console_script_prints_one_line_and_exits_2(argv, message):
    code, err = run_cli(*argv)
    assert code == 2 and len(err) == 1 and message in err[0], err


@pytest.mark.parametrize(
    "args, message",
    [
        (["prepare", "--events", "/no/such/file.csv", "--out", "{tmp}/o"], "does not exist"),
        (["prepare", "--events", "{log}", "--format", "xml", "--out", "{tmp}/o"], "unknown event-log format"),
        (["prepare", "--events", "{log}", "--item-col", "product", "--out", "{tmp}/o"], "expected column(s) ['product']"),
        (["prepare", "--events", "{empty}", "--out", "{tmp}/o"], "is empty"),
        (["prepare", "--events", "{nulls}", "--out", "{tmp}/o"], "null item_id"),
        (["prepare", "--events", "{log}", "--min-item-support", "100000", "--out", "{tmp}/o"], "no session of length >= 2"),
        (["similar", "--model", "{model}", "not-an-item"], "unknown item id 'not-an-item'"),
        (["similar", "--model", "{model}", "c00_i001", "-k", "0"], "k must be a positive integer"),
        (["evaluate", "--data", "{data}", "--models", "pop,nonsense"], "unknown model(s) ['nonsense']"),
        (["evaluate", "--data", "{data}", "--k", "-3", "--models", "pop"], "k must be a positive integer"),
        (["fit", "--data", "{tmp}", "--out", "{tmp}/m"], "not a prepared-data directory"),
        (["similar", "--model", "{tmp}", "x"], "not an item2vec model directory"),
        (["prepare", "--events"], "expected one argument"),
    ],
)
def test_bad_input_one_line_exit_2(args, message, tmp_path, log_csv, prepared, model_dir, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    nulls = tmp_path / "nulls.csv"
    nulls.write_text("session_id,item_id,timestamp\n1,a,1\n1,,2\n")
    subs = {"{tmp}": str(tmp_path), "{log}": str(log_csv), "{model}": str(model_dir), "{data}": str(prepared),
            "{empty}": str(empty), "{nulls}": str(nulls)}
    argv = [a for a in args]
    for i, a in enumerate(argv):
        for k, v in subs.items():
            a = a.replace(k, v)
        argv[i] = a
    code, err = run_main(argv, capsys)
    assert code == 2
    assert len(err) == 1, err
    assert message in err[0]
    assert "Traceback" not in err[0]
    assert not (tmp_path / "o").exists() and not (tmp_path / "m").exists()  # nothing half-written


def test_window_zero_means_the_whole_session(prepared, tmp_path):
    from item2vec import ItemEmbeddings

    out = tmp_path / "whole"
    assert main(["fit", "--data", str(prepared), "--out", str(out), "--window", "0", "--epochs", "1",
                 "--vector-size", "8", "--quiet"]) == 0
    meta = ItemEmbeddings.load(out).metadata
    assert meta["item2vec"]["window"] is None and meta["window_used"] >= 2
