"""The all-items neighbour table, on one machine and on Spark's executors."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from item2vec import ItemEmbeddings
from item2vec.exceptions import OptionError
from item2vec.spark.neighbours import neighbours_table, recall_at_k


def _clustered(n=600, d=16, str_ids=False, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, d))
    x = centres[rng.integers(0, 12, size=n)] + 0.3 * rng.normal(size=(n, d))
    ids = [f"sku-{i}" for i in range(n)] if str_ids else np.arange(1000, 1000 + n)
    return ItemEmbeddings(ids, x.astype(np.float32))


@pytest.mark.parametrize("str_ids", [False, True])
def test_local_table_is_similar_items_for_every_item(str_ids):
    emb = _clustered(n=300, str_ids=str_ids)
    t = neighbours_table(emb, k=7, batch_size=64)
    assert t.columns == ["item_id", "rank", "neighbour_id", "score"]
    assert t.height == 300 * 7
    for q in (emb.ids[0], emb.ids[123], emb.ids[-1]):
        ids, scores = emb.similar_items(q, k=7)
        assert emb.index.kind == "exact"
        rows = t.filter(pl.col("item_id") == q).sort("rank")
        assert rows["neighbour_id"].to_list() == list(ids)
        np.testing.assert_allclose(rows["score"].to_numpy(), scores, rtol=1e-5, atol=1e-6)
    assert (t["item_id"] != t["neighbour_id"]).all()


@pytest.mark.parametrize("kind, params", [("ann", {"M": 16, "ef_construction": 100, "ef": 50}),
                                           ("ivf", {"nlist": 40, "nprobe": 8})])
def test_local_approximate_tables_recall_against_exact(kind, params):
    pytest.importorskip("hnswlib" if kind == "ann" else "faiss")
    emb = _clustered(n=2000, d=16)
    exact = neighbours_table(emb, k=10)
    approx = neighbours_table(emb, k=10, index=kind, **params)
    assert approx.height == exact.height
    assert (approx["item_id"] != approx["neighbour_id"]).all()
    assert recall_at_k(approx, exact) >= 0.9
    assert recall_at_k(exact, exact) == 1.0


def test_ivf_with_cells_smaller_than_k_falls_back_to_exact():
    pytest.importorskip("faiss")
    emb = _clustered(n=300, d=16)
    t = neighbours_table(emb, k=20, index="ivf", nlist=150, nprobe=1)  # about 2 items per cell
    assert t.height == 300 * 20 and (t["item_id"] != t["neighbour_id"]).all()
    assert t.group_by("item_id").agg(pl.col("neighbour_id").n_unique())["neighbour_id"].min() == 20


def test_bad_options():
    emb = _clustered(n=20)
    with pytest.raises(OptionError, match="k must be an integer >= 1"):
        neighbours_table(emb, k=0)
    with pytest.raises(OptionError, match="index must be one of"):
        neighbours_table(emb, k=3, index="faiss")
    assert neighbours_table(emb, k=100).height == 20 * 19  # k is capped at n - 1


@pytest.mark.spark
@pytest.mark.parametrize("str_ids", [False, True])
def test_spark_table_equals_the_local_exact_one(spark, tmp_path, str_ids):
    from item2vec.spark.neighbours import spark_neighbours_table

    emb = _clustered(n=500, str_ids=str_ids)
    out = spark_neighbours_table(emb, tmp_path / "nb.parquet", k=5, spark=spark, partitions=4, batch_size=50)
    got = pl.read_parquet(out / "*.parquet").sort("item_id", "rank")
    want = neighbours_table(emb, k=5).sort("item_id", "rank")
    assert got.height == want.height
    assert got.select("item_id", "rank", "neighbour_id").equals(want.select("item_id", "rank", "neighbour_id"))
    np.testing.assert_allclose(got["score"].to_numpy(), want["score"].to_numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(FileExistsError, match="never overwrite"):
        spark_neighbours_table(emb, out, k=5, spark=spark)


@pytest.mark.spark
@pytest.mark.parametrize("kind, params", [("ann", {"M": 16, "ef_construction": 100, "ef": 50}),
                                           ("ivf", {"nlist": 60, "nprobe": 8})])
def test_spark_approximate_table_recall_on_a_sample(spark, kind, params):
    pytest.importorskip("hnswlib" if kind == "ann" else "faiss")
    from item2vec.spark.neighbours import spark_neighbours_table

    emb = _clustered(n=3000, d=16, seed=1)
    table = spark_neighbours_table(emb, k=10, index=kind, spark=spark, partitions=2, **params)
    sample = pl.from_arrow(table.filter("item_id % 10 = 0").toArrow())
    exact = neighbours_table(emb, k=10)
    r = recall_at_k(sample, exact)
    print(f"\nrecall@10 of the Spark {kind} table against exact search on a 10% sample of 3,000 items: {r:.3f}")
    assert sample["item_id"].n_unique() == 300
    assert r >= 0.9
