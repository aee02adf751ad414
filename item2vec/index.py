"""Nearest-neighbour search over item vectors by cosine similarity.

Two indexes answer the same :meth:`search` call:

- :class:`ExactIndex` keeps an L2-normalised float32 copy of the vectors and answers
  queries with one matrix product per block of queries (BLAS), then a partial sort.
  Blocks bound the memory of a batch to about ``block_cells`` floats.
- :class:`HNSWIndex` (the ``ann`` extra: ``pip install item2vec[ann]``) is an
  approximate graph index from hnswlib. hnswlib was picked over faiss's
  ``IndexHNSWFlat`` by measurement (benchmarks/README.md): at the same recall it
  built faster and answered single queries faster on this machine. It wraps an
  exact index over the same unit matrix: its answers are re-scored with exact
  cosines, and a filtered query over-fetches once, falling back to exact search
  past a cap and for rows the graph cannot fill.

:func:`build_index` picks one by name, or by catalogue size with ``"auto"``
(approximate from :data:`ANN_MIN_ITEMS` items up, when hnswlib is installed).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

__all__ = [
    "ANN_MIN_ITEMS",
    "ExactIndex",
    "HNSWIndex",
    "Index",
    "IndexKind",
    "ann_available",
    "build_index",
    "load_index",
    "normalize",
    "resolve_kind",
    "topk",
]

IndexKind = Literal["auto", "exact", "ann"]

#: Bound on the (queries x items) score block, in float32 cells (~64 MB; the
#: partial sort needs about three times that while it runs).
_BLOCK_CELLS = 16 * 1024 * 1024

#: ``"auto"`` chooses the approximate index from this many items up. Below it an
#: exact query costs a few milliseconds at 64 dimensions and needs no build.
ANN_MIN_ITEMS = 200_000

_INDEX_META = "index.json"


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32 (zero rows stay zero).

    A float32 matrix whose rows are already unit (or zero) comes back as it is, not
    copied, so indexes built on :attr:`ItemEmbeddings.unit
    <item2vec.vectors.ItemEmbeddings.unit>` share that one matrix.
    """
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"expected a 2-D array of row vectors, got shape {v.shape}")
    norms = np.sqrt(np.einsum("ij,ij->i", v, v))[:, None]
    if v is vectors and np.all((np.abs(norms - 1.0) < 1e-6) | (norms == 0)):
        return v
    norms[norms == 0] = 1.0
    return v / norms


def topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` columns of each row of ``scores``, best first.

    Parameters
    ----------
    scores : ndarray, shape (B, n)
    k : int

    Returns
    -------
    (indices, values) : ndarrays, shape (B, min(k, n))
        Ties inside the top ``k`` are broken by the lower column index.
    """
    n = scores.shape[1]
    k = min(k, n)
    if k <= 0:
        return np.empty((scores.shape[0], 0), np.int64), np.empty((scores.shape[0], 0), scores.dtype)
    if k < n and scores.shape[0] == 1:  # one row (a served request): the same selection on a 1-D view,
        row = scores[0]                 # without take_along_axis's index building (~12 us of ~35)
        part1 = np.argpartition(row, n - k)[n - k :]
        vals1 = row[part1]
        order1 = np.lexsort((part1, -vals1))
        return part1[order1][None, :], vals1[order1][None, :]
    if k < n:
        # partition at n - k: the last k columns hold the largest values (no negated copy)
        part = np.argpartition(scores, n - k, axis=1)[:, n - k :]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape).copy()
    vals = np.take_along_axis(scores, part, axis=1)
    # sort by (-value, index) so ties are deterministic
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(vals, order, axis=1)


def ann_available() -> bool:
    """Whether the ``ann`` extra (hnswlib) is importable."""
    try:
        import hnswlib  # noqa: F401
    except ImportError:
        return False
    return True


class Index(Protocol):
    """What :class:`~item2vec.vectors.ItemEmbeddings` calls on an index.

    Both answer with shape ``(B, min(k, n))``; when a filter leaves fewer rows than
    that, the missing places get score ``-inf`` (and an arbitrary row) and sort last.
    """

    kind: str
    unit: np.ndarray

    def __len__(self) -> int: ...

    def search(
        self, queries: np.ndarray, k: int, exclude_all: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def neighbours(
        self, rows: np.ndarray, k: int, exclude_all: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def params(self) -> dict[str, Any]: ...


def _check_queries(queries: np.ndarray, dim: int) -> np.ndarray:
    q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    if q.ndim != 2 or q.shape[1] != dim:
        raise ValueError(f"queries must have shape (B, {dim}), got {np.shape(queries)}")
    return normalize(q)


class ExactIndex:
    """Exact cosine top-k by brute force: one BLAS product per block of queries.

    Parameters
    ----------
    vectors : ndarray, shape (n, d)
        Item vectors (any scale: they are normalised here; a float32 matrix of unit
        rows, such as :attr:`ItemEmbeddings.unit <item2vec.vectors.ItemEmbeddings.unit>`,
        is used as it is, not copied).
    block_cells : int, optional
        Bound on the floats of one (queries x items) score block; a batch is
        processed in blocks of ``max(1, block_cells // n)`` queries.
    """

    kind = "exact"

    def __init__(self, vectors: np.ndarray, block_cells: int = _BLOCK_CELLS) -> None:
        self.unit = normalize(vectors)
        self.block_cells = int(block_cells)

    def __len__(self) -> int:
        return self.unit.shape[0]

    def __repr__(self) -> str:
        return f"ExactIndex(n={len(self)}, dim={self.unit.shape[1]})"

    def params(self) -> dict[str, Any]:
        """Constructor parameters (for the saved model's metadata)."""
        return {"block_cells": self.block_cells}

    def search(
        self, queries: np.ndarray, k: int, exclude_all: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows by cosine for each query vector.

        Parameters
        ----------
        queries : ndarray, shape (B, d)
        k : int
        exclude_all : int array, optional
            Rows no query may return (``filter_items``).

        Returns
        -------
        (rows, scores) : ndarrays, shape (B, k')
            ``k' = min(k, n)``; when the filter leaves fewer than ``k'`` rows, the
            missing places get score ``-inf`` and sort last.
        """
        return self._top(_check_queries(queries, self.unit.shape[1]), k, exclude_all, None)

    def neighbours(
        self, rows: np.ndarray, k: int, exclude_all: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows for the index's own ``rows``, each row excluded from its own answer.

        What :meth:`~item2vec.vectors.ItemEmbeddings.similar_items` asks; otherwise
        the contract of :meth:`search`.
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        return self._top(self.unit[rows], k, exclude_all, rows)

    def _top(
        self, q: np.ndarray, k: int, exclude_all: np.ndarray | None, own: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` of unit queries ``q``; ``own[i]``, when given, is excluded from row ``i``."""
        n = len(self)
        kk = min(k, n)
        block = max(1, self.block_cells // max(n, 1))
        rows_out = np.empty((q.shape[0], kk), dtype=np.int64)
        scores_out = np.empty((q.shape[0], kk), dtype=np.float32)
        for start in range(0, q.shape[0], block):
            stop = min(start + block, q.shape[0])
            if stop - start == 1:  # one query: matrix-vector product (gemv)
                s = (self.unit @ q[start])[None, :]
            else:
                s = q[start:stop] @ self.unit.T  # (b, n)
            if exclude_all is not None and len(exclude_all):
                s[:, exclude_all] = -np.inf
            if own is not None:
                s[np.arange(stop - start), own[start:stop]] = -np.inf
            rows_out[start:stop], scores_out[start:stop] = topk(s, kk)
        return rows_out, scores_out


class HNSWIndex:
    """Approximate cosine top-k with an hnswlib HNSW graph (the ``ann`` extra).

    It wraps an :class:`ExactIndex` over the same unit matrix (one copy) rather than
    branching inside it: a query the graph cannot answer well goes to the exact index.
    Filtering is one over-fetch: ``k + len(exclude_all)`` candidates (one more for
    :meth:`neighbours`), the excluded ones dropped; past a cap (a quarter of the
    catalogue, at least ``4 k + 64``), and for any row the graph leaves short, the
    exact index answers. Returned scores are exact cosines of the returned rows.

    Parameters
    ----------
    vectors : ndarray, shape (n, d)
        Item vectors (normalised here, or used as they are when already unit rows;
        the graph uses inner product).
    M : int
        Graph degree. Higher: better recall, more memory, slower build. The
        defaults (32, 200, 32) were measured on 1M clustered 64-d vectors
        (``python -m benchmarks.ann_params 1000000 32 200``): recall@10 0.993 at a
        raw single-query p50 of 0.064 ms, where M=16 / ef_construction=100 needed
        ef=64 (0.130 ms) for recall 0.97; the denser graph built in 159 s against 137 s.
    ef_construction : int
        Candidate list size while building.
    ef : int
        Candidate list size while searching (raised to the number of candidates
        a query needs). Higher: better recall, slower queries.
    random_state : int
        Seed of the level assignment. With ``num_threads > 1`` the insertion
        order, hence the graph, can still differ between builds.
    num_threads : int, optional
        Threads for building and for batch queries (default: all cores).
        Single queries run on one thread.

    Raises
    ------
    ImportError
        If hnswlib is not installed, naming the extra to install.
    """

    kind = "ann"

    def __init__(
        self,
        vectors: np.ndarray,
        M: int = 32,
        ef_construction: int = 200,
        ef: int = 32,
        random_state: int = 0,
        num_threads: int | None = None,
        *,
        _graph: Any = None,
    ) -> None:
        hnswlib = _import_hnswlib()
        if M < 2 or ef_construction < 1 or ef < 1:
            raise ValueError(f"need M >= 2, ef_construction >= 1 and ef >= 1, got {M}, {ef_construction}, {ef}")
        self.M, self.ef_construction, self.ef = int(M), int(ef_construction), int(ef)
        self.random_state = int(random_state)
        self.num_threads = num_threads
        self.exact = ExactIndex(vectors)
        self.unit = self.exact.unit
        n, d = self.unit.shape
        if _graph is not None:
            self.graph = _graph
        else:
            g = hnswlib.Index(space="ip", dim=d)
            g.init_index(max_elements=max(n, 1), M=self.M, ef_construction=self.ef_construction,
                         random_seed=self.random_state)
            g.set_num_threads(self._threads())
            g.add_items(self.unit, np.arange(n))
            self.graph = g
        self.graph.set_ef(self.ef)

    def _threads(self) -> int:
        return -1 if self.num_threads is None else int(self.num_threads)

    def __len__(self) -> int:
        return self.unit.shape[0]

    def __repr__(self) -> str:
        return f"HNSWIndex(n={len(self)}, M={self.M}, ef_construction={self.ef_construction}, ef={self.ef})"

    def params(self) -> dict[str, Any]:
        """Constructor parameters (for the saved model's metadata)."""
        return {"M": self.M, "ef_construction": self.ef_construction, "ef": self.ef,
                "random_state": self.random_state, "num_threads": self.num_threads}

    def search(
        self, queries: np.ndarray, k: int, exclude_all: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top ``k`` rows by cosine; the contract of :meth:`ExactIndex.search`."""
        return self._top(_check_queries(queries, self.unit.shape[1]), k, exclude_all, None)

    def neighbours(
        self, rows: np.ndarray, k: int, exclude_all: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows for the index's own ``rows``, each row excluded from its own answer.

        The contract of :meth:`ExactIndex.neighbours`. Without a filter (the
        ``similar_items(id)`` call) this is one graph query for ``k + 1`` and
        nothing more: the stored rows are already unit vectors and hnswlib's
        inner-product distance ``1 - cos`` already gives the exact cosine, so there
        is no normalising, re-scoring or re-sorting (``benchmarks/README.md``).
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        b, n = len(rows), len(self)
        if b and (exclude_all is None or len(exclude_all) == 0) and 0 < k and k + 1 < n:
            got = self._knn(self.unit[rows], k + 1)
            if got is not None:
                labels, dist = got
                keep = labels != rows[:, None]
                keep[keep.all(axis=1), -1] = False  # a row missing from its own answer: drop the last
                return labels[keep].reshape(b, k).astype(np.int64), (1.0 - dist[keep]).reshape(b, k)
        return self._top(self.unit[rows], k, exclude_all, rows)

    def _top(
        self, q: np.ndarray, k: int, exclude_all: np.ndarray | None, own: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """One over-fetch, the excluded rows dropped; the exact index for what the graph cannot fill."""
        b, n = q.shape[0], len(self)
        kk = min(k, n)
        banned = np.zeros(n, dtype=bool)
        if exclude_all is not None and len(exclude_all):
            banned[np.asarray(exclude_all, dtype=np.int64)] = True
        n_banned = int(banned.sum())
        fetch = kk + n_banned + (own is not None)
        got = None
        if b and kk and fetch < n and fetch <= max(n // 4, 4 * kk + 64):
            got = self._knn(q, fetch)
        if got is None:  # the graph is no help: answer exactly
            return self.exact._top(q, kk, exclude_all, own)
        labels = got[0].astype(np.int64)
        ok = ~banned[labels]
        if own is not None:
            ok &= labels != own[:, None]
        rows_out, scores_out = self._finish(labels, ok, q, kk)
        want = min(kk, n - n_banned - (own is not None))  # a row can still get this many
        short = np.flatnonzero(ok.sum(axis=1) < want)
        if len(short):  # the graph returned too few allowed rows: those rows exactly
            rows_out[short], scores_out[short] = self.exact._top(
                q[short], kk, exclude_all, None if own is None else own[short])
        return rows_out, scores_out

    def _knn(self, q: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray] | None:
        """hnswlib's ``knn_query`` for ``fetch`` neighbours of each row of ``q`` (ef raised to
        ``fetch`` for the call), or ``None`` when the graph cannot return that many."""
        if fetch > self.ef:
            self.graph.set_ef(fetch)
        try:
            return self.graph.knn_query(q, k=fetch, num_threads=1 if len(q) == 1 else self._threads())
        except RuntimeError:
            return None
        finally:
            if fetch > self.ef:
                self.graph.set_ef(self.ef)

    def _finish(
        self, labels: np.ndarray, ok: np.ndarray, q: np.ndarray, kk: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """First ``kk`` allowed labels of each row, re-scored with exact cosines, best first."""
        if ok.all():
            got, valid = labels[:, :kk], None
        else:
            first = np.argsort(~ok, axis=1, kind="stable")[:, :kk]  # allowed labels first, in rank order
            got = np.take_along_axis(labels, first, axis=1)
            valid = np.take_along_axis(ok, first, axis=1)
        sc = np.einsum("bkd,bd->bk", self.unit[got], q)
        if valid is not None:
            sc[~valid] = -np.inf
        order = np.lexsort((got, -sc), axis=1)
        return np.take_along_axis(got, order, axis=1), np.take_along_axis(sc, order, axis=1)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the graph (``hnsw.bin``) and ``index.json`` into the directory ``path``."""
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        self.graph.save_index(str(p / "hnsw.bin"))
        meta = {"kind": self.kind, "n": len(self), "dim": self.unit.shape[1], "params": self.params()}
        (p / _INDEX_META).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike[str], vectors: np.ndarray) -> HNSWIndex:
        """Read a graph written by :meth:`save`; ``vectors`` are the rows it was built on."""
        hnswlib = _import_hnswlib()
        p = Path(path)
        meta = json.loads((p / _INDEX_META).read_text())
        unit = normalize(vectors)
        if meta.get("n") != unit.shape[0] or meta.get("dim") != unit.shape[1]:
            raise ValueError(
                f"{p}: the saved index has {meta.get('n')} x {meta.get('dim')} vectors, "
                f"the model has {unit.shape[0]} x {unit.shape[1]}"
            )
        g = hnswlib.Index(space="ip", dim=unit.shape[1])
        g.load_index(str(p / "hnsw.bin"), max_elements=max(unit.shape[0], 1))
        return cls(unit, _graph=g, **meta["params"])


