"""From a normalised event frame to train / valid / test sessions.

:func:`prepare` is the whole path: sessionize by inactivity gap (when the data
has users but no sessions), order events, optionally drop consecutive repeats,
filter rare items and short sessions until nothing changes, split by time, and
encode with an :class:`ItemVocab` built on the training split.
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from item2vec._config import DictConfig
from item2vec._io import atomic_dir, read_meta, write_meta
from item2vec.data.vocab import ItemVocab
from item2vec.exceptions import (
    EmptyDataError,
    EmptySplitError,
    MissingColumnError,
    OptionError,
    SplitWarning,
    TimestampWarning,
)

__all__ = [
    "PrepareConfig",
    "SessionData",
    "sessionize",
    "drop_consecutive_repeats",
    "filter_support",
    "temporal_split",
    "prepare",
]

FORMAT_VERSION = 1


@dataclass
class PrepareConfig(DictConfig):
    """Options of :func:`prepare`; round-trips through :meth:`to_dict`.

    Values that cannot work raise :class:`~item2vec.exceptions.OptionError` here,
    at construction, naming the option.

    Attributes
    ----------
    session_gap_minutes : float
        Inactivity gap that starts a new session, used when the data has users but
        no sessions (default 30 minutes).
    drop_repeats : bool
        Collapse runs of the same item inside a session into one event.
    min_item_support : int
        Keep items seen in at least this many events.
    min_session_length : int
        Keep sessions with at least this many events (2: a pair to learn from).
    test_days, valid_days : float, optional
        The last ``test_days`` (by session end) are test, the ``valid_days``
        before them validation. One given alone sets the other to the same value.
    test_fraction, valid_fraction : float, optional
        Instead of days: the latest fraction of sessions. One given alone sets the
        other to the same value (``valid_fraction=0`` for no validation split).
        Days and fractions cannot be mixed.
    max_session_length : int, optional
        Keep only the last events of longer sessions.

    Notes
    -----
    With no split option set, the split is chosen from the log's span (first to
    last kept event), see :func:`auto_split`, and recorded in
    ``SessionData.stats["split"]``.
    """

    _label = "prepare option"

    session_gap_minutes: float = 30.0
    drop_repeats: bool = True
    min_item_support: int = 5
    min_session_length: int = 2
    test_days: float | None = None
    valid_days: float | None = None
    test_fraction: float | None = None
    valid_fraction: float | None = None
    max_session_length: int | None = None

    def __post_init__(self) -> None:
        _check_number("session_gap_minutes", self.session_gap_minutes, low=0.0, low_open=True)
        _check_int("min_item_support", self.min_item_support, 1)
        _check_int("min_session_length", self.min_session_length, 1)
        if self.max_session_length is not None:
            _check_int("max_session_length", self.max_session_length, max(self.min_session_length, 2),
                       also=("min_session_length",))
        for name in ("test_days", "valid_days", "test_fraction", "valid_fraction"):
            v = getattr(self, name)
            if v is not None:
                _check_number(name, v, low=0.0, low_open=name.startswith("test"))
        days = [n for n in ("test_days", "valid_days") if getattr(self, n) is not None]
        fracs = [n for n in ("test_fraction", "valid_fraction") if getattr(self, n) is not None]
        if days and fracs:
            raise OptionError(
                f"prepare: split by days or by fractions, not both; got {days[0]}={getattr(self, days[0])} "
                f"and {fracs[0]}={getattr(self, fracs[0])}", options=(days[0], fracs[0]),
            )
        tf = self.test_fraction if self.test_fraction is not None else self.valid_fraction
        vf = self.valid_fraction if self.valid_fraction is not None else self.test_fraction
        if tf is not None and vf is not None and not (tf < 1 and tf + vf < 1):
            raise OptionError(
                f"prepare: test_fraction and valid_fraction must be below 1 together (the rest is "
                f"training), got test_fraction={tf} and valid_fraction={vf}",
                options=("test_fraction", "valid_fraction"),
            )


def _check_number(name: str, v: Any, low: float, low_open: bool = False) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise OptionError(f"prepare: {name} must be a number, got {v!r} ({type(v).__name__})", options=(name,))
    if not np.isfinite(v) or v < low or (low_open and v == low):
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        raise OptionError(f"prepare: {name} must be a finite number {bound}, got {v!r}", options=(name,))


def _check_int(name: str, v: Any, low: int, also: tuple[str, ...] = ()) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise OptionError(f"prepare: {name} must be an integer, got {v!r} ({type(v).__name__})", options=(name,))
    if v < low:
        raise OptionError(f"prepare: {name} must be >= {low}, got {v}", options=(name, *also))


# ---------------------------------------------------------------------------
# frame-level steps (polars, vectorised)
# ---------------------------------------------------------------------------
def sessionize(events: pl.DataFrame, gap_minutes: float = 30.0) -> pl.DataFrame:
    """Give every event a ``session_id``; order events inside sessions by time.

    Where the frame already has ``session_id`` it is kept. Otherwise each user's
    events, in time order, are cut wherever two events are more than
    ``gap_minutes`` apart. Ties in time keep the source's row order.

    Returns
    -------
    polars.DataFrame
        The input columns plus an integer ``session_id`` where there was none,
        sorted by session and time.
    """
    if gap_minutes <= 0:
        raise ValueError(f"gap_minutes must be > 0, got {gap_minutes}")
    if "_order" not in events.columns:
        events = events.with_row_index("_order")
    if "session_id" in events.columns:
        return events.sort(["session_id", "timestamp", "_order"])
    if "user_id" not in events.columns:
        raise MissingColumnError(
            f"sessionize: expected a 'session_id' or 'user_id' column, got {events.columns}"
        )
    gap = pl.duration(microseconds=int(gap_minutes * 60_000_000))
    ev = _sort_by_user_and_time(events)
    new = (pl.col("user_id") != pl.col("user_id").shift(1)).fill_null(True) | (
        (pl.col("timestamp") - pl.col("timestamp").shift(1)) > gap
    ).fill_null(True)
    return ev.with_columns(new.cum_sum().cast(pl.Int64).alias("session_id"))


_INT64_MAX = 2**63 - 1


def _packed_user_time_key(events: pl.DataFrame) -> pl.Expr | None:
    """One int64 sort key equivalent to ``(user_id, timestamp, _order)``, or ``None``.

    With integer user ids, datetime timestamps, no nulls, an ``_order`` that follows
    the row order, and ``(user range) x (time range in microseconds)`` within int64,
    the key is ``(user - min) * span + (time - min)``; a stable sort on it breaks
    ties by row order, i.e. by ``_order``.
    """
    user, ts = events.schema["user_id"], events.schema["timestamp"]
    if not (
        user.is_integer()
        and isinstance(ts, pl.Datetime)
        and events.height
        and events["user_id"].null_count() == 0
        and events["timestamp"].null_count() == 0
        and events["_order"].is_sorted()  # stability is the tie rule only then
    ):
        return None
    t_us = pl.col("timestamp").dt.epoch("us")
    umin, umax, tmin, tmax = events.select(
        pl.col("user_id").min().alias("u0"), pl.col("user_id").max().alias("u1"),
        t_us.min().alias("t0"), t_us.max().alias("t1"),
    ).row(0)
    span = int(tmax) - int(tmin) + 1
    if (int(umax) - int(umin) + 1) * span > _INT64_MAX:
        return None
    return (pl.col("user_id").cast(pl.Int64) - umin) * span + (t_us - tmin)


def _sort_by_user_and_time(events: pl.DataFrame) -> pl.DataFrame:
    """``events`` sorted by ``user_id``, then ``timestamp``, ties in ``_order``.

    One stable int64 sort on :func:`_packed_user_time_key` where it exists (about
    three times faster than the three-key sort at 10M events, ``benchmarks/README.md``),
    the three-key sort otherwise. Both give the same order.
    """
    key = _packed_user_time_key(events)
    if key is not None:
        return events.sort(key, maintain_order=True)  # by the expression: no key column to carry
    return events.sort(["user_id", "timestamp", "_order"])


def drop_consecutive_repeats(events: pl.DataFrame) -> pl.DataFrame:
    """Drop an event when the previous event of the same session had the same item.

    Expects the frame sorted by session and time (as :func:`sessionize` leaves it).
    """
    same = (pl.col("item_id") == pl.col("item_id").shift(1)) & (
        pl.col("session_id") == pl.col("session_id").shift(1)
    )
    return events.filter(~same.fill_null(False))


def filter_support(
    events: pl.DataFrame, min_item_support: int = 5, min_session_length: int = 2
) -> pl.DataFrame:
    """Drop rare items and short sessions, repeatedly, until nothing changes."""
    return _filter_support_counted(events, min_item_support, min_session_length)[0]


def _filter_support_counted(
    events: pl.DataFrame, min_item_support: int, min_session_length: int
) -> tuple[pl.DataFrame, dict[str, dict[str, int]]]:
    """:func:`filter_support` and what each of its two filters removed."""
    rare = {"events": 0, "items": 0}
    short = {"events": 0, "sessions": 0}
    # (column, least events per value, the counts of what it removed, their unit): items first
    rules = [rule for rule in (("item_id", min_item_support, rare, "items"),
                               ("session_id", min_session_length, short, "sessions")) if rule[1] > 1]
    while True:
        before = events.height
        for column, least, counts, unit in rules:
            keep = pl.len().over(column) >= least
            gone = events.filter(~keep)
            if gone.height:
                counts["events"] += gone.height
                counts[unit] += gone[column].n_unique()
                events = events.filter(keep)
        if events.height == before:
            return events, {"rare_items": rare, "short_sessions": short}


def temporal_split(
    events: pl.DataFrame,
    test_days: float | None = 7.0,
    valid_days: float | None = 7.0,
    test_fraction: float | None = None,
    valid_fraction: float | None = None,
) -> pl.DataFrame:
    """Add a ``split`` column (``train`` / ``valid`` / ``test``) by session end time.

    With days: sessions ending in the last ``test_days`` are test, the
    ``valid_days`` before that validation. With fractions: the cut points are
    the quantiles of session end times; a fraction given alone (the other
    ``None``) is used for both test and validation.

    Raises
    ------
    OptionError
        For negative days or fractions outside [0, 1) (the error names the option).
    """
    ends = events.group_by("session_id").agg(pl.col("timestamp").max().alias("_end"))
    if test_fraction is not None or valid_fraction is not None:
        tf = test_fraction if test_fraction is not None else valid_fraction
        vf = valid_fraction if valid_fraction is not None else test_fraction
        assert tf is not None and vf is not None
        if not (0 <= tf < 1 and 0 <= vf < 1 and tf + vf < 1):
            raise OptionError(
                f"test_fraction and valid_fraction must be in [0, 1) and sum below 1, got {tf}, {vf}",
                options=("test_fraction", "valid_fraction"),
            )
        s = ends["_end"].sort()
        n = len(s)
        test_cut = s[min(n - 1, int(np.floor(n * (1 - tf))))] if tf > 0 else None
        valid_cut = s[min(n - 1, int(np.floor(n * (1 - tf - vf))))] if vf > 0 else test_cut
        test_expr = pl.col("_end") >= test_cut if test_cut is not None else pl.lit(False)
        valid_expr = pl.col("_end") >= valid_cut if valid_cut is not None else pl.lit(False)
    else:
        td = test_days if test_days is not None else valid_days
        vd = valid_days if valid_days is not None else test_days
        if td is None or vd is None or td < 0 or vd < 0:
            raise OptionError(
                f"test_days and valid_days must be >= 0, got {test_days}, {valid_days}",
                options=("test_days", "valid_days"),
            )
        last = ends["_end"].max()
        test_cut = last - np.timedelta64(int(td * 86400e6), "us")
        valid_cut = test_cut - np.timedelta64(int(vd * 86400e6), "us")
        test_expr = pl.col("_end") > test_cut
        valid_expr = pl.col("_end") > valid_cut
    ends = ends.with_columns(
        pl.when(test_expr).then(pl.lit("test")).when(valid_expr).then(pl.lit("valid"))
        .otherwise(pl.lit("train")).alias("split")
    )
    return events.join(ends.select("session_id", "split"), on="session_id", how="left")


#: An event is "far from the rest" when it lies more than the span of the central
#: 98 % of event times (1st to 99th percentile), and at least this many days,
#: before the 1st or after the 99th percentile.
OUTLIER_MIN_DAYS = 1.0
#: Logs with fewer events are not checked for far-off times (their percentiles are
#: their second and second-to-last events).
OUTLIER_MIN_EVENTS = 20


def time_outliers(timestamps: pl.Series, now: dt.datetime | None = None) -> tuple[pl.Series, pl.Series]:
    """Masks of events far from the rest of the log and of events in the future.

    Far from the rest: more than ``max(p99 - p1, OUTLIER_MIN_DAYS days)`` before
    the 1st percentile ``p1`` or after the 99th percentile ``p99`` of the event
    times (``p1`` rounded up and ``p99`` down to an event, so that one stray event
    in a small log does not move them). Logs of fewer than ``OUTLIER_MIN_EVENTS``
    events have none. In the future: after ``now`` (default: the current UTC time;
    timestamps are naive UTC).

    Returns
    -------
    far, future : polars.Series of bool
    """
    t = timestamps.dt.epoch("us")
    p1 = t.quantile(0.01, interpolation="higher")
    p99 = t.quantile(0.99, interpolation="lower")
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    future = timestamps > now
    if p1 is None or p99 is None or len(t) < OUTLIER_MIN_EVENTS:
        return pl.Series([False] * len(t)), future
    reach = max(float(p99) - float(p1), OUTLIER_MIN_DAYS * 86400e6)
    far = (t < float(p1) - reach) | (t > float(p99) + reach)
    return far, future


#: Split sizes that draw a :class:`~item2vec.exceptions.SplitWarning`: a split
#: with fewer sessions than this (test always, validation when one was asked for,
#: train always), or a training split with fewer than this share of the sessions.
MIN_SPLIT_SESSIONS = 50
MIN_TRAIN_SHARE = 0.5


def auto_split(span_days: float) -> dict[str, Any]:
    """The split :func:`prepare` uses when no split option is given.

    Test and validation each cover a seventh of the log's span (rounded to the
    nearest hour), in whole days (rounded down) from one day up, at most 7 days,
    and in hours below: a 3-day log gets 10 hours each, a 1-week log 1 day, a
    2-week log 2 days, a year 7 days. A log shorter than 3.5 hours is split by
    session counts instead: the latest 1/7 of the sessions test, the 1/7 before
    them validation.

    Parameters
    ----------
    span_days : float
        Time from the first to the last event, in days.

    Returns
    -------
    dict
        ``{"by": "days", "test_days": d, "valid_days": d}`` or
        ``{"by": "fraction", "test_fraction": f, "valid_fraction": f}``.
    """
    hours = round(span_days * 24 / 7)
    if hours >= 24:
        d = float(min(7, hours // 24))
    elif hours >= 1:
        d = hours / 24
    else:
        f = round(1 / 7, 4)
        return {"by": "fraction", "test_fraction": f, "valid_fraction": f}
    return {"by": "days", "test_days": d, "valid_days": d}


def _resolve_split(cfg: PrepareConfig, span_days: float) -> dict[str, Any]:
    if cfg.test_fraction is not None or cfg.valid_fraction is not None:
        tf = cfg.test_fraction if cfg.test_fraction is not None else cfg.valid_fraction
        vf = cfg.valid_fraction if cfg.valid_fraction is not None else cfg.test_fraction
        return {"by": "fraction", "test_fraction": tf, "valid_fraction": vf, "auto": False}
    if cfg.test_days is not None or cfg.valid_days is not None:
        td = cfg.test_days if cfg.test_days is not None else cfg.valid_days
        vd = cfg.valid_days if cfg.valid_days is not None else cfg.test_days
        return {"by": "days", "test_days": td, "valid_days": vd, "auto": False}
    return {**auto_split(span_days), "auto": True}


def describe_split(split: dict[str, Any]) -> str:
    """One line for people: how the sessions were split (from ``stats["split"]``)."""
    if split["by"] == "fraction":
        text = (f"latest {split['test_fraction']:.1%} of sessions test, "
                f"{split['valid_fraction']:.1%} before them validation")
    else:
        text = f"last {_days(split['test_days'])} test, {_days(split['valid_days'])} before them validation"
    if split.get("auto"):
        text += (f" (chosen from the log's {split['span_days']:.1f}-day span; "
                 "set test_days/valid_days or test_fraction/valid_fraction to choose)")
    return text


def _days(d: float) -> str:
    if d >= 1 or d == 0:
        return f"{d:g} day" + ("" if d == 1 else "s")
    return f"{d * 24:g} hours"


# ---------------------------------------------------------------------------
# input frames
# ---------------------------------------------------------------------------
def _event_frame(
    events: Any,
    item_col: str | None,
    session_col: str | None,
    time_col: str | None,
    user_col: str | None,
    time_unit: str | None,
) -> pl.DataFrame:
    """A polars or pandas frame with any column names → the normalised frame."""
    from item2vec.data.readers import normalize_frame

    if type(events).__module__.startswith("pandas") and hasattr(events, "columns"):
        events = pl.from_pandas(events)
    elif isinstance(events, pl.LazyFrame):
        events = events.collect()
    elif not isinstance(events, pl.DataFrame):
        raise TypeError(
            f"prepare expects a polars or pandas DataFrame of events (one row per event), got "
            f"{type(events).__name__}; read a file with item2vec.read_events"
        )
    if events.height == 0:
        raise EmptyDataError("prepare: the event frame has no rows")
    cols = events.columns
    if session_col is None and user_col is None:
        session_col = "session_id" if "session_id" in cols else None
        user_col = "user_id" if "user_id" in cols else None
        if session_col is None and user_col is None:
            raise MissingColumnError(
                f"prepare: expected a 'session_id' or a 'user_id' column, got {cols}; name yours "
                f"with session_col= or user_col="
            )
    return normalize_frame(
        events, item_col=item_col or "item_id", session_col=session_col, time_col=time_col or "timestamp",
        user_col=user_col, time_unit=time_unit, source="prepare",
    )


# ---------------------------------------------------------------------------
# SessionData
# ---------------------------------------------------------------------------
@dataclass
class SessionData:
    """Prepared sessions, encoded with one vocabulary.

    Attributes
    ----------
    train, valid, test : list of numpy.ndarray
        Each session is an int32 array of item indices 1..n (0 is padding),
        sessions in order of their start time.
    vocab : ItemVocab
        External item id ↔ index, built from the training split.
    stats : dict
        Counts and time ranges, written as ``stats.json``.
    metadata : polars.DataFrame, optional
        ``item_id, title[, category]`` for display, when the source has it.
    """

    train: list[np.ndarray]
    valid: list[np.ndarray]
    test: list[np.ndarray]
    vocab: ItemVocab
    stats: dict[str, Any] = field(default_factory=dict)
    metadata: pl.DataFrame | None = None

    @property
    def n_items(self) -> int:
        return len(self.vocab)

    @property
    def repeats_dropped(self) -> bool:
        """Whether consecutive repeats were dropped, so a session never continues with its last item.

        Read from ``stats["config"]["drop_repeats"]``; True where the stats do not say (the default).
        Pass it to ``Recommender.fit(..., repeats_dropped=)``.
        """
        return bool((self.stats.get("config") or {}).get("drop_repeats", True))

    def decode(self, sessions: list[np.ndarray]) -> list[list[Any]]:
        """Sessions of indices → lists of external ids."""
        return [self.vocab.lookup(s).tolist() for s in sessions]

    def titles(self) -> dict[Any, str]:
        """``item_id → title`` from the metadata (empty without metadata; see :func:`~item2vec.data.item_titles`)."""
        from item2vec.data.readers import item_titles

        return item_titles(self.metadata)

    # -- persistence -------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write Parquet files and ``stats.json`` to ``path`` atomically."""
        with atomic_dir(path, marker="stats.json") as tmp:
            pl.DataFrame({"item_id": self.vocab.ids}).write_parquet(tmp / "vocab.parquet")
            for name in ("train", "valid", "test"):
                sessions = getattr(self, name)
                pl.DataFrame(
                    {"items": [s.astype(np.int32) for s in sessions]},
                    schema={"items": pl.List(pl.Int32)},
                ).write_parquet(tmp / f"{name}.parquet")
            if self.metadata is not None:
                self.metadata.write_parquet(tmp / "metadata.parquet")
            write_meta(tmp / "stats.json", None, FORMAT_VERSION, stats=self.stats)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SessionData:
        """Read a directory written by :meth:`save`."""
        p = Path(path)
        if not (p / "stats.json").exists():
            raise FileNotFoundError(
                f"{str(p)!r} is not a prepared-data directory (no stats.json); "
                f"create one with `item2vec prepare`"
            )
        meta = read_meta(p / "stats.json", None, (FORMAT_VERSION,), what="prepared data")
        vocab = ItemVocab(pl.read_parquet(p / "vocab.parquet")["item_id"].to_numpy())
        splits = {}
        for name in ("train", "valid", "test"):
            col = pl.read_parquet(p / f"{name}.parquet")["items"]
            splits[name] = [np.asarray(s, dtype=np.int32) for s in col.to_list()]
        md = p / "metadata.parquet"
        return cls(
            **splits,
            vocab=vocab,
            stats=meta.get("stats", {}),
            metadata=pl.read_parquet(md) if md.exists() else None,
        )


