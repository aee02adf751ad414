"""The retraining job's Spark steps (``engine = "spark"`` in :class:`item2vec.retrain.RetrainConfig`).

``prepare``: :func:`item2vec.spark.prepare_spark` on the session of ``spark_master``;
``item2vec``: :class:`item2vec.spark.SparkItem2Vec` on the prepared training sessions.
Everything after them (the BiLSTM, the baselines, the gating, the registry) is the
polars job's, on the same :class:`~item2vec.SessionData` and :class:`~item2vec.ItemEmbeddings`.
Spark's Word2Vec cannot start from given vectors, so item2vec trains cold there
(``warm_started`` is false and the report's ``engine.warm_start`` says why).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["COLD_START", "spark_item2vec", "spark_prepare"]

log = logging.getLogger("item2vec.retrain")

#: What the report says when ``warm_start`` is asked for on Spark.
COLD_START = ("item2vec trained cold: Spark's Word2Vec cannot start from the champion's vectors "
              "(warm_start = true has no effect with engine = 'spark')")


def spark_prepare(cfg: Any, engine: dict[str, Any]) -> Callable[..., Any]:
    """:func:`prepare_spark` on the session of ``cfg.spark_master``; records the master in ``engine``."""
    from item2vec.spark.session import get_spark
    from item2vec.spark.sessions import prepare_spark

    spark = get_spark(cfg.spark_master)
    engine["spark_master"] = spark.sparkContext.master
    return functools.partial(prepare_spark, spark=spark)


def spark_item2vec(job: Any, config: Any) -> None:
    """Step ``item2vec`` on Spark: ``SparkItem2Vec`` with ``config`` (the job's ``Item2VecConfig``, a
    params file's values included) on ``job.data``'s training sessions, always cold."""
    import mlflow

    from item2vec import tracking
    from item2vec.spark.session import get_spark
    from item2vec.spark.word2vec import SparkItem2Vec

    cfg, data, report = job.cfg, job.data, job.report
    engine = report.engine if report.engine is not None else {"name": "spark"}
    model, ignored = SparkItem2Vec.from_item2vec(config)
    if ignored:
        engine["ignored_item2vec_options"] = ignored
        log.warning("retrain: Spark's Word2Vec has no %s (hierarchical softmax only); ignored", ", ".join(ignored))
    if cfg.warm_start:
        engine["warm_start"] = COLD_START
        log.warning("retrain: %s", COLD_START)
    job.i2v = model.fit(data, spark=get_spark(cfg.spark_master))
    job.emb = model.embeddings_
    job.emb.metadata.update({"dataset": data.stats.get("name"), "time_range": data.stats.get("time_range")})
    tracking.log_metrics({"fit_seconds": model.fit_seconds_}, prefix="item2vec")
    mlflow.set_tags({"warm_started": "false", "engine": "spark"})
    report.engine = engine
    report.warm_started = False
