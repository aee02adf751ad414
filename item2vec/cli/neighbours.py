"""``item2vec neighbours``: the k nearest items of every item as a Parquet table (a serving cache).

On this machine the table comes from batched exact search, the HNSW graph or faiss
IVF cells; with ``--engine spark`` each Spark task loads the index once and answers
its share of the ids, and the executors write the Parquet part files.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from item2vec.cli._common import engine_parent, spark_session

__all__ = ["add_parser", "cmd_neighbours"]


def add_parser(sub: Any) -> None:
    """Register ``neighbours`` on ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser("neighbours", help="the k nearest items of every item, as a Parquet table (a serving cache)",
                       parents=[engine_parent()])
    p.add_argument("--model", required=True, help="model directory or models:/NAME@ALIAS")
    p.add_argument("-k", "--k", type=int, default=50, help="neighbours per item (default %(default)s)")
    p.add_argument("--out", required=True,
                   help="Parquet file (polars engine) or directory of part files (spark engine), written atomically")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--index", choices=["exact", "ann", "ivf"], default="exact",
                   help="exact search, the HNSW graph, or faiss IVF cells (the fast one for many items)")
    p.add_argument("--nlist", type=int, default=None, help="IVF cells (default 4 * sqrt(items))")
    p.add_argument("--nprobe", type=int, default=None, help="IVF cells scanned per item (default 16)")
    p.add_argument("--M", type=int, default=None, help="HNSW links per node")
    p.add_argument("--ef-construction", type=int, default=None)
    p.add_argument("--ef", type=int, default=None)
    p.add_argument("--partitions", type=int, default=None, help="with --engine spark: tasks (default: Spark's parallelism)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for models:/ (default $MLFLOW_TRACKING_URI)")
    p.add_argument("--quiet", action="store_true", help="accepted like the other commands (no bars here); the result line stays")
    p.set_defaults(func=cmd_neighbours)


def cmd_neighbours(a: argparse.Namespace) -> int:
    """``item2vec neighbours``: write ``item_id, rank, neighbour_id, score`` for every item."""
    import polars as pl

    from item2vec._io import atomic_dir, atomic_file
    from item2vec.registry import load
    from item2vec.spark.neighbours import neighbours_table, spark_neighbours_table

    # --out was checked before this ran (item2vec.cli._common): absent, or --overwrite
    out = Path(a.out)
    emb = load(a.model, tracking_uri=a.tracking_uri).embeddings
    params = {k: getattr(a, k) for k in ("M", "ef_construction", "ef", "nlist", "nprobe") if getattr(a, k) is not None}
    if a.engine == "spark":
        spark = spark_session(a)
        with atomic_dir(out, overwrite=a.overwrite) as tmp:
            parts = tmp / "table"  # the executors write the part files; the folder is renamed into place
            spark_neighbours_table(emb, parts, k=a.k, index=a.index, spark=spark, partitions=a.partitions, **params)
            for f in parts.iterdir():
                f.rename(tmp / f.name)
            parts.rmdir()
        n = pl.scan_parquet(out / "*.parquet").select(pl.len()).collect().item()
    else:
        table = neighbours_table(emb, k=a.k, index=a.index, **params)
        with atomic_file(out, mode="wb") as fh:
            table.write_parquet(fh)
        n = table.height
    print(f"{n:,} rows (item_id, rank, neighbour_id, score): the {a.k} nearest of {len(emb):,} items -> {out}")
    return 0
