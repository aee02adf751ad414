"""`train-next --processes N`: the BiLSTM trained data-parallel (torch.distributed, gloo) in local processes.

Each test that starts processes starts them once (spawning two interpreters that import
torch is the cost here), on the tiny sequential log of the conftest.
"""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
import torch.distributed as dist

from item2vec.baselines import Pop
from item2vec.cli import main
from item2vec.evaluation import evaluate
from item2vec.nextitem import NextItemModel, NextItemRecommender, TrainConfig
from item2vec.nextitem.recommender import load_next_model

TINY = {"hidden_size": 8, "max_prefix": 5, "epochs": 3, "dropout": 0.0, "random_state": 3}
CLI_TINY = ["--hidden-size", "8", "--max-prefix", "5", "--epochs", "3", "--dropout", "0", "--seed", "3", "--quiet"]


class FailsOnRank1(NextItemModel):
    """A model whose training step raises in the process of rank 1 (the others would wait for it)."""

    def forward(self, items, lengths, targets=None):
        if targets is not None and dist.is_initialized() and dist.get_rank() == 1:
            raise RuntimeError("rank 1 ran out of luck")
        return super().forward(items, lengths, targets)


@pytest.fixture(scope="module")
def prepared(sequential_data, tmp_path_factory):
    data, _ = sequential_data
    return data.save(tmp_path_factory.mktemp("prep") / "data")


def test_two_processes_train_what_one_trains_and_the_checkpoint_serves(sequential_data, prepared, tmp_path, capsys):
    """Same seed, no dropout: every epoch's loss and validation MRR@20 match one process's; the model serves."""
    data, _ = sequential_data
    out = tmp_path / "bilstm"
    assert main(["train-next", "--data", str(prepared), "--init", "random", "--processes", "2",
                 "--out", str(out), *CLI_TINY]) == 0
    assert "kept epoch" in capsys.readouterr().out
    two = load_next_model(out)
    assert two.get_params()["processes"] == 2
    one = NextItemRecommender(init="random", vocab=data.vocab, show_progress=False, **TINY)
    one.fit(data.train, n_items=data.n_items, valid=data.valid, repeats_dropped=data.repeats_dropped)

    h1, h2 = one.train_result_.history, two.train_result_.history
    assert [r["epoch"] for r in h1] == [r["epoch"] for r in h2]
    for a, b in zip(h1, h2, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3)
        assert b["val_mrr@20"] == pytest.approx(a["val_mrr@20"], abs=0.02)
    # a learnable task: both beat the popularity ranking on the validation prefixes
    pop_mrr = evaluate(Pop().fit(data.train, n_items=data.n_items), data.valid, k=20)["mrr@20"]
    for model in (one, two):
        assert model.train_result_.best_metrics["val_mrr@20"] > pop_mrr
    # the checkpoint serves what the trained weights rank
    prefixes = [s[:2] for s in data.test if len(s) >= 2][:20]
    np.testing.assert_array_equal(two.recommend_batch(prefixes, k=5)[0], one.recommend_batch(prefixes, k=5)[0])
    ids, _ = two.recommend_ids([data.vocab.ids[0]], k=3)
    assert len(ids) == 3


def test_a_failing_rank_is_one_line_and_writes_nothing(prepared, tmp_path, monkeypatch, capsys):
    """Rank 1 raises: the command says which rank and why, exits 2, and leaves neither --out nor temporary files."""
    import item2vec.nextitem.recommender as rec

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setattr(rec, "NextItemModel", FailsOnRank1)
    out = tmp_path / "bilstm"
    assert main(["train-next", "--data", str(prepared), "--init", "random", "--processes", "2",
                 "--out", str(out), *CLI_TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "rank 1 of 2 failed" in err[0] and "rank 1 ran out of luck" in err[0]
    assert not out.exists()
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_bad_processes_one_line_exit_2(prepared, tmp_path, capsys, value):
    with pytest.raises(SystemExit) as e:
        main(["train-next", "--data", str(prepared), "--processes", value, "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--processes" in err[0] and repr(value) in err[0]
    assert not (tmp_path / "o").exists()


def test_config_refuses_bad_processes_and_launcher():
    with pytest.raises(ValueError, match="processes=0"):
        TrainConfig(processes=0)
    with pytest.raises(ValueError, match="launcher"):
        NextItemRecommender(processes=2, launcher="mpi")
