"""The batch retraining job: read → prepare → item2vec → BiLSTM → evaluate → log → register → promote.

One call of :func:`run_retrain` is one MLflow run. It reads the event log (a
file, a folder of daily files, or a ``start``..``end`` range of them), prepares
sessions (the last days are the held-out test), trains item2vec (warm-started
from the current champion's vectors so the space stays comparable), trains the
BiLSTM next-item model (optional), evaluates every model on the same test
prefixes, logs parameters, per-epoch and final metrics, dataset statistics and
artifacts, registers a new model version, and moves the alias ``champion`` to it
only when it beats the current champion on the gating metric, both served
models scored on the same new test data. Otherwise the new version gets the
alias ``challenger``.

What serves ``recommend()``: the job scores its candidates (the BiLSTM,
item2vec's last-item neighbours, and the servable baselines it trains: pop,
markov, sknn, implicit) on the validation days with the gating metric and
serves the best one through the same pyfunc (``similar_items`` stays item2vec);
the report's ``served_model``, the version's tags and ``item2vec history`` say
which. Without a validation split it serves the BiLSTM (else item2vec) and says so.

Promotion is a compare-and-set: under a lock on the store (see
:func:`item2vec.registry.alias_lock`) the job re-reads the champion; when
another run moved it meanwhile, the challenger is gated again against the new
champion on the same test prefixes, so the alias only moves to a version that
beat the model it replaces. A version's ``promoted`` tag is ``pending`` until
the promotion settles. Each run records its host, process and current step;
the next run marks runs whose process died as ``FAILED`` (with the step) and
settles their ``pending`` versions by what the alias says.

A failure at any step leaves the champion and its alias untouched: the alias
moves in the last step, after everything else succeeded. The report (and the
:class:`RetrainError`) names the failed step.

The pipeline script ``pipelines/retrain.py`` and ``item2vec retrain`` call this
module; configs live in ``pipelines/configs/``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import re
import socket
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from item2vec._config import DictConfig
from item2vec.exceptions import DataError, EmptyDataError, Item2VecError

__all__ = ["RetrainConfig", "RetrainError", "SERVABLE", "STEPS", "check_days", "load_config", "neighbour_stability",
           "read_window", "reap_dead_runs", "run_retrain"]

log = logging.getLogger(__name__)

STEPS = ("read", "prepare", "champion", "item2vec", "bilstm", "evaluate", "log-model", "register", "promote")

#: Models that can serve ``recommend()``: the BiLSTM, item2vec (last item's neighbours) and the saveable baselines.
SERVABLE = ("bilstm", "item2vec", "pop", "markov", "sknn", "implicit", "implicit-als")


class RetrainError(Item2VecError, RuntimeError):
    """A retraining run failed; ``step`` names where. The champion was not touched."""

    def __init__(self, step: str, cause: BaseException, report: dict[str, Any] | None = None) -> None:
        self.step = step
        self.report = report or {}
        first = next((line.strip() for line in str(cause).splitlines() if line.strip()), "")
        super().__init__(f"retraining failed at step {step!r}: {type(cause).__name__}: {first}")


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------
@dataclass
class RetrainConfig(DictConfig):
    """What one retraining run does; round-trips to a nested dict (TOML / JSON config files).

    Attributes
    ----------
    model_name : str
        Registered model name.
    experiment : str
        MLflow experiment of the runs.
    format : str
        Event-log format (see :func:`item2vec.data.read_events`).
    read : dict
        Reader options (``session = "invoice"``, column names for csv ...).
    prepare : dict
        :class:`~item2vec.data.PrepareConfig` options; ``test_days`` is the held-out window.
    item2vec : dict
        :class:`~item2vec.embeddings.Item2VecConfig` options.
    warm_start : bool
        Start item2vec from the champion's vectors (items it knows; same size needed).
    bilstm : dict
        :class:`~item2vec.nextitem.NextItemRecommender` options (``epochs``, ``hidden_size`` ...).
    use_bilstm : bool
        Train and serve the BiLSTM; off: the served model answers sessions with
        the last item's item2vec neighbours.
    baselines : list of str
        Extra models evaluated (``pop``, ``markov``, ``sknn`` ...); the servable ones are serving candidates.
    serve : str or list of str
        ``"auto"``: the candidates for serving ``recommend()`` are the BiLSTM (when
        trained), ``item2vec`` and the servable ``baselines``; or a list of
        names from :data:`SERVABLE` (a baseline listed here is trained too).
        The best on the validation days (gating metric) is served.
    k : int
        Cut-off of the reported metrics.
    gating_metric : str
        ``hr@K``, ``mrr@K`` or ``ndcg@K`` of the served model.
    min_improvement : float
        The challenger is promoted when its gating metric exceeds the champion's by more than this.
    tsne : bool
        Log a t-SNE picture of the item space.
    tsne_max_items : int
    stability_k : int
        Neighbours compared for the stability metric.
    metadata : str, optional
        A CSV or Parquet file ``item_id, title[, category]`` (titles label the
        t-SNE picture, the category colours it). Default: what the format's
        reader finds (Online Retail descriptions, MovieLens titles and genres).
    """

    _label = "retrain option"

    model_name: str = "item2vec"
    experiment: str = "item2vec-retrain"
    format: str = "csv"
    read: dict[str, Any] = field(default_factory=dict)
    prepare: dict[str, Any] = field(default_factory=lambda: {"test_days": 1.0, "valid_days": 1.0})
    item2vec: dict[str, Any] = field(default_factory=dict)
    warm_start: bool = True
    bilstm: dict[str, Any] = field(default_factory=lambda: {"epochs": 5, "patience": 2, "num_threads": 1})
    use_bilstm: bool = True
    baselines: list[str] = field(default_factory=lambda: ["pop", "markov"])
    serve: str | list[str] = "auto"
    k: int = 20
    gating_metric: str = "mrr@20"
    min_improvement: float = 0.0
    tsne: bool = True
    tsne_max_items: int = 2000
    stability_k: int = 10
    metadata: str | None = None

    def __post_init__(self) -> None:
        from item2vec.data import PrepareConfig
        from item2vec.embeddings import Item2VecConfig
        from item2vec.registry import check_model_name

        PrepareConfig.from_dict(self.prepare)
        Item2VecConfig.from_dict(self.item2vec)
        check_model_name(self.model_name)  # refused before any training, not at `register`
        self.gating_k  # noqa: B018 - validates the metric name
        if self.k <= 0 or self.stability_k <= 0:
            raise ValueError(f"k and stability_k must be positive, got {self.k}, {self.stability_k}")
        self.candidates  # noqa: B018 - validates serve

    @property
    def candidates(self) -> list[str]:
        """The models that may serve ``recommend()``, in order of preference on ties."""
        if self.serve == "auto":
            return (["bilstm"] if self.use_bilstm else []) + ["item2vec"] + \
                [b for b in self.baselines if b in SERVABLE and b not in ("bilstm", "item2vec")]
        names = [self.serve] if isinstance(self.serve, str) else list(self.serve)
        bad = [n for n in names if n not in SERVABLE]
        if not names or bad:
            raise ValueError(f"serve must be 'auto' or a list of some of {list(SERVABLE)}, got {self.serve!r}")
        if "bilstm" in names and not self.use_bilstm:
            raise ValueError("serve lists 'bilstm' but use_bilstm is false")
        return list(dict.fromkeys(names))

    @property
    def gating_k(self) -> int:
        m = re.fullmatch(r"(hr|mrr|ndcg)@(\d+)", self.gating_metric)
        if not m or int(m.group(2)) <= 0:
            raise ValueError(f"gating_metric must look like 'mrr@20', 'hr@10' or 'ndcg@20', got {self.gating_metric!r}")
        return int(m.group(2))



def load_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> RetrainConfig:
    """A :class:`RetrainConfig` from a ``.toml`` or ``.json`` file (or the defaults), then ``overrides``.

    ``None`` values in ``overrides`` are ignored.
    """
    d: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"config file {str(p)!r} does not exist")
        text = p.read_text()
        try:
            d = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
            raise ValueError(f"config file {p}: not valid {'JSON' if p.suffix == '.json' else 'TOML'}: {e}") from None
    d.update({k: v for k, v in overrides.items() if v is not None})
    return RetrainConfig.from_dict(d)


# ---------------------------------------------------------------------------
# reading a window of daily files
# ---------------------------------------------------------------------------
_DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})")


def check_days(start: str | None, end: str | None) -> None:
    """Check a ``start``..``end`` window: calendar dates ``YYYY-MM-DD`` (either may be ``None``), start <= end.

    Raises
    ------
    DataError
        Naming the argument and what came (``2011-13-01`` is not a date).
    """
    for name, d in (("start", start), ("end", end)):
        if d is None:
            continue
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(d)):
                raise ValueError
            dt.date.fromisoformat(str(d))
        except ValueError:
            raise DataError(f"{name} must be a calendar date YYYY-MM-DD, got {d!r}") from None
    if start is not None and end is not None and start > end:
        raise DataError(f"start must not be after end, got start={start!r} and end={end!r}")


def read_window(
    path: str | os.PathLike[str],
    format: str,
    start: str | None = None,
    end: str | None = None,
    **options: Any,
) -> pl.DataFrame:
    """Read an event log: a file, a folder of daily files, or the ``start``..``end`` days of one.

    Parameters
    ----------
    path : path-like
        A file, or a folder of files named ``YYYY-MM-DD...`` (one per day).
    format : str
        See :func:`item2vec.data.read_events`.
    start, end : str, optional
        ``YYYY-MM-DD``, inclusive. For a folder: which daily files to read; for
        one file: which events to keep (by timestamp).
    **options
        Passed to the reader.

    Raises
    ------
    EmptyDataError
        When no file or event falls in the range.
    """
    from item2vec.data import read_events

    check_days(start, end)
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"event log {str(p)!r} does not exist")
    if format == "online-retail":  # its reader picks the daily files itself
        return read_events(p, format, start=start, end=end, **options)
    if p.is_dir() and not any(p.glob("*.parquet")) or (p.is_dir() and (start or end)):
        files = sorted(f for f in p.iterdir() if f.is_file() and _DAY.match(f.name))
        if not files:
            raise EmptyDataError(f"{p}: expected daily files named YYYY-MM-DD.<ext>, found none")
        files = [f for f in files
                 if (start is None or _DAY.match(f.name).group(1) >= start)  # type: ignore[union-attr]
                 and (end is None or _DAY.match(f.name).group(1) <= end)]  # type: ignore[union-attr]
        if not files:
            raise EmptyDataError(f"{p}: no daily file between {start} and {end}")
        frames = [_read_one(f, format, **options) for f in files]
        df = pl.concat([f.drop("_order") for f in frames], how="diagonal_relaxed")
        return df.with_row_index("_order").select([c for c in df.columns] + ["_order"])
    df = read_events(p, format, **options)
    if start or end:
        day = pl.col("timestamp").dt.date()
        if start:
            df = df.filter(day >= pl.lit(start).str.to_date())
        if end:
            df = df.filter(day <= pl.lit(end).str.to_date())
        if df.height == 0:
            raise EmptyDataError(f"{p}: no event between {start} and {end}")
    return df


def _read_one(path: Path, format: str, **options: Any) -> pl.DataFrame:
    """One daily file; a file that cannot be read is named in a one-line :class:`DataError`."""
    from item2vec.data import read_events

    try:
        return read_events(path, format, **options)
    except (DataError, OSError, ValueError, pl.exceptions.PolarsError) as e:
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
        if str(path) in first:
            raise DataError(first) from e
        raise DataError(f"{path}: cannot read it as {format!r}: {first}") from e


# ---------------------------------------------------------------------------
# neighbour stability
# ---------------------------------------------------------------------------
def neighbour_stability(new: Any, old: Any, k: int = 10, max_items: int = 2000, random_state: int = 0) -> dict[str, float]:
    """Mean overlap of the top-``k`` neighbours of the items both embeddings know.

    Neighbours are searched among the common items only, so new or dropped items
    do not count as change. ``overlap@k`` is 1 when every item keeps its ``k``
    neighbours, ~``k / n_common`` for unrelated spaces.

    Returns
    -------
    dict
        ``overlap@k`` and ``n_common``.
    """
    from item2vec.embeddings import ItemEmbeddings

    common = [i for i in new.ids.tolist() if i in old]
    out: dict[str, float] = {"n_common": float(len(common))}
    if len(common) <= k:
        out[f"overlap@{k}"] = float("nan")
        return out
    a = ItemEmbeddings(common, new.vectors[new.vocab.indices(common) - 1])
    b = ItemEmbeddings(common, old.vectors[old.vocab.indices(common) - 1])
    rng = np.random.default_rng(random_state)
    queries = common if len(common) <= max_items else [common[i] for i in rng.choice(len(common), max_items, replace=False)]
    ia, _ = a.similar_items(queries, k=k, index="exact")
    ib, _ = b.similar_items(queries, k=k, index="exact")
    overlap = [len(set(x.tolist()) & set(y.tolist())) / k for x, y in zip(ia, ib, strict=True)]
    out[f"overlap@{k}"] = float(np.mean(overlap))
    return out


# ---------------------------------------------------------------------------
# the job
# ---------------------------------------------------------------------------
def run_retrain(
    events: str | os.PathLike[str],
    config: RetrainConfig | None = None,
    *,
    start: str | None = None,
    end: str | None = None,
    tracking_uri: str | None = None,
    report_path: str | os.PathLike[str] | None = None,
    on_step: Callable[[str], None] | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Run one retraining job; see the module docstring.

    Parameters
    ----------
    events : path-like
        Event log (file or folder of daily files).
    config : RetrainConfig, optional
    start, end : str, optional
        ``YYYY-MM-DD`` range of daily files to read.
    tracking_uri : str, optional
        See :func:`item2vec.tracking.resolve_tracking_uri`.
    report_path : path-like, optional
        Where the JSON report goes (also logged as ``retrain_report.json``).
    on_step : callable, optional
        Called with each step's name (:data:`STEPS`) as it starts (progress, fault injection).
    show_progress : bool

    Returns
    -------
    dict
        The report: ``run_id``, ``model_name``, ``model_version``, ``promoted``,
        ``reason``, ``gating``, ``metrics`` (every model), ``stability``,
        ``dataset``, ``status`` (``"ok"``).

    Raises
    ------
    DataError
        When ``start`` / ``end`` are not calendar dates or out of order (before any run opens).
    RetrainError
        When a step fails (``.step``, ``.report``); the champion alias is unchanged.
    """
    from item2vec.tracking import resolve_tracking_uri

    check_days(start, end)
    cfg = config or RetrainConfig()
    uri = resolve_tracking_uri(tracking_uri)
    t0 = time.perf_counter()
    report: dict[str, Any] = {
        "status": "running", "run_id": None, "model_name": cfg.model_name, "model_version": None,
        "promoted": False, "reason": None, "failed_step": None, "tracking_uri": uri,
        "events": str(events), "start": start, "end": end, "config": cfg.to_dict(),
    }
    enter = _Steps(on_step, t0)
    try:
        _run(events, cfg, uri, start, end, report, enter, show_progress)
    except Exception as e:
        if report["status"] != "failed":  # failed before the run opened
            _fail(report, enter, e)
        _write_report(report, report_path)
        raise RetrainError(report["failed_step"], e, report) from e
    _write_report(report, report_path)
    return report