def _import_hnswlib() -> Any:
    try:
        import hnswlib
    except ImportError as e:  # pragma: no cover - the test env has the extra
        raise ImportError(
            "the approximate index needs hnswlib: pip install 'item2vec[ann]' (or pip install hnswlib)"
        ) from e
    return hnswlib


_warned_no_ann = False


def resolve_kind(kind: str | None, n_items: int) -> Literal["exact", "ann"]:
    """Turn ``"auto"`` (or ``None``) into ``"exact"`` or ``"ann"`` for a catalogue of ``n_items``.

    ``"auto"`` means approximate from :data:`ANN_MIN_ITEMS` items up when hnswlib is
    installed (a one-time warning says so when it is not), exact otherwise.

    Raises
    ------
    ValueError
        For a kind other than ``"auto"``, ``"exact"``, ``"ann"``.
    """
    global _warned_no_ann
    if kind is None or kind == "auto":
        if n_items < ANN_MIN_ITEMS:
            return "exact"
        if ann_available():
            return "ann"
        if not _warned_no_ann:
            warnings.warn(
                f"{n_items} items: an approximate index would answer faster; "
                "pip install 'item2vec[ann]' to get one. Using exact search.",
                stacklevel=3,
            )
            _warned_no_ann = True
        return "exact"
    if kind not in ("exact", "ann"):
        raise ValueError(f"index must be 'auto', 'exact' or 'ann', got {kind!r}")
    return kind  # type: ignore[return-value]


