"""Scale: sessionize + train + all-items neighbours, polars/gensim against Spark on a two-worker cluster.

``python -m benchmarks.spark_scale --events 1000000,10000000,50000000``

For each size a synthetic log (users, clustered items, Zipf popularity, gaps that cut
sessions) is written as Parquet; then each engine runs in its own subprocess:

- polars: ``read_parquet`` → ``prepare`` → ``Item2Vec.fit`` (gensim, 2 threads) →
  ``neighbours_table``;
- spark: a local standalone cluster (master + 2 workers, 1 core and ``--worker-memory``
  each; or ``--spark-master local[2]``) → ``read_events_spark`` (``spark.read.parquet``) →
  ``prepare_spark_to`` (the executors write the prepared directory) → ``SparkItem2Vec.fit``
  (2 partitions, reading the prepared ``train.parquet``) → ``spark_neighbours_table``
  written by the executors.

Both train 64-d vectors, window 5, ``--epochs`` passes, top-``--k`` neighbours (exact up
to 50,000 items, HNSW above). Seconds per step and the peak resident memory (``VmHWM``)
of every process: the polars process; the Spark driver and each executor JVM and Python
worker (read from ``/proc`` before the application ends). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_log(n_events: int, path: Path, seed: int = 0) -> Path:
    """Users clicking through clustered items; about 10 events per session, 5 sessions per user."""
    import polars as pl

    rng = np.random.default_rng(seed)
    n_items = max(1000, n_events // 50)
    n_clusters = max(10, n_items // 100)
    n_sessions = max(1, n_events // 10)
    lengths = rng.geometric(1 / 10, size=n_sessions)
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), n_events) + 1]
    n_sessions = len(lengths)
    cluster = rng.zipf(1.3, size=n_sessions) % n_clusters
    sess = np.repeat(np.arange(n_sessions), lengths)[:n_events]
    within = rng.zipf(1.5, size=len(sess)) % 100
    item = (cluster[sess] * 100 + within) % n_items
    user = sess // 5
    # sessions of a user 1-3 days apart, events 5-300 s apart
    start = (sess % 5) * 86400 * rng.uniform(1, 3, size=n_sessions)[sess] + (user % 1000) * 60
    offset = np.concatenate([[0], np.cumsum(rng.integers(5, 300, size=len(sess) - 1))])
    first = np.concatenate([[0], np.flatnonzero(np.diff(sess)) + 1])
    offset -= np.repeat(offset[first], np.diff(np.append(first, len(sess))))
    ts = (1_700_000_000 + start + offset).astype(np.int64) * 1_000_000
    pl.DataFrame({"user_id": user.astype(np.int64), "item_id": item.astype(np.int64),
                  "timestamp": pl.Series(ts).cast(pl.Datetime("us"))}).write_parquet(path)
    return path


def _hwm_kib(pid: int | str = "self") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _ppid(pid: str) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def _group_hwm(pgids: list[int]) -> list[tuple[str, int]]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            pgid = int(stat.rsplit(")", 1)[1].split()[2])
            if pgid in pgids:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                kind = ("executor" if "CoarseGrainedExecutorBackend" in cmd else "python-worker" if "pyspark" in cmd
                        else "worker" if "deploy.worker" in cmd else "master" if "deploy.master" in cmd else "other")
                out.append((kind, _hwm_kib(d.name)))
        except (OSError, ValueError, IndexError):
            continue
    return out


CONF = {"dim": 64, "window": 5}


def run_polars(path: str, epochs: int, k: int, out: str) -> dict[str, Any]:
    import warnings

    import polars as pl

    from item2vec.data import PrepareConfig, prepare
    from item2vec.embeddings import Item2Vec
    from item2vec.spark.neighbours import neighbours_table

    t: dict[str, float] = {}
    t0 = time.perf_counter()
    ev = pl.read_parquet(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = prepare(ev, PrepareConfig(min_item_support=5))
    data.save(Path(out) / "data")
    t["sessionize"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = Item2Vec(vector_size=CONF["dim"], window=CONF["window"], epochs=epochs, workers=2,
                     show_progress=False, compute_loss=False).fit(data.train)
    t["train"] = time.perf_counter() - t0
    emb = model.embeddings_
    t0 = time.perf_counter()
    kind = "exact" if len(emb) <= 50_000 else "ann"
    neighbours_table(emb, k=k, index=kind).write_parquet(Path(out) / "nb.parquet")
    t["neighbours"] = time.perf_counter() - t0
    return {"seconds": t, "items": len(emb), "train_sessions": len(data.train),
            "peak_mib": {"process": _hwm_kib() // 1024}}


def run_spark(path: str, epochs: int, k: int, out: str, worker_memory: str, master: str = "cluster") -> dict[str, Any]:
    import contextlib

    from item2vec.spark import SparkItem2Vec, get_spark, spark_neighbours_table
    from item2vec.spark.cluster import local_cluster
    from item2vec.spark.readers import read_events_spark
    from item2vec.spark.sessions import prepare_spark_to

    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    t: dict[str, float] = {}
    on_cluster = master == "cluster"
    with (local_cluster(2, cores=1, memory=worker_memory, python_path=str(ROOT)) if on_cluster
          else contextlib.nullcontext()) as cluster:
        t0 = time.perf_counter()
        spark = get_spark(cluster.url if on_cluster else master, **{"spark.executor.memory": worker_memory, "spark.cores.max": "2",
                                          "spark.sql.shuffle.partitions": "8", "spark.driver.memory": "4g",
                                          "spark.driver.host": "127.0.0.1", "spark.ui.enabled": "false",
                                          "spark.executorEnv.PYTHONPATH": str(ROOT)})
        t["session start"] = time.perf_counter() - t0
        import warnings

        from item2vec.data import PrepareConfig

        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            events = read_events_spark(path, "parquet", spark, session_col=None, user_col="user_id")
            stats = prepare_spark_to(Path(out) / "data", events, PrepareConfig(min_item_support=5))
        t["sessionize"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        model = SparkItem2Vec(vector_size=CONF["dim"], window=CONF["window"], epochs=epochs, num_partitions=2)
        model.fit(Path(out) / "data", spark=spark)
        t["train"] = time.perf_counter() - t0
        emb = model.embeddings_
        t0 = time.perf_counter()
        kind = "exact" if len(emb) <= 50_000 else "ann"
        spark_neighbours_table(emb, Path(out) / "nb", k=k, index=kind, spark=spark, partitions=4)
        t["neighbours"] = time.perf_counter() - t0
        procs = _group_hwm(cluster.pgids()) if on_cluster else []
        jvm = [_hwm_kib(d.name) for d in Path("/proc").iterdir() if d.name.isdigit() and _ppid(d.name) == os.getpid()]
        spark.stop()
    peak = {"driver": _hwm_kib() // 1024, "driver-jvm": max(jvm, default=0) // 1024}
    for kind in ("executor", "python-worker", "worker", "master"):
        vals = [v // 1024 for kk, v in procs if kk == kind]
        if vals:
            peak[kind] = max(vals)
    return {"seconds": t, "items": len(emb), "train_sessions": stats["train"]["sessions"], "peak_mib": peak}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", default="1000000")
    ap.add_argument("--engines", default="polars,spark")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--worker-memory", default="3g")
    ap.add_argument("--spark-master", default="cluster",
                    help="'cluster' (a local master + 2 workers, default) or a master URL such as local[2]")
    ap.add_argument("--child", nargs=2, metavar=("ENGINE", "PATH"), help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        engine, path = a.child
        res = (run_polars(path, a.epochs, a.k, a.out) if engine == "polars"
               else run_spark(path, a.epochs, a.k, a.out, a.worker_memory, a.spark_master))
        print("RESULT " + json.dumps(res), flush=True)
        return
    print("| events | engine | items | sessionize s | train s | neighbours s | peak MiB per process |")
    print("|---|---|---|---|---|---|---|")
    for n in (int(x) for x in a.events.split(",")):
        with tempfile.TemporaryDirectory(prefix="i2v-scale-") as d:
            log = make_log(n, Path(d) / "events.parquet")
            for engine in a.engines.split(","):
                out = Path(d) / engine
                out.mkdir()
                cmd = [sys.executable, "-m", "benchmarks.spark_scale", "--child", engine, str(log), "--out", str(out),
                       "--epochs", str(a.epochs), "--k", str(a.k), "--worker-memory", a.worker_memory,
                       "--spark-master", a.spark_master]
                proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                                      env={**os.environ, "PYTHONPATH": str(ROOT)})
                line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
                if not line:
                    first = [x for x in proc.stderr.splitlines() if "Error" in x or "Exception" in x][:3]
                    print(f"| {n:,} | {engine} | failed (rc {proc.returncode}): {first!r} {proc.stderr[-400:]!r} |",
                          flush=True)
                    continue
                r = json.loads(line[0][7:])
                s = r["seconds"]
                peak = ", ".join(f"{kk} {v:,}" for kk, v in r["peak_mib"].items())
                extra = f" (+{s['session start']:.0f} s session start)" if "session start" in s else ""
                print(f"| {n:,} | {engine} | {r['items']:,} | {s['sessionize']:.1f}{extra} | {s['train']:.1f} | "
                      f"{s['neighbours']:.1f} | {peak} |", flush=True)


if __name__ == "__main__":
    main()