def _split_stats(sessions: list[np.ndarray]) -> dict[str, Any]:
    lengths = np.array([len(s) for s in sessions], dtype=np.int64)
    return {
        "sessions": int(len(sessions)),
        "events": int(lengths.sum()) if len(lengths) else 0,
        "items": int(len(np.unique(np.concatenate(sessions)))) if sessions else 0,
        "mean_length": round(float(lengths.mean()), 3) if len(lengths) else 0.0,
        "max_length": int(lengths.max()) if len(lengths) else 0,
    }


def session_rules(seqs: list[Any], cfg: PrepareConfig) -> tuple[list[np.ndarray], dict[str, int]]:
    """The rules applied to each encoded session: repeats dropped, the length cap, the minimum length.

    Both engines (this module and :mod:`item2vec.spark.sessions`) finish their sessions here.

    Returns
    -------
    sessions : list of int32 arrays
        The sessions that keep ``cfg.min_session_length`` items or more.
    counts : dict
        ``kept_events``, ``capped_events`` and ``capped_sessions`` (the length cap),
        ``short_sessions`` (dropped for being too short).
    """
    counts = {"kept_events": 0, "capped_events": 0, "capped_sessions": 0, "short_sessions": 0}
    sessions = []
    for s in seqs:
        a = np.asarray(s, dtype=np.int32)
        if cfg.drop_repeats and len(a) > 1:
            a = a[np.concatenate([[True], a[1:] != a[:-1]])]
        if cfg.max_session_length and len(a) > cfg.max_session_length:
            counts["capped_events"] += len(a) - cfg.max_session_length
            counts["capped_sessions"] += 1
            a = a[-cfg.max_session_length :]
        if len(a) >= cfg.min_session_length:
            sessions.append(a)
            counts["kept_events"] += len(a)
        else:
            counts["short_sessions"] += 1
    return sessions, counts


