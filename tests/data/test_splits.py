"""Splits on short logs: the default split, one option alone, tiny and lopsided splits, errors
that name the options (flags in the CLI), and the summary of what each filter removed."""

from __future__ import annotations

import datetime as dt
import warnings

import polars as pl
import pytest

from item2vec.cli import main
from item2vec.data import PrepareConfig, auto_split, make_sessions, prepare
from item2vec.exceptions import EmptyDataError, EmptySplitError, OptionError, SplitWarning


def log(days: float, n_sessions: int | None = None, seed: int = 0) -> pl.DataFrame:
    """A synthetic log over ``days`` days, about 100 sessions a day (800 at least)."""
    n = n_sessions or max(int(100 * days), 800)
    events, _ = make_sessions(n_sessions=n, n_clusters=3, items_per_cluster=12, days=days, random_state=seed)
    return events


def sizes(data) -> dict[str, int]:
    return {n: len(getattr(data, n)) for n in ("train", "valid", "test")}


@pytest.mark.parametrize("days", [3, 7, 14, 90])
def test_the_default_split_works_on_any_log_of_three_days_or_more(days):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SplitWarning)  # neither tiny nor lopsided
        data = prepare(log(days))
    n = sizes(data)
    assert min(n.values()) > 0 and n["train"] >= sum(n.values()) / 2
    split = data.stats["split"]
    assert split["auto"] and split["by"] == "days" and split["test_days"] == split["valid_days"] > 0
    assert split["test_days"] <= 7 and split["test_days"] * 7 <= split["span_days"] + 1 / 24


def test_auto_split_rule():
    assert auto_split(7.0)["test_days"] == 1 and auto_split(6.99)["test_days"] == 1  # a week: 1 day each
    assert auto_split(14.0)["test_days"] == 2
    assert auto_split(3.0)["test_days"] == pytest.approx(10 / 24)  # 10 hours
    assert auto_split(1000.0)["test_days"] == 7
    assert auto_split(0.1)["by"] == "fraction"


def test_a_one_week_log_with_the_old_defaults_fails_naming_the_options():
    with pytest.raises(EmptySplitError, match="lower test_days / valid_days") as e:
        prepare(log(7), PrepareConfig(test_days=7, valid_days=7))
    assert {"test_days", "valid_days"} <= set(e.value.options)
    assert isinstance(e.value, EmptyDataError)  # still the error it was


