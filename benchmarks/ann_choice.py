"""hnswlib against faiss ``IndexHNSWFlat`` on the same clustered vectors (how the ANN backend was picked).

``python -m benchmarks.ann_choice [N] [M] [EF_CONSTRUCTION]`` (default 200000 16 100):
build time with all cores, single-query p50 on one thread and recall@10 against
exact search for a few ``ef`` values, side by side. Not part of ``benchmarks.run``.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from benchmarks._common import Table, percentiles_ms
from benchmarks.vectors import clustered_vectors
from item2vec.index import normalize, topk


def main(n: int = 200_000, M: int = 16, efc: int = 100, n_queries: int = 300) -> None:
    import faiss
    import hnswlib

    x = normalize(clustered_vectors(n))
    q = x[np.random.default_rng(1).choice(n, n_queries, replace=False)]
    truth, _ = topk(q @ x.T, 10)

    def recall(found: np.ndarray) -> float:
        return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)]))

    table = Table(f"ANN backends, {n:,} clustered 64-d vectors, M={M}, ef_construction={efc}",
                  ["library", "build s", "ef", "p50 ms (1 thread)", "recall@10"])
    t0 = time.perf_counter()
    h = hnswlib.Index(space="ip", dim=x.shape[1])
    h.init_index(max_elements=n, M=M, ef_construction=efc, random_seed=0)
    h.add_items(x, np.arange(n))
    hb = time.perf_counter() - t0
    t0 = time.perf_counter()
    f = faiss.IndexHNSWFlat(x.shape[1], M, faiss.METRIC_INNER_PRODUCT)
    f.hnsw.efConstruction = efc
    f.add(x)
    fb = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)
    for ef in (32, 64, 128):
        h.set_ef(ef)
        f.hnsw.efSearch = ef
        th, tf = [], []
        for v in q:  # alternate the two libraries query by query
            t0 = time.perf_counter()
            h.knn_query(v[None], 10, num_threads=1)
            t1 = time.perf_counter()
            f.search(v[None], 10)
            tf.append(time.perf_counter() - t1)
            th.append(t1 - t0)
        table.add("hnswlib", hb, ef, percentiles_ms(th)[0], recall(h.knn_query(q, 10)[0]))
        table.add("faiss IndexHNSWFlat", fb, ef, percentiles_ms(tf)[0], recall(f.search(q, 10)[1]))
    table.print()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
