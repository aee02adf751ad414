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
item2vec's last-item neighbours, the servable baselines it trains: pop,
markov, sknn, implicit, and the BiLSTM blended with sknn and markov,
:class:`~item2vec.blend.Blend`) on the validation days with the gating metric and
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
import copy
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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from item2vec._config import DictConfig
from item2vec.exceptions import DataError, EmptyDataError, Item2VecError

if TYPE_CHECKING:
    from item2vec.data import PrepareConfig
    from item2vec.embeddings import Item2VecConfig
    from item2vec.nextitem.model import NextItemConfig
    from item2vec.nextitem.train import TrainConfig
    from item2vec.registry import Champion, Decision

__all__ = ["BiLSTMConfig", "RetrainConfig", "RetrainError", "RetrainReport", "SERVABLE", "STEPS", "check_days", "format_report",
           "load_config", "neighbour_stability", "read_window", "reap_dead_runs", "run_retrain"]

log = logging.getLogger(__name__)

STEPS = ("read", "prepare", "champion", "item2vec", "bilstm", "evaluate", "log-model", "register", "promote")

#: Models that can serve ``recommend()``: the BiLSTM, item2vec (last item's neighbours), the saveable baselines
#: and ``blend`` (the BiLSTM blended with the baselines of ``RetrainConfig.blend``).
SERVABLE = ("bilstm", "item2vec", "pop", "markov", "sknn", "implicit", "implicit-als", "blend")
#: The baselines a blend can hold (they save; item2vec's neighbours are served from the vectors, not saved as a model).
BLENDABLE = ("pop", "markov", "sknn", "implicit", "implicit-als")


class RetrainError(Item2VecError, RuntimeError):
    """A retraining run failed; ``step`` names where. The champion was not touched."""

    def __init__(self, step: str, cause: BaseException, report: RetrainReport | None = None) -> None:
        self.step = step
        self.report = report
        first = next((line.strip() for line in str(cause).splitlines() if line.strip()), "")
        super().__init__(f"retraining failed at step {step!r}: {type(cause).__name__}: {first}")


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------
@dataclass
class BiLSTMConfig(DictConfig):
    """The ``[bilstm]`` section: :class:`~item2vec.nextitem.NextItemRecommender`'s options as one flat table.

    The table mixes the recommender's own options (``init``, ``freeze``,
    ``valid_fraction``), :class:`~item2vec.nextitem.model.NextItemConfig` fields
    (the architecture; ``n_items`` comes from the data) and
    :class:`~item2vec.nextitem.train.TrainConfig` fields (the optimisation), as
    ``NextItemRecommender(**table)`` takes them; :meth:`from_dict` sorts them into
    ``config`` and ``train_config`` and :meth:`to_dict` flattens them back.

    Attributes
    ----------
    init : {"item2vec", "random"}
    freeze : bool
    valid_fraction : float
    config : NextItemConfig
    train_config : TrainConfig
    """

    _label = "bilstm option"

    init: str = "item2vec"
    freeze: bool = False
    valid_fraction: float = 0.1
    config: NextItemConfig = None  # type: ignore[assignment]
    train_config: TrainConfig = None  # type: ignore[assignment]

    _OWN = ("init", "freeze", "valid_fraction")

    def __post_init__(self) -> None:
        from item2vec.nextitem.model import NextItemConfig
        from item2vec.nextitem.train import TrainConfig

        self.config = self.config if self.config is not None else NextItemConfig()
        self.train_config = self.train_config if self.train_config is not None else TrainConfig()

    @classmethod
    def from_dict(cls, d: dict[str, Any], vector_size: int | None = None) -> BiLSTMConfig:
        """The section from its flat table; unknown keys are refused.

        With ``init="item2vec"`` and no ``embedding_dim``, the table is as wide as
        the vectors (``vector_size``): what the recommender builds from them, no projection.
        """
        from item2vec.nextitem.model import NextItemConfig
        from item2vec.nextitem.train import TrainConfig

        model = {f.name for f in fields(NextItemConfig)} - {"n_items"}
        train = {f.name for f in fields(TrainConfig)}
        unknown = set(d) - model - train - set(cls._OWN)
        if unknown:
            raise ValueError(f"unknown {cls._label}(s) {sorted(unknown)}; expected some of "
                             f"{sorted(model | train | set(cls._OWN))}")
        arch = {k: v for k, v in d.items() if k in model}
        if vector_size is not None and d.get("init", "item2vec") == "item2vec":
            arch.setdefault("embedding_dim", vector_size)
        return cls(**{k: d[k] for k in cls._OWN if k in d}, config=NextItemConfig.from_dict(arch),
                   train_config=TrainConfig.from_dict({k: v for k, v in d.items() if k in train}))

    def to_dict(self) -> dict[str, Any]:
        """The flat table, every field written out (``n_items`` left to the data)."""
        return {**{k: getattr(self, k) for k in self._OWN},
                **{k: v for k, v in self.config.to_dict().items() if k != "n_items"},
                **self.train_config.to_dict()}


