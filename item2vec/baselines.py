"""Baseline next-item recommenders: popularity, Markov, session k-NN, implicit item-item.

All of them implement :class:`~item2vec.base.Recommender` on int-encoded sessions
(item indices ``1..n_items``, 0 = padding) and score a whole batch of prefixes
with one vectorised or sparse operation:

* :class:`Pop` -- the most popular training items, whatever the prefix.
* :class:`Markov` -- first-order transitions ``last item -> next item``
  (the "simple association rules / Markov chain" baseline of Ludewig & Jannach 2018).
* :class:`SessionKNN` -- V-SKNN, the position-weighted session k-nearest-neighbours
  method of Ludewig & Jannach, "Evaluation of session-based recommendation
  algorithms", User Modeling and User-Adapted Interaction 28 (2018).
* :class:`ImplicitItemItem` -- item-item cosine (``implicit``'s
  ``CosineRecommender``) or ALS item factors (Hu, Koren & Volinsky, "Collaborative
  filtering for implicit feedback datasets", ICDM 2008) on the session x item
  matrix, scored from the last item of the prefix.

Every model adds :meth:`~item2vec.base.Recommender._fallback` (popularity squashed
into ``[0, 1e-3)``) so items without evidence are still ranked, by popularity.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from item2vec._io import atomic_dir, read_meta, write_meta
from item2vec.base import Recommender
from item2vec.data.vocab import ItemVocab
from item2vec.exceptions import FormatVersionError, Item2VecError, NotFittedError

__all__ = [
    "BASELINES",
    "ImplicitALS",
    "ImplicitItemItem",
    "Markov",
    "Pop",
    "SessionKNN",
    "UnknownBaselineError",
    "load_baseline",
    "make_baseline",
]

KIND = "item2vec.Baseline"
FORMAT_VERSION = 1


class UnknownBaselineError(Item2VecError, ValueError):
    """The requested baseline name is not one of :data:`BASELINES`."""


# ----------------------------------------------------------------------------- helpers


def _last_items(prefixes: list[np.ndarray]) -> np.ndarray:
    """Last item of each prefix, 0 (the padding index, which has no evidence) when empty."""
    return np.fromiter(
        (p[-1] if len(p) else 0 for p in prefixes), dtype=np.int64, count=len(prefixes)
    )


def _session_item_matrix(sessions: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Binary session x item CSR, shape ``(n_sessions, n_items + 1)`` (rows = sessions)."""
    lens = np.fromiter((len(s) for s in sessions), dtype=np.int64, count=len(sessions))
    rows = np.repeat(np.arange(len(sessions)), lens)
    cols = np.concatenate(sessions) if len(sessions) else np.empty(0, np.int64)
    m = sp.csr_matrix(
        (np.ones(len(cols), np.float32), (rows, cols)), shape=(len(sessions), n_items + 1)
    )
    m.sum_duplicates()
    m.data[:] = 1.0  # an item seen twice in a session still counts once
    return m