def _fail(report: dict[str, Any], enter: _Steps, e: BaseException) -> None:
    step = enter.step
    report.update(status="failed", failed_step=step, promoted=False, error=f"{type(e).__name__}: {e}",
                  reason=f"failed at step {step!r}; the champion is unchanged")
    report["seconds"], report["step_seconds"] = enter.finish()


def _write_report(report: dict[str, Any], path: str | os.PathLike[str] | None) -> None:
    if path is None:
        return
    from item2vec._io import atomic_file

    with atomic_file(path) as fh:
        json.dump(report, fh, indent=2, default=_json_default)  # type: ignore[arg-type]


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    """NaN → None, numpy scalars → Python, for the JSON report."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out[k] = _clean(v)
        elif isinstance(v, (float, np.floating)):
            out[k] = None if math.isnan(float(v)) else float(v)
        elif isinstance(v, np.integer):
            out[k] = int(v)
        else:
            out[k] = v
    return out


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Limit torch's CPU threads inside the block (when torch is loaded and ``n`` is set)."""
    torch = sys.modules.get("torch")
    if n is None or torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Steps:
    """Remembers the step in progress and tells ``on_step``."""

    def __init__(self, on_step: Callable[[str], None] | None, t0: float) -> None:
        self.step = "setup"
        self.on_step = on_step
        self.record: Callable[[str], None] | None = None  # writes the step into the open run
        self.seconds: dict[str, float] = {}
        self._t = self._t0 = t0

    def finish(self) -> tuple[float, dict[str, float]]:
        """Total seconds and seconds per step (the last one included)."""
        now = time.perf_counter()
        if self.step != "setup":
            self.seconds[self.step] = round(now - self._t, 2)
        return round(now - self._t0, 2), self.seconds

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        if self.step != "setup":
            self.seconds[self.step] = round(now - self._t, 2)
        self.step, self._t = step, now
        log.info("retrain: %s", step)
        if self.record is not None:
            self.record(step)
        if self.on_step is not None:
            self.on_step(step)


