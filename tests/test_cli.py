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
    (["similar", "--model", "/no/such/model", "x"], "no model at '/no/such/model'"),
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
        (["evaluate", "--data", "{data}", "-k", "0", "--models", "pop"], "k must be a positive integer"),
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


# ---------------------------------------------------------------------------
# outputs never destroy what was there
# ---------------------------------------------------------------------------
def _hidden(folder):
    """Temporary or moved-aside entries that a write left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_fit_refuses_an_unrelated_directory_unless_overwrite(prepared, tmp_path, capsys):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_text("precious")
    fit = ["fit", "--data", str(prepared), "--out", str(out), "--epochs", "1", "--vector-size", "8", "--quiet"]
    code, err = run_main(fit, capsys)
    assert code == 2 and len(err) == 1 and "--overwrite" in err[0] and str(out) in err[0], err
    assert (out / "holiday.jpg").read_text() == "precious"
    assert main([*fit, "--overwrite"]) == 0
    assert (out / "vectors.npy").exists() and not (out / "holiday.jpg").exists()
    assert main(fit) == 0  # now it is a model directory: replaced without --overwrite
    assert _hidden(tmp_path) == []


def test_outputs_of_the_same_kind_are_replaced(log_csv, prepared, tmp_path):
    data = tmp_path / "data"
    prep = ["prepare", "--events", str(log_csv), "--out", str(data), "--test-days", "3", "--valid-days", "3", "--quiet"]
    assert main(prep) == 0 and main(prep) == 0
    from item2vec.cli import OUT_MARKERS
    from item2vec.nextitem.recommender import CHECKPOINT

    assert OUT_MARKERS["train-next"] == CHECKPOINT
    # one kind is not another: a prepared-data directory is not a model directory
    assert main(["fit", "--data", str(prepared), "--out", str(data), "--epochs", "1", "--quiet"]) == 2
    assert (data / "stats.json").exists()
    assert _hidden(tmp_path) == []


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_the_input_and_its_folders_are_never_an_output(log_csv, prepared, tmp_path, capsys, overwrite):
    before = sorted(p.name for p in prepared.iterdir())
    for out in (prepared, prepared.parent):
        code, err = run_main(["fit", "--data", str(prepared), "--out", str(out), "--epochs", "1", "--quiet",
                              *overwrite], capsys)
        assert code == 2 and len(err) == 1 and "input" in err[0], err
    assert sorted(p.name for p in prepared.iterdir()) == before
    # the folder holding the input log
    code, err = run_main(["prepare", "--events", str(log_csv), "--out", str(log_csv.parent), "--quiet", *overwrite],
                         capsys)
    assert code == 2 and len(err) == 1 and "input" in err[0], err
    assert log_csv.exists()


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_out_dot_is_refused_and_leaves_nothing_behind(log_csv, tmp_path, monkeypatch, capsys, overwrite):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    code, err = run_main(["prepare", "--events", str(log_csv), "--out", ".", "--test-days", "3", "--valid-days", "3",
                          "--quiet", *overwrite], capsys)
    assert code == 2 and len(err) == 1 and "current directory" in err[0], err
    assert sorted(p.name for p in work.iterdir()) == ["notes.txt"]
    assert _hidden(tmp_path) == []


def test_outputs_get_normal_permissions(prepared, tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        assert main(["fit", "--data", str(prepared), "--out", str(tmp_path / "m"), "--epochs", "1",
                     "--vector-size", "8", "--quiet"]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m").stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "m").iterdir() if p.is_file()} == {0o644}


# ---------------------------------------------------------------------------
# the small things
# ---------------------------------------------------------------------------
def test_version(capsys):
    import item2vec

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"item2vec {item2vec.__version__}"


def test_quiet_hides_bars_not_results(log_csv, prepared, model_dir, tmp_path, capsys):
    capsys.readouterr()
    assert main(["prepare", "--events", str(log_csv), "--out", str(tmp_path / "d"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("prepared ") and "removed:" not in out  # the result line, not the breakdown
    assert main(["neighbours", "--model", str(model_dir), "-k", "2", "--out", str(tmp_path / "nb.parquet"),
                 "--quiet"]) == 0
    assert "rows (item_id, rank, neighbour_id, score)" in capsys.readouterr().out
    assert main(["fit", "--data", str(prepared), "--out", str(tmp_path / "m"), "--epochs", "1", "--quiet"]) == 0
    assert "items x" in capsys.readouterr().out
    assert main(["evaluate", "--data", str(prepared), "--models", "pop", "-k", "5", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "HR@5" in out and "pop" in out


def test_progress_bars_only_on_a_terminal(prepared, tmp_path):
    """Without --quiet, stderr redirected to a file (a nightly job's log) gets no bars."""
    p = subprocess.run([sys.executable, "-m", "item2vec.cli", "fit", "--data", str(prepared), "--out",
                        str(tmp_path / "m"), "--epochs", "3", "--vector-size", "8"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "\r" not in p.stderr and "epoch" not in p.stderr, p.stderr
    assert "items x" in p.stdout


def test_show_bars_asks_the_terminal(monkeypatch):
    import io

    from item2vec._progress import show_bars, tqdm

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not show_bars(True) and tqdm(total=1).disable
    monkeypatch.setattr(sys, "stderr", Tty())
    assert show_bars(True) and not show_bars(False)
    assert not tqdm(total=1, disable=False).disable and tqdm(total=1, disable=True).disable


def test_evaluate_k_is_spelled_like_everywhere_else(prepared, tmp_path):
    for flag in ("-k", "--k"):
        report = tmp_path / f"r{flag}.json"
        assert main(["evaluate", "--data", str(prepared), "--models", "pop", flag, "7", "--json", str(report),
                     "--quiet"]) == 0
        assert json.loads(report.read_text())["k"] == 7
    from item2vec.cli import build_parser

    sub = next(a for a in build_parser()._actions if getattr(a, "choices", None) and "evaluate" in a.choices)
    for name in ("similar", "evaluate"):
        assert "-k" in sub.choices[name].format_help()
    assert "--k " not in sub.choices["evaluate"].format_help()


def test_evaluate_fits_item2vec_once_for_both_item2vec_rows(prepared, tmp_path, monkeypatch):
    from item2vec.embeddings import Item2Vec

    calls = []
    real = Item2Vec.fit

    def counting(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Item2Vec, "fit", counting)
    report = tmp_path / "r.json"
    assert main(["evaluate", "--data", str(prepared), "--models", "item2vec,pop,item2vec-mean", "--epochs", "2",
                 "--vector-size", "8", "--json", str(report), "--quiet"]) == 0
    assert len(calls) == 1
    r = json.loads(report.read_text())["models"]
    assert r["item2vec-mean"]["fit_seconds"] >= r["item2vec"]["fit_seconds"] * 0.5  # both pay for the one fit
    assert r["item2vec"]["hr@20"] != r["item2vec-mean"]["hr@20"] or r["item2vec"]["mrr@20"] != r["item2vec-mean"]["mrr@20"]


def test_similar_missing_ignore_skips_unknown_ids_with_a_note(model_dir, capsys):
    capsys.readouterr()
    assert main(["similar", "--model", str(model_dir), "nope", "c00_i001", "-k", "3", "--missing", "ignore",
                 "--json"]) == 0
    cap = capsys.readouterr()
    assert set(json.loads(cap.out)) == {"c00_i001"}
    assert "nope" in cap.err and "skipped" in cap.err
    code, err = run_main(["similar", "--model", str(model_dir), "nope", "c00_i001"], capsys)
    assert code == 2 and "unknown item id 'nope'" in err[0]


def test_similar_missing_ignore_with_integer_ids(tmp_path, capsys):
    import numpy as np

    from item2vec import ItemEmbeddings

    ItemEmbeddings([10, 20, 30, 40], np.eye(4, 3) + 0.1).save(tmp_path / "m")
    capsys.readouterr()
    assert main(["similar", "--model", str(tmp_path / "m"), "20", "abc", "99", "-k", "2", "--missing", "ignore",
                 "--json"]) == 0
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    assert list(out) == ["20"] and all(isinstance(r["item_id"], int) for r in out["20"])
    assert "'abc'" in cap.err and "99" in cap.err


def test_a_closed_pipe_exits_quietly(model_dir):
    """`item2vec similar ... | head -1`: the reader is gone before the command writes."""
    proc = subprocess.Popen([sys.executable, "-m", "item2vec.cli", "similar", "--model", str(model_dir),
                             "c00_i001", "c01_i002", "-k", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # as head does after its line; the command is still starting
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err and err.strip() == "", err


def test_a_closed_pipe_through_head(model_dir):
    p = subprocess.run(f"set -o pipefail; {sys.executable} -m item2vec.cli similar --model {model_dir} "
                       + " ".join(f"c0{c}_i00{i}" for c in range(4) for i in range(10)) + " -k 50 | head -1",
                       shell=True, capture_output=True, text=True, executable="/bin/bash")
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr


def test_ctrl_c_during_a_write_leaves_the_old_output_and_no_temporary_folder(prepared, tmp_path, monkeypatch, capsys):
    import numpy as np

    out = tmp_path / "m"
    fit = ["fit", "--data", str(prepared), "--out", str(out), "--epochs", "1", "--vector-size", "8", "--quiet"]
    assert main(fit) == 0
    before = (out / "vectors.npy").read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", interrupted)  # inside ItemEmbeddings.save, mid-write
    code, err = run_main(fit, capsys)
    assert code == 130 and err == ["item2vec: interrupted"]
    assert (out / "vectors.npy").read_bytes() == before
    assert _hidden(tmp_path) == []


def test_progress_bars_on_a_terminal(prepared, tmp_path):
    """The same command on a terminal (a pseudo-terminal 100 columns wide) draws its bar; --quiet does not."""
    import os
    import shutil

    pty = pytest.importorskip("pty")
    if shutil.which("stty") is None:
        pytest.skip("no stty to size the pseudo-terminal")

    def on_a_terminal(*flags):
        chunks = []

        def read(fd):
            data = os.read(fd, 4096)
            chunks.append(data)
            return data  # pty.spawn echoes it to the test's (captured) stdout; b"" would mean end of file

        cmd = (f"stty cols 100 rows 40; {sys.executable} -m item2vec.cli fit --data {prepared} "
               f"--out {tmp_path / 'm'} --epochs 5 --vector-size 8 {' '.join(flags)}")
        pty.spawn(["bash", "-c", cmd], read)
        return b"".join(chunks).decode(errors="replace")

    shown = on_a_terminal()
    assert "item2vec:" in shown and "epoch" in shown and "items x" in shown
    quiet = on_a_terminal("--quiet")
    assert "epoch" not in quiet and "items x" in quiet
