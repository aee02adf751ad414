"""``item2vec fit`` and ``item2vec similar``: train item vectors, and ask them for neighbours."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from item2vec.cli._common import (
    add_item2vec_args,
    engine_parent,
    item2vec_params,
    log_dataset,
    mlflow_run,
    spark_session,
    tracking_parent,
)

__all__ = ["add_parser", "cmd_fit", "cmd_similar"]


def add_parser(sub: Any) -> None:
    """Register ``fit`` and ``similar`` on ``sub`` (an argparse subparsers object)."""
    _add_fit(sub)
    _add_similar(sub)


# ---------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------
def _add_fit(sub: Any) -> None:
    p = sub.add_parser("fit", help="train item2vec on prepared data", parents=[tracking_parent(), engine_parent()])
    p.add_argument("--data", required=True, help="prepared-data directory (item2vec prepare)")
    p.add_argument("--out", required=True, help="model directory (written atomically; an older model there is replaced)")
    p.add_argument("--overwrite", action="store_true", help="replace --out even when it is not an item2vec model")
    add_item2vec_args(p)
    p.add_argument("--params", default=None, metavar="FILE",
                   help="params file (item2vec tune): its item2vec values; options given here override them")
    p.add_argument("--spark-partitions", type=int, default=1,
                   help="with --engine spark: Word2Vec partitions (faster, lower quality as it grows)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_fit)


def cmd_fit(a: argparse.Namespace) -> int:
    """``item2vec fit``: train item2vec on the training split and save the vectors (``--mlflow``: log the fit)."""
    from item2vec.data import SessionData
    from item2vec.embeddings import Item2Vec
    from item2vec.tuning import read_params

    with mlflow_run(a, "fit") as tracked:
        a.tuned = read_params(a.params, "item2vec", required=True) if a.params else {}
        data = SessionData.load(a.data)
        if a.engine == "spark":
            model = _fit_on_spark(a)
        else:
            params = {**a.tuned, **item2vec_params(a)}
            model = Item2Vec(show_progress=not a.quiet, **params).fit(data.decode(data.train))
        emb = model.embeddings_
        emb.metadata.update({"data_dir": str(Path(a.data).resolve()), "dataset": data.stats.get("name")})
        emb.save(a.out)
        speed = f"({model.words_per_second_:,.0f} words/s)" if hasattr(model, "words_per_second_") else "on Spark"
        print(f"{len(emb):,} items x {emb.dim} dims in {model.fit_seconds_:.1f}s {speed} -> {a.out}")
        if tracked:
            _log_fit(model, data)
    return 0


#: fit options Spark's Word2Vec has no counterpart for (see item2vec.spark.word2vec)
_NOT_ON_SPARK = ("negative", "ns_exponent", "sample", "workers")


def _fit_on_spark(a: argparse.Namespace) -> Any:
    """``pyspark.ml.feature.Word2Vec`` on the prepared sessions; the options it lacks are named and ignored."""
    from item2vec.spark import SparkItem2Vec

    params = {**a.tuned, **item2vec_params(a)}
    ignored = [k for k in _NOT_ON_SPARK if k in params]
    if ignored:
        print(f"item2vec fit: Spark's Word2Vec has no {', '.join(ignored)} (hierarchical softmax only); ignored",
              file=sys.stderr)
    spark_params = {k: params[k] for k in ("vector_size", "window", "epochs", "alpha", "random_state") if k in params}
    model = SparkItem2Vec(num_partitions=a.spark_partitions, **spark_params)
    return model.fit(Path(a.data), spark=spark_session(a))


def _log_fit(model: Any, data: Any) -> None:
    """A fitted :class:`~item2vec.embeddings.Item2Vec`: its data, settings, the loss of every epoch, the vectors."""
    from item2vec import tracking

    log_dataset(data)
    emb = model.embeddings_
    tracking.log_params(emb.metadata.get("item2vec", {}), prefix="item2vec")
    for epoch, loss in enumerate(getattr(model, "loss_history_", None) or [], start=1):
        tracking.log_metrics({"loss": loss}, prefix="item2vec", step=epoch)
    tracking.log_metrics({"n_items": len(emb), "dim": emb.dim, "fit_seconds": model.fit_seconds_,
                          **({"words_per_second": model.words_per_second_}
                             if hasattr(model, "words_per_second_") else {})}, prefix="item2vec")
    md = data.metadata
    tracking.log_embeddings(emb, categories=tracking.item_categories(md), labels=tracking.item_titles(md))


# ---------------------------------------------------------------------------
# similar
# ---------------------------------------------------------------------------
def _add_similar(sub: Any) -> None:
    p = sub.add_parser("similar", help="nearest items of one or more items")
    p.add_argument("--model", required=True,
                   help="model directory (item2vec fit), or a registered model: models:/NAME@champion")
    p.add_argument("items", nargs="+", help="item id(s)")
    p.add_argument("-k", type=int, default=10, help="neighbours per item (default %(default)s)")
    p.add_argument("--missing", choices=["raise", "ignore"], default="raise",
                   help="an unknown item id: fail (default), or skip it with a note on stderr")
    p.add_argument("--data", default=None, help="prepared data with item titles (default: the one the model was fitted on)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for models:/ (default $MLFLOW_TRACKING_URI, "
                   "else sqlite:///mlflow.db)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_similar)


def _titles(data_dir: str | None) -> dict[Any, str]:
    if not data_dir or not (Path(data_dir) / "metadata.parquet").exists():
        return {}
    import polars as pl

    from item2vec.data import item_titles

    return item_titles(pl.read_parquet(Path(data_dir) / "metadata.parquet"))


def _load_embeddings(model: str, tracking_uri: str | None) -> Any:
    """The ItemEmbeddings of a model directory, a served-model directory or an MLflow model URI."""
    from item2vec.embeddings import ItemEmbeddings

    p = Path(model)
    if p.is_dir() and not (p / "served.json").exists() and not (p / "MLmodel").exists():
        return ItemEmbeddings.load(p)
    from item2vec.registry import load

    return load(model, tracking_uri=tracking_uri).embeddings


def _known_queries(emb: Any, items: Sequence[str], missing: str) -> list[Any]:
    """The query ids as the model spells them; unknown ones raise, or are skipped with a note."""
    from item2vec.exceptions import UnknownItemError
    from item2vec.serving import ServedModel

    served = ServedModel(emb)  # the served model's id policy: "32902" finds 32902 in an integer catalogue
    queries: list[Any] = []
    for q in items:
        try:
            item = served.to_id(q)
            if item not in emb:
                raise UnknownItemError(item)
            queries.append(item)
            continue
        except UnknownItemError as e:
            err = e
        if missing == "raise":
            raise err
        print(f"item2vec: note: {err}; skipped", file=sys.stderr)
    return queries


def cmd_similar(a: argparse.Namespace) -> int:
    """``item2vec similar``: the nearest items of the given ids, as text or JSON."""
    emb = _load_embeddings(a.model, a.tracking_uri)
    queries = _known_queries(emb, a.items, a.missing)
    if not queries:
        from item2vec.base import check_k

        check_k(a.k)
        if a.json:
            print("{}")
        return 0
    ids, scores = emb.similar_items(queries, k=a.k)
    titles = _titles(a.data or emb.metadata.get("data_dir"))
    if a.json:
        out = {
            str(q): [{"item_id": i, "score": round(float(s), 4), **({"title": titles[i]} if i in titles else {})}
                     for i, s in zip(row_i.tolist(), row_s.tolist(), strict=True)]
            for q, row_i, row_s in zip(queries, ids, scores, strict=True)
        }
        print(json.dumps(out, indent=2))
        return 0
    for q, row_i, row_s in zip(queries, ids, scores, strict=True):
        print(f"{q}" + (f"  {titles[q]}" if q in titles else ""))
        for i, s in zip(row_i.tolist(), row_s.tolist(), strict=True):
            print(f"  {s:6.3f}  {i}" + (f"  {titles[i]}" if i in titles else ""))
    return 0
