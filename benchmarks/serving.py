"""The cost of a served request, in process and over HTTP, against the floors under it.

``python -m benchmarks.serving [--items 3400] [--dim 64] [--repeats 2000] [--profile] [--http [--requests 2000]]``

A synthetic catalogue (Online Retail's size by default: 3,400 items, 64-d, integer
ids) served without a next-item model, so a session is answered with the neighbours
of its last known item. Printed, side by side in one run:

- p50 / p99 of one item request and one session request (a one-row DataFrame, as
  MLflow's server hands it over) through ``predict_records`` (what the server gets)
  and ``predict_frame``, and of the bare ``similar_items`` call under them: the floor
  the wrapper adds to;
- items/s of one request of 1,000 items and of 1,000 sessions (one batched call each)
  against 1,000 one-row requests.

In process, each request is timed without and then with the neighbour cache
(``ItemEmbeddings.cache_neighbours``: every item's top 50 kept, so an item request is a
table lookup), which the served pyfunc builds at load for catalogues up to 20,000 items.

Three logged models (:func:`_logged`): the model as ``item2vec.registry.log_model`` logs
it (served: with the neighbour cache); the same with the cache turned off in its model
config (``neighbour_cache = 0``), so the cache's share is measured side by side; an
identity pyfunc (it returns its input: MLflow's own floor) with the same params schema.
(Round 2 of issue #15 served the model with its request columns declared in place of the
second; ``git archive a1ccfe1`` has that benchmark.)

``--profile``: the server side of one HTTP request without the network: MLflow's
``scoring_server.invocations`` (JSON in, the pyfunc, JSON out) in this process, for
each of the three; the time of each and the top lines of ``cProfile``.

``--http [--before DIR]``: the three, each served by ``mlflow models serve --env-manager
local`` on 127.0.0.1 in its own process group, once as the README's command has it (one
worker) and once with the worker option ``-w`` set to the number of cores; item and session
requests at concurrency 1, 8 and 32 from threads of this process (keep-alive connections),
each case's requests in slices that alternate between the servers (all up at once), so all
see the same load; requests/s and p50/p99, and each one's ratios to the identity floor of
the same server options. Client and server share the machine, as in issue #15's measurement.

With ``--before DIR`` (a checkout of older code, e.g. ``git archive COMMIT | tar -x -C DIR``)
the model is also served with that checkout's ``item2vec``, in the same turns: before
and after measured side by side. The servers import the ``item2vec`` this process imported (its parent directory
goes on their ``PYTHONPATH``), so a checkout of older code measures that code.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import http.client
import io
import json
import os
import pstats
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import item2vec
from benchmarks._common import Table, machine, percentiles_ms, progress
from item2vec.embeddings import ItemEmbeddings
from item2vec.serving import ServedModel

#: The checkout whose ``item2vec`` this process runs: the servers import the same.
ROOT = Path(item2vec.__file__).resolve().parents[1]
CONCURRENCY = (1, 8, 32)


def _times(fn: Callable[[], Any], repeats: int) -> list[float]:
    fn()  # warm: the exact index is built on the first query
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


try:
    import mlflow.pyfunc

    class Identity(mlflow.pyfunc.PythonModel):
        """Answers with its input: what MLflow's server costs with no model work."""

        def predict(self, context, model_input, params=None):  # noqa: ARG002 - pyfunc's signature
            return model_input
except ImportError:  # pragma: no cover - mlflow is a dependency
    Identity = None  # type: ignore[assignment,misc]


def synthetic_model(n_items: int = 3400, dim: int = 64, seed: int = 0) -> ServedModel:
    """A served model of ``n_items`` random integer-id vectors, no next-item model."""
    rng = np.random.default_rng(seed)
    ids = np.arange(10_000, 10_000 + n_items)
    return ServedModel(ItemEmbeddings(ids, rng.standard_normal((n_items, dim)).astype(np.float32)))


