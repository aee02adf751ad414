"""The served model: item embeddings + next-item model as one MLflow pyfunc, and the registry around it.

:class:`ServedModel` is what a user or a server talks to:
``similar_items(product_id, k)`` and ``recommend(session, k)``, both in external
ids, both returning ``(ids, scores)``. It is saved as one directory
(``embeddings/``, optionally ``next_model/``, ``served.json``) which
:func:`log_model` ships as the artifact of an MLflow ``pyfunc`` model.

The pyfunc's ``predict`` takes a DataFrame with an ``item_id`` column (similar
items) or a ``session`` column (a list of item ids; the next items), with
``params={"k": ...}``. Each row gets ``item_ids``, ``scores`` and ``unknown``:
an id (or a session) the model does not know gets empty lists and
``unknown=True``, never an error. Session items the model does not know are
skipped and counted in ``n_ignored``.

:func:`load` (``item2vec.load``) opens a registry URI (``models:/NAME@champion``),
a run's model, an MLflow model directory, a :class:`ServedModel` directory or a
plain :class:`~item2vec.embeddings.ItemEmbeddings` directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from item2vec._io import atomic_dir
from item2vec.base import Recommender
from item2vec.data.vocab import ItemVocab
from item2vec.embeddings import ItemEmbeddings
from item2vec.exceptions import DataError, FormatVersionError, UnknownItemError
from item2vec.index import normalize

__all__ = [
    "CHAMPION",
    "CHALLENGER",
    "ServedModel",
    "alias_lock",
    "ServedRecommender",
    "get_version_by_alias",
    "load",
    "log_model",
    "registry_history",
    "set_alias",
    "set_version_tags",
]

CHAMPION = "champion"
CHALLENGER = "challenger"
FORMAT_VERSION = 1
KIND = "item2vec.ServedModel"


# ---------------------------------------------------------------------------
# the serving object
# ---------------------------------------------------------------------------
class ServedModel:
    """Similar items (item2vec) and next items (BiLSTM, else item2vec) in external ids.

    Parameters
    ----------
    embeddings : ItemEmbeddings
    next_model : NextItemRecommender, optional
        Trained with ``vocab=`` so it can map external ids. Without it,
        :meth:`recommend` answers with the neighbours of the session's last known item.
    info : dict, optional
        Free-form facts saved alongside (run id, data range, metrics).
    """

    def __init__(self, embeddings: ItemEmbeddings, next_model: Any = None, info: dict[str, Any] | None = None) -> None:
        if not isinstance(embeddings, ItemEmbeddings):
            raise TypeError(f"embeddings must be an ItemEmbeddings, got {type(embeddings).__name__}")
        if next_model is not None and getattr(next_model, "vocab", None) is None:
            raise DataError("the next-item model has no vocab; train it with vocab=SessionData.vocab to serve it")
        self.embeddings = embeddings
        self.next_model = next_model
        self.info = dict(info or {})

    def __repr__(self) -> str:
        nxt = getattr(self.next_model, "name", "bilstm") if self.next_model is not None else "item2vec last-item"
        return f"ServedModel(n_items={len(self.embeddings)}, dim={self.embeddings.dim}, next={nxt})"

    @property
    def ids_are_int(self) -> bool:
        return self.embeddings.ids.dtype.kind in "iu"

    def _coerce(self, item: Any) -> Any:
        """The id as this model spells it: ``"42"`` → ``42`` for int ids, ``42`` → ``"42"`` for str ids."""
        if isinstance(item, np.generic):
            item = item.item()
        if self.ids_are_int and isinstance(item, str) and item.strip().lstrip("-").isdigit():
            return int(item)
        if not self.ids_are_int and isinstance(item, int) and not isinstance(item, bool):
            return str(item)
        return item

    # -- queries ------------------------------------------------------------------
    def similar_items(self, product_id: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to ``product_id`` (cosine), best first.

        Raises
        ------
        UnknownItemError
            (a ``KeyError``) naming the id when the model does not know it.
        """
        return self.embeddings.similar_items(self._coerce(product_id), k=k)

    def recommend(self, session: Sequence[Any], k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most likely next items after ``session`` (external ids, oldest first).

        Items the model does not know are skipped.

        Raises
        ------
        UnknownItemError
            When no item of the session is known.
        ValueError
            For an empty session or ``k <= 0``.
        """
        if isinstance(session, (str, bytes)) or not isinstance(session, (Sequence, np.ndarray)):
            raise TypeError(f"session must be a list of item ids, got {type(session).__name__}")
        items = [self._coerce(x) for x in session]
        if not items:
            raise ValueError("session is empty; expected at least one item id")
        if self.next_model is not None:
            idx = self.next_model.vocab.indices(items, missing="drop")
            if len(idx) == 0:
                raise UnknownItemError(items[-1], f"none of the session's items is known: {items!r}")
            ids, scores = self.next_model.recommend(idx, k)
            ok = np.isfinite(scores)
            return self.next_model.vocab.lookup(ids[ok]), scores[ok]
        known = [x for x in items if x in self.embeddings]
        if not known:
            raise UnknownItemError(items[-1], f"none of the session's items is known: {items!r}")
        return self.embeddings.similar_items(known[-1], k=k)

    def recommender(self, vocab: ItemVocab) -> ServedRecommender:
        """This model as a :class:`~item2vec.base.Recommender` over another vocabulary (unfitted)."""
        return ServedRecommender(self, vocab)

    # -- the pyfunc protocol ------------------------------------------------------------
    def predict_frame(self, frame: Any, k: int = 10) -> Any:
        """Answer a DataFrame of requests (``item_id`` or ``session`` column); see the module docstring."""
        import pandas as pd

        if not isinstance(frame, pd.DataFrame):
            frame = pd.DataFrame(frame)
        has_item, has_session = "item_id" in frame.columns, "session" in frame.columns
        if not (has_item or has_session):
            raise DataError(
                f"expected a column 'item_id' (similar items) or 'session' (next items), got {list(frame.columns)}"
            )
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        rows = []
        for rec in frame.to_dict(orient="records"):
            session = rec.get("session") if has_session else None
            if session is not None and not (isinstance(session, float) and np.isnan(session)):
                rows.append(self._answer_session(session, int(k)))
            else:
                item = rec.get("item_id")
                if item is None or (isinstance(item, float) and np.isnan(item)):
                    raise DataError(f"a row has neither an item_id nor a session: {rec!r}")
                rows.append(self._answer_item(item, int(k)))
        return pd.DataFrame(rows, columns=["query", "item_ids", "scores", "unknown", "n_ignored"])

    def _answer_item(self, item: Any, k: int) -> dict[str, Any]:
        try:
            ids, scores = self.similar_items(item, k)
        except (UnknownItemError, TypeError):
            return {"query": "item_id", "item_ids": [], "scores": [], "unknown": True, "n_ignored": 0}
        return {"query": "item_id", "item_ids": ids.tolist(), "scores": np.round(scores, 6).tolist(),
                "unknown": False, "n_ignored": 0}

    def _answer_session(self, session: Any, k: int) -> dict[str, Any]:
        if isinstance(session, np.ndarray):
            session = session.tolist()
        if isinstance(session, (str, int)):
            session = [session]
        items = [self._coerce(x) for x in session]
        vocab = self.next_model.vocab if self.next_model is not None else self.embeddings.vocab
        n_ignored = sum(1 for x in items if x not in vocab)
        try:
            ids, scores = self.recommend(items, k)
        except (UnknownItemError, ValueError):
            return {"query": "session", "item_ids": [], "scores": [], "unknown": True, "n_ignored": n_ignored}
        return {"query": "session", "item_ids": ids.tolist(), "scores": np.round(scores, 6).tolist(),
                "unknown": False, "n_ignored": n_ignored}

    # -- persistence ------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``embeddings/``, ``next_model/`` (when there is one) and ``served.json``, atomically."""
        with atomic_dir(path) as tmp:
            self.embeddings.save(tmp / "embeddings")
            if self.next_model is not None:
                self.next_model.save(tmp / "next_model")
            meta = {"format_version": FORMAT_VERSION, "kind": KIND, "next_model": self.next_model is not None,
                    "info": self.info}
            (tmp / "served.json").write_text(json.dumps(meta, indent=2, default=str))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ServedModel:
        """Read a directory written by :meth:`save` (or a bare ItemEmbeddings directory)."""
        p = Path(path)
        if (p / "meta.json").exists() and not (p / "served.json").exists():
            return cls(ItemEmbeddings.load(p))
        if not (p / "served.json").exists():
            raise FileNotFoundError(f"{str(p)!r} is not a served-model directory (no served.json)")
        meta = json.loads((p / "served.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION or meta.get("kind") != KIND:
            raise FormatVersionError(
                f"{p}: served model {meta.get('kind')!r} version {meta.get('format_version')!r}; "
                f"this item2vec reads {KIND!r} version {FORMAT_VERSION}"
            )
        nxt = None
        if meta.get("next_model"):
            from item2vec.recommenders import load_recommender

            nxt = load_recommender(p / "next_model", device="cpu")
        return cls(ItemEmbeddings.load(p / "embeddings"), nxt, info=meta.get("info"))


class ServedRecommender(Recommender):
    """A :class:`ServedModel` scored on sessions encoded with another vocabulary.

    Retraining gates the challenger against the champion on the new test data:
    the champion knows its own items only, so its scores are mapped onto the new
    vocabulary's columns; items it never saw get ``-inf`` (it cannot recommend
    them). With a next-item model it ranks with that, else with the neighbours
    of the prefix's last item (as :meth:`ServedModel.recommend` does).
    """

    name = "served"

    def __init__(self, served: ServedModel, vocab: ItemVocab) -> None:
        self.served = served
        self.vocab = vocab

    def _fit(self, sessions: list[np.ndarray]) -> None:
        ids = self.vocab.ids.tolist()
        nxt = self.served.next_model
        if nxt is not None:
            # col_[j] = the next model's index of new item j+1 (0 when it does not know it)
            self.col_ = nxt.vocab.indices(ids, missing="pad")
        else:
            emb = self.served.embeddings
            rows = emb.vocab.indices(ids, missing="pad") - 1
            table = np.zeros((self.n_items_ + 1, emb.dim), dtype=np.float32)
            ok = rows >= 0
            table[1:][ok] = emb.vectors[rows[ok]]
            self.unit_ = normalize(table)
            self.known_ = np.concatenate([[False], ok])

    def score_batch(self, prefixes: Sequence[np.ndarray]) -> np.ndarray:
        self._check_fitted()
        n = self.n_items_
        clean = []
        for p in prefixes:
            p = np.asarray(p, dtype=np.int64)
            clean.append(p[(p > 0) & (p <= n)])
        out = np.full((len(prefixes), n + 1), -np.inf, dtype=np.float32)
        if self.served.next_model is not None:
            col = self.col_
            old = [col[p - 1][col[p - 1] > 0] for p in clean]
            s_old = self.served.next_model.score_batch(old)
            ok = col > 0
            out[:, 1:][:, ok] = s_old[:, col[ok]]
            return out
        fallback = self._fallback().astype(np.float32)
        for i, p in enumerate(clean):
            p = p[self.known_[p]]
            if len(p) == 0:
                out[i] = fallback
            else:
                out[i] = self.unit_ @ self.unit_[p[-1]] + fallback
                out[i, p[-1]] = -np.inf
            out[i, ~self.known_] = -np.inf
        return out


# ---------------------------------------------------------------------------
# MLflow pyfunc
# ---------------------------------------------------------------------------
def _pyfunc_class() -> type:
    import mlflow.pyfunc
    import pandas as pd

    def load_context(self: Any, context: Any) -> None:
        self.served = ServedModel.load(context.artifacts["served"])

    def predict(self: Any, context: Any, model_input: Any, params: Any = None) -> Any:
        k = (params or {}).get("k", 10)
        return self.served.predict_frame(model_input, k=int(k) if isinstance(k, (int, np.integer)) else k)

    # a DataFrame hint: MLflow then takes the schema from the logged signature (and does not warn)
    predict.__annotations__ = {"model_input": pd.DataFrame}
    return type("Item2VecPyfunc", (mlflow.pyfunc.PythonModel,), {
        "__module__": __name__,
        "__qualname__": "Item2VecPyfunc",
        "__doc__": "MLflow wrapper around a :class:`ServedModel` directory (artifact ``served``).",
        "load_context": load_context,
        "predict": predict,
    })


def __getattr__(name: str) -> Any:  # the pyfunc class is built on first use: importing mlflow is slow
    if name == "Item2VecPyfunc":
        cls = _pyfunc_class()
        globals()["Item2VecPyfunc"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _signature(served: ServedModel, k: int = 10) -> tuple[Any, Any]:
    """(signature, input example): optional ``item_id`` and ``session`` columns, param ``k``."""
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema

    id_type = "long" if served.ids_are_int else "string"
    inputs = Schema([
        ColSpec(id_type, "item_id", required=False),
        ColSpec(Array(id_type), "session", required=False),
    ])
    outputs = Schema([
        ColSpec("string", "query"),
        ColSpec(Array(id_type), "item_ids"),
        ColSpec(Array("double"), "scores"),
        ColSpec("boolean", "unknown"),
        ColSpec("long", "n_ignored"),
    ])
    params = ParamSchema([ParamSpec("k", "long", k)])
    first = served.embeddings.ids[:2].tolist()
    example = pd.DataFrame({"item_id": [first[0], None], "session": [None, first]})
    return ModelSignature(inputs=inputs, outputs=outputs, params=params), example


def log_model(
    served: ServedModel,
    *,
    name: str = "model",
    registered_model_name: str | None = None,
    tags: dict[str, Any] | None = None,
) -> Any:
    """Log ``served`` as a pyfunc model in the active run (and register it when a name is given).

    Returns
    -------
    mlflow.models.model.ModelInfo
        ``.model_uri``; ``.registered_model_version`` when registered.
    """
    import logging

    import mlflow.pyfunc

    from item2vec.tracking import quiet_mlflow

    signature, example = _signature(served)
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_log.level
    pyfunc_log.setLevel(logging.ERROR)  # the cloudpickle notice: the class is pickled by reference
    try:
        with tempfile.TemporaryDirectory() as tmp, quiet_mlflow():
            path = served.save(Path(tmp) / "served")
            return mlflow.pyfunc.log_model(
                name=name,
                python_model=__getattr__("Item2VecPyfunc")(),
                artifacts={"served": str(path)},
                signature=signature,
                input_example=example,
                pip_requirements=_requirements(),
                registered_model_name=registered_model_name,
                tags={k: str(v) for k, v in (tags or {}).items()} or None,
            )
    finally:
        pyfunc_log.setLevel(level)


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


def _is_remote(uri: str) -> bool:
    return uri.startswith(("models:/", "runs:/", "mlflow-artifacts:/", "s3://", "gs://", "http://", "https://",
                           "dbfs:/", "file:"))


def load(uri: str | os.PathLike[str], tracking_uri: str | None = None) -> ServedModel:
    """Open a served model from the registry or from disk.

    Parameters
    ----------
    uri : str or path
        ``models:/NAME@champion`` (or ``models:/NAME/3``), ``runs:/RUN_ID/model``,
        an MLflow model directory, a :class:`ServedModel` directory, or an
        :class:`~item2vec.embeddings.ItemEmbeddings` directory (similar items;
        ``recommend`` then uses the last item's neighbours).
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
    """
    s = os.fspath(uri)
    if not _is_remote(s):
        p = Path(s)
        if not p.exists():
            raise FileNotFoundError(f"no model at {s!r}: expected models:/NAME@ALIAS, runs:/..., or a model directory")
        if not (p / "MLmodel").exists():
            return ServedModel.load(p)
    import mlflow.pyfunc

    from item2vec.tracking import quiet_mlflow, use_tracking_uri

    with quiet_mlflow(), use_tracking_uri(tracking_uri):
        model = mlflow.pyfunc.load_model(s)
    inner = model.unwrap_python_model()
    served = getattr(inner, "served", None)
    if not isinstance(served, ServedModel):
        raise FormatVersionError(f"{s} is an MLflow model but not an item2vec served model")
    return served
