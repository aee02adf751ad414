"""The Recommender interface that evaluation talks to.

Every model works on int-encoded sessions (item indices 1..n from an
:class:`~item2vec.data.ItemVocab`, 0 = padding). It implements
:meth:`Recommender.fit` and :meth:`Recommender.score_batch` (a dense score over
the catalogue for a batch of prefixes); :meth:`recommend` and
:meth:`recommend_batch` come from here. Models that can rank without dense
scores override :meth:`recommend_batch` instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from item2vec.exceptions import DataError, EmptyDataError, NotFittedError
from item2vec.index import topk

__all__ = ["Recommender", "align_rows", "check_k", "clean_prefixes", "has_repeats", "mask_last", "popularity"]

Sessions = Sequence[np.ndarray]


def check_k(k: Any) -> int:
    """Validate a top-k size: a positive int, else ``ValueError`` naming what came."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def clean_prefixes(prefixes: Sessions, n_items: int, owner: str = "recommender") -> list[np.ndarray]:
    """The one prefix check every model uses: int64 arrays holding only known item indices.

    The policy: a prefix is a sequence of integer item indices; indices outside
    ``1..n_items`` (0 = padding, which is also what an unknown id encodes to, and
    indices past the catalogue) are dropped, so a prefix may come back empty (models
    then rank by popularity). A prefix that is not integers raises.

    Raises
    ------
    DataError
        If a prefix holds something other than integers (floats, strings, ...).
    """
    out = []
    for p in prefixes:
        a = np.asarray(p).reshape(-1)
        if a.size and a.dtype.kind not in "iu":
            raise DataError(
                f"{owner}: a prefix must hold integer item indices, got {a.dtype} values such as {a[:3].tolist()}"
            )
        a = a.astype(np.int64, copy=False)
        out.append(a[(a > 0) & (a <= n_items)])
    return out


def align_rows(source: Any, n_items: int, vocab: Any = None) -> np.ndarray:
    """The one id alignment: for each item index ``0..n_items``, its row in ``source``, or -1.

    Parameters
    ----------
    source : ItemVocab
        The ids of the rows to align (e.g. ``ItemEmbeddings.vocab``): row ``r`` is
        ``source.ids[r]``.
    n_items : int
        Catalogue size of the item indices.
    vocab : ItemVocab, optional
        The vocabulary the item indices come from: index ``i`` is ``vocab.ids[i - 1]``.
        Without it the source ids are taken to be the indices themselves (ids outside
        ``1..n_items`` are ignored).

    Returns
    -------
    ndarray of int64, shape (n_items + 1,)
        ``rows[0]`` (padding) is -1.

    Raises
    ------
    DataError
        Without ``vocab``, when the source ids are not integers.
    """
    rows = np.full(n_items + 1, -1, dtype=np.int64)
    if vocab is not None:
        ids = vocab.ids[:n_items].tolist()
        rows[1 : len(ids) + 1] = source.indices(ids, missing="pad") - 1
        return rows
    ids = np.asarray(source.ids)
    if ids.size and ids.dtype.kind not in "iu":
        raise DataError(
            "aligning vectors keyed by external ids needs the vocab that encoded the sessions "
            f"(vocab=SessionData.vocab); ids look like {ids[:3].tolist()}"
        )
    ids = ids.astype(np.int64)
    ok = (ids >= 1) & (ids <= n_items)
    rows[ids[ok]] = np.flatnonzero(ok)
    return rows


def popularity(sessions: Sessions, n_items: int) -> np.ndarray:
    """Event counts per item index, shape ``(n_items + 1,)`` (index 0 stays 0)."""
    if not len(sessions):
        return np.zeros(n_items + 1, dtype=np.float64)
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in sessions])
    return np.bincount(flat, minlength=n_items + 1)[: n_items + 1].astype(np.float64)


def has_repeats(sessions: Sessions) -> bool:
    """Whether any session has the same item twice in a row (one vectorised pass)."""
    arrays = [np.asarray(s).reshape(-1) for s in sessions]
    if not arrays:
        return False
    flat = np.concatenate(arrays)
    same = flat[1:] == flat[:-1]
    ends = np.cumsum([len(a) for a in arrays])[:-1] - 1  # pairs that straddle two sessions
    same[ends[(ends >= 0) & (ends < len(same))]] = False
    return bool(same.any())


