"""MLflow logging helpers: runs, flat parameters, per-epoch and final metrics, artifacts.

Where runs go: ``tracking_uri`` if given, else ``$MLFLOW_TRACKING_URI``, else
:data:`DEFAULT_TRACKING_URI`, a SQLite file in the working directory (embedded:
no server). A new experiment on a SQLite store keeps its artifacts in
``mlartifacts/`` beside the database file, so a temporary database brings its
own temporary artifact folder.

Metric names: MLflow refuses ``@`` in names, so ``mrr@20`` is logged as
``mrr_at_20`` (see :func:`metric_key`); a model's metrics get its name as a
prefix (``bilstm.mrr_at_20``). Per-epoch metrics carry the epoch as the step.

``mlflow`` is imported inside the functions: the ``item2vec`` command stays fast
when no tracking is asked for.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from item2vec._io import json_default

__all__ = [
    "DEFAULT_EXPERIMENT",
    "DEFAULT_TRACKING_URI",
    "epoch_logger",
    "flatten",
    "item_categories",
    "item_titles",
    "log_dataset",
    "log_embeddings",
    "log_evaluation",
    "log_json",
    "log_metrics",
    "log_params",
    "metric_key",
    "prepare_store",
    "quiet_mlflow",
    "resolve_tracking_uri",
    "start_run",
    "use_tracking_uri",
]

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "item2vec"
_MAX_PARAM = 6000  # MLflow's limit on a parameter value


# ---------------------------------------------------------------------------
# where and how
# ---------------------------------------------------------------------------
def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking URI to use: ``uri``, else ``$MLFLOW_TRACKING_URI``, else :data:`DEFAULT_TRACKING_URI`.

    A bare path ending in ``.db`` is taken as a SQLite file (``sqlite:///PATH``).
    """
    chosen = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if "://" not in chosen and chosen.endswith(".db"):
        chosen = f"sqlite:///{Path(chosen).resolve()}"
    return chosen


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):]).expanduser()


def default_artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """``<folder of the SQLite file>/mlartifacts/<experiment>`` for a SQLite store, else ``None`` (server default)."""
    db = _sqlite_path(tracking_uri)
    if db is None:
        return None
    safe = re.sub(r"[^\w.-]+", "_", experiment)
    if not safe.strip("."):  # "." or ".." would put the artifacts in or beside mlartifacts/, not under it
        safe = safe.replace(".", "_")
    return (db.resolve().parent / "mlartifacts" / safe).as_uri()


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """Silence the noise MLflow's stack emits: SQLAlchemy / pandas 4 deprecation warnings, progress bars."""
    bar = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        with _quiet_warnings():
            yield
    finally:
        if bar is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = bar


@contextlib.contextmanager
def _quiet_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*SADeprecationWarning.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method.*")
        for mod, name in (("sqlalchemy.exc", "SADeprecationWarning"), ("pandas.errors", "Pandas4Warning")):
            try:
                cls = getattr(__import__(mod, fromlist=[name]), name)
            except (ImportError, AttributeError):
                continue
            warnings.filterwarnings("ignore", category=cls)
        yield


_READY_STORES: set[str] = set()


def prepare_store(tracking_uri: str | None = None) -> str:
    """Create the tables of a new SQLite store once, even when several processes open it at the same moment.

    MLflow creates (and migrates) a SQLite store's schema on first use; two
    processes doing that at once make one of them fail halfway through the
    migration. Here the first use happens under an exclusive ``flock`` on
    ``.<db>.init.lock`` beside the file, so the others wait and then find the
    tables. Other stores are left to their server. Returns the resolved URI.
    """
    uri = resolve_tracking_uri(tracking_uri)
    db = _sqlite_path(uri)
    if db is None or uri in _READY_STORES:
        return uri
    try:
        import fcntl
    except ImportError:  # Windows: no flock
        return uri
    from mlflow.tracking import MlflowClient

    db = db.resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    noisy = [logging.getLogger(n) for n in ("mlflow.store.db.utils", "alembic")]  # "Creating tables..." notes
    levels = [lg.level for lg in noisy]
    with open(db.parent / f".{db.name}.init.lock", "a+") as fh, quiet_mlflow():
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            for lg in noisy:
                lg.setLevel(logging.WARNING)
            client = MlflowClient(uri, registry_uri=uri)
            client.search_experiments(max_results=1)  # creates / migrates the tracking tables
            client.search_registered_models(max_results=1)  # and the registry's
        finally:
            for lg, level in zip(noisy, levels, strict=True):
                lg.setLevel(level)
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    _READY_STORES.add(uri)
    return uri


