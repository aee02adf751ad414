"""Parity: prepare on Spark gives the same SessionData as the polars prepare."""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest

from item2vec.data import PrepareConfig, SessionData, prepare, read_events
from item2vec.exceptions import EmptySplitError, MissingColumnError

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


@pytest.mark.parametrize("name", ["diginetica", "online-retail", "movielens", "gowalla"])
def test_shared_datasets_parity(spark, shared_datasets, name):
    from pipelines.datasets import DATASETS

    spec = DATASETS[name]
    if not (shared_datasets / spec["path"]).exists():
        pytest.skip(f"{name} is not among the shared datasets")
    ev = read_events(shared_datasets / spec["path"], spec["format"])
    want, got = _both(ev, PrepareConfig(**spec["prepare"]), name=name)
    assert_same(want, got)
    print(f"\nparity {name}: {got.stats['events_in']:,} events -> "
          + " / ".join(f"{len(getattr(got, s)):,} {s}" for s in ("train", "valid", "test"))
          + f" sessions, {len(got.vocab):,} items: identical")