def _run(events: Any, cfg: RetrainConfig, uri: str, start: str | None, end: str | None,
         report: dict[str, Any], enter: _Steps, show_progress: bool) -> None:
    import mlflow

    from item2vec import tracking

    run_name = f"retrain-{end or time.strftime('%Y-%m-%d')}"
    me = {"host": socket.gethostname(), "pid": str(os.getpid()), "pid_start": _process_start(os.getpid()) or ""}
    with tracking.start_run(run_name, experiment=cfg.experiment, tracking_uri=uri,
                            tags={"job": "retrain", "model_name": cfg.model_name, "step": "setup",
                                  **{f"retrain.{k}": v for k, v in me.items()}}) as run:
        report["run_id"] = run.info.run_id

        def record(step: str) -> None:
            with tracking.quiet_mlflow():
                mlflow.set_tag("step", step)

        enter.record = record
        try:
            report["reaped"] = reap_dead_runs(cfg.model_name, tracking_uri=uri,
                                              experiment_id=run.info.experiment_id, by=run.info.run_id)
            _steps(events, cfg, uri, start, end, report, enter, show_progress)
            report["status"] = "ok"
            report["seconds"], report["step_seconds"] = enter.finish()
        except Exception as e:
            _fail(report, enter, e)
            with tracking.quiet_mlflow():
                mlflow.set_tags({"failed_step": enter.step, "error": report["error"][:4000]})
            raise
        finally:
            with tracking.quiet_mlflow():
                tracking.log_json(_clean({k: v for k, v in report.items() if k != "config"}), "retrain_report.json")


