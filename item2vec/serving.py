"""The served object: similar items and next items in external ids, and the requests a server passes it.

:class:`ServedModel` is what a user or a server talks to:
``similar_items(product_id, k)`` and ``recommend(session, k)``, both in external
ids, both returning ``(ids, scores)``. It is saved as one directory
(``embeddings/``, optionally ``next_model/``, ``served.json``, ``checksums.json``)
which :func:`item2vec.registry.log_model` ships as the artifact of an MLflow
``pyfunc`` model.

**Ids** keep the type they have in the data: a catalogue holds either integer or
string ids. A query in the other spelling is translated (``"32902"`` finds
``32902``, ``7`` finds ``"7"``, and ``13931.0``, what pandas makes of an integer
column with a gap, finds ``13931``); anything else is unknown, and the message
says which type the catalogue holds.

**Requests** (:meth:`ServedModel.predict_frame`, or :meth:`~ServedModel.predict_records`
for the same rows as a list of dicts): a table with an ``item_id``
column (similar items) and/or a ``session`` column (a list of ids; the next
items), as a DataFrame, a list of records or a dict of columns. Options:
``k`` (> 0), ``filter_items`` (ids never to return) and ``exclude_session``
(leave out items already in the session). Each row gets ``query``,
``item_ids``, ``scores``, ``unknown`` and ``n_ignored``: an id (or a session) the
model does not know gets empty lists and ``unknown=True``, never an error;
session entries that are null or unknown are skipped and counted in
``n_ignored``.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from item2vec._io import atomic_dir, read_meta, verify_checksums, write_checksums, write_meta
from item2vec.base import Recommender, align_rows, check_k
from item2vec.data.vocab import ItemVocab
from item2vec.embeddings import ItemEmbeddings
from item2vec.exceptions import CorruptModelError, DataError, UnknownItemError
from item2vec.index import normalize

__all__ = ["ServedModel", "ServedRecommender", "is_null"]

FORMAT_VERSION = 2  # 2: checksums.json, next model without pickles
KIND = "item2vec.ServedModel"
SERVED_JSON = "served.json"


def is_null(x: Any) -> bool:
    """``None``, NaN, ``pandas.NA`` / ``NaT``: what a missing id looks like after JSON, pandas or numpy."""
    if x is None:
        return True
    if isinstance(x, (float, np.floating)):
        return math.isnan(x)
    try:
        import pandas as pd

        return x is pd.NA or x is pd.NaT
    except ImportError:  # pragma: no cover - pandas ships with item2vec
        return False


class ServedModel:
    """Similar items (item2vec) and next items (a next-item model, else item2vec) in external ids.

    Parameters
    ----------
    embeddings : ItemEmbeddings
    next_model : Recommender, optional
        A servable recommender (``.vocab``, ``.recommend(idx_prefix, k)``,
        ``.score_batch``, ``.save(dir)``), trained with ``vocab=`` so it can map
        external ids. Without it, :meth:`recommend` answers with the neighbours
        of the session's last known item.
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
        return f"ServedModel(n_items={len(self.embeddings)}, dim={self.embeddings.dim}, ids={self.id_type}, next={nxt})"

    # -- the id policy -------------------------------------------------------------------
    @property
    def ids_are_int(self) -> bool:
        """Whether the catalogue holds integer ids (else strings)."""
        return self.embeddings.ids.dtype.kind in "iu"

    @property
    def id_type(self) -> str:
        """``"int"`` or ``"str"``: the type of the catalogue's ids."""
        return "int" if self.ids_are_int else "str"

    def _unknown(self, item: Any) -> UnknownItemError:
        kind = "integer" if self.ids_are_int else "string"
        return UnknownItemError(item, f"unknown item id {item!r} ({type(item).__name__}): "
                                      f"this catalogue holds {kind} ids and does not know it")

    def to_id(self, item: Any) -> Any:
        """``item`` as this catalogue spells ids.

        Integer catalogues take ints, integer strings (``"32902"``) and whole
        floats (``13931.0``); string catalogues take strings, ints and whole
        floats (as their decimal string).

        Raises
        ------
        UnknownItemError
            When ``item`` cannot be an id of this catalogue (a null, a bool, a
            fraction, a word for an integer catalogue); the message says which
            type the catalogue holds.
        """
        if isinstance(item, np.generic):
            item = item.item()
        if isinstance(item, bool) or is_null(item):
            raise self._unknown(item)
        if isinstance(item, float):
            if not item.is_integer():
                raise self._unknown(item)
            item = int(item)
        if self.ids_are_int:
            if isinstance(item, int):
                return item
            if isinstance(item, str):
                text = item.strip()
                if text.lstrip("-+").isdigit() and text.isascii():
                    return int(text)
            raise self._unknown(item)
        if isinstance(item, str):
            return item
        if isinstance(item, int):
            return str(item)
        raise self._unknown(item)

    def _ids(self, items: Iterable[Any] | None) -> list[Any]:
        """Known ids of ``items`` in this catalogue's spelling; nulls and ids of no possible spelling dropped."""
        out = []
        for x in items if items is not None else ():
            try:
                out.append(self.to_id(x))
            except UnknownItemError:
                continue
        return out

    # -- queries ---------------------------------------------------------------------------
    def similar_items(
        self, product_id: Any, k: int = 10, filter_items: Iterable[Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to ``product_id`` (cosine), best first.

        Parameters
        ----------
        product_id : int or str
            In either spelling (see :meth:`to_id`).
        k : int
        filter_items : iterable of ids, optional
            Ids never to return.

        Raises
        ------
        UnknownItemError
            (a ``KeyError``) naming the id when the model does not know it.
        ValueError
            If ``k <= 0``.
        """
        k = check_k(k)
        item = self.to_id(product_id)
        if item not in self.embeddings:
            raise self._unknown(product_id)
        return self.embeddings.similar_items(item, k=k, filter_items=self._ids(filter_items) or None)

    def recommend(
        self,
        session: Sequence[Any],
        k: int = 10,
        filter_items: Iterable[Any] | None = None,
        exclude_session: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most likely next items after ``session`` (external ids, oldest first).

        Null entries and items the model does not know are skipped.

        Parameters
        ----------
        session : list of ids
        k : int
        filter_items : iterable of ids, optional
            Ids never to return.
        exclude_session : bool
            Leave out the items already in the session.

        Raises
        ------
        UnknownItemError
            When no item of the session is known.
        ValueError
            For an empty session or ``k <= 0``.
        """
        k = check_k(k)
        if isinstance(session, (str, bytes)) or not isinstance(session, (Sequence, np.ndarray)):
            raise TypeError(f"session must be a list of item ids, got {type(session).__name__}")
        if len(session) == 0:
            raise ValueError("session is empty; expected at least one item id")
        items = self._ids(session)
        banned = self._ids(filter_items) + (items if exclude_session else [])
        if self.next_model is not None:
            vocab = self.next_model.vocab
            idx = vocab.indices(items, missing="drop")
            if len(idx) == 0:
                raise UnknownItemError(list(session)[-1], f"none of the session's items is known: {list(session)!r}")
            drop = set(vocab.indices(banned, missing="drop").tolist())
            found, scores = self.next_model.recommend(idx, k + len(drop))
            keep = np.isfinite(scores) & ~np.isin(found, list(drop))
            return vocab.lookup(found[keep][:k]), scores[keep][:k]
        known = [x for x in items if x in self.embeddings]
        if not known:
            raise UnknownItemError(list(session)[-1], f"none of the session's items is known: {list(session)!r}")
        return self.embeddings.similar_items(known[-1], k=k, filter_items=banned or None)

    def recommender(self, vocab: ItemVocab) -> ServedRecommender:
        """This model as a :class:`~item2vec.base.Recommender` over another vocabulary (unfitted)."""
        return ServedRecommender(self, vocab)

    # -- requests ---------------------------------------------------------------------------
    def predict_frame(
        self,
        frame: Any,
        k: int = 10,
        filter_items: Iterable[Any] | None = None,
        exclude_session: bool = False,
    ) -> Any:
        """Answer a table of requests as a DataFrame; see the module docstring and :meth:`predict_records`.

        Returns
        -------
        pandas.DataFrame
            One row per request (per id when an ``item_id`` cell holds a list):
            ``query``, ``item_ids``, ``scores``, ``unknown``, ``n_ignored``.
        """
        return _answers_frame(self.predict_records(frame, k, filter_items, exclude_session))

    def predict_records(
        self,
        frame: Any,
        k: int = 10,
        filter_items: Iterable[Any] | None = None,
        exclude_session: bool = False,
    ) -> list[dict[str, Any]]:
        """Answer a table of requests as a list of dicts, the rows of :meth:`predict_frame`.

        All the item rows of one request are answered with one batched
        ``similar_items`` call, all its session rows with one more (or, with a
        next-item model, one ``recommend_batch``): one matrix product each.

        Parameters
        ----------
        frame : DataFrame, list of dicts or dict of columns
            An ``item_id`` and/or a ``session`` column.
        k : int
        filter_items : iterable of ids, optional
        exclude_session : bool

        Returns
        -------
        list of dict
            One dict per request (per id when an ``item_id`` cell holds a list)
            with ``query``, ``item_ids``, ``scores``, ``unknown``, ``n_ignored``:
            what MLflow's server writes as JSON.

        Raises
        ------
        DataError
            A table with neither column, or a row with neither value.
        ValueError
            If ``k`` is not a positive integer.
        """
        k = check_k(k)
        n, columns = _columns(frame)
        if not ("item_id" in columns or "session" in columns):
            raise DataError(
                f"expected a column 'item_id' (similar items) or 'session' (next items), got {list(columns)}"
            )
        banned = self._ids(_as_list(filter_items))
        items_col, sessions_col = columns.get("item_id"), columns.get("session")
        vocab = self.next_model.vocab if self.next_model is not None else self.embeddings.vocab
        rows: list[dict[str, Any] | None] = []
        pending: list[tuple[int, Any]] = []  # (answer row, known id): answered together below
        sessions: list[tuple[int, list[Any], int]] = []  # (answer row, known ids, n_ignored): likewise
        for i in range(n):
            session = sessions_col[i] if sessions_col is not None else None
            if not _missing(session):
                entries = _as_list(session)
                known = [x for x in self._ids(entries) if x in vocab]
                if known:
                    sessions.append((len(rows), known, len(entries) - len(known)))
                    rows.append(None)
                else:
                    rows.append({"query": "session", "item_ids": [], "scores": [], "unknown": True,
                                 "n_ignored": len(entries)})
                continue
            item = items_col[i] if items_col is not None else None
            if _missing(item):
                rec = {c: col[i] for c, col in columns.items()}
                raise DataError(f"a request row has neither an item_id nor a session: {rec!r}")
            # a list of ids in one cell ({"inputs": {"item_id": [a, b]}}): one flat answer row per id
            for one in _as_list(item):
                known_id = self._known_id(one)
                if known_id is None:
                    rows.append({"query": "item_id", "item_ids": [], "scores": [], "unknown": True, "n_ignored": 0})
                else:
                    pending.append((len(rows), known_id))
                    rows.append(None)
        if pending:
            self._answer_items(pending, rows, k, banned)
        if sessions:
            self._answer_sessions(sessions, rows, k, banned, bool(exclude_session))
        return rows  # type: ignore[return-value]  # every None was filled above

    def _known_id(self, item: Any) -> Any:
        """``item`` in this catalogue's spelling when the embeddings know it, else ``None``."""
        try:
            known = self.to_id(item)
        except UnknownItemError:
            return None
        return known if known in self.embeddings else None

    def _answer_items(
        self, pending: list[tuple[int, Any]], rows: list[dict[str, Any] | None], k: int, banned: list[Any]
    ) -> None:
        """Fill ``rows[i]`` for every ``(i, id)`` of ``pending`` with one batched ``similar_items`` call."""
        ids, scores = self.embeddings.similar_items([x for _, x in pending], k=k, filter_items=banned or None)
        _fill(rows, [pos for pos, _ in pending], ids, scores, k, None, "item_id", [0] * len(pending))

    def _answer_sessions(
        self,
        sessions: list[tuple[int, list[Any], int]],
        rows: list[dict[str, Any] | None],
        k: int,
        banned: list[Any],
        exclude: bool,
    ) -> None:
        """Fill the rows of ``sessions`` (known ids, oldest first) with one batched computation.

        Each row's own exclusions (its session when ``exclude``) are removed from
        a top ``k`` + (the most any row excludes), so every row keeps ``k`` items
        where the catalogue has them: the answers of one :meth:`recommend` per row.
        """
        positions = [pos for pos, _, _ in sessions]
        ignored = [n for _, _, n in sessions]
        drops: list[set[Any]] | None = [set(known) for _, known, _ in sessions] if exclude else None
        extra = max(len(d) for d in drops) if drops else 0
        if self.next_model is not None:
            vocab = self.next_model.vocab
            banned_idx = vocab.indices(banned, missing="drop") if banned else np.empty(0, np.int64)
            prefixes = [vocab.indices(known, missing="drop") for _, known, _ in sessions]
            found, scores = self.next_model.recommend_batch(prefixes, k + len(banned_idx) + extra)
            scores = np.asarray(scores, dtype=np.float32).copy()
            if len(banned_idx):
                scores[np.isin(found, banned_idx)] = -np.inf
            if drops is not None:
                for r, prefix in enumerate(prefixes):
                    scores[r, np.isin(found[r], prefix)] = -np.inf
            found = np.where(np.isfinite(scores), found, 1)  # padding and dropped places: any real index
            ids = vocab.lookup(found.reshape(-1)).reshape(found.shape)
            _fill(rows, positions, ids, scores, k, None, "session", ignored)
            return
        lasts = [known[-1] for _, known, _ in sessions]
        ids, scores = self.embeddings.similar_items(lasts, k=k + extra, filter_items=banned or None)
        _fill(rows, positions, ids, scores, k, drops, "session", ignored)

    # -- persistence ------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``embeddings/``, ``next_model/`` (when there is one), ``served.json`` and ``checksums.json``."""
        with atomic_dir(path, marker="served.json") as tmp:
            self.embeddings.save(tmp / "embeddings")
            if self.next_model is not None:
                self.next_model.save(tmp / "next_model")
            write_meta(tmp / SERVED_JSON, KIND, FORMAT_VERSION, id_type=self.id_type, n_items=len(self.embeddings),
                       next_model=self.next_model is not None, info=self.info)
            write_checksums(tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ServedModel:
        """Read a directory written by :meth:`save` (or a bare ItemEmbeddings directory).

        Every file is checked against ``checksums.json``; nothing is unpickled.

        Raises
        ------
        FileNotFoundError
            If ``path`` holds neither a served model nor embeddings.
        FormatVersionError
            If the directory was written in a format this item2vec does not read.
        CorruptModelError
            Naming the file that fails its checksum or does not match the others.
        """
        p = Path(path)
        if (p / "meta.json").exists() and not (p / SERVED_JSON).exists():
            return cls(ItemEmbeddings.load(p))
        if not (p / SERVED_JSON).exists():
            raise FileNotFoundError(f"{str(p)!r} is not a served-model directory (no {SERVED_JSON})")
        meta = read_meta(p / SERVED_JSON, KIND, (1, FORMAT_VERSION), what="served model")
        legacy = meta["format_version"] == 1  # written before checksums; the next retrain replaces it
        if not legacy:
            verify_checksums(p)
        emb = ItemEmbeddings.load(p / "embeddings")
        if not legacy and meta.get("n_items") != len(emb):
            raise CorruptModelError(f"{p / SERVED_JSON}: n_items={meta.get('n_items')!r}, "
                                    f"embeddings/ holds {len(emb)} items")
        nxt = None
        if meta.get("next_model"):
            from item2vec.recommenders import load_recommender

            nxt = load_recommender(p / "next_model", device="cpu")
        served = cls(emb, nxt, info=meta.get("info"))
        if not legacy and meta.get("id_type") != served.id_type:
            raise CorruptModelError(f"{p / SERVED_JSON}: id_type={meta.get('id_type')!r}, "
                                    f"embeddings/ids.json holds {served.id_type} ids")
        return served


def _fill(
    rows: list[dict[str, Any] | None],
    positions: list[int],
    ids: np.ndarray,
    scores: np.ndarray,
    k: int,
    drops: list[set[Any]] | None,
    query: str,
    ignored: list[int],
) -> None:
    """Write answer ``r`` of a batch into ``rows[positions[r]]``: its first ``k`` valid ids and scores.

    Places scored ``-inf`` (a filter left fewer than ``k``) and, with ``drops``,
    the row's own excluded ids are left out.
    """
    scores = np.round(scores, 6)
    valid = np.isfinite(scores)
    full = valid.all(axis=1)
    narrow = ids.shape[1] == k
    for r, pos in enumerate(positions):
        row_ids, row_scores = ids[r], scores[r]
        if not full[r]:
            row_ids, row_scores = row_ids[valid[r]], row_scores[valid[r]]
        id_list, score_list = row_ids.tolist(), row_scores.tolist()
        if drops is not None:
            keep = [j for j, x in enumerate(id_list) if x not in drops[r]]
            id_list, score_list = [id_list[j] for j in keep], [score_list[j] for j in keep]
        if not narrow:
            id_list, score_list = id_list[:k], score_list[:k]
        rows[pos] = {"query": query, "item_ids": id_list, "scores": score_list, "unknown": False,
                     "n_ignored": ignored[r]}


def _missing(x: Any) -> bool:
    if isinstance(x, (list, tuple, np.ndarray)):
        return False
    return is_null(x)


def _as_list(x: Any) -> list[Any]:
    """A session or id list from a request: list, tuple, array, or one id (a string is one id, not its letters)."""
    if x is None:
        return []
    if isinstance(x, np.ndarray):
        return x.reshape(-1).tolist()
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _columns(data: Any) -> tuple[int, dict[str, list[Any]]]:
    """(number of rows, every column as a list) of what a server hands over: DataFrame, records, dict of columns."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return len(data), {str(c): col.tolist() for c, col in data.items()}  # no column lookup by name
    if isinstance(data, dict):
        cols = {}
        for name, col in data.items():
            if isinstance(col, np.ndarray):
                col = list(col) if col.ndim > 1 else col.tolist()
            elif isinstance(col, tuple):
                col = list(col)
            cols[str(name)] = col if isinstance(col, list) else [col]
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1:
            raise DataError(f"request columns have different lengths: { {n: len(v) for n, v in cols.items()} }")
        return (lengths.pop() if lengths else 0), cols
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        names = list(dict.fromkeys(name for r in data for name in r))
        return len(data), {str(c): [r.get(c) for r in data] for c in names}
    raise DataError(
        "expected a table of requests (records with 'item_id' or 'session'), "
        f"got {type(data).__name__}"
    )


ANSWER_COLUMNS = ["query", "item_ids", "scores", "unknown", "n_ignored"]


@functools.cache
def _text_dtype() -> Any:
    """The dtype pandas gives a column of strings (``str`` in pandas 3, ``object`` before), built once."""
    import pandas as pd

    return pd.Series(["item_id"]).dtype


def _answers_frame(rows: list[Any]) -> Any:
    """The answer rows as a DataFrame, the dtypes ``pd.DataFrame(rows)`` would give, built column by column."""
    import pandas as pd

    if not rows:
        return pd.DataFrame(rows, columns=ANSWER_COLUMNS)
    lists = {}
    for name in ("item_ids", "scores"):
        col = np.empty(len(rows), dtype=object)
        for i, r in enumerate(rows):
            col[i] = r[name]
        lists[name] = col
    return pd.DataFrame({
        "query": pd.array([r["query"] for r in rows], dtype=_text_dtype()),
        "item_ids": lists["item_ids"],
        "scores": lists["scores"],
        "unknown": np.array([r["unknown"] for r in rows], dtype=bool),
        "n_ignored": np.array([r["n_ignored"] for r in rows], dtype=np.int64),
    }, copy=False)


class ServedRecommender(Recommender):
    """A :class:`ServedModel` scored on sessions encoded with another vocabulary.

    Retraining gates the challenger against the champion on the new test data:
    the champion knows its own items only, so its scores are mapped onto the new
    vocabulary's columns; items it never saw get ``-inf`` (it cannot recommend
    them). With a next-item model it ranks with that, else with the neighbours
    of the prefix's last item (as :meth:`ServedModel.recommend` does). As every
    recommender, it masks the prefix's last item only where ``repeats_dropped_``.
    """

    name = "served"

    def __init__(self, served: ServedModel, vocab: ItemVocab) -> None:
        self.served = served
        self.vocab = vocab

    def _fit(self, sessions: list[np.ndarray]) -> None:
        nxt = self.served.next_model
        if nxt is not None:
            # col_[j] = the next model's index of new item j+1 (0 when it does not know it)
            self.col_ = align_rows(nxt.vocab, self.n_items_, self.vocab)[1:] + 1
        else:
            emb = self.served.embeddings
            rows = align_rows(emb.vocab, self.n_items_, self.vocab)
            table = np.zeros((self.n_items_ + 1, emb.dim), dtype=np.float32)
            self.known_ = rows >= 0
            table[self.known_] = emb.vectors[rows[self.known_]]
            self.unit_ = normalize(table)

    def score_batch(self, prefixes: Sequence[np.ndarray]) -> np.ndarray:
        clean = self._prefixes(prefixes)
        n = self.n_items_
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
                out[i] = self.unit_ @ self.unit_[p[-1]] + fallback  # the last item: masked where repeats_dropped_
            out[i, ~self.known_] = -np.inf
        return out
