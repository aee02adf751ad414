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
from item2vec.index import ExactIndex, HNSWIndex, build_index, normalize

__all__ = ["neighbours_table", "spark_neighbours_table", "recall_at_k"]

KINDS = ("exact", "ann", "ivf")


class IVFIndex:
    """faiss ``IndexIVFFlat`` on unit vectors (the ``ann`` extra): the all-items table's fast path.

    k-means cells (``nlist``, default ``4 * sqrt(n)``) trained on a sample; each query
    scans its ``nprobe`` nearest cells. Built in seconds where the HNSW graph takes
    minutes, and on clustered item vectors the cells hold the neighbours.
    """

    def __init__(self, vectors: np.ndarray, nlist: int | None = None, nprobe: int = 16,
                 train_size: int = 200_000, random_state: int = 0, _serialized: Any = None) -> None:
        import faiss

        self.unit = normalize(vectors)
        n, d = self.unit.shape
        self.nprobe = int(nprobe)
        if _serialized is not None:
            self.index = faiss.deserialize_index(_serialized)
        else:
            self.nlist = int(min(n, nlist or max(1, round(4 * np.sqrt(n)))))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, self.nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(random_state)
            m = min(n, max(train_size, 40 * self.nlist))
            index.train(self.unit[np.sort(rng.choice(n, m, replace=False))] if m < n else self.unit)
            index.add(self.unit)
            self.index = index
        self.index.nprobe = self.nprobe
        self._exact = ExactIndex(self.unit)

    def __len__(self) -> int:
        return self.unit.shape[0]

    def serialized(self) -> np.ndarray:
        import faiss

        return faiss.serialize_index(self.index)

    def neighbours(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows for the index's own ``rows``, each row excluded from its answer."""
        rows = np.asarray(rows, dtype=np.int64)
        b = len(rows)
        scores, labels = self.index.search(self.unit[rows], k + 1)
        short = (labels < 0).any(axis=1)  # cells held fewer than k + 1 items: ask exactly
        keep = labels != rows[:, None]
        keep[keep.all(axis=1), -1] = False
        keep[short] = False
        keep[short, :k] = True
        got, sc = labels[keep].reshape(b, k), scores[keep].reshape(b, k)
        if short.any():
            got[short], sc[short] = self._exact.neighbours(rows[short], k)
        return got, sc


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


def _index(emb: ItemEmbeddings, kind: str, params: dict[str, Any]) -> ExactIndex | HNSWIndex | IVFIndex:
    if kind == "ivf":
        return IVFIndex(emb.vectors, **params)
    return build_index(emb.vectors, kind, **params)


def _answer(index: Any, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
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
    index : {"exact", "ann", "ivf"}
        Brute force in blocks (exact), the HNSW graph (``ann`` extra; ``M``,
        ``ef_construction``, ``ef`` in ``index_params``), or faiss IVF cells
        (:class:`IVFIndex`; ``nlist``, ``nprobe``): the fast one for every item at once.
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
            kind, vectors, ids, built, params = bc.value
            if kind == "ivf":
                index: Any = IVFIndex(vectors, _serialized=built, nprobe=params.get("nprobe", 16))
            elif kind == "ann":
                index = built  # the graph built on the driver, unpickled here once
            else:
                index = ExactIndex(vectors)
            _LOADED[token] = (index, ids)
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

    The index is built once on the driver and broadcast with the vectors; each Python
    worker unpacks it once and answers the item rows of its partitions in
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
    # the index is built once, here, and shipped: every Python worker unpacks it once
    built: Any = None
    if index == "ann":
        built = _index(emb, index, index_params)
    elif index == "ivf":
        built = _index(emb, index, index_params).serialized()
    bc = sc.broadcast((index, emb.vectors, ids, built, dict(index_params)))
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