@dataclass
class RetrainConfig(DictConfig):
    """What one retraining run does; round-trips to a nested dict (TOML / JSON config files).

    :meth:`from_dict` builds the typed sections from the config file's tables (a
    dict given to the constructor is converted the same way) and refuses unknown
    keys, naming the section; :meth:`to_dict` gives back the nested dict, every
    default written out, which :meth:`from_dict` reads back to an equal config.
    The retraining report's ``config`` is that dict: a run can be repeated from it.

    Attributes
    ----------
    model_name : str
        Registered model name.
    experiment : str
        MLflow experiment of the runs.
    format : str
        Event-log format (see :func:`item2vec.data.read_events`).
    read : dict
        Reader options (``session = "invoice"``, column names for csv ...), passed as
        keywords to :func:`item2vec.data.read_events`; a dict because each format's
        reader takes its own keywords (there is no one reader config to type them with).
    prepare : PrepareConfig
        How sessions are built and split; ``test_days`` is the held-out window.
    item2vec : Item2VecConfig
        The item2vec hyperparameters.
    warm_start : bool
        Start item2vec from the champion's vectors (items it knows; same size needed).
    bilstm : BiLSTMConfig
        The next-item model's options, one flat table (``epochs``, ``hidden_size`` ...).
    use_bilstm : bool
        Train and serve the BiLSTM; off: the served model answers sessions with
        the last item's item2vec neighbours.
    baselines : list of str
        Extra models evaluated (``pop``, ``markov``, ``sknn`` ...); the servable ones are serving candidates.
    serve : str or list of str
        ``"auto"``: the candidates for serving ``recommend()`` are the BiLSTM (when
        trained), ``item2vec``, the servable ``baselines`` and ``blend`` (when the
        BiLSTM is trained and ``blend`` lists models); or a list of names from
        :data:`SERVABLE` (a baseline listed here is trained too). The best on the
        validation days (gating metric) is served; ties go to the earlier name.
    blend : list of str
        Baselines (from :data:`BLENDABLE`) blended with the BiLSTM into the candidate
        ``blend`` (:class:`~item2vec.blend.Blend`): weights from a 0.1 grid chosen by
        MRR at the gating cut-off on the validation days, the BiLSTM alone among
        them, so on those days the blend is never behind the BiLSTM; where repeats were
        kept (``prepare.drop_repeats = false``) also a factor on the last item's score.
        ``[]``: no blend.
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
    engine : str
        ``"polars"`` (default): polars + gensim in this process; ``"spark"``: sessions by
        :func:`item2vec.spark.prepare_spark` and item2vec by :class:`item2vec.spark.SparkItem2Vec`
        (the BiLSTM and the baselines train here on the prepared data). Spark's Word2Vec cannot
        start from given vectors: with ``warm_start`` it trains cold and the report says so.
    spark_master : str
        With ``engine = "spark"``: ``local[*]`` (default), ``local[N]`` or ``spark://HOST:PORT``
        (an active SparkSession is used as it is).
    params : str, optional
        A params file (``item2vec tune``): its item2vec and bilstm values, under the
        ``item2vec`` and ``bilstm`` sections of this config (which override them).
    retune_every_days : float, optional
        Re-tune item2vec on the new window's validation split when the params file's
        item2vec section is older than this (or absent), before training, and rewrite
        the file (:func:`item2vec.tuning.params_for_retrain`); off by default.
    retune_trials, retune_minutes : int, float, optional
        The budget of such a re-tune (either may be ``None``, not both).
    """

    _label = "retrain option"

    model_name: str = "item2vec"
    experiment: str = "item2vec-retrain"
    format: str = "csv"
    read: dict[str, Any] = field(default_factory=dict)
    prepare: PrepareConfig = field(default_factory=lambda: {"test_days": 1.0, "valid_days": 1.0})  # type: ignore[assignment]
    item2vec: Item2VecConfig = field(default_factory=dict)  # type: ignore[assignment]
    warm_start: bool = True
    bilstm: BiLSTMConfig = field(default_factory=lambda: {"epochs": 5, "patience": 2, "num_threads": 1})  # type: ignore[assignment]
    use_bilstm: bool = True
    baselines: list[str] = field(default_factory=lambda: ["pop", "markov"])
    serve: str | list[str] = "auto"
    blend: list[str] = field(default_factory=lambda: ["sknn", "markov"])
    k: int = 20
    gating_metric: str = "mrr@20"
    min_improvement: float = 0.0
    tsne: bool = True
    tsne_max_items: int = 2000
    stability_k: int = 10
    metadata: str | None = None
    engine: str = "polars"
    spark_master: str = "local[*]"
    params: str | None = None
    retune_every_days: float | None = None
    retune_trials: int | None = 30
    retune_minutes: float | None = 30.0

    def __post_init__(self) -> None:
        from item2vec.data import PrepareConfig
        from item2vec.embeddings import Item2VecConfig
        from item2vec.registry import check_model_name

        if isinstance(self.prepare, dict):
            self.prepare = PrepareConfig.from_dict(self.prepare)
        if isinstance(self.item2vec, dict):
            self.item2vec = Item2VecConfig.from_dict(self.item2vec)
        if isinstance(self.bilstm, dict):
            self.bilstm = BiLSTMConfig.from_dict(self.bilstm, vector_size=self.item2vec.vector_size)
        check_model_name(self.model_name)  # refused before any training, not at `register`
        self.gating_k  # noqa: B018 - validates the metric name
        if self.k <= 0 or self.stability_k <= 0:
            raise ValueError(f"k and stability_k must be positive, got {self.k}, {self.stability_k}")
        bad = [n for n in self.blend if n not in BLENDABLE] if isinstance(self.blend, list) else self.blend
        if bad or (isinstance(self.blend, list) and len(set(self.blend)) != len(self.blend)):
            raise ValueError(f"blend must be a list of distinct names from {list(BLENDABLE)} ([] for no blend), "
                             f"got {self.blend!r}")
        self.candidates  # noqa: B018 - validates serve
        if self.engine not in ("polars", "spark"):
            raise ValueError(f"engine must be 'polars' or 'spark', got {self.engine!r}")
        from item2vec.tuning import check_schedule

        check_schedule(self.params, self.retune_every_days, self.retune_trials, self.retune_minutes)

    def to_dict(self) -> dict[str, Any]:
        """The nested dict of the config file, every section's defaults written out."""
        return {f.name: (v.to_dict() if isinstance(v := getattr(self, f.name), DictConfig) else copy.deepcopy(v))
                for f in fields(self)}

    @property
    def candidates(self) -> list[str]:
        """The models that may serve ``recommend()``, in order of preference on ties."""
        if self.serve == "auto":
            return (["bilstm"] if self.use_bilstm else []) + ["item2vec"] + \
                [b for b in self.baselines if b in SERVABLE and b not in ("bilstm", "item2vec", "blend")] + \
                (["blend"] if self.use_bilstm and self.blend else [])
        names = [self.serve] if isinstance(self.serve, str) else list(self.serve)
        bad = [n for n in names if n not in SERVABLE]
        if not names or bad:
            raise ValueError(f"serve must be 'auto' or a list of some of {list(SERVABLE)}, got {self.serve!r}")
        for needs in ("bilstm", "blend"):
            if needs in names and not self.use_bilstm:
                raise ValueError(f"serve lists {needs!r} but use_bilstm is false")
        if "blend" in names and not self.blend:
            raise ValueError("serve lists 'blend' but blend is empty; name the baselines to blend, e.g. blend = ['sknn', 'markov']")
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
    from item2vec.data.readers import daily_files

    check_days(start, end)
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"event log {str(p)!r} does not exist")
    if format == "online-retail":  # its reader picks the daily files itself
        return read_events(p, format, start=start, end=end, **options)
    if p.is_dir() and not any(p.glob("*.parquet")) or (p.is_dir() and (start or end)):
        frames = [_read_one(f, format, **options) for f in daily_files(p, start, end)]
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
    a = ItemEmbeddings(common, new.vectors[new.vocab.indices(common) - 1]).use_index("exact")
    b = ItemEmbeddings(common, old.vectors[old.vocab.indices(common) - 1]).use_index("exact")
    rng = np.random.default_rng(random_state)
    queries = common if len(common) <= max_items else [common[i] for i in rng.choice(len(common), max_items, replace=False)]
    ia, _ = a.similar_items(queries, k=k)
    ib, _ = b.similar_items(queries, k=k)
    overlap = [len(set(x.tolist()) & set(y.tolist())) / k for x, y in zip(ia, ib, strict=True)]
    out[f"overlap@{k}"] = float(np.mean(overlap))
    return out


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------
@dataclass
class RetrainReport:
    """What one retraining run did; :meth:`to_dict` is the JSON report (the file and the MLflow artifact).

    Attributes
    ----------
    status : str
        ``"running"``, ``"ok"`` or ``"failed"``.
    run_id : str or None
        The MLflow run.
    model_name : str
        Registered model name.
    model_version : int or None
        The version registered (``None`` before the ``register`` step).
    promoted : bool
        Whether that version took the ``champion`` alias.
    reason : str or None
        Why (or why not), one sentence.
    failed_step : str or None
        The step (:data:`STEPS`) that failed.
    tracking_uri, events, start, end : str or None
        Where the run was tracked and what it read.
    config : dict
        The :class:`RetrainConfig` as a dict.
    reaped : list of dict or None
        Runs whose process had died, marked ``FAILED`` by this run (:func:`reap_dead_runs`).
    dataset : dict or None
        Statistics of the prepared data.
    champion_version : int or None
        The champion when the run started.
    warm_started : bool or None
        Whether item2vec started from the champion's vectors.
    served_model : str or None
        The model serving ``recommend()``.
    validation : dict or None
        Metrics of every serving candidate on the validation days.
    served_choice : str or None
        How the served model was chosen.
    blend_weights : dict or None
        The candidate ``blend``'s weight per model (chosen on the validation days), when it was
        built; where consecutive repeats were kept, also its ``last_item_factor``.
    metrics : dict or None
        Test metrics of every model, the served ``challenger`` and the ``champion`` included.
    stability : dict or None
        :func:`neighbour_stability` against the champion (``None``: no champion).
    gating : dict or None
        ``metric``, ``challenger``, ``champion``, ``champion_version``, ``min_improvement`` (and ``regated``).
    model_uri : str or None
        ``models:/NAME/VERSION`` of the registered version.
    error : str or None
        The exception that failed the run.
    seconds : float or None
        Wall time of the job.
    step_seconds : dict or None
        Wall time of each step that ran.
    engine : dict or None
        ``name`` (``polars`` / ``spark``); on Spark its ``spark_master`` and what item2vec
        could not do there (``warm_start``, ``ignored_item2vec_options``).
    tuning : dict or None
        With ``params``: the file, its age and whether this run re-tuned
        (:func:`item2vec.tuning.params_for_retrain`).
    """

    status: str = "running"
    run_id: str | None = None
    model_name: str = ""
    model_version: int | None = None
    promoted: bool = False
    reason: str | None = None
    failed_step: str | None = None
    tracking_uri: str = ""
    events: str = ""
    start: str | None = None
    end: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    reaped: list[dict[str, Any]] | None = None
    dataset: dict[str, Any] | None = None
    champion_version: int | None = None
    warm_started: bool | None = None
    served_model: str | None = None
    validation: dict[str, dict[str, Any]] | None = None
    served_choice: str | None = None
    blend_weights: dict[str, float] | None = None
    metrics: dict[str, dict[str, Any]] | None = None
    stability: dict[str, Any] | None = None
    gating: dict[str, Any] | None = None
    model_uri: str | None = None
    error: str | None = None
    seconds: float | None = None
    step_seconds: dict[str, float] | None = None
    engine: dict[str, Any] | None = None
    tuning: dict[str, Any] | None = None

    #: Left out of the JSON report until a step sets them.
    _UNTIL_SET = frozenset({"reaped", "dataset", "champion_version", "warm_started", "served_model", "validation",
                            "served_choice", "blend_weights", "metrics", "gating", "model_uri", "error", "seconds", "step_seconds",
                            "engine", "tuning"})

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: every field set so far, in field order (``stability`` once the evaluation ran)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and (f.name in self._UNTIL_SET or (f.name == "stability" and self.metrics is None)):
                continue
            out[f.name] = value
        return out