def finish_splits(
    encoded: Iterable[tuple[str, int, int, list[Any]]],
    cfg: PrepareConfig,
    removed: dict[str, Any],
    split: dict[str, Any],
    split_opts: tuple[str, ...],
) -> dict[str, list[np.ndarray]]:
    """Apply :func:`session_rules` to each encoded split and count what it removed (both engines).

    ``encoded`` yields ``(split name, sessions in it, events in it, sessions as lists of
    indices with the items unseen in training left out)``. ``removed`` gains
    ``unseen_items`` and ``length_cap``.

    Raises
    ------
    EmptySplitError
        When no test session is left.
    """
    out: dict[str, list[np.ndarray]] = {}
    unseen = {"events": 0, "sessions": 0}
    cap = {"events": 0, "sessions": 0}
    for name_, n_part, n_events, seqs in encoded:
        sessions, c = session_rules(seqs, cfg)
        unseen["sessions"] += n_part - len(seqs) + c["short_sessions"]
        cap["events"] += c["capped_events"]
        cap["sessions"] += c["capped_sessions"]
        # besides unseen items: the repeats and too-short sessions their removal leaves
        unseen["events"] += n_events - c["kept_events"] - c["capped_events"]
        out[name_] = sessions
    removed["unseen_items"] = unseen
    removed["length_cap"] = cap
    if not out["test"]:
        raise EmptySplitError(
            f"prepare: no test session of length >= {cfg.min_session_length} is left ({describe_split(split)}; "
            "test items unseen in training are dropped); raise " + " / ".join(split_opts) + " or check the data",
            options=split_opts,
        )
    return out


