"""The MLflow flavour of the served model: a pyfunc logged from code, log/load, aliases, history.

The served object itself (requests in, answers out) is :class:`~item2vec.serving.ServedModel`.
:func:`log_model` ships one as an MLflow ``pyfunc`` model **from code**: the
model is the small file ``item2vec/pyfunc_model.py`` (which builds an
:class:`Item2VecPyfunc`) plus the artifact ``served``, a
:class:`~item2vec.serving.ServedModel` directory of JSON and ``.npy``/``.npz``
files with ``checksums.json``. Nothing in a logged model is pickled:
``mlflow models serve`` runs that reviewable file, and :func:`load`
(``item2vec.load``) runs no code from the model at all (it reads the artifact).

The pyfunc's ``predict`` takes a DataFrame (or records, or a dict of columns)
with an ``item_id`` column (similar items) or a ``session`` column (a list of
item ids; the next items), with ``params={"k": ..., "filter_items": [...],
"exclude_session": ...}``. Each row gets ``item_ids``, ``scores``,
``unknown`` and ``n_ignored`` (see :mod:`item2vec.serving`). A bad request
(``k <= 0``, no such column) is an MLflow ``INVALID_PARAMETER_VALUE`` error:
HTTP 400 with one sentence, no stack trace.

:func:`load` opens a registry URI (``models:/NAME@champion``), a run's model,
an MLflow model directory, a :class:`~item2vec.serving.ServedModel` directory
or a plain :class:`~item2vec.embeddings.ItemEmbeddings` directory.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from item2vec.exceptions import DataError, FormatVersionError, Item2VecError
from item2vec.serving import ServedModel, ServedRecommender

__all__ = [
    "CHAMPION",
    "CHALLENGER",
    "Champion",
    "Decision",
    "Item2VecPyfunc",
    "ServedModel",
    "alias_lock",
    "ServedRecommender",
    "check_model_name",
    "decide",
    "format_history",
    "get_version_by_alias",
    "load",
    "log_model",
    "registry_history",
    "set_alias",
    "set_version_tags",
]

CHAMPION = "champion"
CHALLENGER = "challenger"
#: The models-from-code file: MLflow copies it into the logged model and runs it to serve.
MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
ARTIFACT = "served"


# ---------------------------------------------------------------------------
# MLflow pyfunc
# ---------------------------------------------------------------------------
#: The pyfunc keeps every item's top neighbours in memory at load (:meth:`ItemEmbeddings.cache_neighbours`)
#: for catalogues up to this size (~7 s and 12 MB at 20,000 items), ...
NEIGHBOUR_CACHE_MAX_ITEMS = 20_000
#: ... this many per item (requests for more, or with ``filter_items``, search as before).
NEIGHBOUR_CACHE_K = 50


class Item2VecPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow's view of a :class:`~item2vec.serving.ServedModel` directory (the artifact ``served``).

    At load it caches every item's :data:`NEIGHBOUR_CACHE_K` nearest items when the
    catalogue has at most :data:`NEIGHBOUR_CACHE_MAX_ITEMS` items, so an item request
    is a table lookup. The model config's ``neighbour_cache`` (``"auto"`` as logged)
    sets the number for any catalogue size, 0 for none: ``mlflow.pyfunc.load_model(uri,
    model_config={"neighbour_cache": 0})``, or for ``mlflow models serve`` the environment
    variable ``MLFLOW_PYFUNC_INFERENCE_CONFIG='{"neighbour_cache": 100}'``.
    """

    def load_context(self, context: Any) -> None:
        self.served = ServedModel.load(context.artifacts[ARTIFACT])
        emb = self.served.embeddings
        k = dict(getattr(context, "model_config", None) or {}).get("neighbour_cache", "auto")
        if k == "auto":
            k = NEIGHBOUR_CACHE_K if len(emb) <= NEIGHBOUR_CACHE_MAX_ITEMS else 0
        emb.cache_neighbours(k)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame | list[dict[str, Any]]:
        """Answer a table of requests; a bad request raises an MLflow ``INVALID_PARAMETER_VALUE`` (HTTP 400).

        Returns a DataFrame (:meth:`~item2vec.serving.ServedModel.predict_frame`),
        except in MLflow's scoring server, which writes the answer as JSON
        records: there it gets those records as a list of dicts
        (:meth:`~item2vec.serving.ServedModel.predict_records`), the same JSON
        without a DataFrame built only to be taken apart again.
        """
        params = dict(params or {})
        filter_items = params.get("filter_items")
        answer = self.served.predict_records if _in_scoring_server() else self.served.predict_frame
        try:
            return answer(
                model_input,
                k=_int_param(params.get("k", 10)),
                filter_items=None if filter_items is None else list(np.asarray(filter_items).reshape(-1).tolist()),
                exclude_session=bool(params.get("exclude_session", False)),
            )
        except (Item2VecError, ValueError, TypeError) as e:
            raise _BadRequest(str(e)) from None