def ensure_experiment(name: str, tracking_uri: str | None = None, artifact_location: str | None = None) -> str:
    """The id of experiment ``name``, created (with ``artifact_location``) when absent.

    Another process creating the same experiment at the same time is fine: the loser reads the winner's.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = prepare_store(tracking_uri)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    loc = artifact_location or default_artifact_location(uri, name)
    try:
        return client.create_experiment(name, artifact_location=loc)
    except MlflowException:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


@contextlib.contextmanager
def start_run(
    run_name: str | None = None,
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    tracking_uri: str | None = None,
    artifact_location: str | None = None,
    tags: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """Open an MLflow run (the active run inside the ``with`` block).

    Parameters
    ----------
    run_name : str, optional
    experiment : str
        Created when absent; on a SQLite store its artifacts go beside the file.
    tracking_uri : str, optional
        See :func:`resolve_tracking_uri`. Set as MLflow's tracking URI for the block.
    artifact_location : str, optional
        For a new experiment (default: see :func:`default_artifact_location`).
    tags : mapping, optional

    Yields
    ------
    mlflow.ActiveRun
        Ends ``FINISHED``, or ``FAILED`` when the block raises. Inside
        ``mlflow run`` (``$MLFLOW_RUN_ID`` set) this is the project's run.
    """
    import mlflow

    str_tags = {k: str(v) for k, v in (tags or {}).items()}
    with quiet_mlflow(), use_tracking_uri(tracking_uri) as uri:
        if os.environ.get("MLFLOW_RUN_ID"):  # inside `mlflow run`: log into the project's run
            with mlflow.start_run(run_name=run_name, tags=str_tags) as run:
                yield run
            return
        exp_id = ensure_experiment(experiment, uri, artifact_location)
        with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=str_tags) as run:
            yield run


@contextlib.contextmanager
def use_tracking_uri(tracking_uri: str | None = None) -> Iterator[str]:
    """Make :func:`resolve_tracking_uri` ``(tracking_uri)`` MLflow's tracking URI inside the block.

    Yields the URI; afterwards the previous setting (``$MLFLOW_TRACKING_URI`` or none) is back.
    """
    import mlflow

    uri = resolve_tracking_uri(tracking_uri)
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield uri
    finally:
        mlflow.set_tracking_uri(previous)  # None: back to MLflow's default resolution


# ---------------------------------------------------------------------------
# parameters and metrics
# ---------------------------------------------------------------------------
def flatten(d: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Nested dicts to one level: ``{"a": {"b": 1}}`` → ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{sep}{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten(v, key, sep))
        else:
            out[key] = v
    return out


def metric_key(name: str) -> str:
    """A name MLflow accepts: ``@`` becomes ``_at_``, other odd characters ``_``."""
    return re.sub(r"[^\w./\- ]", "_", name.replace("@", "_at_"))


def log_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Log a (nested) config as flat string parameters; returns what was logged.

    Lists and ``None`` are written as JSON; long values are cut to MLflow's limit.
    """
    import mlflow

    flat = flatten(params, prefix)
    out: dict[str, str] = {}
    for k, v in flat.items():
        s = json.dumps(v, default=str) if isinstance(v, (list, tuple)) or v is None else str(v)
        out[metric_key(k)] = s[:_MAX_PARAM]
    with quiet_mlflow():
        mlflow.log_params(out)
    return out