def prepare(
    events: Any,
    config: PrepareConfig | None = None,
    metadata: pl.DataFrame | None = None,
    name: str | None = None,
    *,
    item_col: str | None = None,
    session_col: str | None = None,
    time_col: str | None = None,
    user_col: str | None = None,
    time_unit: str | None = None,
) -> SessionData:
    """Turn an event frame into :class:`SessionData`.

    Parameters
    ----------
    events : polars.DataFrame or pandas.DataFrame
        One row per event: :func:`read_events`'s frame, or any frame whose columns
        are named by the options below.
    config : PrepareConfig, optional
        Filters and the split; with no split option the split is chosen from the
        log's span (:func:`auto_split`).
    metadata : polars.DataFrame, optional
        ``item_id, title[, category]``, kept for the items in the vocabulary.
    name : str, optional
        Recorded in ``stats["name"]``.
    item_col, session_col, time_col, user_col : str, optional
        Column names, as :func:`read_table` takes them. Default: ``item_id``,
        ``timestamp``, and ``session_id`` and/or ``user_id``, whichever exist (a
        frame with users and no sessions is cut at ``session_gap_minutes``).
    time_unit : {"s", "ms", "us", "ns"}, optional
        Unit of numeric timestamps; by default chosen from their magnitude
        (:func:`~item2vec.data.readers.infer_time_unit`: below 1e11 seconds,
        below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds).
        Strings with an offset and zone-aware datetimes are converted to UTC.

    Returns
    -------
    SessionData
        ``stats`` records what each step removed (``stats["removed"]``), the split
        used (``stats["split"]``) and the warnings given (``stats["warnings"]``).

    Warns
    -----
    TimestampWarning
        Events far from the rest of the log (:func:`time_outliers`; they are
        dropped, so they never form the test split) or in the future (kept).
    SplitWarning
        A tiny or lopsided split (:data:`MIN_SPLIT_SESSIONS`, :data:`MIN_TRAIN_SHARE`).

    Raises
    ------
    TypeError
        If ``events`` is not a DataFrame.
    MissingColumnError, DataError
        For absent columns, null ids or timestamps that cannot be read.
    EmptySplitError
        If no session of length >= 2 is left after filtering, or the train or test
        split is empty; ``options`` names the options to change.
    """
    cfg = config or PrepareConfig()
    ev = _event_frame(events, item_col, session_col, time_col, user_col, time_unit)
    n_raw = ev.height
    said: list[str] = []

    def warn(message: str, category: type[Warning]) -> None:
        said.append(message)
        warnings.warn(message, category, stacklevel=3)

    removed: dict[str, dict[str, int]] = {}
    ev, messages = _drop_time_outliers(ev, removed)
    for message in messages:
        warn(message, TimestampWarning)
    ev, n_sessions_in = _clean_sessions(ev, cfg, removed, n_raw)
    grouped, split, split_opts = _split_sessions(ev, cfg)
    vocab = _train_vocab(grouped)
    out = finish_splits(_encoded_splits(grouped, vocab), cfg, removed, split, split_opts)
    stats = _prepare_stats(ev, grouped, out, cfg, split, removed, name=name, n_raw=n_raw,
                           n_sessions_in=n_sessions_in, n_items=len(vocab))
    for message in _split_size_warnings(stats, split):
        warn(message, SplitWarning)
    stats["warnings"] = said
    if metadata is not None:
        metadata = metadata.filter(pl.col("item_id").is_in(pl.Series(vocab.ids)))
    return SessionData(**out, vocab=vocab, stats=stats, metadata=metadata)


