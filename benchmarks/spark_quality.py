"""Spark's Word2Vec against gensim on the shared logs: HR@20 / MRR@20 of last-item neighbours.

``python -m benchmarks.spark_quality [--datasets diginetica,gowalla] [--master local[2]]``

Both trainers see the same prepared split (``pipelines.datasets``) and the same
dimension, window and epochs; gensim also runs with the package defaults. Spark
trains with 1, 2 and 4 partitions (one model per partition, averaged after each
pass). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

from item2vec.embeddings import Item2Vec
from item2vec.evaluation import evaluate
from item2vec.recommenders import Item2VecRecommender


def _score(emb, data) -> dict[str, float]:
    rec = Item2VecRecommender(embeddings=emb, vocab=data.vocab).fit(data.train, n_items=data.n_items)
    return evaluate(rec, data.test, k=20)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="diginetica,gowalla")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--partitions", default="1,2,4")
    a = ap.parse_args(argv)

    from item2vec.spark import SparkItem2Vec, get_spark
    from pipelines.datasets import load_dataset

    spark = get_spark(a.master, **{"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false"})
    print("| dataset | trainer | HR@20 | MRR@20 | fit s |\n|---|---|---|---|---|")
    for name in a.datasets.split(","):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = load_dataset(name)
        sessions = data.decode(data.train)
        same = {"vector_size": a.dim, "window": a.window, "epochs": a.epochs}
        runs: list[tuple[str, Any, Any]] = [
            ("gensim, package defaults", Item2Vec(show_progress=False, compute_loss=False), sessions),
            (f"gensim {a.dim}-d, window {a.window}, {a.epochs} epochs",
             Item2Vec(show_progress=False, compute_loss=False, **same), sessions),
        ]
        for p in (int(x) for x in a.partitions.split(",")):
            runs.append((f"Spark {a.dim}-d, window {a.window}, {a.epochs} iterations, {p} partition(s)",
                         SparkItem2Vec(num_partitions=p, **same), data))
        for label, model, train in runs:
            t0 = time.perf_counter()
            model.fit(train, spark=spark) if isinstance(model, SparkItem2Vec) else model.fit(train)
            secs = time.perf_counter() - t0
            r = _score(model.embeddings_, data)
            print(f"| {name} | {label} | {r['hr@20']:.4f} | {r['mrr@20']:.4f} | {secs:.1f} |", flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