def _check_positive_int(owner: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


# ----------------------------------------------------------------------------- saving


class _SavedBaseline:
    """Save / load of a fitted baseline as plain files, and the vocabulary it serves with.

    A directory holds ``meta.json`` (kind, format version, name, constructor
    parameters, ``n_items``), ``state.npz`` (the fitted arrays; sparse matrices
    as their CSR parts; no pickles) and, when :attr:`vocab` is set,
    ``vocab.json`` (the external ids of indices ``1..n_items``).
    """

    @property
    def vocab(self) -> ItemVocab | None:
        """The :class:`~item2vec.data.ItemVocab` mapping external ids to this model's indices (serving); ``None``
        until set. Fitting and evaluation never read it."""
        return getattr(self, "vocab_", None)

    @vocab.setter
    def vocab(self, value: ItemVocab | None) -> None:
        if value is not None and not isinstance(value, ItemVocab):
            raise TypeError(f"vocab must be an ItemVocab, got {type(value).__name__}")
        self.vocab_ = value

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted model to directory ``path`` atomically (see the class docstring).

        Raises
        ------
        NotFittedError
            When the model is not fitted.
        """
        self._check_fitted()  # type: ignore[attr-defined]
        arrays: dict[str, np.ndarray] = {}
        sparse: list[str] = []
        for key, value in vars(self).items():
            if not key.endswith("_") or key == "vocab_":
                continue
            if sp.issparse(value):
                m = sp.csr_matrix(value)
                arrays.update({f"{key}.data": m.data, f"{key}.indices": m.indices, f"{key}.indptr": m.indptr,
                               f"{key}.shape": np.asarray(m.shape, dtype=np.int64)})
                sparse.append(key)
            elif isinstance(value, np.ndarray):
                arrays[key] = value
        meta = {"name": self.name, "class": type(self).__name__,  # type: ignore[attr-defined]
                "params": self.get_params(), "n_items": int(self.n_items_),  # type: ignore[attr-defined]
                "sparse": sparse, "repeats_dropped": bool(self.repeats_dropped_)}  # type: ignore[attr-defined]
        with atomic_dir(path, marker="state.npz") as tmp:
            np.savez(tmp / "state.npz", allow_pickle=False, **arrays)
            if self.vocab is not None:
                (tmp / "vocab.json").write_text(json.dumps(self.vocab.to_list()))
            write_meta(tmp / "meta.json", KIND, FORMAT_VERSION, **meta)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recommender:
        """Read a directory written by :meth:`save` (any baseline class; see :func:`load_baseline`)."""
        return load_baseline(path)


def load_baseline(path: str | os.PathLike[str]) -> Recommender:
    """A fitted baseline from a directory written by its ``save`` (with its ``vocab`` when one was saved).

    Raises
    ------
    FileNotFoundError
        When ``path`` holds no ``meta.json``.
    FormatVersionError
        When the directory holds another kind or format version.
    """
    p = Path(path)
    if not (p / "meta.json").exists():
        raise FileNotFoundError(f"{str(p)!r} is not a saved baseline directory (no meta.json)")
    meta = read_meta(p / "meta.json", KIND, (FORMAT_VERSION,), what="saved baseline")
    classes = {c.__name__: c for c in BASELINES.values()}
    if meta.get("class") not in classes:
        raise FormatVersionError(f"{p}: unknown baseline class {meta.get('class')!r}; expected one of {sorted(classes)}")
    model = classes[meta["class"]](**meta["params"])
    with np.load(p / "state.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for key in meta["sparse"]:
        shape = tuple(int(x) for x in arrays.pop(f"{key}.shape"))
        parts = (arrays.pop(f"{key}.data"), arrays.pop(f"{key}.indices"), arrays.pop(f"{key}.indptr"))
        setattr(model, key, sp.csr_matrix(parts, shape=shape))
    for key, value in arrays.items():
        setattr(model, key, value)
    model.n_items_ = int(meta["n_items"])
    model.repeats_dropped_ = bool(meta.get("repeats_dropped", True))
    if not hasattr(model, "popularity_"):
        raise NotFittedError(f"{p}: the saved state has no popularity; the directory is incomplete")
    if (p / "vocab.json").exists():
        model.vocab = ItemVocab.from_list(json.loads((p / "vocab.json").read_text()))
    return model


# ----------------------------------------------------------------------------- Pop


class Pop(_SavedBaseline, Recommender):
    """The most popular training items (event counts), the same list for every prefix.

    Examples
    --------
    >>> import numpy as np
    >>> m = Pop().fit([np.array([1, 2]), np.array([2, 3])], n_items=3)
    >>> m.recommend([1], k=1)[0]
    array([2])
    """

    name = "pop"

    def _fit(self, sessions: list[np.ndarray]) -> None:
        self.scores_ = (self.popularity_ / max(self.popularity_.max(), 1.0)).astype(np.float32)

    def score_batch(self, prefixes: Sequence[Sequence[int] | np.ndarray]) -> np.ndarray:
        """Popularity for every prefix, shape ``(B, n_items + 1)`` float32."""
        prefixes = self._prefixes(prefixes)
        return np.tile(self.scores_, (len(prefixes), 1))


# ----------------------------------------------------------------------------- Markov


class Markov(_SavedBaseline, Recommender):
    """First-order Markov chain: count ``last item -> next item`` over training pairs.

    ``transitions_[a, b]`` is the number of times ``b`` directly follows ``a`` in a
    training session (a scipy CSR matrix, shape ``(n_items + 1, n_items + 1)``).
    The score of a prefix is the row of its last item plus the popularity
    fallback. This is the simplest of the sequential baselines compared by
    Ludewig & Jannach (2018), "Evaluation of session-based recommendation
    algorithms" (there: "Markov chains" / sequential rules of length one).
    """

    name = "markov"

    def _fit(self, sessions: list[np.ndarray]) -> None:
        src = np.concatenate([s[:-1] for s in sessions])
        dst = np.concatenate([s[1:] for s in sessions])
        n = self.n_items_ + 1
        t = sp.csr_matrix((np.ones(len(src), np.float32), (src, dst)), shape=(n, n))
        t.sum_duplicates()
        self.transitions_ = t

    def score_batch(self, prefixes: Sequence[Sequence[int] | np.ndarray]) -> np.ndarray:
        """Transition counts out of each prefix's last item, shape ``(B, n_items + 1)``."""
        prefixes = self._prefixes(prefixes)
        last = _last_items(prefixes)
        scores = self.transitions_[last].toarray()
        scores += self._fallback().astype(np.float32)
        return scores


# ----------------------------------------------------------------------------- V-SKNN


class SessionKNN(_SavedBaseline, Recommender):
    """V-SKNN: session k-nearest neighbours with position-weighted prefixes.

    After Ludewig & Jannach (2018), "Evaluation of session-based recommendation
    algorithms" (UMUAI 28), method *V-SKNN*:

    1. the items of the prefix get weights with linear decay, ``w_p = p / L`` for
       position ``p = 1..L`` (the latest item weighs 1; a repeated item keeps its
       latest weight);
    2. the similarity to a training session is the sum of the weights of the items
       they share (``normalize=True`` divides by the norms of both vectors, i.e.
       cosine);
    3. of the training sessions sharing at least one item, only the
       ``sample_size`` most recent are candidates (training sessions are in time
       order: a higher index is more recent);
    4. the ``k_neighbors`` most similar candidates vote for each of their items
       with their similarity.

    All of it is sparse algebra per batch: prefixes -> weighted ``(B, items)`` CSR,
    times the item x session matrix, row-wise selection of candidates and
    neighbours with one lexsort, times the session x item matrix.

    Parameters
    ----------
    k_neighbors : int
        Neighbour sessions that vote (default 100).
    sample_size : int or None
        Most recent candidate sessions considered (default 1000); ``None`` = all.
    normalize : bool
        Cosine instead of the plain weighted overlap.
    """

    name = "sknn"

    def __init__(
        self, k_neighbors: int = 100, sample_size: int | None = 1000, normalize: bool = False
    ) -> None:
        self.k_neighbors = k_neighbors
        self.sample_size = sample_size
        self.normalize = normalize

    def _fit(self, sessions: list[np.ndarray]) -> None:
        _check_positive_int(self.name, "k_neighbors", self.k_neighbors)
        if self.sample_size is not None:
            _check_positive_int(self.name, "sample_size", self.sample_size)
        si = _session_item_matrix(sessions, self.n_items_)
        self.session_items_ = si  # (n_sessions, n_items + 1)
        self.item_sessions_ = si.T.tocsr()  # (n_items + 1, n_sessions)
        self.session_norms_ = np.sqrt(np.diff(si.indptr)).astype(np.float32)

    def _prefix_matrix(self, prefixes: list[np.ndarray]) -> sp.csr_matrix:
        """Linear-decay weights of each prefix, CSR ``(B, n_items + 1)``."""
        lens = np.fromiter((len(p) for p in prefixes), dtype=np.int64, count=len(prefixes))
        total = int(lens.sum())
        shape = (len(prefixes), self.n_items_ + 1)
        if total == 0:
            return sp.csr_matrix(shape, dtype=np.float32)
        rows = np.repeat(np.arange(len(prefixes)), lens)
        items = np.concatenate(prefixes)
        starts = np.repeat(np.cumsum(lens) - lens, lens)
        weights = ((np.arange(total) - starts + 1) / np.repeat(lens, lens)).astype(np.float32)
        # keep the latest (heaviest) occurrence of a repeated item: first hit in reverse
        key = rows * shape[1] + items
        _, first_rev = np.unique(key[::-1], return_index=True)
        keep = total - 1 - first_rev
        return sp.csr_matrix((weights[keep], (rows[keep], items[keep])), shape=shape)

    def score_batch(self, prefixes: Sequence[Sequence[int] | np.ndarray]) -> np.ndarray:
        """Neighbour votes for each prefix, shape ``(B, n_items + 1)`` float32."""
        prefixes = self._prefixes(prefixes)
        q = self._prefix_matrix(prefixes)
        sim = (q @ self.item_sessions_).tocsr()  # (B, n_sessions): only sessions sharing an item
        sim.sum_duplicates()
        sim.sort_indices()
        rows = np.repeat(np.arange(sim.shape[0]), np.diff(sim.indptr))
        cols, vals = sim.indices.astype(np.int64), sim.data.astype(np.float32)
        if self.normalize and len(vals):
            qnorm = np.sqrt(np.asarray(q.multiply(q).sum(axis=1)).ravel()).astype(np.float32)
            vals = vals / (qnorm[rows] * self.session_norms_[cols])
        if self.sample_size is not None:
            # columns are sorted within a row: keep the last sample_size (most recent)
            from_end = np.repeat(sim.indptr[1:], np.diff(sim.indptr)) - 1 - np.arange(len(cols))
            keep = from_end < self.sample_size
            rows, cols, vals = rows[keep], cols[keep], vals[keep]
        # top k_neighbors per row by similarity; ties go to the more recent session
        order = np.lexsort((-cols, -vals, rows))
        rows, cols, vals = rows[order], cols[order], vals[order]
        counts = np.bincount(rows, minlength=sim.shape[0])
        rank = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        keep = rank < self.k_neighbors
        nb = sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=sim.shape)
        scores = (nb @ self.session_items_).toarray().astype(np.float32, copy=False)
        scores += self._fallback().astype(np.float32)
        return scores


