"""What users pass to prepare: pandas and polars frames with their own column names, every
common way of writing a time, and times that are NaN, far off or in the future."""

from __future__ import annotations

import datetime as dt
import warnings

import pandas as pd
import polars as pl
import pytest

from item2vec.cli import main
from item2vec.data import (
    PrepareConfig,
    infer_time_unit,
    make_sessions,
    normalize_frame,
    prepare,
    read_events,
    time_outliers,
)
from item2vec.exceptions import DataError, MissingColumnError, TimestampWarning


@pytest.fixture(scope="module")
def week():
    """A one-week synthetic log: session_id (int), item_id (str), timestamp (naive UTC)."""
    events, _ = make_sessions(n_sessions=700, n_clusters=3, items_per_cluster=12, days=7, random_state=4)
    return events


def same_data(a, b) -> None:
    assert a.vocab.to_list() == b.vocab.to_list()
    for split in ("train", "valid", "test"):
        got, want = getattr(a, split), getattr(b, split)
        assert len(got) == len(want) and all((x == y).all() for x, y in zip(got, want, strict=True))


def user_frame(events: pl.DataFrame) -> pl.DataFrame:
    """The log as a user's table: own column names, integer item ids, epoch milliseconds."""
    codes = {name: i for i, name in enumerate(sorted(set(events["item_id"].to_list())))}
    return events.select(
        pl.col("session_id").alias("visit"),
        pl.col("item_id").replace_strict(codes, return_dtype=pl.Int64).alias("product"),
        pl.col("timestamp").dt.epoch("ms").alias("ts_ms"),
    )


# ---------------------------------------------------------------------------
# frames
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["polars", "pandas"])
def test_prepare_takes_a_frame_with_its_own_column_names(week, kind, tmp_path):
    frame = user_frame(week)
    f = tmp_path / "log.csv"
    frame.write_csv(f)
    want = prepare(read_events(f, item_col="product", session_col="visit", time_col="ts_ms", time_unit="ms"))
    if kind == "pandas":
        frame = frame.to_pandas()
    got = prepare(frame, item_col="product", session_col="visit", time_col="ts_ms")
    same_data(got, want)
    assert got.vocab.ids.dtype.kind == "i"  # integer ids stay integers


def test_prepare_takes_a_pandas_frame_with_the_usual_names(week):
    same_data(prepare(week.to_pandas()), prepare(week))


def test_prepare_takes_users_without_sessions_from_pandas():
    rows = [("u1", "a", "2024-01-01T10:00:00Z"), ("u1", "b", "2024-01-01T10:05:00Z"),
            ("u1", "a", "2024-01-02T10:00:00Z"), ("u1", "b", "2024-01-02T10:01:00Z"),
            ("u2", "a", "2024-01-03T10:00:00Z"), ("u2", "b", "2024-01-03T10:02:00Z")]
    df = pd.DataFrame(rows, columns=["customer", "sku", "when"])
    data = prepare(df, PrepareConfig(min_item_support=1, test_fraction=0.3, valid_fraction=0),
                   item_col="sku", user_col="customer", time_col="when")
    assert data.stats["sessions_in"] == 3  # one session per day, cut at the 30-minute gap


def test_prepare_names_the_missing_column_and_refuses_non_frames(week):
    with pytest.raises(MissingColumnError, match=r"\['product'\]"):
        prepare(week, item_col="product")
    with pytest.raises(MissingColumnError, match="session_col= or user_col="):
        prepare(week.drop("session_id"))
    with pytest.raises(TypeError, match="polars or pandas DataFrame"):
        prepare([["a", "b"], ["b", "c"]])


# ---------------------------------------------------------------------------
# timestamps
# ---------------------------------------------------------------------------
def _forms(ts: pl.Series) -> dict[str, pl.Series]:
    """One set of naive-UTC instants written every way users write them."""
    utc = ts.dt.replace_time_zone("UTC")
    paris = utc.dt.convert_time_zone("Europe/Paris")
    return {
        "naive": ts,
        "iso_z": utc.dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"),
        "iso_offset": paris.dt.strftime("%Y-%m-%dT%H:%M:%S%.6f%:z"),
        "aware_datetime": paris,
        "epoch_s": ts.dt.epoch("us").cast(pl.Float64) / 1e6,
        "epoch_ms": ts.dt.epoch("ms"),
        "epoch_us": ts.dt.epoch("us"),
        "epoch_ns": ts.dt.epoch("ns"),
    }