def _drop_time_outliers(ev: pl.DataFrame, removed: dict[str, Any]) -> tuple[pl.DataFrame, list[str]]:
    """Step 1 of :func:`prepare`: drop events far from the rest of the log (:func:`time_outliers`).

    Returns the kept events and the warnings to give (the dropped ones; those in
    the future, which are kept). ``removed`` gains ``time_outliers``.
    """
    n_raw = ev.height
    messages = []
    far, future = time_outliers(ev["timestamp"])
    n_far, n_future = int(far.sum()), int((future & ~far).sum())
    if n_far:
        ts = ev["timestamp"]
        kept = ts.filter(~far)
        messages.append(
            f"prepare: dropped {n_far:,} of {n_raw:,} events whose timestamps are far from the rest of the "
            f"log (outside {kept.min()} .. {kept.max()} by more than the span of its central 98%), e.g. "
            f"{ts.filter(far).sort().head(2).cast(pl.String).to_list()}; check the time column and its unit"
        )
        ev = ev.filter(~far)
    if n_future:
        messages.append(f"prepare: {n_future:,} of {n_raw:,} events have timestamps in the future (after "
                        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, latest {ev['timestamp'].max()}); they are kept")
    removed["time_outliers"] = {"events": n_far}
    return ev, messages


def _clean_sessions(ev: pl.DataFrame, cfg: PrepareConfig, removed: dict[str, Any],
                    n_raw: int) -> tuple[pl.DataFrame, int]:
    """Step 2 of :func:`prepare`: sessions cut, repeats dropped, rare items and short sessions filtered.

    Returns the events left and the number of sessions before filtering; ``removed``
    gains ``repeats`` and the support filter's counts.

    Raises
    ------
    EmptySplitError
        When no session is left.
    """
    ev = sessionize(ev, cfg.session_gap_minutes)
    n_sessions_in = ev["session_id"].n_unique()
    if cfg.drop_repeats:
        before = ev.height
        ev = drop_consecutive_repeats(ev)
        removed["repeats"] = {"events": before - ev.height}
    else:
        removed["repeats"] = {"events": 0}
    ev, support = _filter_support_counted(ev, cfg.min_item_support, cfg.min_session_length)
    removed.update(support)
    if ev.height == 0:
        raise EmptySplitError(
            f"prepare: no session of length >= {cfg.min_session_length} is left after keeping "
            f"items with >= {cfg.min_item_support} events ({n_raw} events in); "
            f"lower min_item_support or min_session_length, or check the session column",
            options=("min_item_support", "min_session_length"),
        )
    return ev, int(n_sessions_in)


