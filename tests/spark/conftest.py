"""A real standalone Spark cluster for the Spark tests: one master and two workers on 127.0.0.1.

Started once per test session from the jars inside the pyspark wheel, each process in
its own process group on free ports; stopped by those process groups at the end (never
by name). The tests skip, with the reason, only where Java or pyspark is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
N_WORKERS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for p in reversed(procs):
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as r:
            state = json.load(r)
    except OSError:
        return 0
    return sum(w.get("state") == "ALIVE" for w in state.get("workers", []))


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``spark://127.0.0.1:PORT`` of a master with two registered 1-core workers."""
    if shutil.which("java") is None:
        pytest.skip("Spark tests need Java 17+ (`java` is not on PATH)")
    pyspark = pytest.importorskip("pyspark", reason="Spark tests need pyspark: pip install 'item2vec[spark]'")
    home = Path(pyspark.__file__).parent
    work = tmp_path_factory.mktemp("spark-cluster")
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(work / "logs"),
        "PYSPARK_PYTHON": sys.executable,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    spark_class = str(home / "bin" / "spark-class")
    port, ui = _free_port(), _free_port()
    url = f"spark://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []
    logs = []

    def start(name: str, args: list[str]) -> None:
        log = open(work / f"{name}.log", "wb")  # noqa: SIM115 - closed at teardown
        logs.append(log)
        procs.append(subprocess.Popen([spark_class, *args], env=env, cwd=work, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True))

    try:
        start("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                         "--port", str(port), "--webui-port", str(ui)])
        for i in range(N_WORKERS):
            (work / f"w{i}").mkdir()
            start(f"worker{i}", ["org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1",
                                 "--cores", "1", "--memory", "2g", "--webui-port", str(_free_port()),
                                 "--work-dir", str(work / f"w{i}")])
        deadline = time.monotonic() + 120
        while _alive_workers(ui) < N_WORKERS:
            dead = [p.args[1] for p in procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                tails = "\n".join(f.read_text()[-1500:] for f in sorted(work.glob("*.log")))
                raise RuntimeError(f"the Spark cluster did not start ({dead or 'timeout'}):\n{tails}")
            time.sleep(0.5)
        yield url
    finally:
        _stop(procs)
        for log in logs:
            log.close()


@pytest.fixture(scope="session")
def spark(spark_cluster: str) -> Iterator[object]:
    """A SparkSession on the two-worker cluster (one per test session: Spark allows one per process)."""
    from item2vec.spark.session import get_spark

    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    session = get_spark(
        spark_cluster, app_name="item2vec-tests",
        **{"spark.executor.memory": "1g", "spark.executor.cores": "1", "spark.cores.max": "2",
           "spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "2",
           "spark.driver.memory": "1g", "spark.executorEnv.PYTHONPATH": str(ROOT),
           "spark.ui.enabled": "false", "spark.driver.host": "127.0.0.1"},
    )
    yield session
    session.stop()
