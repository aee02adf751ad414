"""A synthetic session log with planted structure, for the demo and the tests.

Items fall into ``n_clusters`` clusters. Each session stays in one cluster (with
probability ``noise`` an event is drawn from the whole catalogue instead), and
within the cluster every item has one planted successor: with probability
``p_follow`` the next event is the successor of the current one, otherwise a
uniformly drawn cluster mate. Popularity inside a cluster is Zipf-like so that
popularity baselines have something to find.

The ground truth is returned so tests can check that neighbours stay in their
cluster (item2vec's job) and that next items follow the successor map (the
sequential models' job: item2vec neighbours cannot solve it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

__all__ = ["SyntheticTruth", "make_sessions"]


@dataclass
class SyntheticTruth:
    """What the generator planted: ``cluster[item]`` and ``successor[item]``."""

    cluster: dict[str, int]
    successor: dict[str, str]


def make_sessions(
    n_sessions: int = 3000,
    n_clusters: int = 10,
    items_per_cluster: int = 40,
    min_length: int = 3,
    max_length: int = 12,
    p_follow: float = 0.5,
    noise: float = 0.0,
    days: int = 30,
    zipf: float = 1.0,
    random_state: int = 0,
) -> tuple[pl.DataFrame, SyntheticTruth]:
    """Generate a session log.

    Returns
    -------
    events : polars.DataFrame
        ``session_id`` (Int64), ``item_id`` (String, e.g. ``"c03_i017"``),
        ``timestamp`` (Datetime), spread evenly over ``days`` days, one minute
        between events of a session.
    truth : SyntheticTruth
    """
    if n_sessions <= 0 or n_clusters <= 0 or items_per_cluster < 2:
        raise ValueError(
            "need n_sessions > 0, n_clusters > 0 and items_per_cluster >= 2, got "
            f"{n_sessions}, {n_clusters}, {items_per_cluster}"
        )
    if not 2 <= min_length <= max_length:
        raise ValueError(f"need 2 <= min_length <= max_length, got {min_length}, {max_length}")
    rng = np.random.default_rng(random_state)
    names = np.array(
        [f"c{c:02d}_i{i:03d}" for c in range(n_clusters) for i in range(items_per_cluster)], dtype=object
    )
    n_items = len(names)
    members = np.arange(n_items).reshape(n_clusters, items_per_cluster)
    # a planted successor: a random cycle through each cluster
    successor = np.empty(n_items, dtype=np.int64)
    for c in range(n_clusters):
        perm = rng.permutation(members[c])
        successor[perm] = np.roll(perm, -1)
    weights = 1.0 / np.arange(1, items_per_cluster + 1) ** zipf
    weights /= weights.sum()
    cluster_p = rng.dirichlet(np.full(n_clusters, 5.0))

    start = dt.datetime(2024, 1, 1)
    span = days * 86400
    sess_ids, item_ids, times = [], [], []
    offsets = np.sort(rng.uniform(0, span, n_sessions))
    for s in range(n_sessions):
        c = rng.choice(n_clusters, p=cluster_p)
        length = rng.integers(min_length, max_length + 1)
        cur = members[c][rng.choice(items_per_cluster, p=weights)]
        seq = [cur]
        for _ in range(length - 1):
            if noise > 0 and rng.random() < noise:
                cur = rng.integers(n_items)
            elif rng.random() < p_follow:
                cur = successor[cur]
            else:
                cur = members[c][rng.choice(items_per_cluster, p=weights)]
            seq.append(cur)
        sess_ids.extend([s] * len(seq))
        item_ids.extend(seq)
        t0 = offsets[s]
        times.extend(int((t0 + 60 * j) * 1e6) for j in range(len(seq)))
    events = pl.DataFrame(
        {
            "session_id": np.asarray(sess_ids, dtype=np.int64),
            "item_id": names[np.asarray(item_ids)].tolist(),
            "timestamp": (np.datetime64(start, "us") + np.asarray(times, dtype="timedelta64[us]")),
        }
    )
    truth = SyntheticTruth(
        cluster={names[i]: int(i // items_per_cluster) for i in range(n_items)},
        successor={names[i]: names[successor[i]] for i in range(n_items)},
    )
    return events, truth
