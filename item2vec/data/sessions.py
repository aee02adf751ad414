"""From a normalised event frame to train / valid / test sessions.

:func:`prepare` is the whole path: sessionize by inactivity gap (when the data
has users but no sessions), order events, optionally drop consecutive repeats,
filter rare items and short sessions until nothing changes, split by time, and
encode with an :class:`ItemVocab` built on the training split.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from item2vec._config import DictConfig
from item2vec._io import atomic_dir
from item2vec.data.vocab import ItemVocab
from item2vec.exceptions import EmptyDataError, FormatVersionError, MissingColumnError

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
    test_days, valid_days : float
        The last ``test_days`` (by session end) are test, the ``valid_days``
        before them validation.
    test_fraction, valid_fraction : float, optional
        Instead of days: the latest fraction of sessions. Either both days or both
        fractions are used; fractions win when set.
    max_session_length : int, optional
        Keep only the last events of longer sessions.
    """

    _label = "prepare option"

    session_gap_minutes: float = 30.0
    drop_repeats: bool = True
    min_item_support: int = 5
    min_session_length: int = 2
    test_days: float = 7.0
    valid_days: float = 7.0
    test_fraction: float | None = None
    valid_fraction: float | None = None
    max_session_length: int | None = None



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
    while True:
        before = events.height
        if min_item_support > 1:
            events = events.filter(pl.len().over("item_id") >= min_item_support)
        if min_session_length > 1:
            events = events.filter(pl.len().over("session_id") >= min_session_length)
        if events.height == before:
            return events


