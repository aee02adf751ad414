"""Sessionizing, filtering, the temporal split, SessionData persistence, the vocabulary."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from item2vec.data import (
    ItemVocab,
    SessionData,
    drop_consecutive_repeats,
    filter_support,
    prepare,
    sessionize,
    temporal_split,
)
from item2vec.data.sessions import _packed_user_time_key
from item2vec.exceptions import DataError, EmptyDataError, FormatVersionError, UnknownItemError

T0 = dt.datetime(2024, 1, 1)


def frame(rows, cols=("user_id", "item_id", "minutes")):
    df = pl.DataFrame(rows, schema=list(cols), orient="row")
    return df.with_columns(
        (pl.lit(T0) + pl.duration(minutes=pl.col("minutes"))).cast(pl.Datetime("us")).alias("timestamp")
    ).drop("minutes")


def test_sessionize_cuts_at_gap_per_user():
    ev = frame([("u1", "a", 0), ("u1", "b", 10), ("u1", "c", 100), ("u2", "a", 5), ("u2", "d", 6)])
    out = sessionize(ev, gap_minutes=30)
    per_session = out.group_by("session_id", maintain_order=True).agg("item_id")["item_id"].to_list()
    assert per_session == [["a", "b"], ["c"], ["a", "d"]]


def test_sessionize_orders_by_time_and_keeps_ties_in_row_order():
    ev = frame([("u1", "late", 20), ("u1", "tie1", 5), ("u1", "tie2", 5)])
    out = sessionize(ev, 30)
    assert out["item_id"].to_list() == ["tie1", "tie2", "late"]


def _three_key_reference(ev: pl.DataFrame) -> pl.DataFrame:
    """What sessionize must produce: sort by (user, time, row), cut at 30-minute gaps."""
    ref = ev.with_row_index("_order").sort(["user_id", "timestamp", "_order"])
    new = (pl.col("user_id") != pl.col("user_id").shift(1)).fill_null(True) | (
        (pl.col("timestamp") - pl.col("timestamp").shift(1)) > pl.duration(minutes=30)
    ).fill_null(True)
    return ref.with_columns(new.cum_sum().cast(pl.Int64).alias("session_id"))


@pytest.mark.parametrize("user_kind", ["int", "negative-int", "str", "huge-int", "int-with-null"])
def test_sessionize_packed_key_sort_equals_the_three_key_sort(user_kind):
    # many ties in time (whole minutes) and shuffled rows: the packed int64 key
    # (int user ids) and the three-key fallback must both give the reference order
    rng = np.random.default_rng(7)
    n = 5000
    users = rng.integers(0, 60, n)
    minutes = rng.integers(0, 24 * 60, n)
    ev = pl.DataFrame({"user_id": users, "item_id": rng.integers(0, 50, n), "minutes": minutes})
    if user_kind == "negative-int":
        ev = ev.with_columns(pl.col("user_id") - 30)
    elif user_kind == "str":
        ev = ev.with_columns(pl.format("u{}", pl.col("user_id")).alias("user_id"))
    elif user_kind == "huge-int":  # (user range) x (time range) overflows int64: the fallback
        ev = ev.with_columns(pl.col("user_id") * (2**52))
    elif user_kind == "int-with-null":
        ev = ev.with_columns(pl.when(pl.col("user_id") == 3).then(None).otherwise(pl.col("user_id")).alias("user_id"))
    ev = ev.with_columns(
        (pl.lit(T0) + pl.duration(minutes=pl.col("minutes"))).cast(pl.Datetime("us")).alias("timestamp")
    ).drop("minutes")
    packed = _packed_user_time_key(ev.with_row_index("_order")) is not None
    assert packed == (user_kind in ("int", "negative-int"))
    out = sessionize(ev, gap_minutes=30)
    ref = _three_key_reference(ev)
    assert out["_order"].to_list() == ref["_order"].to_list()
    assert out["session_id"].to_list() == ref["session_id"].to_list()
    assert out.columns == ref.columns


def test_sessionize_a_callers_own_order_column_breaks_ties():
    # a given "_order" that is not the row order still decides ties in time
    ev = frame([(1, "x", 5), (1, "y", 5), (1, "z", 5)]).with_columns(pl.Series("_order", [2, 0, 1], dtype=pl.UInt32))
    assert _packed_user_time_key(ev) is None
    assert sessionize(ev, 30)["item_id"].to_list() == ["y", "z", "x"]


def test_drop_consecutive_repeats_only_inside_a_session():
    ev = pl.DataFrame({"session_id": [1, 1, 1, 2, 2], "item_id": ["a", "a", "b", "b", "b"]})
    assert drop_consecutive_repeats(ev)["item_id"].to_list() == ["a", "b", "b"]


def test_filter_support_iterates_to_a_fixpoint():
    # 'c' has support 2 -> dropped; then session 3 has length 1 -> dropped; then 'b' falls to 1 -> dropped ...
    ev = pl.DataFrame(
        {"session_id": [1, 1, 2, 2, 3, 3, 4, 4], "item_id": ["a", "b", "a", "c", "b", "c", "a", "a"]}
    )
    out = filter_support(ev, min_item_support=3, min_session_length=2)
    assert set(out["item_id"]) <= {"a"}
    assert (out.group_by("session_id").len()["len"] >= 2).all()
    again = filter_support(out, 3, 2)
    assert again.equals(out)


def test_temporal_split_by_days():
    ev = pl.DataFrame({
        "session_id": [1, 1, 2, 2, 3, 3],
        "item_id": ["a", "b"] * 3,
        "timestamp": [T0, T0, T0 + dt.timedelta(days=5), T0 + dt.timedelta(days=5),
                      T0 + dt.timedelta(days=9), T0 + dt.timedelta(days=9)],
    })
    out = temporal_split(ev, test_days=2, valid_days=5).group_by("session_id").agg(pl.col("split").first()).sort("session_id")
    assert out["split"].to_list() == ["train", "valid", "test"]


def test_prepare_end_to_end(synthetic_data):
    d = synthetic_data
    assert d.n_items > 0 and d.train and d.valid and d.test
    train_items = set(np.concatenate(d.train).tolist())
    for split in (d.valid, d.test):
        assert all(len(s) >= 2 for s in split)
        assert set(np.concatenate(split).tolist()) <= train_items  # unseen items dropped
        assert all((s[1:] != s[:-1]).all() for s in split)  # consecutive repeats dropped
    assert d.stats["test"]["sessions"] == len(d.test)


def test_prepare_no_session_left_is_a_clear_error():
    ev = frame([("u1", f"i{j}", j * 100) for j in range(10)])  # every event its own session
    with pytest.raises(EmptyDataError, match="no session of length >= 2"):
        prepare(ev)


def test_session_data_round_trip(tmp_path, synthetic_data):
    path = synthetic_data.save(tmp_path / "prepared")
    back = SessionData.load(path)
    assert back.vocab == synthetic_data.vocab
    for split in ("train", "valid", "test"):
        a, b = getattr(back, split), getattr(synthetic_data, split)
        assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert back.stats["items"] == synthetic_data.stats["items"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left


def test_session_data_checks_format_version(tmp_path, synthetic_data):
    path = synthetic_data.save(tmp_path / "prepared")
    meta = json.loads((path / "stats.json").read_text())
    meta["format_version"] = 99
    (path / "stats.json").write_text(json.dumps(meta))
    with pytest.raises(FormatVersionError, match="99"):
        SessionData.load(path)


def test_failed_save_leaves_the_old_directory(tmp_path, synthetic_data, monkeypatch):
    path = synthetic_data.save(tmp_path / "prepared")
    before = sorted(p.name for p in path.iterdir())

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", boom)
    with pytest.raises(OSError, match="disk full"):
        synthetic_data.save(path)
    assert sorted(p.name for p in path.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["prepared"]


# -- vocabulary ------------------------------------------------------------------
def test_vocab_unknown_id_names_it():
    v = ItemVocab(["a", "b"])
    with pytest.raises(UnknownItemError, match="'zz'"):
        v.index("zz")
    with pytest.raises(KeyError):
        v.indices(["a", "zz"])
    assert v.indices(["a", "zz", "b"], missing="drop").tolist() == [1, 2]
    assert v.indices(["a", "zz"], missing="pad").tolist() == [1, 0]


def test_vocab_rejects_duplicates_and_floats():
    with pytest.raises(DataError, match="duplicate"):
        ItemVocab(["a", "a"])
    with pytest.raises(DataError, match="floats"):
        ItemVocab(np.array([1.0, 2.0]))


@given(st.lists(st.one_of(st.integers(-10**9, 10**9)), unique=True, min_size=1, max_size=50))
def test_vocab_int_round_trip(ids):
    v = ItemVocab(np.asarray(ids, dtype=np.int64))
    idx = v.indices(ids)
    assert idx.tolist() == list(range(1, len(ids) + 1))
    assert v.lookup(idx).tolist() == ids
    assert ItemVocab.from_list(v.to_list()) == v


@given(st.lists(st.text(min_size=1, max_size=8), unique=True, min_size=1, max_size=50))
def test_vocab_str_round_trip(ids):
    v = ItemVocab(ids)
    assert v.lookup(v.indices(ids)).tolist() == ids
    assert all(v.index(x) == i + 1 for i, x in enumerate(ids))