def format_report(report: RetrainReport) -> str:
    """A retraining report as a few lines and a metrics table."""
    from item2vec.evaluation import format_table

    g = report.gating or {}
    lines = [
        f"run {report.run_id}: {report.model_name} version {report.model_version} "
        f"{'PROMOTED to champion' if report.promoted else 'is the challenger'}",
        f"  reason: {report.reason}",
    ]
    if report.served_model:
        lines.append(f"  serves recommend(): {report.served_model} ({report.served_choice or ''}); "
                     "similar_items: item2vec")
    if report.blend_weights:
        lines.append("  blend weights (chosen on validation): "
                     + ", ".join(f"{n} {w:g}" for n, w in report.blend_weights.items()))
    if report.engine and report.engine.get("name") == "spark":
        lines.append(f"  engine: spark ({report.engine.get('spark_master')})"
                     + (f"; {report.engine['warm_start']}" if report.engine.get("warm_start") else ""))
    for dead in report.reaped or []:
        lines.append(f"  marked FAILED: run {dead['run_id']} (its process died during step {dead['failed_step']!r})")
    if report.stability:
        s = report.stability
        key = next((k for k in s if k.startswith("overlap@")), None)
        if key and s[key] is not None:
            lines.append(f"  neighbour stability vs the previous champion: {key} {s[key]:.3f} "
                         f"over {int(s['n_common'])} common items")
    k = report.config["k"]
    lines += ["", format_table(report.metrics or {}, k)]
    if g.get("metric") and f"@{k}" not in g["metric"]:
        lines.append(f"gating on {g['metric']}: challenger {g['challenger']:.4f}, champion {g.get('champion')}")
    return "\n".join(lines)


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
) -> RetrainReport:
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
        Where the JSON report (:meth:`RetrainReport.to_dict`) goes (also logged as ``retrain_report.json``).
    on_step : callable, optional
        Called with each step's name (:data:`STEPS`) as it starts (progress, fault injection).
    show_progress : bool

    Returns
    -------
    RetrainReport
        ``status`` ``"ok"``, the version registered, whether it was promoted and why, every model's metrics.

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
    report = RetrainReport(model_name=cfg.model_name, tracking_uri=uri, events=str(events), start=start, end=end,
                           config=cfg.to_dict())
    step = _Steps(on_step)
    job = _Job(events, cfg, uri, start, end, report, show_progress)
    try:
        _run(job, step)
    except Exception as e:
        if report.status != "failed":  # failed before the run opened
            _fail(report, step, e)
        _write_report(report, report_path)
        raise RetrainError(report.failed_step or step.step, e, report) from e
    _write_report(report, report_path)
    return report


