"""Item2vec on Spark returns the same ItemEmbeddings the rest of the package uses."""

from __future__ import annotations

import numpy as np
import pytest

from item2vec import ItemEmbeddings
from item2vec.data import SessionData
from item2vec.exceptions import EmptyDataError, OptionError
from item2vec.recommenders import Item2VecRecommender

pytestmark = pytest.mark.spark


def _clusters(n_sessions=300, seed=0):
    """Two groups of items that never share a session: 'a0'..'a9' and 'b0'..'b9'."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_sessions):
        g = "ab"[i % 2]
        out.append([f"{g}{j}" for j in rng.choice(10, size=int(rng.integers(3, 7)), replace=False)])
    return out


def test_spark_word2vec_learns_the_groups_and_gives_item_embeddings(spark, tmp_path):
    from item2vec.spark import SparkItem2Vec

    model = SparkItem2Vec(vector_size=16, window=5, epochs=5, num_partitions=2).fit(_clusters(), spark=spark)
    emb = model.embeddings_
    assert isinstance(emb, ItemEmbeddings) and emb.dim == 16 and len(emb) == 20
    assert emb.metadata["engine"] == "spark"
    for q in ("a3", "b7"):
        ids, _ = emb.similar_items(q, k=5)
        assert all(str(i)[0] == q[0] for i in ids), (q, ids)
    back = ItemEmbeddings.load(emb.save(tmp_path / "emb"))
    np.testing.assert_allclose(back.vectors, emb.vectors)
    assert back.ids.tolist() == emb.ids.tolist()


def test_prepared_directory_and_session_data_train_the_same_vocabulary(spark, tmp_path, synthetic_data, synthetic):
    from item2vec.spark import SparkItem2Vec

    data: SessionData = synthetic_data
    data.save(tmp_path / "data")
    a = SparkItem2Vec(vector_size=16, epochs=3).fit(tmp_path / "data", spark=spark).embeddings_
    b = SparkItem2Vec(vector_size=16, epochs=3).fit(data, spark=spark).embeddings_
    # the same items in the vocabulary's (frequency) order; the vectors differ with Spark's partitioning
    assert a.ids.tolist() == b.ids.tolist() == [i for i in data.vocab.ids.tolist() if i in set(a.ids.tolist())]
    truth = synthetic[1]
    for emb in (a, b):
        ids, _ = emb.similar_items(emb.ids[:20].tolist(), k=3)
        same = [truth.cluster[i] == truth.cluster[q] for q, row in zip(emb.ids[:20], ids, strict=True) for i in row]
        assert np.mean(same) >= 0.9
    rec = Item2VecRecommender(embeddings=a, vocab=data.vocab).fit(data.train, n_items=data.n_items)
    assert rec.score_batch([data.test[0][:-1]]).shape == (1, data.n_items + 1)


def test_size_limit_and_bad_input_fail_before_training(spark):
    from item2vec.spark import SparkItem2Vec

    with pytest.raises(OptionError, match="2\\^31.*vector_size <= "):
        SparkItem2Vec(vector_size=2**30).fit([["a", "b"], ["b", "c"]], spark=spark)
    with pytest.raises(OptionError, match="num_partitions"):
        SparkItem2Vec(num_partitions=0)
    with pytest.raises(EmptyDataError, match="2 or more items"):
        SparkItem2Vec().fit([["a"], ["b"]], spark=spark)
    with pytest.raises(FileNotFoundError, match="prepared-data"):
        SparkItem2Vec().fit(__import__("pathlib").Path("/nonexistent/dir"), spark=spark)
