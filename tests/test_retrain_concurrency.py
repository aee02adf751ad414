"""The retraining job under real conditions: concurrent runs against one registry, runs killed at every step.

Every job here is a real process (``subprocess``) against one SQLite store in ``tmp_path``; the kills are
``SIGKILL`` sent by the job to itself from its ``on_step`` hook.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from item2vec.data import make_sessions
from item2vec.retrain import STEPS

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

from item2vec.registry import get_version_by_alias, registry_history  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NAME = "concurrent"
BASE = {"model_name": NAME, "experiment": "concurrent", "format": "csv", "tsne": False, "warm_start": False,
        "use_bilstm": False, "prepare": {"test_days": 1.0, "valid_days": 1.0, "min_item_support": 2}}
# three jobs whose served models rank markov > pop > (a weak) item2vec on the same data
MARKOV = {**BASE, "baselines": ["markov"], "serve": ["markov"], "item2vec": {"vector_size": 8, "epochs": 1}}
POP = {**BASE, "baselines": ["pop"], "serve": ["pop"], "item2vec": {"vector_size": 8, "epochs": 1}}
WEAK = {**BASE, "baselines": [], "serve": ["item2vec"],
        "item2vec": {"vector_size": 8, "epochs": 1, "alpha": 1e-6, "min_alpha": 1e-7}}

WORKER = textwrap.dedent('''
    import json, os, signal, sys, time
    from pathlib import Path
    from item2vec.retrain import RetrainConfig, RetrainError, run_retrain

    events, end, store, config, mode, out = sys.argv[1:7]
    cfg = RetrainConfig.from_dict(json.loads(config))

    def on_step(step):
        if mode.startswith("kill:") and step == mode[5:]:
            os.kill(os.getpid(), signal.SIGKILL)
        if mode.startswith("barrier:") and step == "promote":
            # wait until every job has gated against the champion it saw, then take turns in a fixed order
            folder, n, delay = mode.split(":")[1:]
            Path(folder, f"ready-{os.getpid()}").touch()
            give_up = time.monotonic() + 300  # a job that died before the barrier does not hang the others
            while len(list(Path(folder).glob("ready-*"))) < int(n) and time.monotonic() < give_up:
                time.sleep(0.1)
            time.sleep(float(delay))

    try:
        report = run_retrain(events, cfg, end=end, tracking_uri=store, on_step=on_step)
    except RetrainError as e:
        report = e.report
    Path(out).write_text(json.dumps(report.to_dict(), default=str))
''')


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> tuple[Path, str]:
    """Small synthetic daily CSV files (string ids, planted successors); the day the jobs test on."""
    ev, _ = make_sessions(n_sessions=500, n_clusters=4, items_per_cluster=12, days=8, noise=0.05, random_state=2)
    folder = tmp_path_factory.mktemp("events") / "by-day"
    from pipelines.retrain import write_daily_files

    days = write_daily_files(ev, folder)
    return folder, days[-1]


def _job(tmp: Path, events: tuple[Path, str], store: str, config: dict, mode: str = "-", tag: str = "r"
         ) -> subprocess.Popen:
    script = tmp / "worker.py"
    if not script.exists():
        script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": store}
    folder, end = events
    return subprocess.Popen([sys.executable, str(script), str(folder), end, store, json.dumps(config), mode,
                             str(tmp / f"{tag}.json")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _score(tags: dict[str, str]) -> float:
    return float(tags["challenger_mrr_at_20"])


def test_three_concurrent_retrains_move_the_alias_only_to_a_winner(events, tmp_path):
    store = f"sqlite:///{tmp_path}/fresh/mlflow.db"  # created by the three jobs at once
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    # all three gate against "no champion", then promote in the order markov, pop, weak
    jobs = [_job(tmp_path, events, store, cfg, f"barrier:{barrier}:3:{delay}", tag)
            for cfg, delay, tag in ((MARKOV, 0, "markov"), (POP, 3, "pop"), (WEAK, 6, "weak"))]
    outs = [j.communicate(timeout=600)[0] for j in jobs]
    assert [j.returncode for j in jobs] == [0, 0, 0], "\n".join(o[-2000:] for o in outs)
    assert not any("Traceback" in o or "OperationalError" in o for o in outs), "\n".join(outs)
    reports = {t: json.loads((tmp_path / f"{t}.json").read_text()) for t in ("markov", "pop", "weak")}
    assert all(r["status"] == "ok" for r in reports.values())
    hist = registry_history(NAME, tracking_uri=store)
    assert len(hist) == 3 and all(v["tags"]["promoted"] in ("true", "false") for v in hist)
    by_version = {v["version"]: v for v in hist}
    champ = get_version_by_alias(NAME, "champion", tracking_uri=store)
    # the champion is the best of the three, though all three first saw no champion
    assert _score(by_version[int(champ.version)]["tags"]) == max(_score(v["tags"]) for v in hist)
    assert by_version[int(champ.version)]["tags"]["served_model"] == "markov"
    # every promotion beat the version it replaced, scored on the same test prefixes
    for v in hist:
        t = v["tags"]
        if t["promoted"] == "true" and t["previous_champion"]:
            assert _score(t) > float(t["champion_mrr_at_20"])
            assert float(t["champion_mrr_at_20"]) == pytest.approx(_score(by_version[int(t["previous_champion"])]["tags"]))
    losers = [r for r in reports.values() if not r["promoted"]]
    assert len(losers) == 2 and all(r["gating"].get("regated") for r in losers)
    assert all("re-gated at promotion" in r["reason"] for r in losers)


def test_a_run_killed_at_each_step_leaves_a_truthful_registry(events, tmp_path):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    first = _job(tmp_path, events, store, MARKOV, tag="first")
    assert first.wait(timeout=600) == 0, first.stdout.read()
    assert str(get_version_by_alias(NAME, "champion", tracking_uri=store).version) == "1"
    for step in STEPS:
        job = _job(tmp_path, events, store, MARKOV, f"kill:{step}", tag=step)
        assert job.wait(timeout=600) == -signal.SIGKILL, job.stdout.read()
        assert str(get_version_by_alias(NAME, "champion", tracking_uri=store).version) == "1"
    final = _job(tmp_path, events, store, MARKOV, tag="final")
    assert final.wait(timeout=600) == 0, final.stdout.read()
    report = json.loads((tmp_path / "final.json").read_text())

    client = MlflowClient(store)
    exp = client.get_experiment_by_name("concurrent")
    runs = sorted(client.search_runs([exp.experiment_id]), key=lambda r: r.info.start_time)
    killed = runs[1:-1]
    assert [r.info.status for r in runs] == ["FINISHED"] + ["FAILED"] * len(STEPS) + ["FINISHED"]
    assert [r.data.tags["failed_step"] for r in killed] == list(STEPS)
    assert all("ended during step" in r.data.tags["error"] for r in killed)
    assert {d["run_id"] for d in report["reaped"]} <= {r.info.run_id for r in killed}
    # versions: only what the alias did is tagged promoted; the version of the run killed at 'promote' never was
    hist = registry_history(NAME, tracking_uri=store)
    assert all(v["tags"]["promoted"] in ("true", "false") for v in hist)
    promoted = [v["version"] for v in hist if v["tags"]["promoted"] == "true"]
    champ = str(get_version_by_alias(NAME, "champion", tracking_uri=store).version)
    assert promoted == [1] + ([int(champ)] if champ != "1" else [])
    orphan = next(v for v in hist if v["run_id"] == killed[STEPS.index("promote")].info.run_id)
    assert orphan["tags"]["promoted"] == "false" and "never champion" in orphan["tags"]["reason"]
    assert orphan["aliases"] == []


def test_reaping_settles_a_version_whose_run_died_after_moving_the_alias(tmp_path):
    """A kill between the alias move and the tags: the alias decides what the tag says."""
    from item2vec.registry import set_alias
    from item2vec.retrain import reap_dead_runs
    from item2vec.tracking import start_run

    store = f"sqlite:///{tmp_path}/mlflow.db"
    me = {"job": "retrain", "model_name": NAME, "retrain.host": socket.gethostname(), "step": "promote"}
    dead = {**me, "retrain.pid": str(os.getpid()), "retrain.pid_start": "0"}  # this pid, another start: reused
    alive = {**me, "retrain.pid": str(os.getpid()), "retrain.pid_start": _own_start()}
    elsewhere = {**dead, "retrain.host": "another-host"}
    ids = {}
    for label, tags in (("dead", dead), ("alive", alive), ("elsewhere", elsewhere)):
        with start_run(label, experiment="concurrent", tracking_uri=store, tags=tags) as run:
            ids[label] = run.info.run_id
            info = mlflow.pyfunc.log_model(name="model", python_model=_Echo())
            mv = mlflow.register_model(info.model_uri, NAME, tags={"promoted": "pending"})
        client = MlflowClient(store)
        client.update_run(ids[label], status="RUNNING")  # as a killed process leaves it
        if label == "dead":
            set_alias(NAME, mv.version, "champion", tracking_uri=store)
            dead_version = mv.version
    reaped = reap_dead_runs(NAME, tracking_uri=store)
    assert [r["run_id"] for r in reaped] == [ids["dead"]] and reaped[0]["versions"] == {int(dead_version): True}
    client = MlflowClient(store)
    assert client.get_run(ids["dead"]).info.status == "FAILED"
    assert client.get_run(ids["alive"]).info.status == "RUNNING"
    assert client.get_run(ids["elsewhere"]).info.status == "RUNNING"
    tags = client.get_model_version(NAME, dead_version).tags
    assert tags["promoted"] == "true" and "after moving the champion alias" in tags["reason"]


def _own_start() -> str:
    from item2vec.retrain import _process_start

    return _process_start(os.getpid()) or ""


class _Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context: object, model_input: list[str], params: dict | None = None) -> list[str]:
        return model_input


def test_two_processes_creating_a_fresh_store_at_once(tmp_path):
    code = ("import sys; from item2vec.tracking import start_run\n"
            "with start_run('x', experiment='e', tracking_uri=sys.argv[1]): pass\n")
    store = f"sqlite:///{tmp_path}/new/mlflow.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    jobs = [subprocess.Popen([sys.executable, "-c", code, store], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outs = [j.communicate(timeout=300)[0] for j in jobs]
    assert [j.returncode for j in jobs] == [0, 0, 0], "\n".join(outs)
    assert not any("Traceback" in o for o in outs)
    assert len(MlflowClient(store).search_runs([MlflowClient(store).get_experiment_by_name("e").experiment_id])) == 3
