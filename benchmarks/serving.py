"""In-process cost of a served request: ``ServedModel.predict_frame`` against the search it wraps.

``python -m benchmarks.serving [--items 3400] [--dim 64] [--repeats 2000] [--http [--requests 2000]]``

A synthetic catalogue (Online Retail's size by default: 3,400 items, 64-d, integer
ids) served without a next-item model, so a session is answered with the neighbours
of its last known item. Printed, side by side in one run:

- p50 / p99 of one item request and one session request (a one-row DataFrame, as
  MLflow's server hands it over), and of the bare ``ItemEmbeddings.similar_items``
  call under them: the floor the wrapper adds to;
- items/s of one request of 1,000 items (one batched ``similar_items`` call) against
  1,000 one-item requests.

With ``--http``, also over HTTP: the same model and an identity pyfunc (it returns
its input: MLflow's own floor), each logged to a temporary SQLite store and served
by ``mlflow models serve --env-manager local -w 1`` on 127.0.0.1 in its own process
group; item and session requests at concurrency 1, 8 and 32 from threads of this
process (keep-alive connections); requests/s and p50/p99. Client and server share
the machine, as in issue #15's measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._common import Table, machine, percentiles_ms, progress
from item2vec.embeddings import ItemEmbeddings
from item2vec.serving import ServedModel


def _times(fn, repeats: int) -> list[float]:
    fn()  # warm: the exact index is built on the first query
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


ROOT = Path(__file__).resolve().parents[1]

try:
    import mlflow.pyfunc

    class Identity(mlflow.pyfunc.PythonModel):
        """Answers with its input: what MLflow's server costs with no model work."""

        def predict(self, context, model_input, params=None):  # noqa: ARG002 - pyfunc's signature
            return model_input
except ImportError:  # pragma: no cover - mlflow is a dependency
    Identity = None  # type: ignore[assignment,misc]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _serve(uri: str, store: str, cwd: Path) -> Iterator[int]:
    """``mlflow models serve`` of ``uri`` on a free port, in its own process group; stopped on exit."""
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store,
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    log = open(cwd / f"server-{port}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server of {uri} did not start:\n"
                                   f"{(cwd / f'server-{port}.log').read_text()[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/ping")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _load(port: int, body: bytes, n: int, concurrency: int) -> tuple[float, list[float]]:
    """``n`` POSTs of ``body`` from ``concurrency`` threads; (requests/s, latencies in s)."""
    per = [n // concurrency + (i < n % concurrency) for i in range(concurrency)]

    def worker(count: int) -> list[float]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        out = []
        for _ in range(count):
            t0 = time.perf_counter()
            conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")
            out.append(time.perf_counter() - t0)
        conn.close()
        return out

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        lat = [x for part in pool.map(worker, per) for x in part]
    return n / (time.perf_counter() - t0), lat


def http_tables(model: ServedModel, item: object, session: list, n: int, k: int) -> None:
    """Serve ``model`` and an identity pyfunc the same way; print requests/s and p50/p99 side by side."""
    from item2vec.registry import log_model
    from item2vec.tracking import start_run

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    bodies = {"item": {"dataframe_records": [{"item_id": item}], "params": {"k": k}},
              "session": {"dataframe_records": [{"session": session}], "params": {"k": k}}}
    table = Table("Over HTTP (mlflow models serve, 1 worker)",
                  ["model", "request", "concurrency", "requests/s", "p50 ms", "p99 ms"])
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        store = f"sqlite:///{tmp}/mlflow.db"
        progress("logging the model and the identity pyfunc")
        with start_run("bench", experiment="bench-serving", tracking_uri=store):
            uri = log_model(model).model_uri
            ident = mlflow.pyfunc.log_model(name="identity", python_model=Identity()).model_uri
        for name, model_uri in (("identity", ident), ("item2vec", uri)):
            with _serve(model_uri, store, Path(tmp)) as port:
                for kind, body in bodies.items():
                    raw = json.dumps(body).encode()
                    _load(port, raw, 50, 4)  # warm
                    for conc in (1, 8, 32):
                        rps, lat = _load(port, raw, n, conc)
                        table.add(name, kind, conc, rps, *percentiles_ms(lat))
    table.print()


def main(argv: list[str] | None = None) -> None:
    """Print the two tables (markdown) for a synthetic catalogue."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=3400)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--http", action="store_true", help="also serve it and an identity pyfunc with MLflow")
    ap.add_argument("--requests", type=int, default=2000, help="per model, request kind and concurrency")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    ids = np.arange(10_000, 10_000 + args.items)
    model = ServedModel(ItemEmbeddings(ids, rng.standard_normal((args.items, args.dim)).astype(np.float32)))
    one = int(ids[5])
    item_req = pd.DataFrame({"item_id": [one]})
    session_req = pd.DataFrame({"session": [[int(x) for x in ids[[5, 17, 300]]]]})
    print(f"\n{machine()}\n{args.items:,} items x {args.dim}-d, k={args.k}")

    lat = Table("In-process latency of one request", ["what", "p50 ms", "p99 ms"])
    for name, fn in [
        ("similar_items (the search alone)", lambda: model.embeddings.similar_items(one, k=args.k)),
        ("predict_frame, one item", lambda: model.predict_frame(item_req, k=args.k)),
        ("predict_frame, one session", lambda: model.predict_frame(session_req, k=args.k)),
    ]:
        lat.add(name, *percentiles_ms(_times(fn, args.repeats)))
    lat.print()

    batch = [int(x) for x in rng.choice(ids, 1000)]
    batch_req = pd.DataFrame({"item_id": batch})
    singles = [pd.DataFrame({"item_id": [x]}) for x in batch]
    thr = Table("Items per second, 1,000 items", ["how", "median s", "items/s"])
    t_batch = float(np.median(_times(lambda: model.predict_frame(batch_req, k=args.k), 5)))
    t_loop = float(np.median(_times(lambda: [model.predict_frame(r, k=args.k) for r in singles], 3)))
    thr.add("one request of 1,000 items (one matrix product)", t_batch, 1000 / t_batch)
    thr.add("1,000 one-item requests", t_loop, 1000 / t_loop)
    thr.print()
    if args.http:
        http_tables(model, one, session_req["session"][0], args.requests, args.k)


if __name__ == "__main__":
    main()
