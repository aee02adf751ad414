"""A standalone Spark cluster on this machine, from the jars inside the pyspark wheel.

``python -m item2vec.spark.cluster --workers 2`` starts a master and workers on
127.0.0.1 (free ports), prints ``spark://127.0.0.1:PORT``, and stops them on Ctrl-C.
The tests and the benchmarks use :func:`local_cluster`. Every process runs in its
own process group and is stopped by that group, never by name.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LocalCluster", "local_cluster"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalCluster:
    """A running cluster: ``url`` for ``--spark-master``, the master's web UI port, its processes."""

    url: str
    ui_port: int
    work_dir: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def alive_workers(self) -> int:
        """Workers the master lists as ALIVE (from its JSON UI)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=2) as r:
                state = json.load(r)
        except OSError:
            return 0
        return sum(w.get("state") == "ALIVE" for w in state.get("workers", []))

    def pgids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        """SIGTERM to each process group (workers first), SIGKILL to those still there after 20 s."""
        for p in reversed(self.procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        # executors and Python workers live in the workers' groups: make sure none outlive them
        for pgid in self.pgids():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


@contextlib.contextmanager
def local_cluster(
    n_workers: int = 2,
    cores: int = 1,
    memory: str = "2g",
    work_dir: str | os.PathLike[str] | None = None,
    python_path: str | None = None,
    timeout: float = 120.0,
) -> Iterator[LocalCluster]:
    """Start a master and ``n_workers`` workers on 127.0.0.1; stop them on exit.

    Parameters
    ----------
    n_workers, cores, memory
        Workers, and the cores and memory each offers.
    work_dir : path, optional
        Logs and worker directories (default: a temporary directory).
    python_path : str, optional
        Prepended to the executors' ``PYTHONPATH`` (where ``item2vec`` is, if it is not installed).
    timeout : float
        Seconds to wait for every worker to register.

    Raises
    ------
    RuntimeError
        If a process exits or the workers do not register in time (with the log tails).
    """
    import pyspark

    home = Path(pyspark.__file__).parent
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="item2vec-spark-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(work / "logs"),
        "PYSPARK_PYTHON": sys.executable,
    }
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [python_path, os.environ.get("PYTHONPATH")]))
    spark_class = str(home / "bin" / "spark-class")
    port, ui = _free_port(), _free_port()
    cluster = LocalCluster(f"spark://127.0.0.1:{port}", ui, work)
    logs = []

    def start(name: str, args: list[str]) -> None:
        log = open(work / f"{name}.log", "wb")  # noqa: SIM115 - closed on exit
        logs.append(log)
        cluster.procs.append(subprocess.Popen([spark_class, *args], env=env, cwd=work, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True))

    try:
        start("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                         "--port", str(port), "--webui-port", str(ui)])
        for i in range(n_workers):
            (work / f"worker{i}").mkdir(exist_ok=True)
            start(f"worker{i}", ["org.apache.spark.deploy.worker.Worker", cluster.url, "--host", "127.0.0.1",
                                 "--cores", str(cores), "--memory", memory, "--webui-port", str(_free_port()),
                                 "--work-dir", str(work / f"worker{i}")])
        deadline = time.monotonic() + timeout
        while cluster.alive_workers() < n_workers:
            dead = [p.args[1] for p in cluster.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                tails = "\n".join(f.read_text(errors="replace")[-1500:] for f in sorted(work.glob("*.log")))
                raise RuntimeError(f"the Spark cluster did not start ({dead or 'timeout'}):\n{tails}")
            time.sleep(0.5)
        yield cluster
    finally:
        cluster.stop()
        for log in logs:
            log.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m item2vec.spark.cluster", description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cores", type=int, default=1, help="cores per worker")
    ap.add_argument("--memory", default="2g", help="memory per worker")
    a = ap.parse_args(argv)
    with local_cluster(a.workers, a.cores, a.memory, python_path=os.getcwd()) as c:
        print(f"{c.url}  ({a.workers} workers; UI http://127.0.0.1:{c.ui_port}; Ctrl-C stops it)", flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
