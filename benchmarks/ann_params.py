"""HNSW graph parameters at one catalogue size: recall@10 and single-query p50 per ``ef``.

``python -m benchmarks.ann_params [N] [M] [EF_CONSTRUCTION]`` (default 1000000 16 100):
builds one hnswlib graph over :func:`benchmarks.vectors.clustered_vectors` and sweeps
``ef``, so a denser graph (larger ``M`` / ``ef_construction``) can be compared with the
default on the recall-vs-latency goal (recall@10 >= 0.95 at p50 <= 0.1 ms). Not part
of ``benchmarks.run``.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from benchmarks._common import Table, percentiles_ms
from benchmarks.vectors import clustered_vectors
from item2vec.index import normalize, topk


def main(n: int = 1_000_000, M: int = 16, efc: int = 100, n_queries: int = 300) -> None:
    import hnswlib

    x = normalize(clustered_vectors(n))
    q = x[np.random.default_rng(1).choice(n, n_queries, replace=False)]
    truth = np.vstack([topk(q[i : i + 50] @ x.T, 10)[0] for i in range(0, n_queries, 50)])
    t0 = time.perf_counter()
    h = hnswlib.Index(space="ip", dim=x.shape[1])
    h.init_index(max_elements=n, M=M, ef_construction=efc, random_seed=0)
    h.add_items(x, np.arange(n))
    build = time.perf_counter() - t0
    h.set_num_threads(1)
    table = Table(f"HNSW, {n:,} clustered 64-d vectors, M={M}, ef_construction={efc} (build {build:.0f} s)",
                  ["ef", "recall@10", "p50 ms (1 thread)", "p99 ms"])
    for ef in (16, 24, 32, 48, 64):
        h.set_ef(ef)
        found, _ = h.knn_query(q, k=10)
        rec = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)]))
        times = []
        for i in range(n_queries):
            t = time.perf_counter()
            h.knn_query(q[i : i + 1], k=10)
            times.append(time.perf_counter() - t)
        p50, p99 = percentiles_ms(times)
        table.add(ef, rec, p50, p99)
    table.print()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