def _requests(model: ServedModel) -> tuple[Any, list[Any]]:
    ids = model.embeddings.ids
    return int(ids[5]), [int(x) for x in ids[[5 % len(ids), 17 % len(ids), 300 % len(ids)]]]


def in_process(model: ServedModel, repeats: int = 2000, k: int = 10, n_batch: int = 1000) -> list[dict[str, Any]]:
    """Latency of one request and throughput of a batch request, in this process; print and return the tables."""
    one, session = _requests(model)
    item_req, session_req = pd.DataFrame({"item_id": [one]}), pd.DataFrame({"session": [session]})
    lat = Table("In-process latency of one request", ["what", "neighbour cache", "p50 ms", "p99 ms"])
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("similar_items (the search alone)", lambda: model.embeddings.similar_items(one, k=k))]
    if hasattr(model, "predict_records"):  # not in older checkouts
        cases += [("predict_records, one item", lambda: model.predict_records(item_req, k=k)),
                  ("predict_records, one session", lambda: model.predict_records(session_req, k=k))]
    cases += [("predict_frame, one item", lambda: model.predict_frame(item_req, k=k)),
              ("predict_frame, one session", lambda: model.predict_frame(session_req, k=k))]
    emb = model.embeddings
    for cached in ((False, True) if hasattr(emb, "cache_neighbours") else (False,)):  # not in older checkouts
        if cached:
            emb.cache_neighbours(50)
        for name, fn in cases:
            lat.add(name, "yes" if cached else "no", *percentiles_ms(_times(fn, repeats)))
    if hasattr(emb, "cache_neighbours"):
        emb.cache_neighbours(0)
    lat.print()

    rng = np.random.default_rng(1)
    ids = model.embeddings.ids
    batch = [int(x) for x in rng.choice(ids, n_batch)]
    sessions = [[int(x) for x in rng.choice(ids, 3)] for _ in range(n_batch)]
    thr = Table(f"Requests per second, {n_batch:,} requests", ["how", "median s", "requests/s"])
    for label, big, singles in (
        ("items", pd.DataFrame({"item_id": batch}), [pd.DataFrame({"item_id": [x]}) for x in batch]),
        ("sessions", pd.DataFrame({"session": sessions}), [pd.DataFrame({"session": [s]}) for s in sessions]),
    ):
        t_batch = float(np.median(_times(lambda big=big: model.predict_frame(big, k=k), 5)))
        t_loop = float(np.median(_times(lambda singles=singles: [model.predict_frame(r, k=k) for r in singles], 3)))
        thr.add(f"one request of {n_batch:,} {label}", t_batch, n_batch / t_batch)
        thr.add(f"{n_batch:,} one-row requests ({label})", t_loop, n_batch / t_loop)
    thr.print()
    return [lat.to_dict(), thr.to_dict()]


def _bodies(model: ServedModel, k: int) -> dict[str, bytes]:
    one, session = _requests(model)
    return {"item": json.dumps({"dataframe_records": [{"item_id": one}], "params": {"k": k}}).encode(),
            "session": json.dumps({"dataframe_records": [{"session": session}], "params": {"k": k}}).encode()}


#: The served models of the profile and the HTTP run, by name.
IDENTITY, MODEL, NOCACHE = "identity", "item2vec", "item2vec, no neighbour cache"


