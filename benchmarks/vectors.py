"""Clustered synthetic item vectors for nearest-neighbour benchmarks.

Uniform random vectors are a poor ANN benchmark: in 64 dimensions every point is
about equally far from every other, so "nearest neighbours" carry no structure
and graph indexes look worse than they do on real embeddings. Trained item
vectors are clustered (categories, sub-categories) and most of their variance
lies in a few directions. This generator mimics that with a two-level Gaussian
mixture (clusters, then sub-clusters) plus within-cluster noise whose variance
decays over the dimensions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["clustered_vectors"]


def clustered_vectors(
    n: int,
    dim: int = 64,
    n_clusters: int = 1000,
    subclusters: int = 10,
    noise: float = 1.0,
    random_state: int = 0,
) -> np.ndarray:
    """``n`` float32 vectors from a two-level Gaussian mixture.

    Parameters
    ----------
    n : int
        Number of vectors.
    dim : int
        Dimension.
    n_clusters : int
        Top-level clusters (categories); cluster sizes are Zipf-like.
    subclusters : int
        Sub-clusters per cluster.
    noise : float
        Scale of the within-sub-cluster noise (cluster centres have scale 1).
    random_state : int

    Returns
    -------
    ndarray, shape (n, dim), float32
    """
    rng = np.random.default_rng(random_state)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    subs = centres[:, None, :] + 0.5 * rng.standard_normal((n_clusters, subclusters, dim)).astype(np.float32)
    subs = subs.reshape(-1, dim)
    w = 1.0 / np.arange(1, n_clusters + 1) ** 0.5
    w = np.repeat(w / w.sum() / subclusters, subclusters)
    which = rng.choice(len(subs), size=n, p=w)
    # noise variance decays over the dimensions (a few directions carry most of it)
    scale = (noise / np.sqrt(1.0 + np.arange(dim) / 4.0)).astype(np.float32)
    rot = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    step = 200_000
    for s in range(0, n, step):
        e = min(s + step, n)
        eps = rng.standard_normal((e - s, dim), dtype=np.float32) * scale
        out[s:e] = subs[which[s:e]] + eps @ rot
    return out
