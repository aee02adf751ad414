"""The BiLSTM trained data-parallel by Spark's TorchDistributor (``launcher="spark"``, ``train-next --engine spark``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from item2vec.nextitem import NextItemRecommender

pytestmark = pytest.mark.spark

ROOT = Path(__file__).resolve().parents[2]
N_ITEMS = 40
TINY = {"init": "random", "hidden_size": 8, "max_prefix": 5, "epochs": 2, "dropout": 0.0, "random_state": 1,
        "show_progress": False}


def _sessions(n: int, seed: int) -> list[np.ndarray]:
    """Runs of consecutive item ids: the next item is always the successor."""
    rng = np.random.default_rng(seed)
    return [(rng.integers(N_ITEMS) + np.arange(rng.integers(3, 8))) % N_ITEMS + 1 for _ in range(n)]


def test_torch_distributor_trains_what_one_process_trains(spark, monkeypatch):
    # TorchDistributor's torchrun processes import item2vec from $PYTHONPATH: this checkout's
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    train, valid = _sessions(300, 0), _sessions(60, 1)
    two = NextItemRecommender(processes=2, launcher="spark", **TINY).fit(train, n_items=N_ITEMS, valid=valid)
    one = NextItemRecommender(**TINY).fit(train, n_items=N_ITEMS, valid=valid)
    h1, h2 = one.train_result_.history, two.train_result_.history
    assert len(h1) == len(h2) == 2
    for a, b in zip(h1, h2, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3)
        assert b["val_mrr@20"] == pytest.approx(a["val_mrr@20"], abs=0.02)
    ids, _ = two.recommend_batch([np.array([5, 6])], k=3)
    assert ids.shape == (1, 3)