@contextlib.contextmanager
def _logged(model: ServedModel) -> Iterator[tuple[str, dict[str, str]]]:
    """(store, {name: model uri}), all logged to a temporary SQLite store.

    :data:`MODEL` is ``model`` as :func:`item2vec.registry.log_model` logs it (at load
    the pyfunc caches every item's neighbours); :data:`NOCACHE` the same artifacts and
    signature with the cache off in the model config; :data:`IDENTITY` a pyfunc that
    returns its input, with the same params schema (without one, MLflow logs a warning for
    every request that passes ``k``, slowing the floor).
    """
    from mlflow.models import ModelSignature

    from item2vec.registry import ARTIFACT, MODEL_CODE, _signature, log_model
    from item2vec.tracking import start_run

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    signature, example = _signature(model)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        store = f"sqlite:///{tmp}/mlflow.db"
        progress("logging the model (with and without the neighbour cache) and the identity pyfunc")
        with start_run("bench", experiment="bench-serving", tracking_uri=store):
            uris = {IDENTITY: mlflow.pyfunc.log_model(
                name="identity", python_model=Identity(),
                signature=ModelSignature(inputs=None, outputs=None, params=signature.params)).model_uri,
                MODEL: log_model(model).model_uri}
        path = model.save(Path(tmp) / ARTIFACT)
        with start_run("bench-nocache", experiment="bench-serving", tracking_uri=store):  # its own model config
            uris[NOCACHE] = mlflow.pyfunc.log_model(
                name="nocache", python_model=str(MODEL_CODE), artifacts={ARTIFACT: str(path)},
                signature=signature, input_example=example, model_config={"neighbour_cache": 0}).model_uri
        yield store, uris


def profile(model: ServedModel, k: int = 10, repeats: int = 500, top: int = 25) -> list[dict[str, Any]]:
    """The server side of one request (``scoring_server.invocations``), model against identity; print cProfile."""
    from mlflow.pyfunc import scoring_server

    bodies = _bodies(model, k)
    table = Table("Server side of one request, in process (scoring_server.invocations)",
                  ["model", "request", "p50 ms", "p99 ms"])
    profiles = []
    with _logged(model) as (store, uris), _env(MLFLOW_TRACKING_URI=store, _MLFLOW_IS_IN_SERVING_ENVIRONMENT="true"):
        for name, model_uri in uris.items():
            loaded = mlflow.pyfunc.load_model(model_uri)
            schema = loaded.metadata.get_input_schema()
            for kind, body in bodies.items():
                def call(body: bytes = body, loaded: Any = loaded, schema: Any = schema) -> None:
                    res = scoring_server.invocations(body, "application/json", loaded, schema)
                    if res.status != 200:
                        raise RuntimeError(f"HTTP {res.status}: {res.response[:300]}")

                table.add(name, kind, *percentiles_ms(_times(call, repeats)))
                prof = cProfile.Profile()
                prof.enable()
                for _ in range(repeats):
                    call()
                prof.disable()
                out = io.StringIO()
                pstats.Stats(prof, stream=out).strip_dirs().sort_stats("cumulative").print_stats(top)
                profiles.append((f"{name}, {kind} request ({repeats} calls)", out.getvalue()))
    table.print()
    for title, text in profiles:
        print(f"\n#### cProfile: {title}\n\n```\n{_trim(text)}\n```")
    return [table.to_dict()]


