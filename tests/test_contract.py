"""Every model joins the Recommender contract (tests/recommender_contract.py)."""

from __future__ import annotations

from recommender_contract import RecommenderContract

from item2vec import Item2Vec
from item2vec.nextitem import NextItemRecommender
from item2vec.recommenders import make_recommender
from item2vec.serving import ServedModel

I2V = {"epochs": 3, "vector_size": 16, "random_state": 0}


class TestPop(RecommenderContract):
    def make(self, data):
        return make_recommender("pop")


class TestMarkov(RecommenderContract):
    def make(self, data):
        return make_recommender("markov")


class TestSessionKNN(RecommenderContract):
    def make(self, data):
        return make_recommender("sknn")


class TestImplicitItemItem(RecommenderContract):
    def make(self, data):
        return make_recommender("implicit")


class TestImplicitALS(RecommenderContract):
    def make(self, data):
        return make_recommender("implicit-als", factors=8, iterations=3)


class TestItem2VecLast(RecommenderContract):
    def make(self, data):
        return make_recommender("item2vec", **I2V)


class TestItem2VecMean(RecommenderContract):
    def make(self, data):
        return make_recommender("item2vec-mean", **I2V)


class TestBiLSTM(RecommenderContract):
    def make(self, data):
        return NextItemRecommender(vocab=data.vocab, init="random", hidden_size=8, epochs=1, show_progress=False,
                                   device="cpu")


class TestServed(RecommenderContract):
    """A served item2vec model scored over the data's vocabulary (what retraining gates with)."""

    def make(self, data):
        emb = Item2Vec(show_progress=False, **I2V).fit(data.decode(data.train)).embeddings_
        return ServedModel(emb).recommender(data.vocab)


class TestBlend(RecommenderContract):
    """Fixed weights here; weights chosen on validation are tests/test_blend.py's."""

    def make(self, data):
        from item2vec.blend import Blend

        return Blend([make_recommender("markov"), make_recommender("sknn")], weights=(0.6, 0.4))
