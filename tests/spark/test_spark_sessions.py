"""Parity: prepare on Spark gives the same SessionData as the polars prepare."""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest

from item2vec.data import PrepareConfig, SessionData, prepare, read_events
from item2vec.exceptions import (
    DataError,
    EmptySplitError,
    MissingColumnError,
    OutputExistsError,
    UnknownFormatError,
)

pytestmark = pytest.mark.spark


def _both(events, config=None, **kw):
    from item2vec.spark import prepare_spark

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = prepare(events, config, **kw)
        got = prepare_spark(events, config, **kw)
    return want, got


def assert_same(want: SessionData, got: SessionData) -> None:
    assert got.vocab == want.vocab
    assert got.vocab.ids.dtype == want.vocab.ids.dtype
    for name in ("train", "valid", "test"):
        a, b = getattr(want, name), getattr(got, name)
        assert len(a) == len(b), name
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)), name
    assert got.stats == want.stats


def _log(n_users=40, seed=0, str_ids=False):
    """Users clicking over 30 days: gaps that cut sessions, repeats, rare items, equal timestamps."""
    rng = np.random.default_rng(seed)
    rows = []
    t0 = dt.datetime(2024, 1, 1)
    for u in range(n_users):
        t = t0 + dt.timedelta(hours=float(rng.uniform(0, 24 * 30)))
        for _ in range(int(rng.integers(5, 40))):
            t += dt.timedelta(minutes=float(rng.choice([0, 1, 5, 20, 45, 600])))
            item = int(rng.zipf(1.6)) % 60
            rows.append((u, item, t))
            if rng.random() < 0.15:
                rows.append((u, item, t))  # a repeat at the same time
    df = pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row")
    if str_ids:
        df = df.with_columns(pl.format("sku-{}", "item_id").alias("item_id"),
                             pl.format("u{}", "user_id").alias("user_id"))
    return df


@pytest.mark.parametrize("str_ids", [False, True])
def test_user_logs_cut_at_gaps_give_the_same_sessions(spark, str_ids):
    ev = _log(str_ids=str_ids)
    want, got = _both(ev, PrepareConfig(min_item_support=2, session_gap_minutes=30, max_session_length=6))
    assert want.train and want.test
    assert_same(want, got)


def test_session_ids_fraction_split_no_repeat_dropping_and_a_stray_timestamp(spark):
    ev = _log(seed=1).rename({"user_id": "session_id"})
    # one event ten years later: dropped as far from the rest, with the same warning
    ev = pl.concat([ev, ev.head(1).with_columns(pl.col("timestamp").dt.offset_by("3650d"))])
    cfg = PrepareConfig(drop_repeats=False, min_item_support=3, test_fraction=0.2, valid_fraction=0.1)
    want, got = _both(ev, cfg)
    assert want.stats["removed"]["time_outliers"]["events"] == 1
    assert_same(want, got)


def test_pandas_frame_with_its_own_column_names_and_epoch_seconds(spark):
    ev = _log(seed=2).to_pandas().rename(columns={"user_id": "visitor", "item_id": "sku", "timestamp": "t"})
    ev["t"] = ev["t"].astype("int64") // 10**9 if ev["t"].dtype.kind == "M" else ev["t"]
    assert isinstance(ev, pd.DataFrame)
    want, got = _both(ev, PrepareConfig(min_item_support=2), user_col="visitor", item_col="sku", time_col="t")
    assert_same(want, got)


def test_spark_frame_input_and_errors_match(spark):
    from item2vec.spark import prepare_spark

    ev = _log(seed=3)
    sdf = spark.createDataFrame(ev.with_row_index("_order").with_columns(pl.col("_order").cast(pl.Int64)).to_arrow())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = prepare(ev, PrepareConfig(min_item_support=2))
        got = prepare_spark(sdf, PrepareConfig(min_item_support=2))
    assert got.vocab.ids.tolist() == want.vocab.ids.tolist()
    assert [s.tolist() for s in got.test] == [s.tolist() for s in want.test]
    with pytest.raises(MissingColumnError, match="item_id"):
        prepare_spark(sdf.drop("item_id"))
    with pytest.raises(EmptySplitError, match="no session of length"):
        prepare_spark(ev, PrepareConfig(min_item_support=10_000))


def test_saved_directory_is_the_polars_one(spark, tmp_path):
    want, got = _both(_log(seed=4), PrepareConfig(min_item_support=2))
    want.save(tmp_path / "polars")
    got.save(tmp_path / "spark")
    for f in ("vocab", "train", "valid", "test"):
        assert pl.read_parquet(tmp_path / "spark" / f"{f}.parquet").equals(
            pl.read_parquet(tmp_path / "polars" / f"{f}.parquet"))
    assert_same(SessionData.load(tmp_path / "polars"), SessionData.load(tmp_path / "spark"))


def _same_files(a, b):
    for f in ("vocab", "train", "valid", "test"):
        assert pl.read_parquet(a / f"{f}.parquet").equals(pl.read_parquet(b / f"{f}.parquet")), f
    assert (a / "stats.json").read_text() == (b / "stats.json").read_text()


