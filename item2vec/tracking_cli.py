"""``item2vec retrain``, ``item2vec history``, and MLflow logging for ``fit``, ``evaluate``, ``train-next``.

The lead's ``item2vec/cli.py`` calls :func:`add_parser` after the other
subcommands are registered. Besides adding its own subcommands it gives
``fit``, ``evaluate`` and ``train-next`` the options ``--mlflow``,
``--tracking-uri URI`` and ``--experiment NAME``: with either of the first two,
the command runs inside an MLflow run and logs its parameters, metrics
(per epoch where the command keeps them) and artifacts after it finished.

Nothing here imports MLflow until a command asks for tracking.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["add_parser", "add_tracking_args", "tracked"]

Command = Callable[[argparse.Namespace], int]


# ---------------------------------------------------------------------------
# tracking options for the existing commands
# ---------------------------------------------------------------------------
def add_tracking_args(p: argparse.ArgumentParser, default_experiment: str = "item2vec") -> None:
    """``--mlflow``, ``--tracking-uri``, ``--experiment`` on a subcommand's parser."""
    g = p.add_argument_group("MLflow tracking")
    g.add_argument("--mlflow", action="store_true",
                   help="log this command to MLflow (default store: sqlite:///mlflow.db, or $MLFLOW_TRACKING_URI)")
    g.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (implies --mlflow)")
    g.add_argument("--experiment", default=default_experiment, help="MLflow experiment (default %(default)s)")


def tracked(command: str, func: Command, after: Callable[[argparse.Namespace], None]) -> Command:
    """Wrap a subcommand: without tracking options it runs as before; with them, inside an MLflow run.

    ``after(args)`` runs inside the run once ``func`` succeeded and logs what the
    command left on ``args`` (the fitted model, the report): what it held in memory,
    not what a save wrote to disk.
    """

    def run(a: argparse.Namespace) -> int:
        if not (getattr(a, "mlflow", False) or getattr(a, "tracking_uri", None)):
            return func(a)
        from item2vec import tracking

        with tracking.start_run(command, experiment=a.experiment, tracking_uri=a.tracking_uri,
                                tags={"command": command}) as r:
            rc = func(a)
            if rc == 0:
                after(a)
        print(f"mlflow: {tracking.run_url(r, a.tracking_uri)}")
        return rc

    run.__wrapped__ = func  # type: ignore[attr-defined]
    return run


def _log_data(data_dir: str | None) -> Any:
    if not data_dir:
        return None
    from item2vec import tracking
    from item2vec.data import SessionData

    data = SessionData.load(data_dir)
    tracking.log_dataset(data.stats)
    return data


def _log_item2vec(model: Any, data: Any = None) -> None:
    """A fitted :class:`~item2vec.embeddings.Item2Vec`: its settings, the loss of every epoch, the vectors."""
    from item2vec import tracking

    emb = model.embeddings_
    tracking.log_params(emb.metadata.get("item2vec", {}), prefix="item2vec")
    for epoch, loss in enumerate(getattr(model, "loss_history_", None) or [], start=1):
        tracking.log_metrics({"loss": loss}, prefix="item2vec", step=epoch)
    tracking.log_metrics({"n_items": len(emb), "dim": emb.dim, "fit_seconds": model.fit_seconds_,
                          "words_per_second": model.words_per_second_}, prefix="item2vec")
    md = data.metadata if data is not None else None
    tracking.log_embeddings(emb, categories=tracking.item_categories(md), labels=tracking.item_titles(md))


def _after_fit(a: argparse.Namespace) -> None:
    _log_item2vec(a.fitted, _log_data(a.data))


def _after_evaluate(a: argparse.Namespace) -> None:
    from item2vec import tracking

    tracking.log_params({"models": a.models, "k": a.k, "split": a.split, "embeddings": a.embeddings,
                         "next_model": a.next_model})
    _log_data(a.data)
    tracking.log_evaluation(a.report, prefix=a.split)


def _after_train_next(a: argparse.Namespace) -> None:
    from item2vec import tracking

    model = a.fitted
    r = model.train_result_
    tracking.log_params(model.get_params(), prefix="bilstm")
    for row in r.history:
        tracking.log_metrics({k: v for k, v in row.items() if k != "epoch"}, prefix="bilstm", step=int(row["epoch"]))
    tracking.log_metrics({"best_epoch": r.best_epoch, "epochs_run": r.epochs_run, "train_seconds": r.seconds,
                          **(r.best_metrics or {})}, prefix="bilstm.best")
    _log_data(a.data)


def _augment(sub: Any) -> None:
    plans = {"fit": _after_fit, "evaluate": _after_evaluate, "train-next": _after_train_next}
    for name, after in plans.items():
        p = sub.choices.get(name)
        if p is None:
            continue
        add_tracking_args(p)
        p.set_defaults(func=tracked(name, p.get_default("func"), after))


# ---------------------------------------------------------------------------
# retrain / history
# ---------------------------------------------------------------------------
def add_parser(subparsers: Any) -> None:
    """Register ``retrain`` and ``history``, and add tracking options to ``fit``, ``evaluate``, ``train-next``."""
    _augment(subparsers)

    p = subparsers.add_parser(
        "retrain",
        help="batch retraining: train, evaluate, register; promote to champion only when better",
        description="Read the events, prepare, train item2vec (warm-started from the champion) and the BiLSTM, "
        "evaluate every model on the held-out days, log it all to MLflow, register a new version, and move "
        "the alias 'champion' to it only when it beats the current champion on the gating metric "
        "(else it gets 'challenger').",
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
    p.set_defaults(func=_cmd_retrain)

    h = subparsers.add_parser("history", help="the registry history of a model: versions, aliases, promotions")
    h.add_argument("--model-name", default="item2vec")
    h.add_argument("--tracking-uri", default=None)
    h.add_argument("--json", action="store_true", help="print JSON")
    h.set_defaults(func=_cmd_history)


def _cmd_retrain(a: argparse.Namespace) -> int:
    import logging

    from item2vec.retrain import RetrainError, load_config, run_retrain

    for key in ("format", "start", "end", "config", "model_name", "experiment", "tracking_uri", "report"):
        if getattr(a, key) == "":  # an unset MLproject parameter
            setattr(a, key, None)

    cfg = load_config(a.config, format=a.format, model_name=a.model_name, experiment=a.experiment,
                      use_bilstm=False if a.no_bilstm else None)
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
    if not a.quiet:
        from item2vec.retrain import format_report

        print(format_report(report))
    return 0


def _cmd_history(a: argparse.Namespace) -> int:
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


def __getattr__(name: str) -> Any:
    """``format_report`` / ``format_history`` live next to what they format; re-exported here, imported lazily."""
    if name == "format_report":
        from item2vec.retrain import format_report

        return format_report
    if name == "format_history":
        from item2vec.registry import format_history

        return format_history
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