# ----------------------------------------------------------------------------- implicit


class ImplicitItemItem(_SavedBaseline, Recommender):
    """Item-item scores from the ``implicit`` library, read off the prefix's last item.

    The model is fitted on the binary session x item matrix with sessions as
    implicit's "users" (rows = sessions, columns = items; implicit >= 0.5 wants
    ``user_items`` and silently accepts a transposed matrix, so the shapes of the
    learned state are checked after fitting).

    * ``model="cosine"``: ``implicit.nearest_neighbours.CosineRecommender(K)``,
      item-item cosine kept to the ``K`` nearest neighbours of every item
      (Sarwar et al., "Item-based collaborative filtering recommendation
      algorithms", WWW 2001). ``similarity_`` is that CSR matrix,
      ``(n_items + 1, n_items + 1)``.
    * ``model="als"``: ``implicit``'s ``AlternatingLeastSquares`` (Hu, Koren &
      Volinsky, ICDM 2008); scores are cosines between the last item's factor and
      every item's. ``item_factors_`` holds the L2-normalised factors,
      ``(n_items + 1, factors)``.

    An item's similarity with itself is the maximum and says nothing about the
    next item: where repeats were dropped (``repeats_dropped_``) the last item goes
    to the bottom; where they were kept it keeps that maximum (1, the cosine of an
    item with itself) and ranks first. Popularity breaks ties.

    Parameters
    ----------
    model : {"cosine", "als"}
    K : int
        Neighbours kept per item (cosine).
    factors, regularization, alpha, iterations : ALS hyperparameters.
    random_state : int or None
        Seed of the ALS initialisation.
    num_threads : int
        implicit's threads (0 = all cores).
    """

    MODELS = ("cosine", "als")

    def __init__(
        self,
        model: str = "cosine",
        K: int = 100,
        factors: int = 64,
        regularization: float = 0.01,
        alpha: float = 1.0,
        iterations: int = 15,
        random_state: int | None = 0,
        num_threads: int = 0,
    ) -> None:
        self.model = model
        self.K = K
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state
        self.num_threads = num_threads

    @property
    def name(self) -> str:  # type: ignore[override]
        return "implicit-als" if self.model == "als" else "implicit"

    def _fit(self, sessions: list[np.ndarray]) -> None:
        if self.model not in self.MODELS:
            raise ValueError(
                f"{type(self).__name__}: model must be one of {self.MODELS}, got {self.model!r}"
            )
        user_items = _session_item_matrix(
            sessions, self.n_items_
        )  # (sessions, items): rows = users
        n = self.n_items_ + 1
        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            # CosineRecommender normalises into COO internally and then warns about it
            warnings.filterwarnings("ignore", message=".*expects CSR input.*")
            if self.model == "cosine":
                from implicit.nearest_neighbours import CosineRecommender

                _check_positive_int(self.name, "K", self.K)
                rec = CosineRecommender(K=self.K, num_threads=self.num_threads)
                rec.fit(user_items, show_progress=False)
                sim = sp.coo_matrix(rec.similarity)
                if sim.shape != (n, n):
                    raise RuntimeError(
                        f"implicit returned a {sim.shape} similarity; expected {(n, n)}"
                    )
                off = sim.row != sim.col
                self.similarity_ = sp.csr_matrix(
                    (sim.data[off].astype(np.float32), (sim.row[off], sim.col[off])), shape=(n, n)
                )
            else:
                from implicit.als import AlternatingLeastSquares

                _check_positive_int(self.name, "factors", self.factors)
                rec = AlternatingLeastSquares(
                    factors=self.factors,
                    regularization=self.regularization,
                    alpha=self.alpha,
                    iterations=self.iterations,
                    random_state=self.random_state,
                    num_threads=self.num_threads,
                    use_gpu=False,
                )
                rec.fit(user_items, show_progress=False)
                f = np.asarray(rec.item_factors, dtype=np.float32)
                if f.shape[0] != n or np.asarray(rec.user_factors).shape[0] != len(sessions):
                    raise RuntimeError(
                        f"implicit returned item factors {f.shape}; expected {n} rows (one per item)"
                    )
                f[self.popularity_ == 0] = 0.0  # padding and unseen items have no evidence
                norms = np.linalg.norm(f, axis=1, keepdims=True)
                norms[norms == 0] = 1.0
                self.item_factors_ = f / norms

    def score_batch(self, prefixes: Sequence[Sequence[int] | np.ndarray]) -> np.ndarray:
        """Similarity of every item to each prefix's last item, shape ``(B, n_items + 1)``."""
        prefixes = self._prefixes(prefixes)
        last = _last_items(prefixes)
        if self.model == "als":
            scores = self.item_factors_[last] @ self.item_factors_.T
            floor = -1.0  # lowest cosine: the last item itself goes to the bottom
        else:
            scores = self.similarity_[last].toarray()  # the diagonal was dropped at fit
            floor = 0.0
        has = self.popularity_[last] > 0  # items with evidence (not padding)
        rows = np.arange(len(last))
        scores[rows, last] = floor if self.repeats_dropped_ else np.where(has, 1.0, floor)
        scores += self._fallback().astype(np.float32)
        return scores.astype(np.float32, copy=False)