# ---------------------------------------------------------------------------
# runs that died
# ---------------------------------------------------------------------------
def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``), ``None`` when unknown or gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(tags: dict[str, str]) -> bool | None:
    """Whether the process that opened a run still runs: ``None`` when this machine cannot tell."""
    if tags.get("retrain.host") != socket.gethostname() or not tags.get("retrain.pid", "").isdigit():
        return None
    pid = int(tags["retrain.pid"])
    if tags.get("retrain.pid_start") and Path("/proc").is_dir():
        return _process_start(pid) == tags["retrain.pid_start"]  # a reused pid has another start time
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_dead_runs(model_name: str, tracking_uri: str | None = None, experiment_id: str | None = None,
                   by: str | None = None) -> list[dict[str, Any]]:
    """Mark retraining runs whose process died as ``FAILED``; settle the versions they left ``pending``.

    A run is dead when it is still ``RUNNING``, was opened on this machine
    (``retrain.host``) and its process (``retrain.pid`` with its start time)
    is gone. Runs opened elsewhere are left alone (this machine cannot tell).
    The dead run gets ``failed_step`` (the step it was in) and ``error``; a
    version it registered whose ``promoted`` tag is ``pending`` gets ``true``
    when it holds the champion alias (the run died after moving it) and
    ``false`` otherwise.

    Parameters
    ----------
    model_name : str
        Registered model whose retraining runs (tag ``model_name``) are checked.
    tracking_uri : str, optional
    experiment_id : str, optional
        Only this experiment (default: every experiment).
    by : str, optional
        The run id doing the clean-up (written into the dead runs' ``error``).

    Returns
    -------
    list of dict
        ``run_id``, ``failed_step`` and ``versions`` (``{version: promoted}``) of every run marked.
    """
    from mlflow.entities import ViewType

    from item2vec import registry
    from item2vec.tracking import quiet_mlflow

    out: list[dict[str, Any]] = []
    with quiet_mlflow():
        client = registry._client(tracking_uri)
        exps = [experiment_id] if experiment_id else [e.experiment_id for e in client.search_experiments()]
        if not exps:
            return out
        runs = client.search_runs(exps, filter_string=f"attributes.status = 'RUNNING' and tags.job = 'retrain' "
                                                      f"and tags.model_name = '{model_name}'",
                                  run_view_type=ViewType.ACTIVE_ONLY, max_results=1000)
        for run in runs:
            tags = dict(run.data.tags)
            if run.info.run_id == by or _alive(tags) is not False:
                continue
            step = tags.get("step", "setup")
            client.set_tag(run.info.run_id, "failed_step", step)
            client.set_tag(run.info.run_id, "error", (
                f"the job's process (pid {tags.get('retrain.pid')} on {tags.get('retrain.host')}) ended during step "
                f"{step!r} without finishing the run; marked FAILED" + (f" by run {by}" if by else "")))
            settled: dict[int, bool] = {}
            champion = registry.get_version_by_alias(model_name, registry.CHAMPION, tracking_uri=tracking_uri)
            for mv in client.search_model_versions(f"name = '{model_name}' and run_id = '{run.info.run_id}'"):
                if (mv.tags or {}).get("promoted") != "pending":
                    continue
                holds = champion is not None and str(champion.version) == str(mv.version)
                reason = ("its run died after moving the champion alias to it" if holds else
                          f"never champion: its run died at step {step!r} before the promotion settled")
                registry.set_version_tags(model_name, mv.version, {"promoted": str(holds).lower(), "reason": reason},
                                          tracking_uri=tracking_uri)
                settled[int(mv.version)] = holds
            client.set_terminated(run.info.run_id, "FAILED")
            log.warning("retrain: run %s died during step %r; marked FAILED", run.info.run_id, step)
            out.append({"run_id": run.info.run_id, "failed_step": step, "versions": settled})
    return out