def _in_scoring_server() -> bool:
    """Whether this process is MLflow's scoring server (``mlflow models serve``), which sets this variable."""
    return os.environ.get("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "").lower() in ("true", "1")


class _BadRequest(MlflowException):
    """A request the model refuses: HTTP 400 whose message is the one sentence given, with no stack trace.

    MLflow's scoring server rewrites ``message`` to prepend the whole request's
    data; this message ignores that rewrite, so the answer stays one sentence.
    """

    def __init__(self, sentence: str) -> None:
        self._sentence = sentence
        super().__init__(sentence, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        return self._sentence

    @message.setter
    def message(self, value: str) -> None:
        pass


def _int_param(k: Any) -> Any:
    return int(k) if isinstance(k, (int, np.integer)) and not isinstance(k, bool) else k


def _signature(served: ServedModel, k: int = 10) -> tuple[Any, Any]:
    """(signature, input example): the answer's columns and the params ``k``, filters; no input schema.

    The request columns (``item_id`` and/or ``session``, see the input example)
    are checked by :meth:`~item2vec.serving.ServedModel.predict_records`, which
    names what it expected and what came. Declaring them as well made MLflow check
    and rebuild every request's DataFrame on the request path: a third of the
    scoring server's time for a one-item request (``python -m benchmarks.serving
    --profile``) for a check of two optional untyped columns (untyped because a
    request mixes item and session rows, so a column of integer ids comes with
    gaps, which pandas holds as floats; :meth:`~item2vec.serving.ServedModel.to_id`
    turns them back into the catalogue's ids). Without an input schema
    ``mlflow.pyfunc.spark_udf`` names its columns only when they come as one
    struct column, as :func:`item2vec.spark.batch.recommend_sessions` passes them.
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema

    id_type = "long" if served.ids_are_int else "string"
    outputs = Schema([
        ColSpec("string", "query"),
        ColSpec(Array(id_type), "item_ids"),
        ColSpec(Array("double"), "scores"),
        ColSpec("boolean", "unknown"),
        ColSpec("long", "n_ignored"),
    ])
    params = ParamSchema([
        ParamSpec("k", "long", k),
        ParamSpec("filter_items", id_type, [], (-1,)),
        ParamSpec("exclude_session", "boolean", False),
    ])
    first = served.embeddings.ids[:2].tolist()
    example = pd.DataFrame({"item_id": [first[0], None], "session": [None, first]})
    return ModelSignature(inputs=None, outputs=outputs, params=params), example


def log_model(
    served: ServedModel,
    *,
    name: str = "model",
    registered_model_name: str | None = None,
    tags: dict[str, Any] | None = None,
) -> Any:
    """Log ``served`` as a pyfunc model (from code) in the active run, and register it when a name is given.

    Parameters
    ----------
    served : ServedModel
    name : str
        The model's name in the run.
    registered_model_name : str, optional
        Checked with :func:`check_model_name` before anything is written.
    tags : dict, optional

    Returns
    -------
    mlflow.models.model.ModelInfo
        ``.model_uri``; ``.registered_model_version`` when registered.
    """
    from item2vec.tracking import quiet_mlflow

    if registered_model_name is not None:
        check_model_name(registered_model_name)
    signature, example = _signature(served)
    with tempfile.TemporaryDirectory() as tmp, quiet_mlflow():
        path = served.save(Path(tmp) / ARTIFACT)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(MODEL_CODE),
            artifacts={ARTIFACT: str(path)},
            signature=signature,
            input_example=example,
            model_config={"neighbour_cache": "auto"},  # declared so that a load may override it
            pip_requirements=_requirements(),
            registered_model_name=registered_model_name,
            tags={k: str(v) for k, v in (tags or {}).items()} or None,
        )


def _requirements() -> list[str]:
    """Pinned requirements of the serving environment (given, so MLflow need not infer them in a subprocess).

    ``item2vec`` itself must be installed where the model is served
    (``mlflow models serve --env-manager local`` from this environment).
    """
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("mlflow", "numpy", "pandas", "polars", "pyarrow", "scipy", "gensim", "torch", "scikit-learn"):
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return out


def check_model_name(name: Any) -> str:
    """Refuse a registered-model name that MLflow, or a ``models:/NAME@ALIAS`` URI, would refuse, before any work.

    MLflow refuses empty names, ``/`` and ``:``, and names that are not one
    plain path (``..``); ``@`` would end the name inside ``models:/NAME@champion``.

    Returns
    -------
    str
        ``name``, unchanged.

    Raises
    ------
    DataError
        Saying what a name may not hold and what came.
    """
    if not isinstance(name, str):
        raise DataError(f"model name must be a string, got {type(name).__name__}")
    bad = [c for c in ("/", ":", "@", "\\") if c in name]
    if (not name.strip() or name != name.strip() or bad or name in (".", "..")
            or posixpath.normpath(name) != name or any(ord(c) < 32 for c in name)):
        raise DataError(
            f"model name {name!r} would be refused by the MLflow registry: expected a non-empty name without "
            "'/', ':', '@', '\\', control characters, surrounding spaces, or '.'/'..' alone"
        )
    return name


# ---------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------
def _client(tracking_uri: str | None = None) -> Any:
    from mlflow.tracking import MlflowClient

    from item2vec.tracking import prepare_store

    uri = prepare_store(tracking_uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def get_version_by_alias(name: str, alias: str = CHAMPION, tracking_uri: str | None = None) -> Any | None:
    """The model version holding ``alias``, or ``None`` (no such model or alias)."""
    from mlflow.exceptions import MlflowException

    from item2vec.tracking import quiet_mlflow

    with quiet_mlflow():
        try:
            return _client(tracking_uri).get_model_version_by_alias(name, alias)
        except MlflowException:
            return None


def set_alias(name: str, version: str | int, alias: str, tracking_uri: str | None = None) -> None:
    """Point ``alias`` of model ``name`` at ``version`` (an alias names one version at a time)."""
    from item2vec.tracking import quiet_mlflow

    with quiet_mlflow():
        _client(tracking_uri).set_registered_model_alias(name, alias, str(version))


def set_version_tags(name: str, version: str | int, tags: dict[str, Any], tracking_uri: str | None = None) -> None:
    """Set (overwrite) tags of one model version."""
    from item2vec.tracking import quiet_mlflow

    with quiet_mlflow():
        client = _client(tracking_uri)
        for key, value in tags.items():
            client.set_model_version_tag(name, str(version), key, str(value))


@contextlib.contextmanager
def alias_lock(name: str, tracking_uri: str | None = None) -> Iterator[None]:
    """Hold the lock that serialises alias moves of model ``name`` (read champion → gate → move alias).

    On a SQLite store it is an exclusive ``flock`` on ``<db>.<name>.alias.lock``
    beside the database file: concurrent jobs on that machine (which is where a
    SQLite store can be shared) take turns, and a killed holder releases it.
    MLflow has no compare-and-set on aliases, so for a tracking server the block
    runs unlocked: the re-read just before the move narrows the race, it cannot
    close it (run one retraining job per model there).
    """
    from item2vec.tracking import _sqlite_path, resolve_tracking_uri

    db = _sqlite_path(resolve_tracking_uri(tracking_uri))
    try:
        import fcntl
    except ImportError:  # Windows: no flock
        fcntl = None  # type: ignore[assignment]
    if db is None or fcntl is None:
        yield
        return
    safe = re.sub(r"[^\w.-]+", "_", name)
    lock = db.resolve().parent / f".{db.name}.{safe}.alias.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class GateConfig(Protocol):
    """What :func:`decide` reads from a config (:class:`~item2vec.retrain.RetrainConfig` has both)."""

    gating_metric: str
    min_improvement: float


@dataclass(frozen=True)
class Champion:
    """The model holding the ``champion`` alias and its gating score on the challenger's test data."""

    version: int
    score: float


@dataclass(frozen=True)
class Decision:
    """Whether the challenger takes the ``champion`` alias, and the sentence that says why."""

    promote: bool
    reason: str
    regated: bool = False


def decide(challenger: float, champion: Champion | None, config: GateConfig, *,
           regated_from: int | None = None, regated: bool = False) -> Decision:
    """Promote or not: the challenger's gating score against the champion's, on the same test data.

    The challenger wins when ``challenger > champion.score + config.min_improvement``
    (a tie stays with the champion); with no champion it wins. A score that is
    not a number (NaN) never wins, and a NaN champion is never beaten.

    Parameters
    ----------
    challenger : float
        The challenger's ``config.gating_metric``.
    champion : Champion or None
        The current champion (its version and score), ``None`` when there is none.
    config : GateConfig
        ``gating_metric`` (named in the reason) and ``min_improvement``.
    regated_from : int, optional
        With ``regated``: the champion version the run saw before another run moved the alias.
    regated : bool
        The decision is taken again at promotion because the champion changed meanwhile; the reason says so.

    Returns
    -------
    Decision
        ``promote``, ``reason`` and ``regated``.
    """
    metric, margin = config.gating_metric, config.min_improvement
    if champion is None:
        promote, reason = True, "no champion yet"
    elif challenger > champion.score + margin:
        promote, reason = True, (f"{metric} {challenger:.4f} beats the champion (v{champion.version}) "
                                 f"{champion.score:.4f} on the same test data")
    else:
        promote, reason = False, (f"{metric} {challenger:.4f} does not beat the champion (v{champion.version}) "
                                  f"{champion.score:.4f}" + (f" by more than {margin}" if margin else ""))
    if regated:
        reason += (f" (re-gated at promotion: the champion had moved from "
                   f"{f'v{regated_from}' if regated_from is not None else 'none'} to "
                   f"{f'v{champion.version}' if champion is not None else 'none'})")
    return Decision(promote, reason, regated)


def registry_history(name: str, tracking_uri: str | None = None) -> list[dict[str, Any]]:
    """Every version of model ``name``, oldest first: version, run id, aliases, tags, creation time."""
    from item2vec.tracking import quiet_mlflow

    with quiet_mlflow():
        client = _client(tracking_uri)
        versions = client.search_model_versions(f"name = '{name}'")
        out = []
        for v in sorted(versions, key=lambda v: int(v.version)):
            full = client.get_model_version(name, v.version)
            out.append({
                "version": int(full.version),
                "run_id": full.run_id,
                "aliases": list(full.aliases or []),
                "tags": dict(full.tags or {}),
                "created": int(full.creation_timestamp),
            })
        return out


def format_history(hist: list[dict[str, Any]]) -> str:
    """Registry versions as a Markdown table (version, aliases, data end, gating numbers, reason)."""
    import datetime as dt

    rows = ["| version | aliases | data up to | served model | challenger | champion | promoted | reason |",
            "|---|---|---|---|---|---|---|---|"]
    for v in hist:
        t = v["tags"]
        metric = t.get("gating_metric", "")
        key = metric.replace("@", "_at_")
        rows.append(
            f"| {v['version']} | {', '.join(v['aliases'])} | {t.get('data_end', '')[:10]} | {t.get('served_model', t.get('next_model', ''))} "
            f"| {_num(t.get('challenger_' + key))} | {_num(t.get('champion_' + key))} "
            f"| {t.get('promoted', '')} | {t.get('reason', '')} |"
        )
    created = dt.datetime.fromtimestamp(hist[-1]["created"] / 1000).isoformat(timespec="seconds")
    rows.append(f"\n({len(hist)} versions; latest registered {created})")
    return "\n".join(rows)


def _num(s: str | None) -> str:
    try:
        return f"{float(s):.4f}" if s else ""
    except ValueError:
        return str(s)


def _is_remote(uri: str) -> bool:
    return uri.startswith(("models:/", "runs:/", "mlflow-artifacts:/", "s3://", "gs://", "http://", "https://",
                           "dbfs:/", "file:"))


def load(uri: str | os.PathLike[str], tracking_uri: str | None = None) -> ServedModel:
    """Open a served model from the registry or from disk, running no code from the model.

    Parameters
    ----------
    uri : str or path
        ``models:/NAME@champion`` (or ``models:/NAME/3``), ``runs:/RUN_ID/model``,
        an MLflow model directory, a :class:`~item2vec.serving.ServedModel`
        directory, or an :class:`~item2vec.embeddings.ItemEmbeddings` directory
        (similar items; ``recommend`` then uses the last item's neighbours).
    tracking_uri : str, optional
        Where the registry lives (see :func:`item2vec.tracking.resolve_tracking_uri`).

    Returns
    -------
    ServedModel
        With ``similar_items(product_id, k)`` and ``recommend(session, k)``.

    Raises
    ------
    FileNotFoundError
        A local path that holds no model.
    FormatVersionError
        An MLflow model that is not an item2vec served model.
    CorruptModelError
        A model file that fails its checksum (the message names it).
    """
    s = os.fspath(uri)
    if not _is_remote(s):
        p = Path(s)
        if not p.exists():
            raise FileNotFoundError(f"no model at {s!r}: expected models:/NAME@ALIAS, runs:/..., or a model directory")
        if not (p / "MLmodel").exists():
            return ServedModel.load(p)
        return _load_mlflow_dir(p, s)
    import mlflow.artifacts

    from item2vec.tracking import quiet_mlflow, use_tracking_uri

    with tempfile.TemporaryDirectory() as tmp:
        with quiet_mlflow(), use_tracking_uri(tracking_uri):
            local = mlflow.artifacts.download_artifacts(artifact_uri=s, dst_path=tmp)
        return _load_mlflow_dir(Path(local), s)


def _load_mlflow_dir(path: Path, uri: str) -> ServedModel:
    """The :class:`ServedModel` inside a downloaded MLflow model directory (its ``served`` artifact)."""
    from mlflow.models import Model

    conf = Model.load(path / "MLmodel").flavors.get("python_function", {})
    artifact = (conf.get("artifacts") or {}).get(ARTIFACT) or {}
    rel = artifact.get("path") if isinstance(artifact, dict) else None
    if not rel or not (path / rel / "served.json").exists():
        raise FormatVersionError(f"{uri} is an MLflow model but not an item2vec served model (no '{ARTIFACT}' artifact)")
    return ServedModel.load(path / rel)