def mask_last(scores: np.ndarray, prefixes: Sessions) -> np.ndarray:
    """Score each prefix's last known item ``-inf`` in ``scores``, shape ``(B, n_items + 1)``, in place.

    Indices outside ``1..n_items`` (padding, unknown items) are skipped, as the models skip
    them; a prefix without a known item is left alone.
    """
    n = scores.shape[1]
    for i, p in enumerate(prefixes):
        p = np.asarray(p).reshape(-1)
        p = p[(p > 0) & (p < n)]
        if len(p):
            scores[i, p[-1]] = -np.inf
    return scores


class Recommender(ABC):
    """Base class: ``fit(sessions, n_items) -> self``; ``recommend(prefix, k)``.

    Subclasses set :attr:`name` and implement :meth:`_fit` and :meth:`score_batch`.
    ``n_items_``, ``popularity_`` and ``repeats_dropped_`` are set by :meth:`fit` for
    every model; :meth:`recommend_batch` never returns a prefix's last item when
    ``repeats_dropped_`` is True.
    """

    name: str = "recommender"

    def fit(
        self, sessions: Sessions, n_items: int | None = None, *, repeats_dropped: bool | None = None
    ) -> Recommender:
        """Learn from training sessions of item indices.

        Parameters
        ----------
        sessions : sequence of int arrays
            Item indices in 1..n_items.
        n_items : int, optional
            Catalogue size; default the largest index seen.
        repeats_dropped : bool, optional
            Whether the data had consecutive repeats dropped, so that a session
            never continues with its last item (pass ``SessionData.repeats_dropped``).
            Default: True unless a training session has an item twice in a row.
            Stored as ``repeats_dropped_``.

        Raises
        ------
        TypeError
            If ``repeats_dropped`` is not a bool or None.
        """
        sessions = [np.asarray(s, dtype=np.int64) for s in sessions]
        if not any(len(s) >= 2 for s in sessions):
            raise EmptyDataError(
                f"{self.name}.fit: expected at least one session with 2 or more items, found none"
            )
        seen_max = max(int(s.max()) for s in sessions if len(s))
        if n_items is None:
            n_items = seen_max
        if seen_max > n_items or min(int(s.min()) for s in sessions if len(s)) < 1:
            raise ValueError(f"{self.name}.fit: item indices must lie in 1..{n_items}")
        if repeats_dropped is not None and not isinstance(repeats_dropped, (bool, np.bool_)):
            raise TypeError(f"{self.name}.fit: repeats_dropped must be True, False or None, got {repeats_dropped!r}")
        self.n_items_ = int(n_items)
        self.popularity_ = popularity(sessions, self.n_items_)
        self.repeats_dropped_ = not has_repeats(sessions) if repeats_dropped is None else bool(repeats_dropped)
        self._fit(sessions)
        return self

    @abstractmethod
    def _fit(self, sessions: list[np.ndarray]) -> None: ...

    @abstractmethod
    def score_batch(self, prefixes: Sessions) -> np.ndarray:
        """Scores over the catalogue, shape ``(len(prefixes), n_items + 1)``; column 0 unused."""

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_items_"):
            raise NotFittedError(f"{self.name} is not fitted yet; call fit(sessions) first")

    def _prefixes(self, prefixes: Sessions) -> list[np.ndarray]:
        """Check the model is fitted and clean ``prefixes`` with :func:`clean_prefixes`."""
        self._check_fitted()
        return clean_prefixes(prefixes, self.n_items_, self.name)

    def _fallback(self) -> np.ndarray:
        """Popularity squashed into [0, 1e-3): breaks ties without outvoting real evidence."""
        p = self.popularity_
        return 1e-3 * p / (p.max() + 1.0)

    def recommend_batch(self, prefixes: Sessions, k: int = 20) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and scores for each prefix, shapes ``(B, k)``.

        Where repeats were dropped (``repeats_dropped_``) each prefix's last item scores ``-inf``.
        """
        self._check_fitted()
        k = check_k(k)
        if len(prefixes) == 0:
            return np.empty((0, k), np.int64), np.empty((0, k), np.float32)
        scores = np.asarray(self.score_batch(prefixes), dtype=np.float32)
        scores[:, 0] = -np.inf
        if self.repeats_dropped_:
            mask_last(scores, prefixes)
        return topk(scores, k)

    def recommend(self, prefix: Sequence[int] | np.ndarray, k: int = 20) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and scores for one prefix, shapes ``(k,)``."""
        ids, scores = self.recommend_batch([np.asarray(prefix)], k)
        return ids[0], scores[0]

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, for logging."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"
