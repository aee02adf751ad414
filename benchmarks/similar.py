"""similar_items: exact against gensim ``most_similar``, approximate (HNSW) against exact.

Vectors are clustered synthetic ones (:mod:`benchmarks.vectors`), 64-d, string ids.
Single queries are timed one by one, alternating between the contenders so that
noise from other processes hits both alike; batch throughput is one call with all
queries (gensim has no batch form for many keys, so its "batch" is a loop).
"""

from __future__ import annotations

import inspect
import time
from typing import Any

import numpy as np

from benchmarks._common import Table, percentiles_ms, progress
from benchmarks.vectors import clustered_vectors
from item2vec.embeddings import ItemEmbeddings
from item2vec.index import HNSWIndex

K = 10


def _gensim_kv(keys: list[str], x: np.ndarray) -> Any:
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=x.shape[1], count=0)
    kv.add_vectors(keys, x)
    kv.fill_norms()
    return kv


def run(
    sizes: tuple[int, ...] = (100_000, 1_000_000),
    n_single: int = 200,
    n_batch: int = 1000,
    hnsw: dict[str, int] | None = None,
    ef_grid: tuple[int, ...] = (16, 32, 64, 128),
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Print the similar_items tables; return them as dicts."""
    if hnsw is None:  # the library's defaults
        params = inspect.signature(HNSWIndex).parameters
        hnsw = {k: params[k].default for k in ("M", "ef_construction", "ef")}
    lat = Table(
        "similar_items single query (k=10), ms",
        ["items", "gensim p50", "exact p50", "gensim p99", "exact p99", "gensim/exact (p50)",
         "ann p50", "ann p99", "exact/ann (p50)", "ann recall@10"],
    )
    thr = Table(
        "similar_items batch throughput (k=10), queries/s",
        ["items", "batch", "gensim loop", "exact batch", "exact/gensim", "ann batch", "ann/exact", "ann build s"],
    )
    tune = Table(
        "HNSW search ef: recall@10 against exact, single-query p50 (index.search, ms)",
        ["items", "M", "ef_construction", "ef", "recall@10", "p50 ms", "p99 ms"],
    )
    rng = np.random.default_rng(seed)
    for n in sizes:
        progress(f"similar_items: {n:,} clustered vectors")
        x = clustered_vectors(n, dim=64, random_state=seed)
        keys = [f"i{i}" for i in range(n)]
        kv = _gensim_kv(keys, x)
        emb = ItemEmbeddings.from_vectors(keys, x, index="exact")
        q_rows = rng.choice(n, size=n_single, replace=False)
        q_keys = [keys[i] for i in q_rows]
        kv.most_similar(q_keys[0], topn=K)
        emb.similar_items(q_keys[0], k=K)
        t_g, t_e = [], []
        exact_answers = []
        for key in q_keys:
            t0 = time.perf_counter()
            kv.most_similar(key, topn=K)
            t1 = time.perf_counter()
            ids, _ = emb.similar_items(key, k=K)
            t2 = time.perf_counter()
            t_g.append(t1 - t0)
            t_e.append(t2 - t1)
            exact_answers.append(set(ids.tolist()))

        ann = ItemEmbeddings(emb.vocab, emb.vectors)  # the same vectors, searched by the graph
        ann.unit  # noqa: B018 - the unit matrix before the clock, as the exact index had it
        t0 = time.perf_counter()
        ann.use_index("ann", **hnsw)
        build_s = time.perf_counter() - t0
        index = ann.index
        ann.similar_items(q_keys[0], k=K)
        t_a, hits = [], 0
        for key, truth in zip(q_keys, exact_answers, strict=True):
            t0 = time.perf_counter()
            ids, _ = ann.similar_items(key, k=K)
            t_a.append(time.perf_counter() - t0)
            hits += len(truth & set(ids.tolist()))
        recall = hits / (K * len(q_keys))
        g50, g99 = percentiles_ms(t_g)
        e50, e99 = percentiles_ms(t_e)
        a50, a99 = percentiles_ms(t_a)
        lat.add(n, g50, e50, g99, e99, g50 / e50, a50, a99, e50 / a50, recall)

        # ef sweep on the raw index (unit query vectors, k + 1 fetched, the item itself dropped)
        qv = emb.vectors[q_rows]
        for ef in ef_grid:
            index.ef = ef
            index.graph.set_ef(ef)
            ts, hits = [], 0
            for j, r in enumerate(q_rows):
                t0 = time.perf_counter()
                rows, _ = index.search(qv[j : j + 1], K + 1)
                got = [i for i in rows[0].tolist() if i != r][:K]
                ts.append(time.perf_counter() - t0)
                hits += len(exact_answers[j] & {keys[i] for i in got})
            p50, p99 = percentiles_ms(ts)
            tune.add(n, hnsw["M"], hnsw["ef_construction"], ef, hits / (K * len(q_rows)), p50, p99)
        index.ef = hnsw["ef"]
        index.graph.set_ef(hnsw["ef"])

        b_keys = [keys[i] for i in rng.choice(n, size=n_batch, replace=False)]
        n_loop = min(n_batch, max(50, n_batch * 100_000 // n))  # gensim's loop: fewer at 1M
        t0 = time.perf_counter()
        for key in b_keys[:n_loop]:
            kv.most_similar(key, topn=K)
        g_qps = n_loop / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        emb.similar_items(b_keys, k=K)
        e_qps = n_batch / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        ann.similar_items(b_keys, k=K)
        a_qps = n_batch / (time.perf_counter() - t0)
        thr.add(n, n_batch, g_qps, e_qps, e_qps / g_qps, a_qps, a_qps / e_qps, build_s)
        del kv, emb, ann, index, x
    for t in (lat, thr, tune):
        t.print()
    return [lat.to_dict(), thr.to_dict(), tune.to_dict()]


if __name__ == "__main__":
    run(sizes=(100_000,), n_single=100, n_batch=500)