def _metadata(events: Any, cfg: RetrainConfig) -> pl.DataFrame | None:
    """Item titles / categories for display; never fails the job."""
    from item2vec.data import read_item_metadata

    try:
        if cfg.metadata:
            p = Path(cfg.metadata)
            md = pl.read_parquet(p) if p.suffix == ".parquet" else pl.read_csv(p)
            if "item_id" not in md.columns:
                raise DataError(f"{p}: expected an item_id column, got {md.columns}")
            return md
        return read_item_metadata(events, cfg.format)
    except (OSError, DataError, pl.exceptions.PolarsError) as e:
        log.warning("item metadata not read: %s", e)
        return None


def _steps(events: Any, cfg: RetrainConfig, uri: str, start: str | None, end: str | None,
           report: dict[str, Any], enter: _Steps, show_progress: bool) -> None:
    import mlflow

    from item2vec import registry, tracking
    from item2vec.data import PrepareConfig, prepare
    from item2vec.embeddings import Item2Vec, Item2VecConfig
    from item2vec.evaluation import evaluate, make_prefixes
    from item2vec.recommenders import Item2VecRecommender, make_recommender

    # -- read --------------------------------------------------------------------------
    enter("read")
    ev = read_window(events, cfg.format, start=start, end=end, **cfg.read)
    meta = _metadata(events, cfg)

    # -- prepare -----------------------------------------------------------------------
    enter("prepare")
    data = prepare(ev, PrepareConfig.from_dict(cfg.prepare), metadata=meta,
                   name=Path(str(events)).name + (f"[{start or ''}..{end or ''}]" if start or end else ""))
    report["dataset"] = data.stats
    tracking.log_params(cfg.to_dict(), prefix="config")
    tracking.log_params({"events": str(events), "start": start, "end": end}, prefix="job")
    tracking.log_dataset(data.stats)

    # -- the current champion ----------------------------------------------------------
    enter("champion")
    champ_version = registry.get_version_by_alias(cfg.model_name, registry.CHAMPION, tracking_uri=uri)
    champion = None
    if champ_version is not None:
        champion = registry.load(f"models:/{cfg.model_name}@{registry.CHAMPION}", tracking_uri=uri)
        report["champion_version"] = int(champ_version.version)
        mlflow.set_tag("champion_version", champ_version.version)

    # -- item2vec ----------------------------------------------------------------------
    enter("item2vec")
    init = None
    if cfg.warm_start and champion is not None:
        want = Item2VecConfig.from_dict(cfg.item2vec).vector_size
        if champion.embeddings.dim == want:
            init = champion.embeddings
        else:
            log.warning("no warm start: the champion's vectors have size %d, this config %d",
                        champion.embeddings.dim, want)
    i2v = Item2Vec(show_progress=show_progress, **cfg.item2vec).fit(data.decode(data.train), init=init)
    emb = i2v.embeddings_
    emb.metadata.update({"dataset": data.stats.get("name"), "time_range": data.stats.get("time_range")})
    for epoch, loss in enumerate(i2v.loss_history_, start=1):
        tracking.log_metrics({"loss": loss}, prefix="item2vec", step=epoch)
    tracking.log_metrics({"fit_seconds": i2v.fit_seconds_, "words_per_second": i2v.words_per_second_},
                         prefix="item2vec")
    mlflow.set_tag("warm_started", str(init is not None).lower())
    report["warm_started"] = init is not None

    # -- BiLSTM ------------------------------------------------------------------------
    enter("bilstm")
    next_model = None
    if cfg.use_bilstm:
        from item2vec.nextitem import NextItemRecommender

        params = {"show_progress": show_progress, **cfg.bilstm}
        next_model = NextItemRecommender(embeddings=emb, vocab=data.vocab,
                                         callback=tracking.epoch_logger("bilstm"), **params)
        next_model.fit(data.train, n_items=data.n_items, valid=data.valid if data.valid else None)
        r = next_model.train_result_
        tracking.log_metrics({"best_epoch": r.best_epoch, "epochs_run": r.epochs_run, "train_seconds": r.seconds},
                             prefix="bilstm")

    # -- evaluate ------------------------------------------------------------------------
    enter("evaluate")
    k, gk, metric = cfg.k, cfg.gating_k, cfg.gating_metric
    pre = make_prefixes(data.test)
    results: dict[str, dict[str, Any]] = {}

    def measure(model: Any, prefixes: Any) -> dict[str, Any]:
        res = evaluate(model, prefixes, k=k)
        if gk != k:
            res.update({m: v for m, v in evaluate(model, prefixes, k=gk).items() if "@" in m})
        return res

    def score(name: str, model: Any, fit_s: float = 0.0) -> None:
        results[name] = {**measure(model, pre), "fit_seconds": round(fit_s, 3)}

    candidates = cfg.candidates
    i2v_rec = Item2VecRecommender(embeddings=emb, vocab=data.vocab).fit(data.train, n_items=data.n_items)
    servable: dict[str, Any] = {"item2vec": i2v_rec}
    if next_model is not None:
        servable["bilstm"] = next_model
    with _torch_threads(cfg.bilstm.get("num_threads")):
        for name in list(dict.fromkeys([*cfg.baselines, *[c for c in candidates if c not in ("bilstm", "item2vec")]])):
            t = time.perf_counter()
            m = make_recommender(name).fit(data.train, n_items=data.n_items)
            score(name, m, time.perf_counter() - t)
            servable[name] = m
        score("item2vec", i2v_rec, i2v.fit_seconds_)
        if next_model is not None:
            score("bilstm", next_model, next_model.train_result_.seconds)
        served_name, validation, choice = _choose_served(candidates, servable, data.valid, measure, metric)
    report["served_model"], report["validation"], report["served_choice"] = served_name, validation, choice
    mlflow.set_tag("served_model", served_name)
    tracking.log_metrics({name: res for name, res in validation.items()}, prefix="valid")
    chosen = None if served_name == "item2vec" else servable[served_name]
    if chosen is not None and chosen is not next_model:
        chosen.vocab = data.vocab  # the baseline serves in external ids
    served = registry.ServedModel(emb, chosen, info={"run_id": report["run_id"], "data": data.stats.get("name"),
                                                     "time_range": data.stats.get("time_range"),
                                                     "served_model": served_name})
    with _torch_threads(cfg.bilstm.get("num_threads")):
        # the gate: both served models through the same code path, on the same test prefixes
        score("challenger", served.recommender(data.vocab).fit(data.train, n_items=data.n_items))
        if champion is not None:
            score("champion", champion.recommender(data.vocab).fit(data.train, n_items=data.n_items))
    report["metrics"] = results
    tracking.log_evaluation({"k": k, "n_predictions": len(pre), "models": results})
    if champion is not None:
        stab = neighbour_stability(emb, champion.embeddings, k=cfg.stability_k)
        report["stability"] = _clean(stab)
        tracking.log_metrics(stab, prefix="stability")
    else:
        report["stability"] = None

    new_score = float(results["challenger"][metric])
    old_score = float(results["champion"][metric]) if champion is not None else None
    promote, reason = _gate(metric, new_score, old_score, champ_version, cfg.min_improvement)
    report["gating"] = {"metric": metric, "challenger": new_score, "champion": old_score,
                        "champion_version": int(champ_version.version) if champ_version else None,
                        "min_improvement": cfg.min_improvement}

    # -- log the model and the artifacts -------------------------------------------------
    enter("log-model")
    tracking.log_embeddings(emb, categories=tracking.item_categories(data.metadata),
                            labels=tracking.item_titles(data.metadata), tsne=cfg.tsne, max_items=cfg.tsne_max_items)
    info = registry.log_model(served, name="model")

    # -- register -----------------------------------------------------------------------
    enter("register")
    key = tracking.metric_key(metric)
    tags = {
        "gating_metric": metric, f"challenger_{key}": f"{new_score:.6f}",
        f"champion_{key}": "" if old_score is None else f"{old_score:.6f}",
        "previous_champion": "" if champ_version is None else str(champ_version.version),
        "data_end": str((data.stats.get("time_range") or ["", ""])[1]),
        "promoted": "pending", "reason": "registered; the promotion has not settled yet",
        "served_model": served_name,
        "next_model": {"item2vec": "item2vec-last"}.get(served_name, served_name),
        f"valid_{key}": "" if served_name not in validation else f"{validation[served_name][metric]:.6f}",
        "warm_started": str(report["warm_started"]).lower(),
    }
    if report["stability"]:
        tags[f"stability_overlap_at_{cfg.stability_k}"] = str(report["stability"].get(f"overlap@{cfg.stability_k}"))
    with tracking.quiet_mlflow():
        mv = mlflow.register_model(info.model_uri, cfg.model_name, tags=tags)
    report["model_version"] = int(mv.version)
    report["model_uri"] = f"models:/{cfg.model_name}/{mv.version}"
    mlflow.set_tag("model_version", mv.version)

    # -- promote: compare-and-set ----------------------------------------------------------
    enter("promote")
    with registry.alias_lock(cfg.model_name, tracking_uri=uri):
        now = registry.get_version_by_alias(cfg.model_name, registry.CHAMPION, tracking_uri=uri)
        was = None if champ_version is None else str(champ_version.version)
        if (None if now is None else str(now.version)) != was:
            # another run moved the alias since the champion step: gate again against the model there now
            champ_version = now
            old_score = None
            if now is not None:
                current = registry.load(f"models:/{cfg.model_name}/{now.version}", tracking_uri=uri)
                with _torch_threads(cfg.bilstm.get("num_threads")):
                    res = measure(current.recommender(data.vocab).fit(data.train, n_items=data.n_items), pre)
                results["champion"] = {**res, "fit_seconds": 0.0}
                old_score = float(res[metric])
            else:
                results.pop("champion", None)
            promote, reason = _gate(metric, new_score, old_score, now, cfg.min_improvement)
            reason += (f" (re-gated at promotion: the champion had moved from {f'v{was}' if was else 'none'} "
                       f"to {f'v{now.version}' if now is not None else 'none'})")
            report["gating"].update(champion=old_score, champion_version=None if now is None else int(now.version),
                                    regated=True)
        registry.set_alias(cfg.model_name, mv.version, registry.CHAMPION if promote else registry.CHALLENGER,
                           tracking_uri=uri)
        # the tags say what the alias did, written after it moved (a run killed in between is settled
        # by the next run's reap_dead_runs)
        registry.set_version_tags(cfg.model_name, mv.version, {
            "promoted": str(promote).lower(), "reason": reason,
            f"champion_{key}": "" if old_score is None else f"{old_score:.6f}",
            "previous_champion": "" if champ_version is None else str(champ_version.version),
        }, tracking_uri=uri)
    mlflow.set_tags({"promoted": str(promote).lower(), "reason": reason})
    tracking.log_metrics({"promoted": float(promote)})
    report["promoted"], report["reason"] = promote, reason


