"""Fixtures for the next-item model tests: a deterministic sequential log, one thread."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from item2vec.data import PrepareConfig, make_sessions, prepare
from item2vec.embeddings import Item2Vec


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models train fastest (and steadiest on a shared machine) on one CPU thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def sequential_data():
    """Every next item is the planted successor of the current one (p_follow=1.0).

    3 clusters x 10 items; item2vec neighbours see all cluster mates co-occur, so
    they cannot tell the successor from the predecessor or the others.
    """
    events, truth = make_sessions(
        n_sessions=300, n_clusters=3, items_per_cluster=10, p_follow=1.0, days=10, random_state=0
    )
    data = prepare(events, PrepareConfig(test_days=2, valid_days=1, min_item_support=1), name="sequential")
    return data, truth


@pytest.fixture(scope="session")
def sequential_embeddings(sequential_data):
    data, _ = sequential_data
    return Item2Vec(vector_size=16, epochs=5, show_progress=False).fit(data.decode(data.train)).embeddings_


@pytest.fixture(scope="session")
def repeat_data():
    """The sequential log with every event doubled half the time, prepared with repeats kept and dropped.

    After a single click on an item the next one is that item again about half the
    time (a repeat) and its planted successor otherwise; after a double click it is
    the successor.
    """
    events, _ = make_sessions(
        n_sessions=300, n_clusters=3, items_per_cluster=10, p_follow=1.0, days=10, random_state=0
    )
    rng = np.random.default_rng(0)
    events = events.select(pl.all().gather(np.repeat(np.arange(events.height), 1 + (rng.random(events.height) < 0.5))))
    cfg = dict(test_days=2, valid_days=1, min_item_support=1)
    kept = prepare(events, PrepareConfig(drop_repeats=False, **cfg), name="repeats-kept")
    dropped = prepare(events, PrepareConfig(**cfg), name="repeats-dropped")
    return kept, dropped
