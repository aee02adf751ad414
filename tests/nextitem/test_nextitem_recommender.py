"""NextItemRecommender: learns sequential transitions, inference rules, checkpoints, freezing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from item2vec.embeddings import ItemEmbeddings
from item2vec.evaluation import evaluate, make_prefixes, prediction_ranks
from item2vec.exceptions import DataError, FormatVersionError, NotFittedError
from item2vec.index import topk
from item2vec.nextitem import NextItemRecommender, load_next_model, pretrained_table
from item2vec.recommenders import Item2VecRecommender

SMALL = dict(hidden_size=16, epochs=15, lr=1e-2, show_progress=False, device="cpu")


@pytest.fixture(scope="module")
def fitted(sequential_data, sequential_embeddings):
    data, _ = sequential_data
    torch.set_num_threads(1)
    return NextItemRecommender(embeddings=sequential_embeddings, vocab=data.vocab, **SMALL).fit(
        data.train, data.n_items, valid=data.valid
    )


def test_bilstm_solves_deterministic_successors_item2vec_cannot(sequential_data, sequential_embeddings, fitted):
    data, truth = sequential_data
    i2v = Item2VecRecommender(embeddings=sequential_embeddings, vocab=data.vocab).fit(data.train, data.n_items)
    random = NextItemRecommender(init="random", **SMALL).fit(data.train, data.n_items, valid=data.valid)
    hr_i2v = evaluate(i2v, data.test, k=5)["hr@5"]
    hr_bilstm = evaluate(fitted, data.test, k=5)["hr@5"]
    hr_random = evaluate(random, data.test, k=5)["hr@5"]
    assert hr_bilstm > 0.95 and hr_random > 0.95
    assert hr_i2v < 0.5
    # and the top answer is the planted successor
    item = data.vocab.ids[0]
    top = fitted.recommend_ids([item], k=1)[0][0]
    assert top == truth.successor[item]


def test_shapes_batch_equals_single(fitted, sequential_data):
    data, _ = sequential_data
    prefixes = [s[:3] for s in data.test[:7]]
    scores = fitted.score_batch(prefixes)
    assert scores.shape == (7, data.n_items + 1) and scores.dtype == np.float32
    assert np.isneginf(scores[:, 0]).all()
    ids, sc = fitted.recommend_batch(prefixes, k=4)
    assert ids.shape == sc.shape == (7, 4)
    for p, row_ids, row_sc in zip(prefixes, ids, sc, strict=True):
        i1, s1 = fitted.recommend(p, k=4)
        np.testing.assert_array_equal(i1, row_ids)
        np.testing.assert_allclose(s1, row_sc, rtol=1e-5, atol=1e-5)


def test_recommend_batch_is_the_top_k_of_the_scores(fitted, sequential_data):
    # the top k taken in torch per batch equals the top k of the dense numpy scores,
    # for prefixes with known items, only unknown items, and none at all
    data, _ = sequential_data
    n = data.n_items
    prefixes = [s[:3] for s in data.test[:30]] + [np.array([], dtype=np.int64), np.array([0, n + 5])]
    for k in (1, 5, n + 3):  # k above the catalogue: every item, -inf ones last
        ref_ids, ref_sc = topk(fitted.score_batch(prefixes), k)
        for batch_size in (4, 1024):
            ids, sc = fitted.recommend_batch(prefixes, k=k, batch_size=batch_size)
            assert ids.shape == sc.shape == ref_ids.shape
            finite = np.isfinite(ref_sc)
            np.testing.assert_array_equal(ids[finite], ref_ids[finite])
            np.testing.assert_allclose(sc[finite], ref_sc[finite], rtol=1e-5, atol=1e-6)
            assert (np.isneginf(sc) == ~finite).all()
            assert all(p[-1] not in row[:k] for p, row in zip(prefixes[:30], ids, strict=False) if k <= 5)


def test_unknown_items_are_skipped_and_empty_prefix_is_popularity(fitted, sequential_data):
    data, _ = sequential_data
    n = data.n_items
    clean = np.array([3, 5])
    dirty = np.array([0, 3, n + 7, 5, -2])
    a, b = fitted.score_batch([clean, dirty])
    np.testing.assert_array_equal(a, b)
    ids, _ = fitted.recommend(np.array([0, n + 1]), k=3)
    np.testing.assert_array_equal(ids, np.argsort(-fitted.popularity_[1:], kind="stable")[:3] + 1)
    # a prefix longer than max_prefix reads only its tail
    cap = fitted.config_.max_prefix
    long = np.arange(1, cap + 6) % n + 1
    np.testing.assert_array_equal(*fitted.score_batch([long, long[-cap:]]))


def test_last_item_never_recommended_where_repeats_were_dropped(fitted, sequential_data, tmp_path):
    data, _ = sequential_data
    assert data.repeats_dropped and fitted.repeats_dropped_
    prefixes = [s[:3] for s in data.test[:20]]
    scores = fitted.score_batch(prefixes)
    assert all(np.isneginf(scores[i, p[-1]]) for i, p in enumerate(prefixes))
    # the fact is in the checkpoint, not a training setting
    path = fitted.save(tmp_path / "m")
    assert json.loads((path / "meta.json").read_text())["repeats_dropped"] is True
    assert load_next_model(path).repeats_dropped_
    assert "exclude_last" not in fitted.get_params()
    with pytest.raises(ValueError, match="exclude_last"):
        NextItemRecommender(exclude_last=False)


def test_bilstm_recommends_the_last_item_where_repeats_were_kept(repeat_data, tmp_path):
    kept, dropped = repeat_data
    assert not kept.repeats_dropped and dropped.repeats_dropped
    pre = make_prefixes(kept.test)
    repeat = np.array([p[-1] == t for p, t in zip(pre.prefixes, pre.targets, strict=True)])
    assert 0.2 < repeat.mean() < 0.6
    # told nothing, the model reads the fact off the training sessions; told, it takes it
    for fit_kw in ({}, {"repeats_dropped": kept.repeats_dropped}):
        model = NextItemRecommender(init="random", **SMALL).fit(kept.train, kept.n_items, valid=kept.valid, **fit_kw)
        assert not model.repeats_dropped_
        ranks = prediction_ranks(model, pre, k=2)
        assert (ranks[repeat] > 0).mean() > 0.9 and (ranks > 0).mean() > 0.9
    # the saved model keeps the fact and its answers
    back = load_next_model(model.save(tmp_path / "kept"))
    assert not back.repeats_dropped_
    assert json.loads((tmp_path / "kept" / "meta.json").read_text())["repeats_dropped"] is False
    np.testing.assert_array_equal(prediction_ranks(back, pre, k=2), ranks)
    # the mask forced on (what every model did before the fact was recorded) misses every repeat
    masked = NextItemRecommender(init="random", **SMALL).fit(
        kept.train, kept.n_items, valid=kept.valid, repeats_dropped=True
    )
    assert (prediction_ranks(masked, pre, k=2)[repeat] == 0).all()
    # on the same log prepared with repeats dropped the last item is never recommended
    on_dropped = NextItemRecommender(init="random", **SMALL).fit(dropped.train, dropped.n_items, valid=dropped.valid)
    assert on_dropped.repeats_dropped_
    ids, scores = on_dropped.recommend_batch(make_prefixes(dropped.test).prefixes, k=3)
    last = np.array([p[-1] for p in make_prefixes(dropped.test).prefixes])
    assert not (ids == last[:, None]).any()


def test_checkpoint_from_before_the_fact_loads_with_its_setting(fitted, tmp_path):
    # format-1 checkpoints (checkpoint.pt, written before repeats_dropped was recorded)
    # kept the training setting exclude_last
    path = fitted.save(tmp_path / "m")
    ckpt = json.loads((path / "checkpoint.json").read_text())
    with np.load(path / "weights.npz", allow_pickle=False) as z:
        state = {k.removeprefix("state_dict/"): torch.from_numpy(z[k]) for k in z.files if k.startswith("state_dict/")}
        pop = torch.from_numpy(z["popularity"])
    del ckpt["repeats_dropped"]
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for setting in (True, False):
        ckpt["params"]["exclude_last"] = setting
        torch.save({**ckpt, "format_version": 1, "state_dict": state, "popularity": pop}, legacy / "checkpoint.pt")
        assert load_next_model(legacy).repeats_dropped_ is setting


def test_checkpoint_round_trip_identical_scores(fitted, sequential_data, tmp_path):
    data, _ = sequential_data
    path = fitted.save(tmp_path / "bilstm")
    meta = json.loads((path / "meta.json").read_text())
    assert meta["epoch"] == fitted.train_result_.best_epoch
    assert "val_mrr@20" in meta["metrics"] and meta["config"]["n_items"] == data.n_items
    ckpt = json.loads((path / "checkpoint.json").read_text())
    assert set(ckpt) >= {"config", "vocab", "epoch", "metrics"}
    assert not list(path.glob("*.pt")) and not list(path.glob("*.pkl"))
    loaded = load_next_model(path)
    prefixes = [s[:4] for s in data.test[:20]]
    np.testing.assert_array_equal(loaded.score_batch(prefixes), fitted.score_batch(prefixes))
    assert loaded.vocab == data.vocab
    assert loaded.get_params() == fitted.get_params()
    np.testing.assert_array_equal(loaded.popularity_, fitted.popularity_)


def test_checkpoint_errors(fitted, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a next-item model directory"):
        load_next_model(tmp_path)
    path = fitted.save(tmp_path / "m")
    ckpt = json.loads((path / "checkpoint.json").read_text())
    ckpt["format_version"] = 99
    (path / "checkpoint.json").write_text(json.dumps(ckpt))
    with pytest.raises(FormatVersionError, match="version 99"):
        load_next_model(path)


def test_frozen_embeddings_stay_unchanged(sequential_data, sequential_embeddings):
    data, _ = sequential_data
    kw = {**SMALL, "epochs": 2}
    frozen = NextItemRecommender(embeddings=sequential_embeddings, vocab=data.vocab, freeze=True, **kw)
    frozen.fit(data.train, data.n_items, valid=data.valid)
    tuned = NextItemRecommender(embeddings=sequential_embeddings, vocab=data.vocab, **kw)
    tuned.fit(data.train, data.n_items, valid=data.valid)
    w_frozen = frozen.model_.embedding.weight.detach().numpy()
    w_tuned = tuned.model_.embedding.weight.detach().numpy()
    # both started from the same standardised item2vec table
    start, known = pretrained_table(
        sequential_embeddings.vectors, frozen._rows(sequential_embeddings, data.n_items, by_index=False), data.n_items
    )
    assert known[1:].all()
    np.testing.assert_array_equal(w_frozen, start)
    assert not np.allclose(w_tuned, start)


def test_item2vec_fitted_inside_when_no_embeddings(sequential_data):
    data, _ = sequential_data
    m = NextItemRecommender(item2vec_params={"vector_size": 8, "epochs": 2}, **{**SMALL, "epochs": 1})
    m.fit(data.train, data.n_items)  # no valid: the last 10% of train is held out
    assert m.config_.embedding_dim == 8 and m.n_known_ == data.n_items
    assert "val_mrr@20" in m.train_result_.best_metrics


def test_projection_when_sizes_differ(sequential_data, sequential_embeddings):
    data, _ = sequential_data
    m = NextItemRecommender(embeddings=sequential_embeddings, vocab=data.vocab, embedding_dim=6,
                            **{**SMALL, "epochs": 1}).fit(data.train, data.n_items)
    assert m.config_.embedding_dim == sequential_embeddings.dim and m.config_.projection_dim == 6
    assert m.model_.lstm.input_size == 6


def test_bad_input_is_a_clear_error(sequential_data):
    data, _ = sequential_data
    with pytest.raises(ValueError, match="freeze=True needs init='item2vec'"):
        NextItemRecommender(init="random", freeze=True)
    with pytest.raises(ValueError, match="init must be"):
        NextItemRecommender(init="glove")
    with pytest.raises(ValueError, match="unknown NextItemRecommender option"):
        NextItemRecommender(hiden_size=3)
    with pytest.raises(ValueError, match="hidden_size"):
        NextItemRecommender(hidden_size=-1)
    with pytest.raises(NotFittedError, match="not fitted"):
        NextItemRecommender().recommend(np.array([1]))
    strings = ItemEmbeddings(["x", "y"], np.eye(2, dtype=np.float32))
    with pytest.raises(DataError, match="needs the vocab"):
        NextItemRecommender(embeddings=strings, **SMALL).fit(data.train, data.n_items)
    with pytest.raises(DataError, match="none of the embeddings' ids"):
        NextItemRecommender(embeddings=strings, vocab=data.vocab, **SMALL).fit(data.train, data.n_items)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_and_inference(sequential_data, tmp_path):
    data, _ = sequential_data
    m = NextItemRecommender(init="random", **{**SMALL, "device": "cuda"}).fit(data.train, data.n_items, valid=data.valid)
    assert m.device_.type == "cuda"
    assert evaluate(m, data.test, k=5)["hr@5"] > 0.9
    on_cpu = load_next_model(m.save(tmp_path / "gpu"), device="cpu")
    prefixes = [s[:3] for s in data.test[:10]]
    np.testing.assert_allclose(on_cpu.score_batch(prefixes)[:, 1:], m.score_batch(prefixes)[:, 1:], rtol=1e-3, atol=1e-3)


def test_holds_a_model_config_and_a_train_config(sequential_data, sequential_embeddings):
    from item2vec.nextitem import NextItemConfig, TrainConfig

    by_kwargs = NextItemRecommender(hidden_size=16, pooling="mean", lr=0.02, epochs=3)
    assert isinstance(by_kwargs.config, NextItemConfig) and isinstance(by_kwargs.train_config, TrainConfig)
    assert (by_kwargs.config.hidden_size, by_kwargs.config.pooling, by_kwargs.config.n_items) == (16, "mean", None)
    assert (by_kwargs.train_config.lr, by_kwargs.train_config.epochs) == (0.02, 3)
    by_configs = NextItemRecommender(config=NextItemConfig(hidden_size=16, pooling="mean"),
                                     train_config=TrainConfig(lr=0.02, epochs=3))
    assert by_configs.get_params() == by_kwargs.get_params()
    # a keyword overrides its config's field
    assert NextItemRecommender(train_config=TrainConfig(lr=0.02), lr=0.5).train_config.lr == 0.5
    with pytest.raises(TypeError, match="config must be a NextItemConfig"):
        NextItemRecommender(config={"hidden_size": 16})
    # an embedding_dim asked for in the config is a projection to it, as the keyword is
    data, _ = sequential_data
    m = NextItemRecommender(embeddings=sequential_embeddings, vocab=data.vocab, config=NextItemConfig(embedding_dim=6),
                            **{**SMALL, "epochs": 1}).fit(data.train, data.n_items)
    assert (m.config_.embedding_dim, m.config_.projection_dim) == (sequential_embeddings.dim, 6)
    assert m.config_.n_items == data.n_items and m.config.n_items is None


def test_validation_and_test_ranks_treat_ties_alike(sequential_data, fitted, tmp_path):
    """All scores equal: validation (training) and test (evaluation) ranks agree, ties by the lower index."""
    from item2vec.nextitem import make_examples
    from item2vec.nextitem.train import rank_metrics

    data, _ = sequential_data
    sessions = data.train[:60]  # only known items: both paths read the same prefixes
    cap = fitted.config_.max_prefix
    ex = make_examples(sessions, cap)
    # trained scores: the two paths agree
    val = rank_metrics(fitted.model_, ex, k=5, exclude_last=fitted.repeats_dropped_)
    test = evaluate(fitted, sessions, k=5)
    assert val["mrr@5"] == pytest.approx(test["mrr@5"]) and val["hr@5"] == pytest.approx(test["hr@5"])
    tied = load_next_model(fitted.save(tmp_path / "model"))
    with torch.no_grad():
        for p in tied.model_.parameters():
            p.zero_()  # every item scores 0
    val = rank_metrics(tied.model_, ex, k=20, exclude_last=tied.repeats_dropped_)
    test = evaluate(tied, sessions, k=20)
    assert val["mrr@20"] == pytest.approx(test["mrr@20"]) and val["hr@20"] == pytest.approx(test["hr@20"])
    assert val["mrr@20"] < 1.0  # not every target "first" among equals

