"""The top-k neighbours of every item as a table: the serving cache.

:func:`neighbours_table` answers on one machine, in batches, with the exact index
or the HNSW graph; :func:`spark_neighbours_table` ships the index to the executors
once (a broadcast), and each task answers its share of the item rows
(``mapInArrow``) and writes its part of the Parquet table, so the ``n × k`` table
never passes through the driver. Both give the columns
``item_id, rank, neighbour_id, score`` (rank 1 is the nearest; an item is never its
own neighbour).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from item2vec.embeddings import ItemEmbeddings
from item2vec.exceptions import OptionError
from item2vec.index import ExactIndex, HNSWIndex, build_index

__all__ = ["neighbours_table", "spark_neighbours_table", "recall_at_k"]

KINDS = ("exact", "ann")


def _check(emb: Any, k: Any, kind: str) -> int:
    if not isinstance(emb, ItemEmbeddings):
        raise TypeError(f"expected ItemEmbeddings, got {type(emb).__name__}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise OptionError(f"neighbours: k must be an integer >= 1, got {k!r}", options=("k",))
    if kind not in KINDS:
        raise OptionError(f"neighbours: index must be one of {list(KINDS)}, got {kind!r}", options=("index",))
    if len(emb) < 2:
        raise OptionError(f"neighbours: need at least 2 items, the model has {len(emb)}", options=("k",))
    return int(min(k, len(emb) - 1))


def _index(emb: ItemEmbeddings, kind: str, params: dict[str, Any]) -> ExactIndex | HNSWIndex:
    return build_index(emb.vectors, kind, **params)


def _answer(index: ExactIndex | HNSWIndex, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    got, scores = index.neighbours(rows, k)
    return got, scores


def _frame(ids: np.ndarray, rows: np.ndarray, got: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    b, k = got.shape
    return {
        "item_id": np.repeat(ids[rows], k),
        "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), b),
        "neighbour_id": ids[got.ravel()],
        "score": scores.ravel().astype(np.float32),
    }


def neighbours_table(
    emb: ItemEmbeddings, k: int = 50, index: str = "exact", batch_size: int = 4096, **index_params: Any
) -> pl.DataFrame:
    """The ``k`` nearest items of every item, on this machine.

    Parameters
    ----------
    emb : ItemEmbeddings
    k : int
        Neighbours per item (at most ``n_items - 1``).
    index : {"exact", "ann"}
        Brute force in blocks (exact), or the HNSW graph (``ann`` extra; ``M``,
        ``ef_construction``, ``ef`` in ``index_params``).
    batch_size : int
        Items answered per call.

    Returns
    -------
    polars.DataFrame
        ``item_id, rank, neighbour_id, score``: ``n_items × k`` rows, by item row then rank.
    """
    k = _check(emb, k, index)
    idx = _index(emb, index, index_params)
    ids = np.asarray(emb.ids)
    parts = []
    for start in range(0, len(emb), batch_size):
        rows = np.arange(start, min(start + batch_size, len(emb)))
        parts.append(pl.DataFrame(_frame(ids, rows, *_answer(idx, rows, k))))
    return pl.concat(parts)


# -- Spark: the executors answer, the driver only plans --------------------------------
_LOADED: dict[str, Any] = {}  # token -> (index, ids), loaded once per Python worker


def _task(bc: Any, k: int, token: str) -> Any:
    import pyarrow as pa

    def run(batches: Any) -> Any:
        if token not in _LOADED:
            _LOADED.clear()  # one index at a time per worker
            kind, vectors, ids, params = bc.value
            _LOADED[token] = (build_index(vectors, kind, **params), ids) if kind == "ann" else (
                ExactIndex(vectors), ids)
        index, ids = _LOADED[token]
        for batch in batches:
            rows = batch.column("row").to_numpy().astype(np.int64)
            if len(rows):
                yield pa.RecordBatch.from_pydict(_frame(ids, rows, *_answer(index, rows, k)))

    return run


def _spark_type(ids: np.ndarray) -> str:
    return "long" if ids.dtype.kind in "iu" else "string"


def spark_neighbours_table(
    emb: ItemEmbeddings,
    out: str | os.PathLike[str] | None = None,
    k: int = 50,
    index: str = "exact",
    spark: Any = None,
    partitions: int | None = None,
    batch_size: int = 4096,
    **index_params: Any,
) -> Any:
    """The ``k`` nearest items of every item, answered by Spark's executors.

    The vectors (and the index settings) are broadcast once; each Python worker
    builds or loads the index once and answers the item rows of its partitions in
    batches of ``batch_size`` with ``mapInArrow`` (Arrow record batches in and out,
    no pandas), so the ``n_items × k`` table is written by the executors.

    Parameters
    ----------
    emb : ItemEmbeddings
    out : path, optional
        Where to write the table (a Parquet directory of part files); without it the
        lazy Spark DataFrame is returned.
    k, index, batch_size, index_params
        As :func:`neighbours_table` takes them.
    spark : pyspark.sql.SparkSession, optional
        Default: the active session, else ``local[*]``.
    partitions : int, optional
        Tasks to split the items over (default: Spark's default parallelism).

    Returns
    -------
    pyspark.sql.DataFrame or pathlib.Path
        The table (``item_id, rank, neighbour_id, score``), or ``out`` once written.
    """
    from item2vec.spark.session import get_spark

    k = _check(emb, k, index)
    spark = spark or get_spark()
    sc = spark.sparkContext
    ids = np.asarray(emb.ids)
    if ids.dtype.kind not in "iu":
        ids = ids.astype(object)
    if index == "ann":  # fail here, on the driver, when hnswlib is missing
        from item2vec.index import _import_hnswlib

        _import_hnswlib()
    bc = sc.broadcast((index, emb.vectors, ids, dict(index_params)))
    n_parts = int(partitions or sc.defaultParallelism)
    t = _spark_type(ids)
    schema = f"item_id {t}, rank int, neighbour_id {t}, score float"
    rows = spark.range(0, len(emb), numPartitions=n_parts).withColumnRenamed("id", "row")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(int(batch_size)))
    table = rows.mapInArrow(_task(bc, k, uuid.uuid4().hex), schema)
    if out is None:
        return table
    p = Path(out)
    if p.exists():
        raise FileExistsError(f"{str(p)!r} exists; neighbours never overwrite: choose another --out")
    table.write.parquet(str(p))
    return p


def recall_at_k(table: pl.DataFrame, exact: pl.DataFrame) -> float:
    """Share of the exact neighbours a table found, over the items of ``table``.

    Both frames have ``item_id, neighbour_id`` (and the same ``k`` per item).
    """
    joined = table.select("item_id", "neighbour_id").join(
        exact.select("item_id", "neighbour_id"), on=["item_id", "neighbour_id"], how="semi"
    )
    wanted = exact.join(table.select("item_id").unique(), on="item_id", how="semi").height
    return joined.height / max(wanted, 1)
