"""Shared fixtures: small synthetic data with known answers, and the real datasets when present."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from item2vec.data import PrepareConfig, make_sessions, prepare

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"

warnings.filterwarnings("ignore", message=".*SADeprecationWarning.*")


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """``../shared/datasets`` beside the checkout; the test is skipped when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared/datasets is not present (a user's clone does not have it)")
    return SHARED


@pytest.fixture(scope="session")
def synthetic():
    """(events, truth) with clean clusters: every session stays in its cluster."""
    return make_sessions(n_sessions=1500, n_clusters=6, items_per_cluster=20, noise=0.0, random_state=1)


@pytest.fixture(scope="session")
def synthetic_data(synthetic):
    events, _ = synthetic
    return prepare(events, PrepareConfig(test_days=3, valid_days=3), name="synthetic")