def test_the_cli_error_names_flags_not_python_parameters(tmp_path, capsys):
    f = tmp_path / "week.csv"
    log(7).write_csv(f)
    code = main(["prepare", "--events", str(f), "--out", str(tmp_path / "o"), "--test-days", "7", "--valid-days", "7"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1
    assert "--test-days" in err[0] and "--valid-days" in err[0]
    assert "test_days" not in err[0] and "valid_days" not in err[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, flag", [
    (["--test-days", "3", "--test-fraction", "0.2"], "--test-fraction"),
    (["--test-fraction", "0.7", "--valid-fraction", "0.5"], "--valid-fraction"),
    (["--min-item-support", "0"], "--min-item-support"),
    (["--gap-minutes", "0"], "--gap-minutes"),
    (["--max-session-length", "1"], "--max-session-length"),
])
def test_bad_split_or_filter_flags_are_named(tmp_path, capsys, argv, flag):
    f = tmp_path / "week.csv"
    log(7, 200).write_csv(f)
    assert main(["prepare", "--events", str(f), "--out", str(tmp_path / "o"), *argv]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and flag in err[0] and flag[2:].replace("-", "_") not in err[0], err


@pytest.mark.parametrize("kw, option", [
    ({"test_days": -1}, "test_days"),
    ({"test_fraction": 1.0}, "test_fraction"),
    ({"test_fraction": 0.6, "valid_fraction": 0.5}, "valid_fraction"),
    ({"test_days": 2, "valid_fraction": 0.1}, "valid_fraction"),
    ({"min_session_length": 0}, "min_session_length"),
    ({"session_gap_minutes": float("nan")}, "session_gap_minutes"),
    ({"min_item_support": 2.5}, "min_item_support"),
])
def test_prepare_config_refuses_values_that_cannot_work(kw, option):
    with pytest.raises(OptionError, match=option) as e:
        PrepareConfig(**kw)
    assert option in e.value.options


def test_test_fraction_alone_also_gives_a_validation_split():
    ev = log(7)
    data = prepare(ev, PrepareConfig(test_fraction=0.2))
    n = sizes(data)
    assert n["valid"] > 0 and abs(n["valid"] - n["test"]) <= 0.05 * sum(n.values())
    assert data.stats["split"] == {**data.stats["split"], "by": "fraction", "test_fraction": 0.2, "valid_fraction": 0.2}
    none = prepare(ev, PrepareConfig(test_fraction=0.2, valid_fraction=0))
    assert len(none.valid) == 0 and len(none.test) == n["test"]


def test_test_days_alone_sets_the_validation_days_too():
    data = prepare(log(14), PrepareConfig(test_days=2))
    assert data.stats["split"]["valid_days"] == 2 and len(data.valid) > 0


def test_a_lopsided_split_warns():
    with pytest.warns(SplitWarning, match="lopsided split: .* training has"):
        prepare(log(14), PrepareConfig(test_days=6, valid_days=5))


def test_a_tiny_split_warns():
    with pytest.warns(SplitWarning, match=r"tiny split: .* sessions \(valid, test under 50\)"):
        data = prepare(log(14, n_sessions=150))
    assert data.stats["warnings"] and "tiny split" in data.stats["warnings"][0]


def test_the_cli_prints_the_chosen_split_and_warnings_on_one_line(tmp_path, capsys):
    f = tmp_path / "fortnight.csv"
    log(14, n_sessions=300).write_csv(f)
    assert main(["prepare", "--events", str(f), "--out", str(tmp_path / "o")]) == 0
    out, err = capsys.readouterr()
    assert "split: last 2 days test, 2 days before them validation (chosen from the log's" in out
    assert "--test-days/--valid-days" in out
    warned = [line for line in err.splitlines() if "tiny split" in line]
    assert len(warned) == 1 and warned[0].startswith("item2vec: warning: ") and "--test-days" in warned[0]


# ---------------------------------------------------------------------------
# what each filter removed
# ---------------------------------------------------------------------------
T0 = dt.datetime(2024, 1, 1)


def sessions_frame(sessions: list[tuple[float, list[str]]]) -> pl.DataFrame:
    """``(day, items)`` per session → an event frame, one minute between events."""
    rows = [(s, item, T0 + dt.timedelta(days=day, minutes=j))
            for s, (day, items) in enumerate(sessions) for j, item in enumerate(items)]
    return pl.DataFrame(rows, schema=["session_id", "item_id", "timestamp"], orient="row")


def test_stats_say_what_each_filter_removed(capsys):
    base = [(d / 3, ["a", "b", "c", "d"]) for d in range(30)]  # 30 clean training sessions, days 0-10
    planted = [
        (1.0, ["a", "a", "a", "b"]),        # 2 consecutive repeats
        (2.0, ["a", "r", "b"]),              # r: 2 events in all, under min_item_support=3
        (2.5, ["c", "r"]),                   # ... and without r this session is too short
        (3.0, ["d"]),                        # a one-event session
        (4.0, ["a", "b", "c", "d", "a", "b"]),  # 6 events, 2 past max_session_length=4
        (13.0, ["a", "n", "b"]),             # test: n never appears in training (3 events in all)
        (13.1, ["n", "c"]),                  # ... this test session is left with 1 event
        (13.2, ["n", "a", "b"]),
        (13.3, ["a", "b", "c"]),
    ]
    ev = sessions_frame(base + planted)
    cfg = PrepareConfig(min_item_support=3, max_session_length=4, test_days=1, valid_days=1)
    data = prepare(ev, cfg)
    removed = data.stats["removed"]
    assert removed["time_outliers"] == {"events": 0}
    assert removed["repeats"] == {"events": 2}
    assert removed["rare_items"] == {"events": 2, "items": 1}
    assert removed["short_sessions"] == {"events": 2, "sessions": 2}  # ["c"] after r went, and ["d"]
    assert removed["unseen_items"] == {"events": 4, "sessions": 1}  # 3 n's, and the c left alone
    assert removed["length_cap"] == {"events": 2, "sessions": 1}
    kept = sum(data.stats[n]["events"] for n in ("train", "valid", "test"))
    assert data.stats["events_in"] - sum(r["events"] for r in removed.values()) == kept
    assert data.stats["events_kept"] == kept + removed["unseen_items"]["events"] + removed["length_cap"]["events"]


def test_the_cli_prints_what_each_filter_removed(tmp_path, capsys):
    f = tmp_path / "log.csv"
    ev = log(14, n_sessions=1400)
    ev.write_csv(f)
    assert main(["prepare", "--events", str(f), "--out", str(tmp_path / "o"), "--max-session-length", "5"]) == 0
    out = capsys.readouterr().out
    line = next(li for li in out.splitlines() if li.strip().startswith("removed:"))
    s = prepare(ev, PrepareConfig(max_session_length=5)).stats["removed"]
    for part in (f"{s['repeats']['events']:,} consecutive repeats", "items with < 5 events",
                 "sessions shorter than 2", "unseen in training",
                 f"{s['length_cap']['events']:,} events past the 5-event cap"):
        assert part in line
    assert s["length_cap"]["events"] > 0 and s["repeats"]["events"] > 0