@pytest.mark.parametrize("form", list(_forms(pl.Series([dt.datetime(2024, 1, 1)])).keys()))
def test_every_way_of_writing_a_time_gives_the_same_instant(week, form, tmp_path):
    ts = week["timestamp"].head(300)
    f = tmp_path / "log.parquet"
    week.head(300).with_columns(_forms(ts)[form].alias("t")).drop("timestamp").write_parquet(f)
    got = read_events(f, "parquet", time_col="t")["timestamp"]
    if form == "epoch_s":  # float seconds: exact to the microsecond after rounding
        assert (got - ts).abs().max() <= dt.timedelta(microseconds=1)
    elif form == "epoch_ms":  # whole milliseconds
        assert got.to_list() == ts.dt.truncate("1ms").to_list()
    else:
        assert got.to_list() == ts.to_list()


def test_strings_that_mix_offsets_and_naive_times(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("session_id,item_id,timestamp\n1,a,2024-03-01T10:00:00Z\n1,b,2024-03-01T12:00:00+01:00\n"
                 "1,c,2024-03-01 11:30:00\n")
    got = read_events(f)["timestamp"].to_list()
    assert [t.strftime("%H:%M") for t in got] == ["10:00", "11:00", "11:30"]


@pytest.mark.parametrize("value, unit", [(1.7e9, "s"), (1.7e12, "ms"), (1.7e15, "us"), (1.7e18, "ns"),
                                         (9.9e10, "s"), (1.1e11, "ms")])
def test_epoch_unit_is_chosen_from_the_magnitude(value, unit):
    assert infer_time_unit(pl.Series([value, value + 1])) == unit


def test_time_unit_overrides_the_magnitude_rule():
    frame = pl.DataFrame({"session_id": [1, 1], "item_id": ["a", "b"], "t": [1_000, 2_000]})
    assert normalize_frame(frame, time_col="t")["timestamp"][0] == dt.datetime(1970, 1, 1, 0, 16, 40)
    assert normalize_frame(frame, time_col="t", time_unit="ms")["timestamp"][0] == dt.datetime(1970, 1, 1, 0, 0, 1)
    ms = frame.with_columns(pl.col("t") + 1_700_000_000_000)  # epoch milliseconds read as seconds on request
    assert normalize_frame(ms, time_col="t", time_unit="s")["timestamp"].dt.epoch("s")[0] == ms["t"][0]


def test_epoch_milliseconds_in_a_csv_are_read_as_milliseconds(tmp_path, week):
    f = tmp_path / "ms.csv"
    user_frame(week).write_csv(f)
    ev = read_events(f, session_col="visit", item_col="product", time_col="ts_ms")
    assert ev["timestamp"].min() == week["timestamp"].min().replace(microsecond=week["timestamp"].min().microsecond // 1000 * 1000)


@pytest.mark.parametrize("kind", ["polars", "csv", "pandas"])
def test_a_nan_time_is_a_one_line_error(tmp_path, kind):
    frame = pl.DataFrame({"session_id": [1, 1, 2], "item_id": ["a", "b", "a"], "t": [1.7e9, float("nan"), 1.7e9 + 5]})
    with pytest.raises(DataError, match=r"1 of 3 rows have no time .* column 't'"):
        if kind == "polars":
            prepare(frame, time_col="t")
        elif kind == "pandas":
            prepare(frame.to_pandas(), time_col="t")
        else:
            f = tmp_path / "nan.csv"
            f.write_text("session_id,item_id,t\n1,a,1700000000\n1,b,NaN\n2,a,1700000005\n")
            read_events(f, time_col="t")


def test_a_nan_time_through_the_cli_is_one_line_and_exit_2(tmp_path, capsys):
    f = tmp_path / "nan.csv"
    f.write_text("session_id,item_id,t\n1,a,1700000000\n1,b,NaN\n2,a,1700000005\n")
    assert main(["prepare", "--events", str(f), "--time-col", "t", "--out", str(tmp_path / "o")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "no time" in err[0] and not (tmp_path / "o").exists()


def test_unparseable_time_strings_are_shown():
    frame = pl.DataFrame({"session_id": [1, 1], "item_id": ["a", "b"], "timestamp": ["2024-01-01 10:00", "soon"]})
    with pytest.raises(DataError, match=r"1 of 2 timestamps could not be parsed, e.g. \['soon'\]"):
        prepare(frame)


# ---------------------------------------------------------------------------
# far-off and future times
# ---------------------------------------------------------------------------
def test_time_outliers_are_more_than_the_central_span_away():
    t0 = dt.datetime(2024, 1, 1)
    hours = [t0 + dt.timedelta(hours=h) for h in range(24 * 14)]  # 14 days, hourly
    # the 1st and 99th percentiles of these 338 times are hours[4] and hours[333] (about 13.7 days
    # apart), so "far" starts about 13.7 days after hours[333]
    inside, beyond = hours[333] + dt.timedelta(days=13.5), hours[333] + dt.timedelta(days=14)
    ts = pl.Series([*hours, inside, beyond], dtype=pl.Datetime("us"))
    far, future = time_outliers(ts, now=dt.datetime(2100, 1, 1))
    assert far.to_list() == [False] * (len(hours) + 1) + [True]
    assert not future.any()


def with_strays(events: pl.DataFrame, times: list[dt.datetime]) -> pl.DataFrame:
    """``events`` plus one stray session whose events carry ``times``."""
    stray = pl.DataFrame({
        "session_id": [events["session_id"].max() + 1] * len(times),
        "item_id": events["item_id"].head(len(times)).to_list(),
        "timestamp": pl.Series(times, dtype=pl.Datetime("us")),
    })
    return pl.concat([events, stray])


def test_far_off_times_warn_with_the_count_and_never_form_the_test_split(week):
    strays = [dt.datetime(2099, 1, 1), dt.datetime(2099, 1, 1, 0, 5), dt.datetime(1970, 1, 1)]
    ev = with_strays(week, strays)
    with pytest.warns(TimestampWarning, match="dropped 3 of"):
        data = prepare(ev)
    assert data.stats["removed"]["time_outliers"]["events"] == 3
    clean = prepare(week)
    assert data.stats["test"]["time_range"] == clean.stats["test"]["time_range"]
    assert data.stats["test"]["sessions"] == clean.stats["test"]["sessions"] > 0


def test_times_in_the_future_warn_and_are_kept(week):
    shift = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=30) - week["timestamp"].min()
    ev = week.with_columns(pl.col("timestamp") + shift)
    with pytest.warns(TimestampWarning, match=f"{ev.height:,} of {ev.height:,} events have timestamps in the future"):
        data = prepare(ev)
    assert data.stats["removed"]["time_outliers"]["events"] == 0


def test_a_clean_log_gives_no_timestamp_warning(week):
    with warnings.catch_warnings():
        warnings.simplefilter("error", TimestampWarning)
        prepare(week, PrepareConfig(test_days=1, valid_days=1))


def test_the_cli_prints_a_timestamp_warning_on_one_line(tmp_path, week, capsys):
    f = tmp_path / "strays.csv"
    with_strays(week, [dt.datetime(2099, 1, 1)]).write_csv(f)
    assert main(["prepare", "--events", str(f), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err.splitlines()
    lines = [line for line in err if "far from the rest" in line]
    assert len(lines) == 1 and lines[0].startswith("item2vec: warning: prepare: dropped 1 of")


def test_a_log_too_small_for_percentiles_is_not_checked_for_far_off_times():
    t0 = dt.datetime(2024, 1, 1)
    ts = pl.Series([t0, t0 + dt.timedelta(days=2), t0 + dt.timedelta(days=2, hours=1)], dtype=pl.Datetime("us"))
    far, _ = time_outliers(ts, now=dt.datetime(2100, 1, 1))
    assert not far.any()
