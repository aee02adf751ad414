"""Nearest-neighbour search over item vectors by cosine similarity.

Two indexes answer the same :meth:`search` call:

- :class:`ExactIndex` keeps an L2-normalised float32 copy of the vectors and answers
  queries with one matrix product per block of queries (BLAS), then a partial sort.
  Blocks bound the memory of a batch to about ``block_cells`` floats.
- :class:`HNSWIndex` (the ``ann`` extra: ``pip install item2vec[ann]``) is an
  approximate graph index from hnswlib. hnswlib was picked over faiss's
  ``IndexHNSWFlat`` by measurement (benchmarks/README.md): at the same recall it
  built faster and answered single queries faster on this machine. Its answers
  are re-scored with exact cosines, and filtered queries over-fetch candidates,
  falling back to exact search for rows the graph cannot fill.

:func:`build_index` picks one by name, or by catalogue size with ``"auto"``
(approximate from :data:`ANN_MIN_ITEMS` items up, when hnswlib is installed).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
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
    """Rows scaled to unit L2 norm, as float32 (zero rows stay zero)."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"expected a 2-D array of row vectors, got shape {v.shape}")
    norms = np.sqrt(np.einsum("ij,ij->i", v, v))[:, None]
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
    """What :class:`~item2vec.embeddings.ItemEmbeddings` needs from an index."""

    kind: str

    def __len__(self) -> int: ...

    def search(
        self,
        queries: np.ndarray,
        k: int,
        exclude: Sequence[np.ndarray | None] | np.ndarray | None = None,
        exclude_all: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def neighbours(
        self, rows: np.ndarray, k: int, exclude_all: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def params(self) -> dict[str, Any]: ...


def _as_exclude(exclude: Sequence[np.ndarray | None] | np.ndarray | None, b: int) -> list[np.ndarray] | None:
    """Per-query excluded rows as a list of int arrays (a 1-D array means one row each, -1 = none)."""
    if exclude is None:
        return None
    if isinstance(exclude, np.ndarray) and exclude.ndim == 1 and exclude.dtype.kind in "iu":
        if len(exclude) != b:
            raise ValueError(f"exclude has {len(exclude)} rows for {b} queries")
        return [exclude[i : i + 1] if exclude[i] >= 0 else np.empty(0, np.int64) for i in range(b)]
    if len(exclude) != b:
        raise ValueError(f"exclude has {len(exclude)} entries for {b} queries")
    return [np.empty(0, np.int64) if e is None else np.asarray(e, dtype=np.int64).ravel() for e in exclude]


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
        Item vectors (any scale: they are normalised here).
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
        self,
        queries: np.ndarray,
        k: int,
        exclude: Sequence[np.ndarray | None] | np.ndarray | None = None,
        exclude_all: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows by cosine for each query vector.

        Parameters
        ----------
        queries : ndarray, shape (B, d)
        k : int
        exclude : sequence of int arrays or 1-D int array, optional
            Per query, rows that must not be returned (e.g. the query item). A
            1-D int array gives one row per query (-1 for none).
        exclude_all : int array, optional
            Rows no query may return (``filter_items``).

        Returns
        -------
        (rows, scores) : ndarrays, shape (B, k')
            ``k' = min(k, n)``; when filters leave fewer than ``k'`` rows, the
            missing places get score ``-inf`` and sort last.
        """
        q = _check_queries(queries, self.unit.shape[1])
        one_each = isinstance(exclude, np.ndarray) and exclude.ndim == 1 and exclude.dtype.kind in "iu"
        if one_each and len(exclude) != q.shape[0]:  # type: ignore[arg-type]
            raise ValueError(f"exclude has {len(exclude)} rows for {q.shape[0]} queries")  # type: ignore[arg-type]
        ex = None if one_each else _as_exclude(exclude, q.shape[0])
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
            if one_each:
                e = exclude[start:stop]  # type: ignore[index]
                has = np.flatnonzero(e >= 0)
                s[has, e[has]] = -np.inf
            elif ex is not None:
                for j in range(start, stop):
                    if len(ex[j]):
                        s[j - start, ex[j]] = -np.inf
            rows_out[start:stop], scores_out[start:stop] = topk(s, kk)
        return rows_out, scores_out

    def neighbours(
        self, rows: np.ndarray, k: int, exclude_all: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows for the index's own ``rows``, each row excluded from its answer.

        What :meth:`~item2vec.embeddings.ItemEmbeddings.similar_items` asks; the
        same contract as :meth:`search` with ``queries = vectors[rows]`` and
        ``exclude = rows``.
        """
        rows = np.asarray(rows, dtype=np.int64)
        return self.search(self.unit[rows], k, exclude=rows, exclude_all=exclude_all)


class HNSWIndex:
    """Approximate cosine top-k with an hnswlib HNSW graph (the ``ann`` extra).

    Parameters
    ----------
    vectors : ndarray, shape (n, d)
        Item vectors (normalised here; the graph uses inner product).
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
        vectors: np.ndarray | None,
        M: int = 32,
        ef_construction: int = 200,
        ef: int = 32,
        random_state: int = 0,
        num_threads: int | None = None,
        *,
        _graph: Any = None,
        _unit: np.ndarray | None = None,
    ) -> None:
        hnswlib = _import_hnswlib()
        if M < 2 or ef_construction < 1 or ef < 1:
            raise ValueError(f"need M >= 2, ef_construction >= 1 and ef >= 1, got {M}, {ef_construction}, {ef}")
        self.M, self.ef_construction, self.ef = int(M), int(ef_construction), int(ef)
        self.random_state = int(random_state)
        self.num_threads = num_threads
        self.unit = _unit if _unit is not None else normalize(vectors)  # type: ignore[arg-type]
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
        self._exact = ExactIndex(self.unit)
        self._exact.unit = self.unit  # share the matrix

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
        self,
        queries: np.ndarray,
        k: int,
        exclude: Sequence[np.ndarray | None] | np.ndarray | None = None,
        exclude_all: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top ``k`` rows by cosine; same contract as :meth:`ExactIndex.search`.

        Candidates are over-fetched by the number of excluded rows and filtered
        afterwards; the fetch doubles for rows that come back short, and rows the
        graph still cannot fill (very large filters) are answered exactly. The
        returned scores are exact cosines of the returned rows.
        """
        q = _check_queries(queries, self.unit.shape[1])
        b, n = q.shape[0], len(self)
        kk = min(k, n)
        one_each = isinstance(exclude, np.ndarray) and exclude.ndim == 1 and exclude.dtype.kind in "iu"
        no_filter = exclude_all is None or len(exclude_all) == 0
        if b and kk and no_filter and (exclude is None or one_each) and kk + 1 < n:
            # the common case (the query item excluded, nothing else): one graph query
            return self._search_simple(q, kk, exclude)  # type: ignore[arg-type]
        ex = _as_exclude(exclude, b)
        rows_out = np.zeros((b, kk), dtype=np.int64)
        scores_out = np.full((b, kk), -np.inf, dtype=np.float32)
        if b == 0 or kk == 0:
            return rows_out, scores_out
        banned_all = np.zeros(n, dtype=bool)
        if exclude_all is not None and len(exclude_all):
            banned_all[np.asarray(exclude_all, dtype=np.int64)] = True
        n_banned_all = int(banned_all.sum())
        # rows each query can still get, hence how many it wants
        per_row = np.zeros(b, dtype=np.int64)
        single_ex = np.full(b, -1, dtype=np.int64)  # fast path: at most one excluded row per query
        if ex is not None:
            for i, e in enumerate(ex):
                e = np.unique(e)
                ex[i] = e
                per_row[i] = np.count_nonzero(~banned_all[e])
                if len(e) == 1:
                    single_ex[i] = e[0]
        simple = ex is None or all(len(e) <= 1 for e in ex)
        want = np.minimum(kk, n - n_banned_all - per_row)
        todo = np.arange(b)
        fetch = kk + n_banned_all + int(per_row.max())
        while len(todo):
            if fetch > max(n // 4, 4 * kk + 64) or fetch >= n:  # the graph is no help: answer exactly
                r, s = self._exact.search(q[todo], kk, None if ex is None else [ex[i] for i in todo], exclude_all)
                rows_out[todo], scores_out[todo] = r, s
                break
            fetch_now = min(fetch, n)
            self.graph.set_ef(max(self.ef, fetch_now))
            threads = 1 if len(todo) == 1 else self._threads()
            try:
                labels, _ = self.graph.knn_query(q[todo], k=fetch_now, num_threads=threads)
            except RuntimeError:  # hnswlib could not find fetch_now results: answer exactly
                fetch = n
                continue
            finally:
                self.graph.set_ef(self.ef)
            labels = labels.astype(np.int64)
            ok = ~banned_all[labels]
            if simple:
                ok &= labels != single_ex[todo, None]
            else:
                for j, i in enumerate(todo):
                    if len(ex[i]):  # type: ignore[index]
                        ok[j] &= ~np.isin(labels[j], ex[i])  # type: ignore[index]
            n_ok = ok.sum(axis=1)
            done = (n_ok >= want[todo]) | (fetch_now >= n)
            if done.any():
                rows_d = todo[done]
                rows_out[rows_d], scores_out[rows_d] = self._finish(labels[done], ok[done], q[rows_d], kk)
            todo = todo[~done]
            fetch *= 2
        return rows_out, scores_out

    def neighbours(
        self, rows: np.ndarray, k: int, exclude_all: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows for the index's own ``rows``, each row excluded from its answer.

        Same contract as :meth:`ExactIndex.neighbours`. Without a filter (the
        ``similar_items(id)`` call) this is one graph query for ``k + 1`` and
        nothing more: the stored rows are already unit vectors and hnswlib's
        inner-product distance ``1 - cos`` already gives the exact cosine, so there
        is no normalising, re-scoring or re-sorting. For one row that costs about
        0.014 ms on top of hnswlib's own ``knn_query`` (``benchmarks/README.md``).
        """
        rows = np.asarray(rows, dtype=np.int64)
        b, n = len(rows), len(self)
        if b and (exclude_all is None or len(exclude_all) == 0) and 0 < k and k + 1 < n:
            got = self._knn(self.unit[rows], k + 1)
            if got is not None:
                labels, dist = got
                keep = labels != rows[:, None]
                keep[keep.all(axis=1), -1] = False  # a row missing from its own answer: drop the last
                return labels[keep].reshape(b, k).astype(np.int64), (1.0 - dist[keep]).reshape(b, k)
        return self.search(self.unit[rows], k, exclude=rows, exclude_all=exclude_all)

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

    def _search_simple(
        self, q: np.ndarray, kk: int, exclude: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """At most one excluded row per query and no global filter: fetch ``kk + 1``, drop it."""
        got = self._knn(q, kk + (0 if exclude is None else 1))
        if got is None:  # the graph could not return that many: answer exactly
            return self._exact.search(q, kk, exclude)
        labels = got[0].astype(np.int64)
        if exclude is None:
            ok = np.ones(labels.shape, dtype=bool)
        else:
            if len(exclude) != len(q):
                raise ValueError(f"exclude has {len(exclude)} rows for {len(q)} queries")
            ok = labels != exclude[:, None]
        return self._finish(labels, ok, q, kk)

    def _finish(
        self, labels: np.ndarray, ok: np.ndarray, q: np.ndarray, kk: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """First ``kk`` allowed labels of each row, re-scored with exact cosines, best first."""
        if len(labels) == 1:  # one query: plain indexing is several times cheaper
            got1 = labels[0][ok[0]][:kk]
            sc1 = self.unit[got1] @ q[0]
            o = np.lexsort((got1, -sc1))
            m = len(got1)
            r_out = np.zeros((1, kk), dtype=np.int64)
            s_out = np.full((1, kk), -np.inf, dtype=np.float32)
            r_out[0, :m], s_out[0, :m] = got1[o], sc1[o]
            return r_out, s_out
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
        return cls(None, _graph=g, _unit=unit, **meta["params"])


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
