"""The command line: --engine spark gives the same prepared data, and the neighbours command."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from item2vec import ItemEmbeddings
from item2vec.cli import main
from item2vec.data import SessionData


def _events_csv(path, n_users=60, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        t = 1_700_000_000 + int(rng.integers(0, 20 * 86400))
        g = u % 3
        for _ in range(int(rng.integers(4, 20))):
            t += int(rng.choice([30, 120, 600, 4000]))
            rows.append((f"u{u}", f"g{g}-{int(rng.integers(0, 8))}", t))
    pl.DataFrame(rows, schema=["user", "sku", "ts"], orient="row").write_csv(path)
    return path


def _emb(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return ItemEmbeddings([f"i{j}" for j in range(n)], rng.normal(size=(n, 8)).astype(np.float32))


def test_neighbours_command_writes_the_table_and_replaces_it_only_with_overwrite(tmp_path, capsys):
    model = _emb().save(tmp_path / "model")
    out = tmp_path / "nb.parquet"
    assert main(["neighbours", "--model", str(model), "--k", "4", "--out", str(out)]) == 0
    t = pl.read_parquet(out)
    assert t.columns == ["item_id", "rank", "neighbour_id", "score"] and t.height == 200 * 4
    ids, _ = ItemEmbeddings.load(model).use_index("exact").similar_items("i7", k=4)
    assert t.filter(pl.col("item_id") == "i7").sort("rank")["neighbour_id"].to_list() == list(ids)
    before = out.read_bytes()
    assert main(["neighbours", "--model", str(model), "--k", "3", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["neighbours", "--model", str(model), "--k", "3", "--out", str(out), "--overwrite"]) == 0
    assert pl.read_parquet(out).height == 200 * 3 and not list(tmp_path.glob(".nb.parquet*"))


def test_engine_flag_is_checked():
    with pytest.raises(SystemExit):
        main(["prepare", "--events", "x.csv", "--out", "y", "--engine", "flink"])


@pytest.mark.spark
def test_prepare_fit_neighbours_with_engine_spark_match_polars(spark, spark_cluster, tmp_path):
    csv = _events_csv(tmp_path / "events.csv")
    common = ["--events", str(csv), "--item-col", "sku", "--user-col", "user", "--time-col", "ts",
              "--min-item-support", "2", "--quiet"]
    assert main(["prepare", *common, "--out", str(tmp_path / "p")]) == 0
    assert main(["prepare", *common, "--out", str(tmp_path / "s"), "--engine", "spark",
                 "--spark-master", spark_cluster]) == 0
    for f in ("vocab", "train", "valid", "test"):  # read by Spark, written by the executors: the same files
        assert pl.read_parquet(tmp_path / "s" / f"{f}.parquet").equals(pl.read_parquet(tmp_path / "p" / f"{f}.parquet"))
    a, b = SessionData.load(tmp_path / "p"), SessionData.load(tmp_path / "s")
    assert a.vocab == b.vocab and a.stats == b.stats
    for name in ("train", "valid", "test"):
        assert [s.tolist() for s in getattr(a, name)] == [s.tolist() for s in getattr(b, name)]

    assert main(["fit", "--data", str(tmp_path / "s"), "--out", str(tmp_path / "m"), "--engine", "spark",
                 "--spark-master", spark_cluster, "--vector-size", "8", "--epochs", "2", "--quiet"]) == 0
    emb = ItemEmbeddings.load(tmp_path / "m")
    assert emb.metadata["engine"] == "spark" and emb.dim == 8
    assert set(emb.ids.tolist()) <= set(b.vocab.ids.tolist())

    assert main(["neighbours", "--model", str(tmp_path / "m"), "--k", "3", "--out", str(tmp_path / "nb-s"),
                 "--engine", "spark", "--spark-master", spark_cluster, "--quiet"]) == 0
    assert main(["neighbours", "--model", str(tmp_path / "m"), "--k", "3", "--out", str(tmp_path / "nb-p.parquet"),
                 "--quiet"]) == 0
    s = pl.read_parquet(tmp_path / "nb-s" / "*.parquet").sort("item_id", "rank")
    p = pl.read_parquet(tmp_path / "nb-p.parquet").sort("item_id", "rank")
    assert s.select("item_id", "rank", "neighbour_id").equals(p.select("item_id", "rank", "neighbour_id"))
