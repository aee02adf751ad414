"""``item2vec retrain`` and ``item2vec history``: the batch retraining job and the registry it feeds."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from item2vec.cli._common import engine_parent

__all__ = ["add_parser", "cmd_history", "cmd_retrain"]


def add_parser(sub: Any) -> None:
    """Register ``retrain`` and ``history`` on ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "retrain",
        help="batch retraining: train, evaluate, register; promote to champion only when better",
        description="Read the events, prepare, train item2vec (warm-started from the champion) and the BiLSTM, "
        "evaluate every model on the held-out days, log it all to MLflow, register a new version, and move "
        "the alias 'champion' to it only when it beats the current champion on the gating metric "
        "(else it gets 'challenger'). With --engine spark the sessions and item2vec run on Spark "
        "(item2vec then trains cold: Spark's Word2Vec cannot start from the champion's vectors).",
        parents=[engine_parent(from_config=True)],
    )
    p.add_argument("--events", required=True, help="event log: a file or a folder of daily YYYY-MM-DD files")
    p.add_argument("--format", default=None, help="event-log format (default: the config's, else csv)")
    p.add_argument("--start", default=None, help="first day to read, YYYY-MM-DD")
    p.add_argument("--end", default=None, help="last day to read, YYYY-MM-DD (the held-out test days end here)")
    p.add_argument("--config", default=None, help="TOML or JSON config (see pipelines/configs/)")
    p.add_argument("--model-name", default=None, help="registered model name (default: the config's, else item2vec)")
    p.add_argument("--experiment", default=None, help="MLflow experiment (default: the config's)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    p.add_argument("--report", default=None, metavar="PATH", help="write the JSON report here")
    p.add_argument("--no-bilstm", action="store_true", help="skip the BiLSTM (serve item2vec neighbours for sessions)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_retrain)

    h = sub.add_parser("history", help="the registry history of a model: versions, aliases, promotions")
    h.add_argument("--model-name", default="item2vec")
    h.add_argument("--tracking-uri", default=None)
    h.add_argument("--json", action="store_true", help="print JSON")
    h.set_defaults(func=cmd_history)


def cmd_retrain(a: argparse.Namespace) -> int:
    """``item2vec retrain``: the batch retraining job; status 1 when it failed and the champion is unchanged."""
    import logging

    from item2vec.retrain import RetrainError, load_config, run_retrain

    for key in ("format", "start", "end", "config", "model_name", "experiment", "tracking_uri", "report",
                "engine", "spark_master"):
        if getattr(a, key) == "":  # an unset MLproject parameter
            setattr(a, key, None)

    cfg = load_config(a.config, format=a.format, model_name=a.model_name, experiment=a.experiment,
                      use_bilstm=False if a.no_bilstm else None, engine=a.engine, spark_master=a.spark_master)
    if cfg.engine == "spark":
        from item2vec.spark.session import import_pyspark

        import_pyspark()  # one line naming the extra (and Java) before any run opens
    if not a.quiet:
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        logging.getLogger("item2vec.retrain").setLevel(logging.INFO)
    try:
        report = run_retrain(a.events, cfg, start=a.start, end=a.end, tracking_uri=a.tracking_uri,
                             report_path=a.report, show_progress=not a.quiet)
    except RetrainError as e:
        print(f"item2vec retrain: {e}", file=sys.stderr)
        print("item2vec retrain: the champion is unchanged", file=sys.stderr)
        return 1
    from item2vec.retrain import format_report

    print(format_report(report))  # --quiet hides the step log and the bars, not the result
    return 0


def cmd_history(a: argparse.Namespace) -> int:
    """``item2vec history``: a registered model's versions, aliases and promotions."""
    from item2vec.registry import format_history, registry_history

    hist = registry_history(a.model_name, tracking_uri=a.tracking_uri)
    if a.json:
        print(json.dumps(hist, indent=2))
        return 0
    if not hist:
        print(f"no versions of model {a.model_name!r}")
        return 0
    print(format_history(hist))
    return 0