def _trim(text: str) -> str:
    """The cProfile table without its preamble's blank lines."""
    lines = [ln.rstrip() for ln in text.splitlines()]
    return "\n".join(ln for ln in lines if ln.strip())


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _serve(uri: str, store: str, cwd: Path, workers: int | None, root: Path = ROOT) -> Iterator[int]:
    """``mlflow models serve`` of ``uri`` on a free port, in its own process group; stopped on exit.

    ``root`` goes first on the server's ``PYTHONPATH``: the checkout whose ``item2vec`` it runs.
    """
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store,
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)}
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
           "-h", "127.0.0.1", "-p", str(port)]
    if workers is not None:
        cmd += ["-w", str(workers)]
    log = open(cwd / f"server-{port}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
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


def http_tables(model: ServedModel, n: int = 2000, k: int = 10, rounds: int = 4,
                workers: tuple[int | None, ...] = (None, os.cpu_count() or 1),
                before: Path | None = None) -> list[dict[str, Any]]:
    """Serve the models of :func:`_logged` the same way; requests/s, p50/p99 and the ratios to the identity floor.

    The servers run at once and take turns: each case's ``n`` requests go in
    ``rounds`` slices, alternating between them, so a change in the machine's
    load falls on all alike. ``before``: a checkout of older code; the model is
    also served with that checkout's ``item2vec`` ("item2vec, before").
    """
    bodies = _bodies(model, k)
    table = Table(f"Over HTTP (mlflow models serve), {n:,} requests each, alternating in {rounds} slices",
                  ["server options", "request", "concurrency", "model", "req/s", "req/s / identity",
                   "p50 ms", "p50 / identity", "p99 ms"])
    with _logged(model) as (store, uris):
        served = {name: (uri, ROOT) for name, uri in uris.items()}
        if before:
            served["item2vec, before"] = (uris[MODEL], before)
        names = list(served)
        tmp = Path(store.removeprefix("sqlite:///")).parent
        for w in workers:
            progress(f"serving {', '.join(names)} ({'-w ' + str(w) if w else 'default options'})")
            with contextlib.ExitStack() as servers:
                ports = {name: servers.enter_context(_serve(uri, store, tmp, w, root))
                         for name, (uri, root) in served.items()}
                for kind, body in bodies.items():
                    for port in ports.values():
                        _load(port, body, 100, 4)  # warm
                    for conc in CONCURRENCY:
                        wall = dict.fromkeys(names, 0.0)
                        lat: dict[str, list[float]] = {name: [] for name in names}
                        for r in range(rounds):
                            part = n // rounds + (r < n % rounds)
                            for name in (names if r % 2 == 0 else names[::-1]):  # turns: ABC, CBA, ...
                                rps, got = _load(ports[name], body, part, conc)
                                wall[name] += part / rps
                                lat[name] += got
                        res = {x: (n / wall[x], *percentiles_ms(lat[x])) for x in names}
                        floor = res[IDENTITY]
                        for name in names:
                            rps, p50, p99 = res[name]
                            table.add(f"-w {w}" if w else "none (1 worker)", kind, conc, name, rps,
                                      rps / floor[0], p50, p50 / floor[1], p99)
    table.print()
    return [table.to_dict()]


def run(n_items: int = 3400, dim: int = 64, repeats: int = 2000, k: int = 10, n_batch: int = 1000,
        profile_calls: int = 0, http_requests: int = 0, before: Path | None = None,
        rounds: int = 4) -> list[dict[str, Any]]:
    """The sections of :mod:`benchmarks.run`: in process; the profile and HTTP when their counts are > 0."""
    model = synthetic_model(n_items, dim)
    print(f"\n{n_items:,} items x {dim}-d, k={k}, ids {model.id_type}; item2vec from {ROOT}")
    out = in_process(model, repeats, k, n_batch)
    if profile_calls:
        out += profile(model, k, profile_calls)
    if http_requests:
        out += http_tables(model, http_requests, k, rounds=rounds, before=before)
    return out


def main(argv: list[str] | None = None) -> None:
    """Print the tables (markdown) for a synthetic catalogue."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=3400)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--profile", action="store_true", help="profile the server side of one request")
    ap.add_argument("--http", action="store_true", help="also serve it and an identity pyfunc with MLflow")
    ap.add_argument("--requests", type=int, default=2000, help="per model, request kind and concurrency")
    ap.add_argument("--rounds", type=int, default=4,
                    help="with --http: slices each case's requests are cut into, alternating between the servers")
    ap.add_argument("--before", type=Path, default=None, metavar="DIR",
                    help="with --http: also serve the model with the item2vec of this older checkout")
    args = ap.parse_args(argv)
    print(f"\n{machine()}; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    run(args.items, args.dim, args.repeats, args.k, profile_calls=500 if args.profile else 0,
        http_requests=args.requests if args.http else 0, before=args.before, rounds=args.rounds)


if __name__ == "__main__":
    main()