def _split_sessions(ev: pl.DataFrame, cfg: PrepareConfig) -> tuple[pl.DataFrame, dict[str, Any], tuple[str, ...]]:
    """Step 3 of :func:`prepare`: the temporal split, then one row per session ordered by start time.

    Returns the sessions (``session_id, item_id`` (a list), ``split, start, end``),
    the split used (as ``stats["split"]`` records it) and the options that set it.

    Raises
    ------
    EmptySplitError
        When the training split is empty.
    """
    t0, t1 = ev["timestamp"].min(), ev["timestamp"].max()
    span_days = (t1 - t0).total_seconds() / 86400  # type: ignore[operator]
    split = {**_resolve_split(cfg, span_days), "span_days": round(span_days, 3)}
    split_opts = ("test_fraction", "valid_fraction") if split["by"] == "fraction" else ("test_days", "valid_days")
    ev = temporal_split(
        ev, split.get("test_days"), split.get("valid_days"), split.get("test_fraction"), split.get("valid_fraction")
    )
    grouped = (
        ev.group_by("session_id", maintain_order=True)
        .agg(
            pl.col("item_id"),
            pl.col("split").first(),
            pl.col("timestamp").min().alias("start"),
            pl.col("timestamp").max().alias("end"),
        )
        .sort("start", "session_id")
    )
    if grouped.filter(pl.col("split") == "train").height == 0:
        raise EmptySplitError(
            f"prepare: the training split is empty: every session ends in the held-out part "
            f"({describe_split(split)}) of a log that spans {span_days:.2f} days; "
            + ("lower " + " / ".join(split_opts) if not split["auto"]
               else "pass smaller test_days / valid_days, or test_fraction / valid_fraction"),
            options=("test_days", "valid_days", "test_fraction", "valid_fraction"),
        )
    return grouped, split, split_opts


