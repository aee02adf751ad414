"""The top-k table of every item: seconds (index build included) and recall@k against exact search.

``python -m benchmarks.spark_neighbours --items 1000000 [--kinds ivf,ann] [--spark-workers 1,2]``

Clustered 64-d vectors (``benchmarks/vectors.py``). On this machine: ``neighbours_table``
with each index kind; recall@k of the table against exact search on a sample of
``--sample`` items. With ``--spark-workers``: ``spark_neighbours_table`` with the IVF
index on a local standalone cluster of that many 1-core workers, written to Parquet
by the executors (build on the driver included). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.vectors import clustered_vectors
from item2vec import ItemEmbeddings
from item2vec.index import ExactIndex
from item2vec.spark.neighbours import neighbours_table, recall_at_k

ROOT = Path(__file__).resolve().parents[1]
PARAMS = {"ivf": {"nprobe": 8}, "ann": {"M": 16, "ef_construction": 64, "ef": 32}, "exact": {}}


def _exact_sample(emb: ItemEmbeddings, rows: np.ndarray, k: int) -> pl.DataFrame:
    got, _ = ExactIndex(emb.vectors).neighbours(rows, k)
    ids = np.asarray(emb.ids)
    return pl.DataFrame({"item_id": np.repeat(ids[rows], k), "neighbour_id": ids[got.ravel()]})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--kinds", default="ivf")
    ap.add_argument("--sample", type=int, default=2000)
    ap.add_argument("--spark-workers", default="", help="e.g. 1,2: also on Spark with that many 1-core workers")
    a = ap.parse_args(argv)

    x = clustered_vectors(a.items, 64)
    emb = ItemEmbeddings(np.arange(a.items), x)
    rows = np.random.default_rng(0).choice(a.items, size=min(a.sample, a.items), replace=False)
    exact = _exact_sample(emb, rows, a.k)
    print(f"| items | where | index | seconds (build + table) | recall@{a.k} on {len(rows):,} items |")
    print("|---|---|---|---|---|")
    for kind in a.kinds.split(","):
        t0 = time.perf_counter()
        table = neighbours_table(emb, k=a.k, index=kind, **PARAMS[kind])
        secs = time.perf_counter() - t0
        r = recall_at_k(table.filter(pl.col("item_id").is_in(emb.ids[rows].tolist())), exact)
        print(f"| {a.items:,} | this machine | {kind} {PARAMS[kind]} | {secs:.1f} | {r:.3f} |", flush=True)
        del table
    for n_workers in (int(w) for w in a.spark_workers.split(",") if w):
        from item2vec.spark import get_spark, spark_neighbours_table
        from item2vec.spark.cluster import local_cluster

        os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
        with local_cluster(n_workers, cores=1, memory="3g", python_path=str(ROOT)) as cluster, \
                tempfile.TemporaryDirectory() as d:
            spark = get_spark(cluster.url, **{"spark.executor.memory": "3g", "spark.driver.memory": "4g",
                                              "spark.driver.host": "127.0.0.1", "spark.ui.enabled": "false",
                                              "spark.executorEnv.PYTHONPATH": str(ROOT)})
            t0 = time.perf_counter()
            out = spark_neighbours_table(emb, Path(d) / "nb", k=a.k, index="ivf", spark=spark,
                                         partitions=4 * n_workers, **PARAMS["ivf"])
            secs = time.perf_counter() - t0
            table = pl.scan_parquet(out / "*.parquet").filter(pl.col("item_id").is_in(emb.ids[rows].tolist())).collect()
            r = recall_at_k(table, exact)
            print(f"| {a.items:,} | Spark, {n_workers} worker(s) x 1 core | ivf {PARAMS['ivf']} | {secs:.1f} | {r:.3f} |",
                  flush=True)
            spark.stop()


if __name__ == "__main__":
    main()