def temporal_split(
    events: pl.DataFrame,
    test_days: float = 7.0,
    valid_days: float = 7.0,
    test_fraction: float | None = None,
    valid_fraction: float | None = None,
) -> pl.DataFrame:
    """Add a ``split`` column (``train`` / ``valid`` / ``test``) by session end time.

    With days: sessions ending in the last ``test_days`` are test, the
    ``valid_days`` before that validation. With fractions: the cut points are
    the quantiles of session end times.
    """
    ends = events.group_by("session_id").agg(pl.col("timestamp").max().alias("_end"))
    if test_fraction is not None or valid_fraction is not None:
        tf, vf = test_fraction or 0.0, valid_fraction or 0.0
        if not (0 <= tf < 1 and 0 <= vf < 1 and tf + vf < 1):
            raise ValueError(f"fractions must be in [0, 1) and sum below 1, got {tf}, {vf}")
        s = ends["_end"].sort()
        n = len(s)
        test_cut = s[min(n - 1, int(np.floor(n * (1 - tf))))] if tf > 0 else None
        valid_cut = s[min(n - 1, int(np.floor(n * (1 - tf - vf))))] if vf > 0 else test_cut
        test_expr = pl.col("_end") >= test_cut if test_cut is not None else pl.lit(False)
        valid_expr = pl.col("_end") >= valid_cut if valid_cut is not None else pl.lit(False)
    else:
        if test_days < 0 or valid_days < 0:
            raise ValueError(f"test_days and valid_days must be >= 0, got {test_days}, {valid_days}")
        last = ends["_end"].max()
        test_cut = last - np.timedelta64(int(test_days * 86400e6), "us")
        valid_cut = test_cut - np.timedelta64(int(valid_days * 86400e6), "us")
        test_expr = pl.col("_end") > test_cut
        valid_expr = pl.col("_end") > valid_cut
    ends = ends.with_columns(
        pl.when(test_expr).then(pl.lit("test")).when(valid_expr).then(pl.lit("valid"))
        .otherwise(pl.lit("train")).alias("split")
    )
    return events.join(ends.select("session_id", "split"), on="session_id", how="left")


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
        """``item_id → title`` from the metadata (empty without metadata)."""
        if self.metadata is None or "title" not in self.metadata.columns:
            return {}
        return dict(zip(self.metadata["item_id"].to_list(), self.metadata["title"].to_list(), strict=True))

    # -- persistence -------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write Parquet files and ``stats.json`` to ``path`` atomically."""
        with atomic_dir(path) as tmp:
            pl.DataFrame({"item_id": self.vocab.ids}).write_parquet(tmp / "vocab.parquet")
            for name in ("train", "valid", "test"):
                sessions = getattr(self, name)
                pl.DataFrame(
                    {"items": [s.astype(np.int32) for s in sessions]},
                    schema={"items": pl.List(pl.Int32)},
                ).write_parquet(tmp / f"{name}.parquet")
            if self.metadata is not None:
                self.metadata.write_parquet(tmp / "metadata.parquet")
            meta = {"format_version": FORMAT_VERSION, "stats": self.stats}
            (tmp / "stats.json").write_text(json.dumps(meta, indent=2, default=str))
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
        meta = json.loads((p / "stats.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise FormatVersionError(
                f"{p}: prepared-data format version {meta.get('format_version')!r}, "
                f"this item2vec reads version {FORMAT_VERSION}"
            )
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


def prepare(
    events: pl.DataFrame,
    config: PrepareConfig | None = None,
    metadata: pl.DataFrame | None = None,
    name: str | None = None,
) -> SessionData:
    """Turn a normalised event frame into :class:`SessionData`.

    Raises
    ------
    EmptyDataError
        If no session of length >= 2 is left after filtering, or a split is empty
        where one is needed (train, test).
    """
    cfg = config or PrepareConfig()
    if events.height == 0:
        raise EmptyDataError("prepare: the event frame has no rows")
    n_raw = events.height
    ev = sessionize(events, cfg.session_gap_minutes)
    if cfg.drop_repeats:
        ev = drop_consecutive_repeats(ev)
    ev = filter_support(ev, cfg.min_item_support, cfg.min_session_length)
    if ev.height == 0:
        raise EmptyDataError(
            f"prepare: no session of length >= {cfg.min_session_length} is left after keeping "
            f"items with >= {cfg.min_item_support} events ({n_raw} events in); "
            f"lower min_item_support or check the session column"
        )
    ev = temporal_split(ev, cfg.test_days, cfg.valid_days, cfg.test_fraction, cfg.valid_fraction)
    # one list per session, sessions ordered by start time
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
    train_items = grouped.filter(pl.col("split") == "train")
    if train_items.height == 0:
        raise EmptyDataError(
            "prepare: the training split is empty; every session falls in the last "
            f"{cfg.test_days + cfg.valid_days} days. Lower test_days/valid_days"
        )
    # vocabulary: training items, most frequent first (ties by first appearance)
    counts = (
        train_items.select(pl.col("item_id").explode())
        .with_row_index("_pos")
        .group_by("item_id")
        .agg(pl.len().alias("n"), pl.col("_pos").min())
        .sort(["n", "_pos"], descending=[True, False])
    )
    vocab = ItemVocab(counts["item_id"].to_numpy())
    lookup = pl.DataFrame({"item_id": vocab.ids, "idx": np.arange(1, len(vocab) + 1, dtype=np.int32)})

    out: dict[str, list[np.ndarray]] = {}
    for name_ in ("train", "valid", "test"):
        part = grouped.filter(pl.col("split") == name_).select("session_id", "start", "item_id")
        flat = part.with_row_index("_s").explode("item_id").join(lookup, on="item_id", how="left", maintain_order="left")
        flat = flat.filter(pl.col("idx").is_not_null())  # items unseen in train
        seqs = flat.group_by("_s", maintain_order=True).agg(pl.col("idx"))["idx"].to_list()
        sessions = []
        for s in seqs:
            a = np.asarray(s, dtype=np.int32)
            if cfg.drop_repeats and len(a) > 1:
                a = a[np.concatenate([[True], a[1:] != a[:-1]])]
            if cfg.max_session_length and len(a) > cfg.max_session_length:
                a = a[-cfg.max_session_length :]
            if len(a) >= cfg.min_session_length:
                sessions.append(a)
        out[name_] = sessions
    if not out["test"]:
        raise EmptyDataError(
            "prepare: no test session of length >= 2 is left (test items unseen in training are "
            "dropped); use more test days or check the data"
        )
    t0, t1 = ev["timestamp"].min(), ev["timestamp"].max()
    stats: dict[str, Any] = {
        "name": name,
        "events_in": n_raw,
        "events_kept": int(ev.height),
        "items": len(vocab),
        "time_range": [str(t0), str(t1)],
        "config": cfg.to_dict(),
        **{n: _split_stats(s) for n, s in out.items()},
    }
    for n in ("train", "valid", "test"):
        part = grouped.filter(pl.col("split") == n)
        if part.height:
            stats[n]["time_range"] = [str(part["start"].min()), str(part["end"].max())]
    if metadata is not None:
        metadata = metadata.filter(pl.col("item_id").is_in(pl.Series(vocab.ids)))
    return SessionData(**out, vocab=vocab, stats=stats, metadata=metadata)