def _train_vocab(grouped: pl.DataFrame) -> ItemVocab:
    """Step 4 of :func:`prepare`: the vocabulary of the training items, most frequent first (ties by first appearance)."""
    counts = (
        grouped.filter(pl.col("split") == "train").select(pl.col("item_id").explode())
        .with_row_index("_pos")
        .group_by("item_id")
        .agg(pl.len().alias("n"), pl.col("_pos").min())
        .sort(["n", "_pos"], descending=[True, False])
    )
    return ItemVocab(counts["item_id"].to_numpy())


def _encoded_splits(grouped: pl.DataFrame, vocab: ItemVocab) -> Iterator[tuple[str, int, int, list[Any]]]:
    """Step 5 of :func:`prepare`: each split's sessions as vocabulary indices, as :func:`finish_splits` takes them.

    Yields ``(split name, sessions in it, events in it, sessions as lists of indices
    with the items unseen in training left out)``.
    """
    lookup = pl.DataFrame({"item_id": vocab.ids, "idx": np.arange(1, len(vocab) + 1, dtype=np.int32)})
    for name_ in ("train", "valid", "test"):
        part = grouped.filter(pl.col("split") == name_).select("session_id", "start", "item_id")
        flat = part.with_row_index("_s").explode("item_id").join(lookup, on="item_id", how="left",
                                                                  maintain_order="left")
        n_events = flat.height
        flat = flat.filter(pl.col("idx").is_not_null())  # items unseen in train
        yield name_, part.height, n_events, flat.group_by("_s", maintain_order=True).agg(pl.col("idx"))["idx"].to_list()