@pytest.mark.parametrize("name", ["diginetica", "online-retail", "movielens", "gowalla"])
def test_shared_datasets_parity(spark, shared_datasets, name, tmp_path):
    """Read by Spark (online-retail: by polars), prepared by Spark, written by the executors: the polars answer."""
    from item2vec.spark.readers import SPARK_FORMATS, read_events_spark
    from item2vec.spark.sessions import prepare_spark, prepare_spark_to
    from pipelines.datasets import DATASETS

    spec = DATASETS[name]
    if not (shared_datasets / spec["path"]).exists():
        pytest.skip(f"{name} is not among the shared datasets")
    ev = read_events(shared_datasets / spec["path"], spec["format"])
    sev = read_events_spark(shared_datasets / spec["path"], spec["format"], spark) \
        if spec["format"] in SPARK_FORMATS else ev
    cfg = PrepareConfig(**spec["prepare"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = prepare(ev, cfg, name=name)
        got = prepare_spark(sev, cfg, name=name)
        prepare_spark_to(tmp_path / "spark", sev, cfg, name=name)
    assert_same(want, got)
    want.save(tmp_path / "polars")
    _same_files(tmp_path / "polars", tmp_path / "spark")
    print(f"\nparity {name} (read by {'Spark' if sev is not ev else 'polars'}): {got.stats['events_in']:,} events -> "
          + " / ".join(f"{len(getattr(got, s)):,} {s}" for s in ("train", "valid", "test"))
          + f" sessions, {len(got.vocab):,} items: identical, and the written directory too")


def _frame(sdf) -> pl.DataFrame:
    """A Spark event frame as the polars reader's: in read order, naive UTC microseconds, no _order."""
    df = pl.from_arrow(sdf.orderBy("_order").drop("_order").toArrow())
    return df.with_columns(pl.col("timestamp").dt.replace_time_zone(None).cast(pl.Datetime("us")))


def test_spark_readers_give_the_polars_frames_and_sessions(spark, tmp_path):
    """CSV with string ids and ISO times (naive, Z, +01:00); Parquet with its own names and epoch milliseconds."""
    from item2vec.spark.readers import read_events_spark
    from item2vec.spark.sessions import prepare_spark

    ev = _log(seed=5, str_ids=True)
    nth = pl.int_range(pl.len()) % 3
    iso = ev.with_columns(pl.when(nth == 0).then(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
                          .when(nth == 1)
                          .then((pl.col("timestamp") + pl.duration(hours=1)).dt.strftime("%Y-%m-%dT%H:%M:%S+01:00"))
                          .otherwise(pl.col("timestamp").dt.strftime("%Y-%m-%d %H:%M:%S")).alias("timestamp"))
    iso.write_csv(tmp_path / "events.csv")
    ints = _log(seed=6).select(pl.col("user_id").alias("visitor"), pl.col("item_id").alias("sku"),
                               pl.col("timestamp").dt.epoch("ms").alias("t"))
    ints.write_parquet(tmp_path / "events.parquet")
    for path, fmt, opts in ((tmp_path / "events.csv", "csv", {"session_col": None, "user_col": "user_id"}),
                            (tmp_path / "events.parquet", "parquet",
                             {"item_col": "sku", "session_col": None, "user_col": "visitor", "time_col": "t"})):
        want = read_events(path, fmt, **opts)
        got = read_events_spark(path, fmt, spark, **opts)
        assert _frame(got).equals(want.drop("_order")), fmt
    # and the sessions of the frame Spark read (integer ids, users cut at gaps)
    cfg = PrepareConfig(min_item_support=2, session_gap_minutes=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = prepare(read_events(path, fmt, **opts), cfg)
        from_spark = prepare_spark(got, cfg)
    assert_same(want, from_spark)
    # the polars readers' errors
    ints.with_columns(pl.when(pl.col("sku") == ints["sku"][3]).then(None).otherwise(pl.col("sku")).alias("sku")) \
        .write_csv(tmp_path / "null.csv")
    with pytest.raises(DataError, match="rows have a null item_id"):
        read_events_spark(tmp_path / "null.csv", "csv", spark, item_col="sku", session_col=None, user_col="visitor",
                          time_col="t")
    iso.with_columns(pl.lit("yesterday").alias("timestamp")).write_csv(tmp_path / "bad-time.csv")
    with pytest.raises(DataError, match="could not be parsed"):
        read_events_spark(tmp_path / "bad-time.csv", "csv", spark, session_col=None, user_col="user_id")
    with pytest.raises(MissingColumnError, match=r"\['session_id'\]"):
        read_events_spark(tmp_path / "events.csv", "csv", spark)
    with pytest.raises(UnknownFormatError, match="polars readers only"):
        read_events_spark(tmp_path / "events.csv", "online-retail", spark)


def test_the_executors_write_the_polars_directory_and_refuse_a_foreign_one(spark, tmp_path):
    """Repeats kept and dropped, the length cap and short sessions: the same files, byte-identical stats."""
    from item2vec.spark.sessions import prepare_spark_to

    ev = _log(seed=7)
    for i, cfg in enumerate((PrepareConfig(min_item_support=2, max_session_length=4, min_session_length=3),
                             PrepareConfig(drop_repeats=False, max_session_length=5, test_fraction=0.2,
                                           valid_fraction=0.0))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = prepare(ev, cfg, name="log")
            stats = prepare_spark_to(tmp_path / f"spark{i}", ev, cfg, name="log")
        assert want.stats["removed"]["length_cap"]["sessions"] > 0
        assert stats == want.stats
        want.save(tmp_path / f"polars{i}")
        _same_files(tmp_path / f"polars{i}", tmp_path / f"spark{i}")
        assert_same(want, SessionData.load(tmp_path / f"spark{i}"))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError):
        prepare_spark_to(mine, ev)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
