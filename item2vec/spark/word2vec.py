"""Item2vec on Spark: ``pyspark.ml.feature.Word2Vec`` → the same :class:`ItemEmbeddings`.

Spark's Word2Vec is skip-gram with hierarchical softmax only: it has no negative
sampling (so no ``negative`` / ``ns_exponent``), no subsampling of frequent items
(``sample``), no ``min_alpha`` and no ``shrink_windows``; it keeps the whole
``vocab × vector_size`` matrix in one Java array, so it refuses
``vocab × vector_size >= 2**31``; and each of its ``num_partitions`` trains on its
share of the sessions and the results are averaged after every iteration: more
partitions train faster and score lower (see the README for the measured gap).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from item2vec.data.sessions import SessionData
from item2vec.data.vocab import ItemVocab
from item2vec.embeddings import ItemEmbeddings, _check_option
from item2vec.exceptions import EmptyDataError, NotFittedError, OptionError

__all__ = ["SparkItem2Vec", "MAX_CELLS", "NOT_ON_SPARK"]

#: Spark's Word2Vec holds ``vocab × vector_size`` floats in one Java array.
MAX_CELLS = 2**31 - 1

#: :class:`~item2vec.embeddings.Item2VecConfig` options Spark's Word2Vec has no counterpart for.
NOT_ON_SPARK = ("negative", "ns_exponent", "sample", "min_alpha", "shrink_windows", "workers")


class SparkItem2Vec:
    """Skip-gram item embeddings trained on Spark (``pyspark.ml.feature.Word2Vec``).

    Parameters
    ----------
    vector_size : int
        Dimension of the vectors.
    window : int or None
        Context on each side; ``None`` means the whole session (the longest session).
    epochs : int
        Passes over the sessions (Spark's ``maxIter``).
    alpha : float
        Learning rate (Spark's ``stepSize``).
    min_count : int
        Items seen fewer times are left out.
    num_partitions : int
        Spark trains one model per partition and averages them after each pass:
        faster, lower quality as it grows.
    max_session_length : int
        Longer sessions are cut into pieces of this length (Spark's ``maxSentenceLength``).
    random_state : int
        Spark's ``seed``.

    Attributes
    ----------
    embeddings_ : ItemEmbeddings
        After :meth:`fit`; ``metadata["engine"] == "spark"``.
    fit_seconds_ : float
    """

    def __init__(
        self,
        vector_size: int = 64,
        window: int | None = 5,
        epochs: int = 5,
        alpha: float = 0.025,
        min_count: int = 1,
        num_partitions: int = 1,
        max_session_length: int = 1000,
        random_state: int = 0,
    ) -> None:
        for name, low in (("vector_size", 1), ("epochs", 1), ("min_count", 1), ("num_partitions", 1),
                          ("max_session_length", 2), ("random_state", 0)):
            _check_option(name, locals()[name], int, low)
        if window is not None:
            _check_option("window", window, int, 1, hint="; None means the whole session")
        _check_option("alpha", alpha, float, 0.0, low_open=True)
        self.vector_size, self.window, self.epochs, self.alpha = vector_size, window, epochs, alpha
        self.min_count, self.num_partitions = min_count, num_partitions
        self.max_session_length, self.random_state = max_session_length, random_state

    @classmethod
    def from_item2vec(cls, params: Any, num_partitions: int = 1) -> tuple[SparkItem2Vec, list[str]]:
        """The Spark trainer of :class:`~item2vec.embeddings.Item2VecConfig` options.

        Parameters
        ----------
        params : dict or Item2VecConfig
            ``Item2VecConfig`` options (checked by it; its defaults fill what is not given), or the
            config itself (then the options set away from their defaults count as given).
        num_partitions : int

        Returns
        -------
        model : SparkItem2Vec
            With ``vector_size, window, epochs, alpha, min_count, random_state`` of ``params``.
        ignored : list of str
            The options in ``params`` Spark's Word2Vec has no counterpart for (:data:`NOT_ON_SPARK`).
        """
        from item2vec.embeddings import Item2VecConfig

        if isinstance(params, Item2VecConfig):  # a typed config: the options set away from their defaults
            c, default = params, Item2VecConfig()
            params = {k: v for k, v in c.to_dict().items() if v != getattr(default, k)}
        else:
            c = Item2VecConfig.from_dict(params)
        model = cls(vector_size=c.vector_size, window=c.window, epochs=c.epochs, alpha=float(c.alpha),
                    min_count=c.min_count, random_state=c.random_state, num_partitions=num_partitions)
        return model, [k for k in NOT_ON_SPARK if k in params]

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("vector_size", "window", "epochs", "alpha", "min_count",
                                              "num_partitions", "max_session_length", "random_state")}

    def __repr__(self) -> str:
        return f"SparkItem2Vec({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    @property
    def embeddings_(self) -> ItemEmbeddings:
        if not hasattr(self, "_embeddings"):
            raise NotFittedError("this SparkItem2Vec is not fitted yet; call fit(sessions) first")
        return self._embeddings

    def check_size(self, n_items: int) -> None:
        """Raise :class:`OptionError` when Spark would refuse ``n_items × vector_size``."""
        if n_items * self.vector_size > MAX_CELLS:
            most = MAX_CELLS // max(n_items, 1)
            raise OptionError(
                f"SparkItem2Vec: Spark's Word2Vec holds vocab x vector_size in one Java array (under 2^31 "
                f"cells), got {n_items:,} items x {self.vector_size} = {n_items * self.vector_size:,}; use "
                f"vector_size <= {most}, raise min_count, or train with gensim (the polars engine)",
                options=("vector_size", "min_count"),
            )

    def fit(self, sessions: Any, vocab: ItemVocab | None = None, spark: Any = None) -> SparkItem2Vec:
        """Train on sessions.

        Parameters
        ----------
        sessions : SessionData, path, pyspark.sql.DataFrame or list of sequences
            Prepared data (its ``train`` split is used), a prepared-data directory (its
            ``train.parquet`` is read by Spark, so the sessions never pass through the
            driver), a Spark frame with an ``items`` array column, or lists of item ids.
        vocab : ItemVocab, optional
            Maps the integer indices of a Spark frame's ``items`` to external ids.
        spark : pyspark.sql.SparkSession, optional
            Default: the active session, else ``local[*]``.

        Returns
        -------
        self

        Raises
        ------
        OptionError
            When ``items × vector_size`` is over Spark's limit (checked before training).
        EmptyDataError
            If no session has two or more items.
        """
        import pyarrow as pa
        from pyspark.ml.feature import Word2Vec
        from pyspark.ml.functions import vector_to_array
        from pyspark.sql import functions as F

        from item2vec.spark.session import get_spark

        spark = spark or get_spark()
        if isinstance(sessions, (str, os.PathLike)):
            p = Path(sessions)
            if not (p / "train.parquet").exists():
                SessionData.load(p)  # raises, saying what a prepared-data directory is
            vocab = ItemVocab(pl.read_parquet(p / "vocab.parquet")["item_id"].to_numpy())
            df = spark.read.parquet(str(p / "train.parquet"))
        elif isinstance(sessions, SessionData):
            vocab = sessions.vocab
            df = spark.createDataFrame(pa.table({"items": pa.array([s.tolist() for s in sessions.train],
                                                                   type=pa.list_(pa.int32()))}))
        elif type(sessions).__module__.startswith("pyspark.sql"):
            df = sessions
        else:
            lists = [list(s) for s in sessions]
            vocab = ItemVocab(list(dict.fromkeys(x for s in lists for x in s)))
            df = spark.createDataFrame(pa.table({"items": pa.array([vocab.indices(s).tolist() for s in lists],
                                                                   type=pa.list_(pa.int64()))}))
        stats = df.select(F.count("*").alias("n"), F.max(F.size("items")).alias("longest"),
                          F.sum((F.size("items") >= 2).cast("long")).alias("pairs")).first()
        if not stats["pairs"]:
            raise EmptyDataError("SparkItem2Vec.fit: expected at least one session with 2 or more items, found none")
        n_items = len(vocab) if vocab is not None else df.select(F.explode("items")).distinct().count()
        self.check_size(n_items)
        window = self.window if self.window is not None else max(int(stats["longest"]) - 1, 1)
        tokens = df.select(F.transform("items", lambda x: x.cast("string")).alias("tokens"))
        w2v = Word2Vec(
            vectorSize=self.vector_size, windowSize=window, minCount=self.min_count, maxIter=self.epochs,
            stepSize=self.alpha, numPartitions=self.num_partitions, maxSentenceLength=self.max_session_length,
            seed=self.random_state, inputCol="tokens", outputCol="_v",
        )
        t0 = time.perf_counter()
        model = w2v.fit(tokens)
        self.fit_seconds_ = time.perf_counter() - t0
        table = model.getVectors().select(F.col("word").cast("long").alias("idx"),
                                          vector_to_array("vector", "float32").alias("v")).toArrow()
        idx = np.asarray(table.column("idx").to_numpy(), dtype=np.int64)
        order = np.argsort(idx, kind="stable")  # index order = the vocabulary's frequency order
        idx = idx[order]
        vectors = np.asarray(table.column("v").combine_chunks().flatten().to_numpy(zero_copy_only=False),
                             dtype=np.float32).reshape(len(table), self.vector_size)[order]
        ids = vocab.lookup(idx) if vocab is not None else idx
        self.model_ = model
        self._embeddings = ItemEmbeddings(
            ids, vectors, metadata={"engine": "spark", "spark_word2vec": self.get_params(), "window_used": window}
        )
        return self