def _prepare_stats(ev: pl.DataFrame, grouped: pl.DataFrame, out: dict[str, list[np.ndarray]], cfg: PrepareConfig,
                   split: dict[str, Any], removed: dict[str, Any], *, name: str | None, n_raw: int,
                   n_sessions_in: int, n_items: int) -> dict[str, Any]:
    """Step 6 of :func:`prepare`: ``SessionData.stats`` (without the warnings, added last)."""
    stats: dict[str, Any] = {
        "name": name,
        "events_in": n_raw,
        "sessions_in": n_sessions_in,
        "events_kept": int(ev.height),
        "items": n_items,
        "time_range": [str(ev["timestamp"].min()), str(ev["timestamp"].max())],
        "config": cfg.to_dict(),
        "split": split,
        "removed": removed,
        **{n: _split_stats(s) for n, s in out.items()},
    }
    for n in ("train", "valid", "test"):
        part = grouped.filter(pl.col("split") == n)
        if part.height:
            stats[n]["time_range"] = [str(part["start"].min()), str(part["end"].max())]
    return stats


def _split_size_warnings(stats: dict[str, Any], split: dict[str, Any]) -> list[str]:
    sizes = {n: stats[n]["sessions"] for n in ("train", "valid", "test")}
    total = sum(sizes.values())
    opts = "test_fraction / valid_fraction" if split["by"] == "fraction" else "test_days / valid_days"
    wants_valid = (split.get("valid_days") or split.get("valid_fraction") or 0) > 0
    tiny = [n for n in ("train", "valid", "test") if sizes[n] < MIN_SPLIT_SESSIONS and (n != "valid" or wants_valid)]
    shown = " / ".join(f"{sizes[n]:,} {n}" for n in ("train", "valid", "test"))
    out = []
    if tiny:
        out.append(f"prepare: tiny split: {shown} sessions ({', '.join(tiny)} under {MIN_SPLIT_SESSIONS}); "
                   f"scores on it are noisy; change {opts} or use a longer log")
    if total and sizes["train"] < MIN_TRAIN_SHARE * total:
        out.append(f"prepare: lopsided split: {shown} sessions, training has {sizes['train'] / total:.0%} "
                   f"(under {MIN_TRAIN_SHARE:.0%}); lower {opts}")
    return out
