"""The trainer: examples, device choice, callbacks, early stopping, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from item2vec.exceptions import EmptyDataError
from item2vec.nextitem import (
    NextItemConfig,
    NextItemModel,
    TrainConfig,
    Trainer,
    make_examples,
    resolve_device,
)
from item2vec.nextitem.train import DEVICE_ENV, rank_metrics


def test_make_examples_every_prefix_capped():
    ex = make_examples([np.array([1, 2, 3, 4]), np.array([5]), np.array([6, 7])], max_prefix=2)
    assert len(ex) == 4
    np.testing.assert_array_equal(ex.items, [[1, 0], [1, 2], [2, 3], [6, 0]])
    np.testing.assert_array_equal(ex.lengths, [1, 2, 2, 1])
    np.testing.assert_array_equal(ex.targets, [2, 3, 4, 7])
    with pytest.raises(EmptyDataError, match="2 or more items"):
        make_examples([np.array([1]), np.array([], dtype=np.int64)], max_prefix=3)


def test_resolve_device_order(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device().type == expected
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert resolve_device().type == "cpu"
    assert resolve_device("cpu").type == "cpu"  # explicit wins
    with pytest.raises(ValueError, match="torch device name"):
        resolve_device("toaster")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_resolve_device_cuda_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV, "cuda")
    with pytest.raises(ValueError, match=r"ITEM2VEC_DEVICE.*CUDA is not available"):
        resolve_device()


def _fit(sessions, valid, seed=0, exclude_last=False, **kw):
    torch.manual_seed(seed)
    model = NextItemModel(NextItemConfig(n_items=30, embedding_dim=8, hidden_size=8))
    calls = []
    trainer = Trainer(epochs=kw.pop("epochs", 4), lr=kw.pop("lr", 1e-2), random_state=seed, show_progress=False, device="cpu", **kw)
    res = trainer.fit(model, sessions, valid, max_prefix=5, callback=lambda e, m: calls.append((e, m)),
                      exclude_last=exclude_last)
    return model, res, calls


def test_callback_history_and_best_weights_kept(sequential_data):
    data, _ = sequential_data
    model, res, calls = _fit(data.train, data.valid, epochs=4, exclude_last=data.repeats_dropped)
    assert [e for e, _ in calls] == list(range(1, res.epochs_run + 1))
    assert {"loss", "val_mrr@20", "val_hr@20", "examples_per_second"} <= set(calls[0][1])
    best = max(h["val_mrr@20"] for h in res.history)
    assert res.best_metrics["val_mrr@20"] == best
    assert res.history[res.best_epoch - 1]["val_mrr@20"] == best
    # the weights left in the model are the best epoch's
    again = rank_metrics(model, make_examples(data.valid, 5), exclude_last=data.repeats_dropped)["mrr@20"]
    assert again == pytest.approx(best)
    assert calls[-1][1]["loss"] < calls[0][1]["loss"]


def test_early_stopping_stops_after_patience(sequential_data):
    data, _ = sequential_data
    # no epoch can beat the first by more than min_delta=1 (MRR <= 1): stop after 1 + patience
    _, res, calls = _fit(data.train, data.valid, epochs=10, patience=2, min_delta=1.0)
    assert res.epochs_run == 3 and len(calls) == 3
    assert res.best_epoch == 1


def test_lr_decays_on_a_plateau_only(sequential_data):
    data, _ = sequential_data
    # min_delta=1: every epoch after the first is a plateau, so the rate halves after each
    _, res, calls = _fit(data.train, data.valid, epochs=10, patience=3, min_delta=1.0, lr=0.01, lr_decay=0.5)
    # epoch 1 is the best; epochs 2 and 3 are stale and halve the rate; epoch 4 is the 3rd stale: stop
    assert [round(m["lr"], 6) for _, m in calls] == [0.01, 0.01, 0.005, 0.0025]
    # constant by default, and always with improving epochs
    _, _, calls = _fit(data.train, data.valid, epochs=3, lr=0.01)
    assert {m["lr"] for _, m in calls} == {0.01}
    with pytest.raises(ValueError, match="lr_decay"):
        TrainConfig(lr_decay=0.0)


def test_same_seed_same_model(sequential_data):
    data, _ = sequential_data
    m1, r1, _ = _fit(data.train, data.valid, epochs=2)
    m2, r2, _ = _fit(data.train, data.valid, epochs=2)
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=k)
    assert r1.history[-1]["loss"] == r2.history[-1]["loss"]


def test_without_validation_all_epochs_run(sequential_data):
    data, _ = sequential_data
    _, res, calls = _fit(data.train, None, epochs=2)
    assert res.epochs_run == 2 and res.best_epoch == 2
    assert "val_mrr@20" not in calls[0][1]


def test_bad_train_config():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="unknown TrainConfig option"):
        Trainer(epoch=3)


def test_plateau_schedule_is_the_documented_rule(sequential_data):
    """ReduceLROnPlateau gives the rule of TrainConfig.lr_decay: after each epoch that does not
    beat the best validation MRR by more than min_delta, the rate is multiplied by lr_decay."""
    data, _ = sequential_data
    _, res, _ = _fit(data.train, data.valid, epochs=8, patience=8, min_delta=0.01, lr=0.005, lr_decay=0.5)
    lr, best, expected = 0.005, -np.inf, []
    for h in res.history:
        expected.append(lr)
        if h["val_mrr@20"] > best + 0.01:
            best = h["val_mrr@20"]
        else:
            lr *= 0.5
    assert [h["lr"] for h in res.history] == expected
    assert len(set(expected)) > 1 and expected[1] == expected[0]  # some epochs improved, some did not