class _Steps:
    """Times the job's steps (``with step("read"): ...``) and says which one runs."""

    def __init__(self, on_step: Callable[[str], None] | None) -> None:
        self.step = "setup"
        self.on_step = on_step
        self.record: Callable[[str], None] | None = None  # writes the step into the open run
        self.seconds: dict[str, float] = {}
        self._t0 = time.perf_counter()

    @contextlib.contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        self.step, t = step, time.perf_counter()
        log.info("retrain: %s", step)
        try:
            if self.record is not None:
                self.record(step)
            if self.on_step is not None:
                self.on_step(step)
            yield
        finally:
            self.seconds[step] = round(time.perf_counter() - t, 2)

    @property
    def total(self) -> float:
        """Seconds since the job started."""
        return round(time.perf_counter() - self._t0, 2)


@dataclass
class _Job:
    """What the steps share: the job's inputs, then what each step made."""

    events: Any
    cfg: RetrainConfig
    uri: str
    start: str | None
    end: str | None
    report: RetrainReport
    show_progress: bool
    data: Any = None  # SessionData
    champion: Any = None  # the champion's ServedModel when the run started
    champion_version: int | None = None
    emb: Any = None  # ItemEmbeddings
    i2v: Any = None  # the fitted Item2Vec
    next_model: Any = None  # the fitted NextItemRecommender
    prefixes: Any = None  # the test prefixes every model is scored on
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    served: Any = None  # the challenger's ServedModel
    score: float = float("nan")  # the challenger's gating metric
    gate: Champion | None = None  # the champion it is gated against
    decision: Decision | None = None
    tuned_bilstm: dict[str, Any] = field(default_factory=dict)  # the params file's bilstm section