def _numeric(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(float(v)):
        return float(v)
    return None


def log_metrics(metrics: Mapping[str, Any], prefix: str = "", step: int | None = None) -> dict[str, float]:
    """Log the finite numbers of a (nested) dict as metrics; returns what was logged."""
    import mlflow

    out = {metric_key(k): x for k, v in flatten(metrics, prefix).items() if (x := _numeric(v)) is not None}
    if out:
        with quiet_mlflow():
            mlflow.log_metrics(out, step=step)
    return out


def epoch_logger(prefix: str) -> Callable[[int, dict[str, float]], None]:
    """A per-epoch callback ``callback(epoch, metrics)`` logging ``prefix.<metric>`` at step ``epoch``.

    Fits the BiLSTM trainer's ``callback`` argument.
    """

    def callback(epoch: int, metrics: dict[str, float]) -> None:
        log_metrics(metrics, prefix=prefix, step=int(epoch))

    return callback


def log_json(obj: Any, artifact_file: str) -> None:
    """Write ``obj`` as JSON into the active run's artifacts (``artifact_file`` may hold folders).

    ``mlflow.log_dict``, after numpy values become plain numbers (it would write them as strings).
    """
    import mlflow

    with quiet_mlflow():
        mlflow.log_dict(json.loads(json.dumps(obj, default=json_default)), artifact_file)


def log_dataset(stats: Mapping[str, Any], prefix: str = "data") -> None:
    """Dataset statistics: counts as metrics (``data.train.sessions``), the rest as parameters, all as JSON."""
    counts = {k: v for k, v in flatten(stats).items() if _numeric(v) is not None and not k.startswith("config")}
    log_metrics(counts, prefix=prefix)
    rest = {k: v for k, v in flatten(stats).items() if k not in counts}
    log_params(rest, prefix=prefix)
    log_json(dict(stats), "dataset_stats.json")


def log_evaluation(report: Mapping[str, Any], prefix: str = "test") -> dict[str, float]:
    """Final metrics of every model in an evaluation report (``report["models"]``) and the report as JSON.

    Metrics are named ``<prefix>.<model>.<metric>`` (``test.bilstm.mrr_at_20``).
    """
    logged: dict[str, float] = {}
    for name, res in report.get("models", {}).items():
        logged.update(log_metrics(res, prefix=f"{prefix}.{name}" if prefix else name))
    log_json(dict(report), "evaluation.json")
    return logged


# ---------------------------------------------------------------------------
# the item space
# ---------------------------------------------------------------------------
def item_categories(metadata: Any, field: str = "category", from_titles: bool = True) -> dict[Any, str] | None:
    """``item_id → category`` from an ``item_id, title[, category]`` metadata frame, or ``None``.

    Without a ``field`` column and with ``from_titles``, the category is derived
    from the title (:func:`item2vec.viz.title_categories`: its last word, the
    product type in most catalogues).
    """
    if metadata is None or "item_id" not in getattr(metadata, "columns", []):
        return None
    ids = metadata["item_id"].to_list()
    if field in metadata.columns:
        return {i: str(c) for i, c in zip(ids, metadata[field].to_list(), strict=True) if c is not None}
    if from_titles and "title" in metadata.columns:
        try:
            from item2vec.viz import title_categories
        except ImportError:
            return None
        return title_categories(dict(zip(ids, metadata["title"].to_list(), strict=True)))
    return None


def item_titles(metadata: Any) -> dict[Any, str] | None:
    """``item_id → title`` from a metadata frame (:func:`item2vec.data.item_titles`), or ``None`` without titles."""
    from item2vec.data import item_titles as titles

    return titles(metadata) if metadata is not None and "title" in getattr(metadata, "columns", []) else None


def log_embeddings(
    embeddings: Any,
    *,
    name: str = "item2vec",
    categories: Mapping[Any, str] | None = None,
    labels: Mapping[Any, str] | None = None,
    tsne: bool = True,
    max_items: int = 2000,
    random_state: int = 0,
) -> list[str]:
    """Log the vectors (word2vec text format) and a t-SNE picture of the item space.

    Parameters
    ----------
    embeddings : ItemEmbeddings
    name : str
        Artifact folder.
    categories : mapping, optional
        ``item_id → category`` to colour the picture (see :func:`item_categories`).
    labels : mapping, optional
        ``item_id → display name`` for the few items the picture labels.
    tsne : bool
        Draw the picture (needs ``item2vec.viz``; skipped with a logged note when absent).

    Returns
    -------
    list of str
        The artifact paths written.
    """
    import mlflow

    log = logging.getLogger(__name__)
    written: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, quiet_mlflow():
        vec = Path(tmp) / "vectors.w2v.txt"
        try:
            embeddings.to_word2vec_format(vec)
        except ValueError as e:  # ids with whitespace cannot be written in this format
            log.warning("vectors not logged in word2vec format: %s", e)
        else:
            mlflow.log_artifact(str(vec), artifact_path=name)
            written.append(f"{name}/{vec.name}")
        # one t-SNE for both the picture and the page: the page's sample and positions
        explorer = _explorer(embeddings, categories, labels, max_items, random_state) if tsne else None
        layout = None if explorer is None else (explorer.sample, explorer.xy[explorer.sample])
        fig = _tsne_picture(embeddings, categories, labels, max_items, random_state, layout) if tsne else None
        if fig is not None:
            mlflow.log_figure(fig, f"{name}/tsne.png", save_kwargs={"dpi": fig.dpi})
            written.append(f"{name}/tsne.png")
        # projector/{vectors,metadata}.tsv for the TensorFlow Embedding Projector (projector.tensorflow.org),
        # and with tsne the page of `item2vec explore` as one HTML file that opens offline
        embeddings.to_projector(Path(tmp) / "projector", titles=labels, categories=categories)
        mlflow.log_artifacts(str(Path(tmp) / "projector"), artifact_path=f"{name}/projector")
        written += [f"{name}/projector/vectors.tsv", f"{name}/projector/metadata.tsv"]
        if explorer is not None:
            page = explorer.write_html(Path(tmp) / "explore.html")
            mlflow.log_artifact(str(page), artifact_path=name)
            written.append(f"{name}/{page.name}")
    return written


def _explorer(emb: Any, categories: Mapping[Any, str] | None, labels: Mapping[Any, str] | None,
              max_items: int, random_state: int) -> Any:
    """The explore page's model (its t-SNE of a sample), or ``None`` for fewer than 5 items."""
    if len(emb) < 5:
        return None
    from item2vec.explore import Explorer

    return Explorer(emb, labels, categories, map_items=min(max_items, len(emb)), random_state=random_state)


def _tsne_picture(emb: Any, categories: Mapping[Any, str] | None, labels: Mapping[Any, str] | None,
                  max_items: int, random_state: int, layout: Any = None) -> Any:
    """The t-SNE figure, or ``None`` (with a logged note) when it cannot be drawn."""
    log = logging.getLogger(__name__)
    try:
        from item2vec.viz import tsne_plot
    except ImportError as e:
        log.warning("t-SNE picture skipped: item2vec.viz is not available (%s)", e)
        return None
    if len(emb) < 5:
        log.warning("t-SNE picture skipped: %d items are too few", len(emb))
        return None
    return tsne_plot(emb, categories=categories, labels=labels, max_items=max_items, random_state=random_state,
                     title=f"item2vec: {len(emb):,} items (t-SNE)", layout=layout)


def run_url(run: Any, tracking_uri: str | None = None) -> str:
    """Where to look at a run: the UI path for a server, else the run id and the store."""
    uri = resolve_tracking_uri(tracking_uri)
    if urlparse(uri).scheme in ("http", "https"):
        return f"{uri.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    return f"run {run.info.run_id} in {uri}"