def build_index(vectors: np.ndarray, kind: str | None = "auto", **params: Any) -> ExactIndex | HNSWIndex:
    """Build an index over ``vectors``.

    Parameters
    ----------
    vectors : ndarray, shape (n, d)
    kind : {"auto", "exact", "ann"}
        See :func:`resolve_kind`.
    **params
        Passed to :class:`ExactIndex` or :class:`HNSWIndex`.

    Returns
    -------
    ExactIndex or HNSWIndex
    """
    vectors = np.asarray(vectors)
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be a 2-D (n, dim) array, got shape {vectors.shape}")
    if resolve_kind(kind, vectors.shape[0]) == "ann":
        return HNSWIndex(vectors, **params)
    return ExactIndex(vectors, **params)


def load_index(path: str | os.PathLike[str], vectors: np.ndarray) -> ExactIndex | HNSWIndex:
    """Read an index saved in the directory ``path`` (an exact index is rebuilt from ``vectors``)."""
    p = Path(path)
    meta = json.loads((p / _INDEX_META).read_text())
    if meta.get("kind") == "ann":
        return HNSWIndex.load(p, vectors)
    if meta.get("kind") == "exact":
        return ExactIndex(vectors, **meta.get("params", {}))
    raise ValueError(f"{p}: unknown index kind {meta.get('kind')!r}")