def _steps(job: _Job, step: _Steps) -> None:
    """The job: one named, timed step after another."""
    with step("read"):
        events, metadata = _read(job)
    with step("prepare"):
        _prepare(job, events, metadata)
    with step("champion"):
        _champion(job)
    with step("item2vec"):
        _item2vec(job)
    with step("bilstm"):
        _bilstm(job)
    with step("evaluate"):
        _evaluate(job)
    with step("log-model"):
        info = _log_model(job)
    with step("register"):
        version = _register(job, info)
    with step("promote"):
        _promote(job, version)


def _run(job: _Job, step: _Steps) -> None:
    """Open the MLflow run, reap dead runs, run the steps; the report is logged whatever happens."""
    import mlflow

    from item2vec import tracking

    report, cfg = job.report, job.cfg
    run_name = f"retrain-{job.end or time.strftime('%Y-%m-%d')}"
    me = {"host": socket.gethostname(), "pid": str(os.getpid()), "pid_start": _process_start(os.getpid()) or ""}
    with tracking.start_run(run_name, experiment=cfg.experiment, tracking_uri=job.uri,
                            tags={"job": "retrain", "model_name": cfg.model_name, "step": "setup",
                                  **{f"retrain.{k}": v for k, v in me.items()}}) as run:
        report.run_id = run.info.run_id

        def record(name: str) -> None:
            with tracking.quiet_mlflow():
                mlflow.set_tag("step", name)

        step.record = record
        try:
            report.reaped = reap_dead_runs(cfg.model_name, tracking_uri=job.uri,
                                           experiment_id=run.info.experiment_id, by=run.info.run_id)
            _steps(job, step)
            report.status = "ok"
            report.seconds, report.step_seconds = step.total, step.seconds
        except Exception as e:
            _fail(report, step, e)
            with tracking.quiet_mlflow():
                mlflow.set_tags({"failed_step": step.step, "error": (report.error or "")[:4000]})
            raise
        finally:
            with tracking.quiet_mlflow():
                artifact = report.to_dict()
                artifact.pop("config")
                tracking.log_json(_clean(artifact), "retrain_report.json")


def _fail(report: RetrainReport, step: _Steps, e: BaseException) -> None:
    report.status, report.failed_step, report.promoted = "failed", step.step, False
    report.error = f"{type(e).__name__}: {e}"
    report.reason = f"failed at step {step.step!r}; the champion is unchanged"
    report.seconds, report.step_seconds = step.total, step.seconds


def _write_report(report: RetrainReport, path: str | os.PathLike[str] | None) -> None:
    if path is None:
        return
    from item2vec._io import atomic_file, json_default

    with atomic_file(path) as fh:
        json.dump(report.to_dict(), fh, indent=2, default=json_default)  # type: ignore[arg-type]


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


# ---------------------------------------------------------------------------
# the steps
# ---------------------------------------------------------------------------
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


