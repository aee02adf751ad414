"""``item2vec evaluate``: fit the chosen models and score them on the held-out prefixes."""

from __future__ import annotations

import argparse
import json
from typing import Any

from item2vec.cli._common import (
    add_item2vec_args,
    item2vec_params,
    log_dataset,
    mlflow_run,
    tracking_parent,
)

__all__ = ["add_parser", "cmd_evaluate"]


def add_parser(sub: Any) -> None:
    """Register ``evaluate`` on ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser("evaluate", help="fit and score models on the test prefixes", parents=[tracking_parent()])
    p.add_argument("--data", required=True, help="prepared-data directory")
    p.add_argument("--models", default="pop,markov,sknn,implicit,item2vec",
                   help="comma-separated: pop, markov, sknn, implicit, implicit-als, item2vec, item2vec-mean, bilstm")
    p.add_argument("--embeddings", default=None, help="item2vec model directory to use instead of fitting one")
    p.add_argument("--next-model", default=None, help="BiLSTM checkpoint directory (item2vec train-next) for 'bilstm'")
    p.add_argument("--split", choices=["test", "valid"], default="test")
    p.add_argument("-k", type=int, default=20, help="cut-off of HR@k, MRR@k, NDCG@k (default %(default)s)")
    p.add_argument("--k", type=int, dest="k", default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # older spelling
    p.add_argument("--json", default=None, metavar="PATH", help="write the JSON report here")
    add_item2vec_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(a: argparse.Namespace) -> int:
    """``item2vec evaluate``: a metrics table (``--json``: the report; ``--mlflow``: the report logged)."""
    from item2vec.data import SessionData
    from item2vec.embeddings import ItemEmbeddings

    with mlflow_run(a, "evaluate") as tracked:
        names = [n.strip() for n in a.models.split(",") if n.strip()]
        if not names:
            raise ValueError("--models: expected at least one model name, got none")
        from item2vec.recommenders import ALL_MODEL_NAMES

        unknown = [n for n in names if n not in ALL_MODEL_NAMES]
        if unknown:
            raise ValueError(f"--models: unknown model(s) {unknown}; expected some of {list(ALL_MODEL_NAMES)}")
        if "bilstm" in names and not a.next_model:
            raise ValueError("model 'bilstm' needs --next-model DIR (a checkpoint from item2vec train-next)")
        data = SessionData.load(a.data)
        emb = ItemEmbeddings.load(a.embeddings) if a.embeddings else None
        from item2vec.evaluation import format_table, run_evaluation

        report = run_evaluation(data, names, k=a.k, split=a.split, embeddings=emb, next_model=a.next_model,
                                item2vec_params=item2vec_params(a), show_progress=not a.quiet)
        if a.json:
            from item2vec._io import atomic_file

            with atomic_file(a.json) as fh:
                json.dump(report, fh, indent=2, default=str)
        print(f"{report['n_predictions']:,} predictions on {a.split} ({data.stats.get('name')})")
        print(format_table(report["models"], report["k"]))
        if tracked:
            _log_evaluation(a, data, report)
    return 0


def _log_evaluation(a: argparse.Namespace, data: Any, report: dict[str, Any]) -> None:
    """The evaluation's settings, its data and the report it holds."""
    from item2vec import tracking

    tracking.log_params({"models": a.models, "k": a.k, "split": a.split, "embeddings": a.embeddings,
                         "next_model": a.next_model})
    log_dataset(data)
    tracking.log_evaluation(report, prefix=a.split)
