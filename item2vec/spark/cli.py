"""``--engine polars|spark`` on ``prepare`` and ``fit``, and the ``neighbours`` command.

Registered by :func:`item2vec.cli.build_parser` through :func:`add_parser`; pyspark
is imported only when ``--engine spark`` is chosen.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ENGINES = ("polars", "spark")


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--engine", choices=ENGINES, default="polars",
                   help="polars + gensim on this machine (default), or Apache Spark (pip install 'item2vec[spark]', Java 17+)")
    g.add_argument("--spark-master", default="local[*]", metavar="URL",
                   help="with --engine spark: local[*] (default), local[N] or spark://HOST:PORT")


@contextlib.contextmanager
def _prepare_on_spark(spark: Any) -> Iterator[None]:
    """Within the block, ``item2vec.data.prepare`` is :func:`prepare_spark` on ``spark``.

    The ``prepare`` command imports ``prepare`` when it runs, so the same reading,
    option checks, messages and saving serve both engines.
    """
    import item2vec.data as data
    from item2vec.spark.sessions import prepare_spark

    original = data.prepare

    def on_spark(events: Any, config: Any = None, metadata: Any = None, name: Any = None, **kw: Any) -> Any:
        return prepare_spark(events, config, metadata, name, spark=spark, **kw)

    data.prepare = on_spark
    try:
        yield
    finally:
        data.prepare = original


def _wrap_prepare(func: Any) -> Any:
    def run(a: argparse.Namespace) -> int:
        if a.engine != "spark":
            return func(a)
        from item2vec.spark.session import get_spark

        spark = get_spark(a.spark_master)
        with _prepare_on_spark(spark):
            return func(a)

    return run


#: fit options Spark's Word2Vec has no counterpart for (see item2vec.spark.word2vec)
_NOT_ON_SPARK = ("negative", "ns_exponent", "sample", "workers")


def _wrap_fit(func: Any) -> Any:
    def run(a: argparse.Namespace) -> int:
        if a.engine != "spark":
            return func(a)
        return _cmd_fit_spark(a)

    return run


def _cmd_fit_spark(a: argparse.Namespace) -> int:
    from item2vec.cli import _item2vec_params
    from item2vec.data import SessionData
    from item2vec.spark import SparkItem2Vec, get_spark

    params = _item2vec_params(a)
    ignored = [k for k in _NOT_ON_SPARK if k in params]
    if ignored and not a.quiet:
        print(f"item2vec fit: Spark's Word2Vec has no {', '.join(ignored)} (hierarchical softmax only); ignored",
              file=sys.stderr)
    spark_params = {k: params[k] for k in ("vector_size", "window", "epochs", "alpha", "random_state") if k in params}
    data = SessionData.load(a.data)  # checks the directory and its format version
    model = SparkItem2Vec(num_partitions=a.spark_partitions, **spark_params)
    model.fit(Path(a.data), spark=get_spark(a.spark_master))
    emb = model.embeddings_
    emb.metadata.update({"data_dir": str(Path(a.data).resolve()), "dataset": data.stats.get("name")})
    emb.save(a.out)
    if not a.quiet:
        print(f"{len(emb):,} items x {emb.dim} dims on Spark in {model.fit_seconds_:.1f}s -> {a.out}")
    return 0


def _cmd_neighbours(a: argparse.Namespace) -> int:
    import polars as pl

    from item2vec.exceptions import OptionError
    from item2vec.registry import load
    from item2vec.spark.neighbours import neighbours_table, spark_neighbours_table

    out = Path(a.out)
    if out.exists():
        raise OptionError(f"neighbours: {str(out)!r} exists and is never overwritten; choose another --out",
                          options=("out",))
    emb = load(a.model, tracking_uri=a.tracking_uri).embeddings
    params = {k: getattr(a, k) for k in ("M", "ef_construction", "ef", "nlist", "nprobe") if getattr(a, k) is not None}
    if a.engine == "spark":
        from item2vec.spark import get_spark

        spark_neighbours_table(emb, out, k=a.k, index=a.index, spark=get_spark(a.spark_master),
                               partitions=a.partitions, **params)
        n = pl.scan_parquet(out / "*.parquet").select(pl.len()).collect().item()
    else:
        table = neighbours_table(emb, k=a.k, index=a.index, **params)
        tmp = out.with_name(out.name + ".tmp")
        table.write_parquet(tmp)
        tmp.rename(out)
        n = table.height
    if not a.quiet:
        print(f"{n:,} rows (item_id, rank, neighbour_id, score): the {a.k} nearest of {len(emb):,} items -> {out}")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``--engine`` / ``--spark-master`` to ``prepare`` and ``fit``, and the ``neighbours`` command."""
    for name, wrap in (("prepare", _wrap_prepare), ("fit", _wrap_fit)):
        p = sub.choices.get(name)
        if p is None:
            continue
        _add_engine_args(p)
        if name == "fit":
            p.add_argument("--spark-partitions", type=int, default=1,
                           help="with --engine spark: Word2Vec partitions (faster, lower quality as it grows)")
        p.set_defaults(func=wrap(p.get_default("func")))

    p = sub.add_parser("neighbours", help="the k nearest items of every item, as a Parquet table (a serving cache)")
    p.add_argument("--model", required=True, help="model directory or models:/NAME@ALIAS")
    p.add_argument("--k", "-k", type=int, default=50)
    p.add_argument("--out", required=True,
                   help="Parquet file (polars engine) or directory of part files (spark engine); never overwritten")
    p.add_argument("--index", choices=["exact", "ann", "ivf"], default="exact",
                   help="exact search, the HNSW graph, or faiss IVF cells (the fast one for many items)")
    p.add_argument("--nlist", type=int, default=None, help="IVF cells (default 4 * sqrt(items))")
    p.add_argument("--nprobe", type=int, default=None, help="IVF cells scanned per item (default 16)")
    p.add_argument("--M", type=int, default=None, help="HNSW links per node")
    p.add_argument("--ef-construction", type=int, default=None)
    p.add_argument("--ef", type=int, default=None)
    p.add_argument("--partitions", type=int, default=None, help="with --engine spark: tasks (default: Spark's parallelism)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for models:/ (default $MLFLOW_TRACKING_URI)")
    p.add_argument("--quiet", action="store_true")
    _add_engine_args(p)
    p.set_defaults(func=_cmd_neighbours)