def _read(job: _Job) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Step ``read``: the events of the window and the item metadata."""
    if job.cfg.engine == "spark":  # read by the executors: a Spark frame
        from item2vec.spark.readers import read_window_spark
        from item2vec.spark.session import get_spark

        events = read_window_spark(job.events, job.cfg.format, start=job.start, end=job.end,
                                   spark=get_spark(job.cfg.spark_master), **job.cfg.read)
    else:
        events = read_window(job.events, job.cfg.format, start=job.start, end=job.end, **job.cfg.read)
    return events, _metadata(job.events, job.cfg)


def _prepare(job: _Job, events: Any, metadata: pl.DataFrame | None) -> None:
    """Step ``prepare``: sessions and the train / validation / test split; logs the config and the data."""
    from item2vec import tracking
    from item2vec.data import prepare

    start, end = job.start, job.end
    job.report.engine = {"name": job.cfg.engine}
    if job.cfg.engine == "spark":  # the same rules in Spark SQL, the same SessionData
        from item2vec.spark.retrain import spark_prepare

        prepare = spark_prepare(job.cfg, job.report.engine)
    job.data = prepare(events, job.cfg.prepare, metadata=metadata,
                       name=Path(str(job.events)).name + (f"[{start or ''}..{end or ''}]" if start or end else ""))
    job.report.dataset = job.data.stats
    tracking.log_params(job.cfg.to_dict(), prefix="config")
    tracking.log_params({"events": str(job.events), "start": start, "end": end}, prefix="job")
    tracking.log_dataset(job.data.stats)


def _champion(job: _Job) -> None:
    """Step ``champion``: load the model holding the alias (none on the first run)."""
    import mlflow

    from item2vec import registry

    name = job.cfg.model_name
    version = registry.get_version_by_alias(name, registry.CHAMPION, tracking_uri=job.uri)
    if version is None:
        return
    job.champion = registry.load(f"models:/{name}@{registry.CHAMPION}", tracking_uri=job.uri)
    job.champion_version = job.report.champion_version = int(version.version)
    mlflow.set_tag("champion_version", version.version)


def _item2vec(job: _Job) -> None:
    """Step ``item2vec``: train the vectors, warm-started from the champion's when their size matches."""
    import mlflow

    from item2vec import tracking
    from item2vec.embeddings import Item2Vec

    cfg, data, init = job.cfg, job.data, None
    i2v_params = _tuned_params(job)
    if cfg.engine == "spark":
        from item2vec.embeddings import Item2VecConfig
        from item2vec.spark.retrain import spark_item2vec

        spark_item2vec(job, Item2VecConfig.from_dict(i2v_params))
        return
    if cfg.warm_start and job.champion is not None:
        want = i2v_params.get("vector_size", cfg.item2vec.vector_size)
        if job.champion.embeddings.dim == want:
            init = job.champion.embeddings
        else:
            log.warning("no warm start: the champion's vectors have size %d, this config %d",
                        job.champion.embeddings.dim, want)
    job.i2v = i2v = Item2Vec(show_progress=job.show_progress, **i2v_params).fit(data.decode(data.train), init=init)
    job.emb = i2v.embeddings_
    job.emb.metadata.update({"dataset": data.stats.get("name"), "time_range": data.stats.get("time_range")})
    for epoch, loss in enumerate(i2v.loss_history_, start=1):
        tracking.log_metrics({"loss": loss}, prefix="item2vec", step=epoch)
    tracking.log_metrics({"fit_seconds": i2v.fit_seconds_, "words_per_second": i2v.words_per_second_},
                         prefix="item2vec")
    mlflow.set_tag("warm_started", str(init is not None).lower())
    job.report.warm_started = init is not None


def _over(tuned: dict[str, Any], section: Any, default: Any) -> dict[str, Any]:
    """A params file's values under a config section's own: a value left at the section's default does not count."""
    default, given = (dict(x) if isinstance(x, dict) else x.to_dict() for x in (default, section))
    return {**tuned, **{k: v for k, v in given.items() if not (k in tuned and default.get(k, object()) == v)}}


def _tuned_params(job: _Job) -> dict[str, Any]:
    """The item2vec options: the params file's (re-tuned first when due), under the config's own."""
    cfg = job.cfg
    if cfg.params is None:
        return cfg.item2vec.to_dict()
    import mlflow

    from item2vec.embeddings import Item2VecConfig
    from item2vec.tuning import params_for_retrain

    i2v, job.tuned_bilstm, job.report.tuning = params_for_retrain(
        cfg.params, job.data, every_days=cfg.retune_every_days, n_trials=cfg.retune_trials,
        minutes=cfg.retune_minutes, mlflow=True)
    mlflow.set_tag("retuned", str(job.report.tuning["retuned"]).lower())
    return _over(i2v, cfg.item2vec, Item2VecConfig())


def _bilstm(job: _Job) -> None:
    """Step ``bilstm``: train the next-item model on top of the vectors (when ``use_bilstm``)."""
    if not job.cfg.use_bilstm:
        return
    from item2vec import tracking
    from item2vec.nextitem import NextItemRecommender

    data = job.data
    b = job.cfg.bilstm
    flat = _over(job.tuned_bilstm, b, RetrainConfig().bilstm)
    if flat.get("init") == "item2vec" and flat.get("embedding_dim") == job.cfg.item2vec.vector_size:
        flat["embedding_dim"] = job.emb.dim  # as wide as the vectors trained (the params file may change their size)
    b = BiLSTMConfig.from_dict(flat)
    model = NextItemRecommender(embeddings=job.emb, vocab=data.vocab, init=b.init, freeze=b.freeze,  # type: ignore[arg-type]
                                valid_fraction=b.valid_fraction, callback=tracking.epoch_logger("bilstm"),
                                config=b.config, train_config=b.train_config, show_progress=job.show_progress)
    model.fit(data.train, n_items=data.n_items, valid=data.valid if data.valid else None)
    r = model.train_result_
    tracking.log_metrics({"best_epoch": r.best_epoch, "epochs_run": r.epochs_run, "train_seconds": r.seconds},
                         prefix="bilstm")
    job.next_model = model