def _gate(metric: str, new: float, old: float | None, champ: Any, min_improvement: float) -> tuple[bool, str]:
    """(promote, reason): the challenger's score ``new`` against the champion's ``old`` (``None``: no champion)."""
    if old is None or champ is None:
        return True, "no champion yet"
    if new > old + min_improvement:
        return True, f"{metric} {new:.4f} beats the champion (v{champ.version}) {old:.4f} on the same test data"
    return False, (f"{metric} {new:.4f} does not beat the champion (v{champ.version}) {old:.4f}"
                   + (f" by more than {min_improvement}" if min_improvement else ""))


def _choose_served(candidates: list[str], models: dict[str, Any], valid: Any, measure: Callable[..., dict[str, Any]],
                   metric: str) -> tuple[str, dict[str, dict[str, Any]], str]:
    """The candidate to serve: best ``metric`` on the validation sessions (ties: the first in ``candidates``).

    Returns
    -------
    tuple
        (name, validation metrics per candidate, a sentence saying how it was chosen).
    """
    from item2vec.evaluation import make_prefixes

    prefixes = None
    if valid:
        try:
            prefixes = make_prefixes(valid)
        except EmptyDataError:
            prefixes = None
    if prefixes is None:
        name = "bilstm" if "bilstm" in candidates else ("item2vec" if "item2vec" in candidates else candidates[0])
        why = f"no validation prefixes to choose on: serving {name} unchosen"
        log.warning("retrain: %s", why)
        return name, {}, why
    validation = {name: _clean(measure(models[name], prefixes)) for name in candidates}
    best = max(candidates, key=lambda n: (validation[n][metric] or 0.0, -candidates.index(n)))
    why = (f"best {metric} on validation ({len(prefixes)} predictions): {best} "
           f"{validation[best][metric]:.4f} among " + ", ".join(f"{n} {validation[n][metric]:.4f}" for n in candidates))
    return best, validation, why
