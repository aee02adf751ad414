"""Item2vec as a Recommender: last-item and session-mean neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from item2vec import Item2Vec
from item2vec.evaluation import evaluate
from item2vec.recommenders import Item2VecRecommender, make_recommender


@pytest.fixture(scope="module")
def rec(synthetic_data):
    return Item2VecRecommender(epochs=10).fit(synthetic_data.train, n_items=synthetic_data.n_items)


def test_last_item_neighbours_stay_in_cluster(rec, synthetic, synthetic_data):
    _, truth = synthetic
    vocab = synthetic_data.vocab
    for s in synthetic_data.test[:20]:
        ids, _ = rec.recommend(s[:1], k=5)
        q = vocab.lookup(s[:1])[0]
        assert all(truth.cluster[x] == truth.cluster[q] for x in vocab.lookup(ids))
        assert s[0] not in ids  # the query item is excluded


def test_mean_mode_excludes_the_prefix(synthetic_data):
    rec = Item2VecRecommender(mode="mean", epochs=3).fit(synthetic_data.train, n_items=synthetic_data.n_items)
    prefix = synthetic_data.test[0][:3]
    ids, _ = rec.recommend(prefix, k=10)
    assert not set(prefix.tolist()) & set(ids.tolist())


def test_batch_equals_single(rec, synthetic_data):
    prefixes = [s[:3] for s in synthetic_data.test[:6]]
    ids, scores = rec.recommend_batch(prefixes, k=7)
    for p, row_i, row_s in zip(prefixes, ids, scores, strict=True):
        one_i, one_s = rec.recommend(p, k=7)
        assert one_i.tolist() == row_i.tolist()
        np.testing.assert_allclose(one_s, row_s, rtol=1e-6)


def test_pretrained_embeddings_with_external_ids_give_the_same_ranking(synthetic_data):
    d = synthetic_data
    emb = Item2Vec(epochs=3, random_state=5, show_progress=False).fit(d.decode(d.train)).embeddings_
    a = Item2VecRecommender(embeddings=emb, vocab=d.vocab).fit(d.train, n_items=d.n_items)
    b = Item2VecRecommender(epochs=3, random_state=5).fit(d.train, n_items=d.n_items)
    assert evaluate(a, d.test, k=10)["mrr@10"] == pytest.approx(evaluate(b, d.test, k=10)["mrr@10"], abs=1e-9)


def test_beats_popularity_on_planted_clusters(rec, synthetic_data):
    pop = make_recommender("pop").fit(synthetic_data.train, n_items=synthetic_data.n_items)
    assert evaluate(rec, synthetic_data.test)["hr@20"] > evaluate(pop, synthetic_data.test)["hr@20"] + 0.2


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        make_recommender("nope")
    with pytest.raises(ValueError, match="mode must be"):
        Item2VecRecommender(mode="max")
