"""The Spark engine: the same pipeline on an Apache Spark cluster (``pip install item2vec[spark]``).

The embedded default (polars + gensim) needs no Java; this package runs the same
steps on Spark and returns the same objects:

- :func:`prepare_spark`: sessions in Spark SQL → the same :class:`~item2vec.SessionData`
  (and so the same prepared-data directory) as :func:`item2vec.prepare`;
- :class:`SparkItem2Vec`: ``pyspark.ml.feature.Word2Vec`` → the same
  :class:`~item2vec.ItemEmbeddings`;
- :func:`spark_neighbours_table`: the top-k neighbours of every item, each task
  answering its share of the ids, written to Parquet by the executors.

The local counterpart of the last one, :func:`item2vec.spark.neighbours.neighbours_table`,
needs no Spark. Names are imported on first use, so ``import item2vec.spark`` works
without pyspark.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "get_spark": "item2vec.spark.session",
    "prepare_spark": "item2vec.spark.sessions",
    "SparkItem2Vec": "item2vec.spark.word2vec",
    "neighbours_table": "item2vec.spark.neighbours",
    "spark_neighbours_table": "item2vec.spark.neighbours",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'item2vec.spark' has no attribute {name!r}")
