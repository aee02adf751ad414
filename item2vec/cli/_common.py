"""What every ``item2vec`` command shares: the parser, the MLflow options, the output policy, the exit codes."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "INPUT_ARGS",
    "OUT_MARKERS",
    "Parser",
    "add_item2vec_args",
    "item2vec_params",
    "mlflow_run",
    "run",
    "tracking_parent",
]


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit status 2.

    ``missing_extra=(extra, module)`` makes a placeholder for a command whose optional
    extra is not installed: using it is that one-line error, naming the ``pip install``.
    """

    def __init__(self, *args: Any, missing_extra: tuple[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.missing_extra = missing_extra

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        if self.missing_extra:
            extra, module = self.missing_extra
            self.error(f"this command needs the {extra} extra (no module {module!r}): "
                       f"pip install 'item2vec[{extra}]'")
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


# ---------------------------------------------------------------------------
# --mlflow / --tracking-uri / --experiment
# ---------------------------------------------------------------------------
def tracking_parent(default_experiment: str = "item2vec") -> argparse.ArgumentParser:
    """The parent parser of the commands that log to MLflow: ``--mlflow``, ``--tracking-uri``, ``--experiment``."""
    parent = argparse.ArgumentParser(add_help=False)
    g = parent.add_argument_group("MLflow tracking")
    g.add_argument("--mlflow", action="store_true",
                   help="log this command to MLflow (default store: sqlite:///mlflow.db, or $MLFLOW_TRACKING_URI)")
    g.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (implies --mlflow)")
    g.add_argument("--experiment", default=default_experiment, help="MLflow experiment (default %(default)s)")
    return parent


# ---------------------------------------------------------------------------
# --engine / --spark-master
# ---------------------------------------------------------------------------
ENGINES = ("polars", "spark")


def engine_parent(from_config: bool = False) -> argparse.ArgumentParser:
    """The parent parser of the commands that run on either engine: ``--engine``, ``--spark-master``.

    ``from_config``: both default to ``None`` (the command's config file decides, else polars / ``local[*]``).
    """
    parent = argparse.ArgumentParser(add_help=False)
    g = parent.add_argument_group("engine")
    default = " (default: the config's, else polars)" if from_config else " (default)"
    g.add_argument("--engine", choices=ENGINES, default=None if from_config else "polars",
                   help=f"polars + gensim on this machine{default}, or Apache Spark (pip install "
                   "'item2vec[spark]', Java 17+)")
    g.add_argument("--spark-master", default=None if from_config else "local[*]", metavar="URL",
                   help="with --engine spark: local[*] (default), local[N] or spark://HOST:PORT")
    return parent


def spark_session(a: argparse.Namespace) -> Any:
    """The Spark session of ``--spark-master``; a one-line error naming the extra when pyspark is absent."""
    import importlib.util

    from item2vec.exceptions import OptionError

    if importlib.util.find_spec("pyspark") is None:
        raise OptionError("--engine spark needs pyspark: pip install 'item2vec[spark]'", options=("engine",))
    from item2vec.spark import get_spark

    return get_spark(a.spark_master)


@contextlib.contextmanager
def mlflow_run(a: argparse.Namespace, command: str) -> Iterator[bool]:
    """The command's body inside an MLflow run when ``--mlflow`` or ``--tracking-uri`` asks for one.

    Yields whether a run is open, so the command logs what it holds in memory; the
    run's address is printed once the run ended. Nothing imports MLflow otherwise.
    """
    if not (a.mlflow or a.tracking_uri):
        yield False
        return
    from item2vec import tracking

    with tracking.start_run(command, experiment=a.experiment, tracking_uri=a.tracking_uri,
                            tags={"command": command}) as r:
        yield True
    print(f"mlflow: {tracking.run_url(r, a.tracking_uri)}")


def log_dataset(data: Any) -> None:
    """The prepared data a command read, in the open MLflow run."""
    from item2vec import tracking

    tracking.log_dataset(data.stats)


# ---------------------------------------------------------------------------
# item2vec hyperparameters (fit, evaluate)
# ---------------------------------------------------------------------------
def add_item2vec_args(p: argparse.ArgumentParser) -> None:
    """The item2vec hyperparameter options of ``fit`` and ``evaluate``."""
    g = p.add_argument_group("item2vec hyperparameters (defaults: item2vec.Item2VecConfig)")
    g.add_argument("--vector-size", type=int)
    g.add_argument("--window", type=int, help="context window (default 5); 0 = the whole session")
    g.add_argument("--negative", type=int)
    g.add_argument("--ns-exponent", type=float)
    g.add_argument("--sample", type=float)
    g.add_argument("--epochs", type=int)
    g.add_argument("--alpha", type=float)
    g.add_argument("--workers", type=int)
    g.add_argument("--seed", type=int, dest="random_state")


def item2vec_params(a: argparse.Namespace) -> dict[str, Any]:
    """The item2vec hyperparameters given on the command line, as ``Item2Vec`` keywords."""
    keys = ("vector_size", "window", "negative", "ns_exponent", "sample", "epochs", "alpha", "workers", "random_state")
    params = {k: getattr(a, k) for k in keys if getattr(a, k, None) is not None}
    if params.get("window") == 0:
        params["window"] = None  # Item2VecConfig: None = the whole session
    return params


# ---------------------------------------------------------------------------
# running a command: the output policy, errors, a closed pipe, Ctrl-C
# ---------------------------------------------------------------------------
#: The file that marks each command's --out as an output of that command's kind (see the save methods):
#: an existing --out holding it is replaced; anything else is refused without --overwrite.
OUT_MARKERS = {"prepare": "stats.json", "fit": "vectors.npy", "train-next": "checkpoint.json"}

#: Arguments that name a command's inputs: no output may replace them or a folder above them.
INPUT_ARGS = ("events", "data", "embeddings", "next_model", "model", "config")


def _inputs(args: argparse.Namespace) -> list[Path]:
    paths = (getattr(args, name, None) for name in INPUT_ARGS)
    return [Path(p) for p in paths if isinstance(p, str) and p and Path(p).exists()]


def _run(args: argparse.Namespace) -> int:
    """The command under the output policy: --out checked before any work, inputs protected."""
    from item2vec._io import check_output, output_policy

    overwrite = bool(getattr(args, "overwrite", False))
    inputs = _inputs(args)
    if getattr(args, "out", None):
        check_output(args.out, OUT_MARKERS.get(args.command), overwrite, protect=inputs)
    with output_policy(overwrite=overwrite, protect=inputs):
        rc = int(args.func(args) or 0)
    sys.stdout.flush()  # a closed pipe shows here, inside main, not at interpreter exit
    return rc


def _quiet_broken_pipe() -> int:
    """The reader went away (``| head``): stop writing, without a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail again
    os.close(devnull)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run a parsed command and return its exit status.

    A known error (bad input, a missing file) is one line on stderr and status 2
    (``ITEM2VEC_DEBUG=1`` shows the traceback instead); Ctrl-C is status 130; a
    reader that went away (``| head``) ends the command quietly with status 0.
    """
    from item2vec.exceptions import Item2VecError

    try:
        return _run(args)
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt:
        print("item2vec: interrupted", file=sys.stderr)
        return 130
    except (Item2VecError, FileNotFoundError, NotADirectoryError, KeyError, ValueError) as e:
        if os.environ.get("ITEM2VEC_DEBUG"):
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"item2vec: error: {msg}", file=sys.stderr)
        return 2