def _evaluate(job: _Job) -> None:
    """Step ``evaluate``: score every model on the test prefixes, choose the served one, gate it."""
    from item2vec.evaluation import make_prefixes

    job.prefixes = make_prefixes(job.data.test)
    servable = _fit_candidates(job)
    job.served = _serve(job, servable)
    _gate(job)


def _measure(model: Any, prefixes: Any, cfg: RetrainConfig) -> dict[str, Any]:
    """Metrics at ``k``, and the gating metric's own cut-off when it differs."""
    from item2vec.evaluation import evaluate

    res = evaluate(model, prefixes, k=cfg.k)
    if cfg.gating_k != cfg.k:
        res.update({m: v for m, v in evaluate(model, prefixes, k=cfg.gating_k).items() if "@" in m})
    return res


def _score(job: _Job, name: str, model: Any, fit_seconds: float = 0.0) -> None:
    job.results[name] = {**_measure(model, job.prefixes, job.cfg), "fit_seconds": round(fit_seconds, 3)}


def _fit_candidates(job: _Job) -> dict[str, Any]:
    """Fit the baselines and score every model; returns the models that can serve, by name.

    Every model but the BiLSTM (trained by its own step) comes from the one registry,
    :func:`item2vec.recommenders.fitted_models`; item2vec on the vectors of the ``item2vec`` step.
    """
    from item2vec.recommenders import fitted_models

    cfg, data = job.cfg, job.data
    blend = cfg.blend if "blend" in cfg.candidates else []
    names = [n for n in dict.fromkeys([*cfg.baselines, *[c for c in cfg.candidates if c not in ("bilstm", "blend")],
                                       *blend]) if n != "item2vec"]
    servable: dict[str, Any] = {}
    with _torch_threads(cfg.bilstm.train_config.num_threads):
        for name, model, seconds in fitted_models(data, [*names, "item2vec"], embeddings=job.emb):
            if name != "item2vec":  # item2vec is scored below, with the seconds its vectors took
                _score(job, name, model, seconds)
            servable[name] = model
        _score(job, "item2vec", servable["item2vec"], job.i2v.fit_seconds_)
        if job.next_model is not None:
            servable["bilstm"] = job.next_model
            _score(job, "bilstm", job.next_model, job.next_model.train_result_.seconds)
            if blend:
                _blend(job, servable, blend)
    return servable


def _blend(job: _Job, servable: dict[str, Any], members: list[str]) -> None:
    """The candidate ``blend``: the BiLSTM and ``members``, weights chosen on the validation days."""
    from item2vec.blend import Blend

    cfg, data = job.cfg, job.data
    t0 = time.perf_counter()
    try:
        model = Blend([job.next_model, *[servable[n] for n in members]], k=cfg.gating_k)
        model.fit(data.train, data.n_items, repeats_dropped=data.repeats_dropped, valid=data.valid)
    except ValueError as e:  # no validation predictions to choose the weights on
        log.warning("retrain: no blend candidate: %s", e)
        return
    servable["blend"] = model
    job.report.blend_weights = dict(zip(["bilstm", *members], model.weights_, strict=True))
    if not data.repeats_dropped:
        job.report.blend_weights["last_item_factor"] = model.last_item_factor_
    _score(job, "blend", model, time.perf_counter() - t0)


def _serve(job: _Job, servable: dict[str, Any]) -> Any:
    """The challenger: the candidate best on the validation days behind ``recommend()``, item2vec behind ``similar_items``."""
    import mlflow

    from item2vec import registry, tracking

    cfg, data, report = job.cfg, job.data, job.report
    with _torch_threads(cfg.bilstm.train_config.num_threads):
        name, validation, choice = _choose_served([c for c in cfg.candidates if c in servable], servable, data.valid,
                                                  lambda m, p: _measure(m, p, cfg), cfg.gating_metric)
    report.served_model, report.validation, report.served_choice = name, validation, choice
    mlflow.set_tag("served_model", name)
    tracking.log_metrics(dict(validation.items()), prefix="valid")
    chosen = None if name == "item2vec" else servable[name]
    if chosen is not None and chosen is not job.next_model:
        chosen.vocab = data.vocab  # the baseline serves in external ids
    return registry.ServedModel(job.emb, chosen, info={"run_id": report.run_id, "data": data.stats.get("name"),
                                                       "time_range": data.stats.get("time_range"),
                                                       "served_model": name})