class ImplicitALS(ImplicitItemItem):
    """:class:`ImplicitItemItem` with ``model="als"`` by default (name ``"implicit-als"``)."""

    def __init__(
        self,
        model: str = "als",
        K: int = 100,
        factors: int = 64,
        regularization: float = 0.01,
        alpha: float = 1.0,
        iterations: int = 15,
        random_state: int | None = 0,
        num_threads: int = 0,
    ) -> None:
        super().__init__(
            model, K, factors, regularization, alpha, iterations, random_state, num_threads
        )


# ----------------------------------------------------------------------------- registry


#: Baseline name -> class; every class builds with no arguments.
BASELINES: dict[str, type[Recommender]] = {
    "pop": Pop,
    "markov": Markov,
    "sknn": SessionKNN,
    "implicit": ImplicitItemItem,
    "implicit-als": ImplicitALS,
}


def make_baseline(name: str, **params: Any) -> Recommender:
    """Build a baseline by name.

    Parameters
    ----------
    name : str
        One of :data:`BASELINES` (``pop``, ``markov``, ``sknn``, ``implicit``, ``implicit-als``).
    **params
        Constructor arguments of that class.

    Raises
    ------
    UnknownBaselineError
        (a ``ValueError``) if ``name`` is not known.
    """
    try:
        cls = BASELINES[name]
    except (KeyError, TypeError):
        raise UnknownBaselineError(
            f"unknown baseline {name!r}; expected one of {sorted(BASELINES)}"
        ) from None
    return cls(**params)
