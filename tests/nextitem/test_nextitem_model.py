"""NextItemConfig and NextItemModel: shapes, padding, pooling, losses, item-table loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from item2vec.nextitem import NextItemConfig, NextItemModel, pretrained_table

N = 12


def _batch():
    # three prefixes of lengths 3, 1, 2, right-padded with 0
    items = torch.tensor([[3, 5, 7], [2, 0, 0], [9, 4, 0]])
    lengths = torch.tensor([3, 1, 2])
    return items, lengths


@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
@pytest.mark.parametrize("tied", [True, False])
def test_forward_shapes_and_padding_column(pooling, tied):
    torch.manual_seed(0)
    model = NextItemModel(NextItemConfig(n_items=N, embedding_dim=8, hidden_size=6, pooling=pooling, tied=tied)).eval()
    items, lengths = _batch()
    scores, loss = model(items, lengths)
    assert scores.shape == (3, N + 1)
    assert loss is None
    assert torch.isinf(scores[:, 0]).all() and (scores[:, 0] < 0).all()
    assert torch.isfinite(scores[:, 1:]).all()
    assert model.encode(items, lengths).shape == (3, 8)


@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
def test_padding_does_not_change_scores(pooling):
    torch.manual_seed(0)
    model = NextItemModel(NextItemConfig(n_items=N, embedding_dim=8, hidden_size=6, pooling=pooling)).eval()
    items, lengths = _batch()
    with torch.inference_mode():
        wide, _ = model(torch.cat([items, torch.zeros(3, 4, dtype=torch.long)], dim=1), lengths)
        narrow, _ = model(items, lengths)
        alone, _ = model(torch.tensor([[9, 4]]), torch.tensor([2]))
    torch.testing.assert_close(wide, narrow)
    torch.testing.assert_close(narrow[2:3], alone)  # other rows of the batch do not leak in


def test_padding_row_is_zero_and_gets_no_gradient():
    model = NextItemModel(NextItemConfig(n_items=N, embedding_dim=8, hidden_size=6, dropout=0.0))
    assert torch.count_nonzero(model.embedding.weight[0]) == 0
    items, lengths = _batch()
    _, loss = model(items, lengths, torch.tensor([1, 2, 3]))
    loss.backward()
    assert torch.count_nonzero(model.embedding.weight.grad[0]) == 0


def test_full_loss_is_cross_entropy_over_the_catalogue():
    torch.manual_seed(0)
    model = NextItemModel(NextItemConfig(n_items=N, embedding_dim=8, hidden_size=6)).eval()
    items, lengths = _batch()
    targets = torch.tensor([1, 12, 5])
    scores, loss = model(items, lengths, targets)
    torch.testing.assert_close(loss, F.cross_entropy(scores, targets))


def test_sampled_loss_is_finite_trains_and_skips_the_score_matrix():
    torch.manual_seed(0)
    cfg = NextItemConfig(n_items=N, embedding_dim=8, hidden_size=6, loss="sampled", n_negatives=4)
    model = NextItemModel(cfg)
    model.init_bias(np.arange(N + 1, dtype=float))
    items, lengths = _batch()
    targets = torch.tensor([1, 1, 5])  # a repeated target must not count as its own negative
    scores, loss = model(items, lengths, targets)
    assert scores is None and torch.isfinite(loss)
    loss.backward()
    assert model.lstm.weight_ih_l0.grad is not None
    # at inference the sampled model still scores the whole catalogue
    scores, _ = model.eval()(items, lengths)
    assert scores.shape == (3, N + 1)


def test_projection_when_the_table_width_differs_from_the_lstm_input():
    model = NextItemModel(NextItemConfig(n_items=N, embedding_dim=8, projection_dim=5, hidden_size=6))
    assert model.lstm.input_size == 5
    assert model(*_batch())[0].shape == (3, N + 1)


def test_init_bias_ranks_an_untrained_model_by_popularity():
    model = NextItemModel(NextItemConfig(n_items=N, embedding_dim=8, hidden_size=6))
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    counts = np.r_[0, np.arange(N, 0, -1)].astype(float)  # item 1 most popular
    model.init_bias(counts)
    scores, _ = model.eval()(*_batch())
    assert scores[0, 1:].argmax().item() == 0  # column 1 = item 1
    with pytest.raises(ValueError, match="counts must have shape"):
        model.init_bias(np.ones(3))


def test_load_item_table_and_freeze():
    model = NextItemModel(NextItemConfig(n_items=N, embedding_dim=4, hidden_size=6))
    table = np.random.default_rng(0).standard_normal((N + 1, 4)).astype(np.float32)
    model.load_item_table(table, freeze=True)
    assert not model.embedding.weight.requires_grad
    np.testing.assert_array_equal(model.embedding.weight[1:].detach().numpy(), table[1:])
    assert torch.count_nonzero(model.embedding.weight[0]) == 0
    with pytest.raises(ValueError, match="item table must have shape"):
        model.load_item_table(table[:, :3])


def test_pretrained_table_fills_missing_items_with_typical_vectors():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((5, 3)).astype(np.float32) + 10.0
    rows = np.array([4, -1, 0, 2, -1, 1])  # items 2 and 5 are missing
    table, known = pretrained_table(vectors, rows, n_items=6, standardize=False)
    assert table.shape == (7, 3)
    np.testing.assert_array_equal(known, [False, True, False, True, True, False, True])
    assert (table[0] == 0).all()
    np.testing.assert_array_equal(table[1], vectors[4])
    np.testing.assert_array_equal(table[6], vectors[1])
    # missing items sit among the known ones (around +10), not at zero
    assert np.all(np.abs(table[[2, 5]] - 10.0) < 6.0)
    std, _ = pretrained_table(vectors, rows, n_items=6)
    assert abs(np.linalg.norm(std[1:][known[1:]], axis=1).mean() - 1.0) < 0.3
    with pytest.raises(ValueError, match="rows must have shape"):
        pretrained_table(vectors, rows[:3], n_items=6)


def test_config_round_trip_and_validation():
    cfg = NextItemConfig(n_items=7, hidden_size=3, pooling="attention", tied=False)
    assert NextItemConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="hidden_size=0"):
        NextItemConfig(n_items=7, hidden_size=0)
    with pytest.raises(ValueError, match="pooling"):
        NextItemConfig(n_items=7, pooling="max")
    with pytest.raises(ValueError, match="unknown NextItemConfig option"):
        NextItemConfig.from_dict({"n_items": 3, "hiden_size": 4})


def test_residual_last_starts_from_last_item_similarity():
    """With the head zeroed, the session vector is the last item's vector: scores = table similarity."""
    torch.manual_seed(0)
    model = NextItemModel(NextItemConfig(n_items=N, embedding_dim=8, hidden_size=6, residual_last=True)).eval()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    items, lengths = _batch()
    scores, _ = model(items, lengths)
    table = model.embedding.weight
    last = torch.tensor([7, 2, 4])
    torch.testing.assert_close(scores[:, 1:], (table[last] @ table.T)[:, 1:])
