"""Nearest-neighbour search over item vectors by cosine similarity.

:class:`ExactIndex` keeps an L2-normalised float32 copy of the vectors and answers
queries with one matrix product per block of queries (BLAS), then a partial sort.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["ExactIndex", "normalize", "topk"]

#: Bound on the (queries x items) score block, in float32 cells (~256 MB).
_BLOCK_CELLS = 64 * 1024 * 1024


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32 (zero rows stay zero)."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
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
        Ties are broken by the lower column index.
    """
    n = scores.shape[1]
    k = min(k, n)
    if k <= 0:
        return np.empty((scores.shape[0], 0), np.int64), np.empty((scores.shape[0], 0), scores.dtype)
    if k < n:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape).copy()
    vals = np.take_along_axis(scores, part, axis=1)
    # sort by (-value, index) so ties are deterministic
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(vals, order, axis=1)


class ExactIndex:
    """Exact cosine top-k by brute force: one BLAS product per block of queries.

    Parameters
    ----------
    vectors : ndarray, shape (n, d)
        Item vectors (any scale: they are normalised here).
    """

    kind = "exact"

    def __init__(self, vectors: np.ndarray) -> None:
        self.unit = normalize(vectors)

    def __len__(self) -> int:
        return self.unit.shape[0]

    def search(
        self,
        queries: np.ndarray,
        k: int,
        exclude: Sequence[np.ndarray | None] | None = None,
        exclude_all: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows by cosine for each query vector.

        Parameters
        ----------
        queries : ndarray, shape (B, d)
        k : int
        exclude : sequence of int arrays, optional
            Per query, rows that must not be returned (e.g. the query item).
        exclude_all : int array, optional
            Rows no query may return (``filter_items``).

        Returns
        -------
        (rows, scores) : ndarrays, shape (B, k')
            ``k' = min(k, n)``; excluded rows get score ``-inf`` and sort last.
        """
        q = normalize(np.atleast_2d(queries))
        n = len(self)
        block = max(1, _BLOCK_CELLS // max(n, 1))
        rows_out = np.empty((q.shape[0], min(k, n)), dtype=np.int64)
        scores_out = np.empty((q.shape[0], min(k, n)), dtype=np.float32)
        for start in range(0, q.shape[0], block):
            stop = min(start + block, q.shape[0])
            s = q[start:stop] @ self.unit.T  # (b, n)
            if exclude_all is not None and len(exclude_all):
                s[:, exclude_all] = -np.inf
            if exclude is not None:
                for j in range(start, stop):
                    ex = exclude[j]
                    if ex is not None and len(ex):
                        s[j - start, ex] = -np.inf
            r, v = topk(s, k)
            rows_out[start:stop], scores_out[start:stop] = r, v
        return rows_out, scores_out