def _gate(job: _Job) -> None:
    """Both served models through the same code path on the same test prefixes, then :func:`~item2vec.registry.decide`."""
    from item2vec import tracking
    from item2vec.registry import Champion, decide

    cfg, data, report = job.cfg, job.data, job.report
    with _torch_threads(cfg.bilstm.train_config.num_threads):
        _score(job, "challenger", job.served.recommender(data.vocab).fit(data.train, n_items=data.n_items))
        if job.champion is not None:
            _score(job, "champion", job.champion.recommender(data.vocab).fit(data.train, n_items=data.n_items))
    report.metrics = job.results
    tracking.log_evaluation({"k": cfg.k, "n_predictions": len(job.prefixes), "models": job.results})
    report.stability = None
    if job.champion is not None:
        stability = neighbour_stability(job.emb, job.champion.embeddings, k=cfg.stability_k)
        report.stability = _clean(stability)
        tracking.log_metrics(stability, prefix="stability")
    metric = cfg.gating_metric
    job.score = float(job.results["challenger"][metric])
    if job.champion_version is not None:
        job.gate = Champion(job.champion_version, float(job.results["champion"][metric]))
    job.decision = decide(job.score, job.gate, cfg)
    report.gating = {"metric": metric, "challenger": job.score, "champion": None if job.gate is None else job.gate.score,
                     "champion_version": job.champion_version, "min_improvement": cfg.min_improvement}


def _log_model(job: _Job) -> Any:
    """Step ``log-model``: the vectors (and their picture), then the served model; returns MLflow's model info."""
    from item2vec import registry, tracking

    md, cfg = job.data.metadata, job.cfg
    tracking.log_embeddings(job.emb, categories=tracking.item_categories(md), labels=tracking.item_titles(md),
                            tsne=cfg.tsne, max_items=cfg.tsne_max_items)
    return registry.log_model(job.served, name="model")


def _register(job: _Job, info: Any) -> int:
    """Step ``register``: a new version, tagged with its gating numbers and ``promoted = pending``."""
    import mlflow

    from item2vec import tracking

    cfg, report, data = job.cfg, job.report, job.data
    metric, served = cfg.gating_metric, report.served_model or ""
    validation = report.validation or {}
    key = tracking.metric_key(metric)
    tags = {
        "gating_metric": metric, f"challenger_{key}": f"{job.score:.6f}",
        f"champion_{key}": "" if job.gate is None else f"{job.gate.score:.6f}",
        "previous_champion": "" if job.champion_version is None else str(job.champion_version),
        "data_end": str((data.stats.get("time_range") or ["", ""])[1]),
        "promoted": "pending", "reason": "registered; the promotion has not settled yet",
        "served_model": served,
        "next_model": {"item2vec": "item2vec-last"}.get(served, served),
        f"valid_{key}": "" if served not in validation else f"{validation[served][metric]:.6f}",
        "warm_started": str(report.warm_started).lower(),
    }
    if report.stability:
        tags[f"stability_overlap_at_{cfg.stability_k}"] = str(report.stability.get(f"overlap@{cfg.stability_k}"))
    with tracking.quiet_mlflow():
        mv = mlflow.register_model(info.model_uri, cfg.model_name, tags=tags)
    report.model_version = int(mv.version)
    report.model_uri = f"models:/{cfg.model_name}/{mv.version}"
    mlflow.set_tag("model_version", mv.version)
    return int(mv.version)


def _promote(job: _Job, version: int) -> None:
    """Step ``promote``: compare-and-set under the alias lock; the tags say what the alias did."""
    import mlflow

    from item2vec import registry, tracking

    cfg, uri = job.cfg, job.uri
    key = tracking.metric_key(cfg.gating_metric)
    with registry.alias_lock(cfg.model_name, tracking_uri=uri):
        _regate(job)
        promote, reason = job.decision.promote, job.decision.reason  # type: ignore[union-attr]
        registry.set_alias(cfg.model_name, version, registry.CHAMPION if promote else registry.CHALLENGER,
                           tracking_uri=uri)
        # written after the alias moved (a run killed in between is settled by the next run's reap_dead_runs)
        registry.set_version_tags(cfg.model_name, version, {
            "promoted": str(promote).lower(), "reason": reason,
            f"champion_{key}": "" if job.gate is None else f"{job.gate.score:.6f}",
            "previous_champion": "" if job.gate is None else str(job.gate.version),
        }, tracking_uri=uri)
    mlflow.set_tags({"promoted": str(promote).lower(), "reason": reason})
    tracking.log_metrics({"promoted": float(promote)})
    job.report.promoted, job.report.reason = promote, reason


def _regate(job: _Job) -> None:
    """When another run moved the alias since the ``champion`` step, gate again against the model there now."""
    from item2vec import registry
    from item2vec.registry import Champion, decide

    cfg, data = job.cfg, job.data
    now = registry.get_version_by_alias(cfg.model_name, registry.CHAMPION, tracking_uri=job.uri)
    now_version = None if now is None else int(now.version)
    if now_version == job.champion_version:
        return
    gate = None
    if now_version is not None:
        current = registry.load(f"models:/{cfg.model_name}/{now_version}", tracking_uri=job.uri)
        with _torch_threads(cfg.bilstm.train_config.num_threads):
            res = _measure(current.recommender(data.vocab).fit(data.train, n_items=data.n_items), job.prefixes, cfg)
        job.results["champion"] = {**res, "fit_seconds": 0.0}
        gate = Champion(now_version, float(res[cfg.gating_metric]))
    else:
        job.results.pop("champion", None)
    job.decision = decide(job.score, gate, cfg, regated=True, regated_from=job.champion_version)
    job.gate = gate
    job.report.gating = {**(job.report.gating or {}), "champion": None if gate is None else gate.score,
                         "champion_version": now_version, "regated": True}


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
