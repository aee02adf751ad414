"""Sessions on Spark: :func:`item2vec.prepare` in Spark SQL, giving the same :class:`SessionData`.

Every step of the polars path (``item2vec/data/sessions.py``) has its Spark SQL
counterpart here, with the same rules: outlier timestamps (exact 1st / 99th
percentiles), gap sessionizing per user, consecutive repeats, the iterative
item-support / session-length filters, the temporal split (by days or by the
quantiles of session ends, :func:`~item2vec.data.sessions.auto_split` by default),
the training vocabulary (most frequent first, ties by first appearance) and the
removal of test items unseen in training. Times are handled as epoch microseconds
(``long``), so no Spark time zone is involved.

:func:`prepare_spark` brings the encoded sessions to the driver once, at the end, to
build the :class:`SessionData` (which :meth:`SessionData.save` writes);
:func:`prepare_spark_to` applies the last per-session rules in Spark SQL too and has
the executors write each split's Parquet file into the prepared-data directory (moved
into place atomically), so the sessions never pass through the driver.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from item2vec._io import atomic_dir, check_output, write_meta
from item2vec.data.sessions import (
    FORMAT_VERSION,
    OUTLIER_MIN_DAYS,
    OUTLIER_MIN_EVENTS,
    PrepareConfig,
    SessionData,
    _event_frame,
    _resolve_split,
    _split_size_warnings,
    _split_stats,
    describe_split,
    finish_splits,
)
from item2vec.data.vocab import ItemVocab
from item2vec.exceptions import (
    EmptyDataError,
    EmptySplitError,
    MissingColumnError,
    SplitWarning,
    TimestampWarning,
)

__all__ = ["prepare_spark", "prepare_spark_to", "to_spark_events"]

_EPOCH = dt.datetime(1970, 1, 1)
_US_PER_DAY = 86400 * 10**6


def _when(us: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=int(us))


def _is_spark_frame(x: Any) -> bool:
    return type(x).__module__.startswith("pyspark.sql") and hasattr(x, "sparkSession")


def to_spark_events(events: Any, spark: Any = None, **columns: Any) -> tuple[Any, pl.DataType | None]:
    """The normalised event frame on Spark: ``item_id, [session_id], [user_id], ts, _order``.

    Parameters
    ----------
    events : pyspark.sql.DataFrame, polars.DataFrame or pandas.DataFrame
        A Spark frame must already have the normalised column names (``item_id``,
        ``timestamp`` as a Spark timestamp, and ``session_id`` and/or ``user_id``;
        ``_order`` optional, else the read order); a polars or pandas frame goes
        through :func:`item2vec.prepare`'s column mapping (``columns``) first.
    spark : pyspark.sql.SparkSession, optional
        Default: the active session, else ``local[*]``.
    **columns
        ``item_col, session_col, time_col, user_col, time_unit`` as :func:`item2vec.prepare` takes them.

    Returns
    -------
    frame : pyspark.sql.DataFrame
        ``ts`` is epoch microseconds (``long``), ``_order`` breaks ties in time.
    item_dtype : polars.DataType or None
        The item id type of a polars / pandas input (the vocabulary is given that type back).
    """
    from pyspark.sql import functions as F

    from item2vec.spark.session import get_spark

    if _is_spark_frame(events):
        cols = events.columns
        missing = [c for c in ("item_id", "timestamp") if c not in cols]
        if missing or ("session_id" not in cols and "user_id" not in cols):
            raise MissingColumnError(
                f"prepare_spark: a Spark frame needs the normalised columns item_id, timestamp and "
                f"session_id and/or user_id, got {cols}"
            )
        ev = events
        if "_order" not in cols:
            ev = ev.withColumn("_order", F.monotonically_increasing_id())
        keep = [c for c in ("item_id", "session_id", "user_id") if c in cols]
        ev = ev.select(*keep, F.unix_micros(F.col("timestamp").cast("timestamp")).alias("ts"),
                       F.col("_order").cast("long").alias("_order"))
        return ev, None
    frame = _event_frame(events, *(columns.get(k) for k in ("item_col", "session_col", "time_col",
                                                             "user_col", "time_unit")))
    spark = spark or get_spark()
    item_dtype = frame.schema["item_id"]
    frame = frame.with_columns(
        pl.col("timestamp").dt.epoch("us").alias("ts"), pl.col("_order").cast(pl.Int64),
        *(pl.col(c).cast(pl.Int64) for c in ("item_id", "session_id", "user_id")
          if c in frame.columns and frame.schema[c].is_unsigned_integer()),
    ).drop("timestamp")
    return spark.createDataFrame(frame.to_arrow()), item_dtype


def _kth_smallest(df: Any, col: str, ks: list[int], n: int) -> list[int]:
    """The values of rank ``k`` (0-based) of ``col``: exact, via ``percentile_disc``.

    ``percentile_disc(p)`` returns the smallest value whose cumulative share is >= p,
    i.e. rank ``ceil(p * n) - 1``; ``p = (k + 0.5) / n`` lands on rank ``k``.
    """
    from pyspark.sql import functions as F

    exprs = [F.expr(f"percentile_disc({(k + 0.5) / n!r}) WITHIN GROUP (ORDER BY {col})").alias(f"k{i}")
             for i, k in enumerate(ks)]
    row = df.select(*exprs).first()
    return [int(row[f"k{i}"]) for i in range(len(ks))]


def prepare_spark(
    events: Any,
    config: PrepareConfig | None = None,
    metadata: pl.DataFrame | None = None,
    name: str | None = None,
    *,
    spark: Any = None,
    item_col: str | None = None,
    session_col: str | None = None,
    time_col: str | None = None,
    user_col: str | None = None,
    time_unit: str | None = None,
) -> SessionData:
    """:func:`item2vec.prepare` on Spark: the same sessions, split, vocabulary and stats.

    Parameters
    ----------
    events : pyspark.sql.DataFrame, polars.DataFrame or pandas.DataFrame
        See :func:`to_spark_events`.
    config, metadata, name, item_col, session_col, time_col, user_col, time_unit
        As :func:`item2vec.prepare` takes them.
    spark : pyspark.sql.SparkSession, optional
        Default: the active session, else ``local[*]``.

    Returns
    -------
    SessionData
        Equal to what :func:`item2vec.prepare` returns for the same events (tested on
        every shared dataset); :meth:`SessionData.save` writes the prepared-data directory.

    Raises
    ------
    EmptyDataError, EmptySplitError, MissingColumnError
        As :func:`item2vec.prepare` raises them.
    """
    return _prepare(events, config, metadata, name, spark, None, item_col=item_col, session_col=session_col,
                    time_col=time_col, user_col=user_col, time_unit=time_unit)


def prepare_spark_to(
    path: str | os.PathLike[str],
    events: Any,
    config: PrepareConfig | None = None,
    metadata: pl.DataFrame | None = None,
    name: str | None = None,
    *,
    spark: Any = None,
    **columns: Any,
) -> dict[str, Any]:
    """:func:`prepare_spark` written straight to a prepared-data directory by the executors.

    The sessions never come to the driver: the per-session rules (repeats, length cap,
    minimum length) run in Spark SQL, each split is written by Spark as one Parquet
    file (a single coalesced, ordered write) into a temporary directory beside ``path``
    that is renamed into place when everything is written
    (:func:`item2vec._io.atomic_dir`). Only the vocabulary, the metadata and the stats
    pass through the driver. :meth:`SessionData.load` reads the directory; it holds the
    same files :meth:`SessionData.save` writes for the polars :func:`item2vec.prepare`.

    Parameters
    ----------
    path : path-like
        The prepared-data directory (on a file system every executor can write to).
    events, config, metadata, name, spark, **columns
        As :func:`prepare_spark` takes them.

    Returns
    -------
    dict
        The stats (``stats.json``'s).

    Raises
    ------
    EmptyDataError, EmptySplitError, MissingColumnError
        As :func:`item2vec.prepare` raises them; ``OutputExistsError`` when ``path`` is
        something else than prepared data (nothing is written then).
    """
    return _prepare(events, config, metadata, name, spark, Path(path), **columns)


def _prepare(events: Any, config: PrepareConfig | None, metadata: pl.DataFrame | None, name: str | None,
             spark: Any, out: Path | None, *, item_col: str | None = None, session_col: str | None = None,
             time_col: str | None = None, user_col: str | None = None, time_unit: str | None = None) -> Any:
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    cfg = config or PrepareConfig()
    if out is not None:
        check_output(out, "stats.json", False)  # refused before any work
    ev, item_dtype = to_spark_events(events, spark, item_col=item_col, session_col=session_col,
                                     time_col=time_col, user_col=user_col, time_unit=time_unit)
    spark = ev.sparkSession
    ev = ev.persist(StorageLevel.MEMORY_AND_DISK)
    n_raw = ev.count()
    if n_raw == 0:
        raise EmptyDataError("prepare_spark: the event frame has no rows")
    said: list[str] = []

    def warn(message: str, category: type[Warning]) -> None:
        said.append(message)
        warnings.warn(message, category, stacklevel=3)

    removed: dict[str, dict[str, int]] = {}
    # -- timestamps far from the rest (item2vec.data.sessions.time_outliers) and in the future
    now_us = int((dt.datetime.now(dt.UTC).replace(tzinfo=None) - _EPOCH) / dt.timedelta(microseconds=1))
    far = F.lit(False)
    if n_raw >= OUTLIER_MIN_EVENTS:
        p1, p99 = _kth_smallest(ev, "ts", [math.ceil((n_raw - 1) * 0.01), math.floor((n_raw - 1) * 0.99)], n_raw)
        reach = max(float(p99) - float(p1), OUTLIER_MIN_DAYS * 86400e6)
        far = (F.col("ts") < float(p1) - reach) | (F.col("ts") > float(p99) + reach)
    counts = ev.select(F.sum(far.cast("long")).alias("far"),
                       F.sum((~far & (F.col("ts") > now_us)).cast("long")).alias("future")).first()
    n_far, n_future = int(counts["far"] or 0), int(counts["future"] or 0)
    if n_far:
        kept_range = ev.filter(~far).select(F.min("ts"), F.max("ts")).first()
        examples = [r["ts"] for r in ev.filter(far).select("ts").orderBy("ts").limit(2).collect()]
        shown = pl.Series(examples, dtype=pl.Int64).cast(pl.Datetime("us")).cast(pl.String).to_list()
        warn(
            f"prepare: dropped {n_far:,} of {n_raw:,} events whose timestamps are far from the rest of the "
            f"log (outside {_when(kept_range[0])} .. {_when(kept_range[1])} by more than the span of its "
            f"central 98%), e.g. {shown}; check the time column and its unit",
            TimestampWarning,
        )
        ev = ev.filter(~far)
    if n_future:
        latest = ev.select(F.max("ts")).first()[0]
        warn(f"prepare: {n_future:,} of {n_raw:,} events have timestamps in the future (after "
             f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, latest {_when(latest)}); they are kept",
             TimestampWarning)
    removed["time_outliers"] = {"events": n_far}

    # -- sessions: a session id, or a user's events cut at the gap. The key `sid` sorts like the
    # polars path's session ids: by session_id, or by (user, start) where polars numbers them so.
    if "session_id" in ev.columns:
        ev = ev.withColumn("sid", F.col("session_id"))
    else:
        by_user = Window.partitionBy("user_id").orderBy("ts", "_order")
        gap = int(cfg.session_gap_minutes * 60_000_000)
        prev = F.lag("ts").over(by_user)
        new = (prev.isNull() | ((F.col("ts") - prev) > gap)).cast("long")
        ev = ev.withColumn("_new", new).withColumn(
            "_n", F.sum("_new").over(by_user.rowsBetween(Window.unboundedPreceding, Window.currentRow))
        ).withColumn("sid", F.struct("user_id", "_n"))
    ev = ev.select("item_id", "sid", "ts", "_order")
    n_sessions_in = ev.select("sid").distinct().count()
    if cfg.drop_repeats:
        before = ev.count()
        by_session = Window.partitionBy("sid").orderBy("ts", "_order")
        ev = ev.withColumn("_prev", F.lag("item_id").over(by_session))
        ev = ev.filter(F.col("_prev").isNull() | (F.col("item_id") != F.col("_prev"))).drop("_prev")
        ev = ev.localCheckpoint()
        removed["repeats"] = {"events": before - ev.count()}
    else:
        ev = ev.localCheckpoint()
        removed["repeats"] = {"events": 0}

    # -- rare items and short sessions, until nothing changes
    rare = {"events": 0, "items": 0}
    short = {"events": 0, "sessions": 0}
    height = ev.count()
    while True:
        before = height
        for key, low, tally, unit in (("item_id", cfg.min_item_support, rare, "items"),
                                      ("sid", cfg.min_session_length, short, "sessions")):
            if low <= 1:
                continue
            sizes = ev.groupBy(key).agg(F.count("*").alias("n"))
            gone = sizes.filter(F.col("n") < low).agg(F.count("*").alias("k"), F.sum("n").alias("e")).first()
            if gone["k"]:
                tally["events"] += int(gone["e"])
                tally[unit] += int(gone["k"])
                keep = sizes.filter(F.col("n") >= low).select(key)
                ev = ev.join(keep, on=key, how="left_semi").localCheckpoint()
                height -= int(gone["e"])
        if height == before:
            break
    removed.update({"rare_items": rare, "short_sessions": short})
    if height == 0:
        raise EmptySplitError(
            f"prepare: no session of length >= {cfg.min_session_length} is left after keeping "
            f"items with >= {cfg.min_item_support} events ({n_raw} events in); "
            f"lower min_item_support or min_session_length, or check the session column",
            options=("min_item_support", "min_session_length"),
        )
    t0, t1 = ev.select(F.min("ts"), F.max("ts")).first()
    span_days = ((t1 - t0) / 10**6) / 86400
    split = {**_resolve_split(cfg, span_days), "span_days": round(span_days, 3)}
    split_opts = ("test_fraction", "valid_fraction") if split["by"] == "fraction" else ("test_days", "valid_days")

    # -- one row per session: its items in time order, start, end, split
    grouped = ev.groupBy("sid").agg(
        F.transform(F.array_sort(F.collect_list(F.struct("ts", "_order", "item_id"))),
                    lambda x: x["item_id"]).alias("items"),
        F.min("ts").alias("start"), F.max("ts").alias("end"),
    ).localCheckpoint()
    n_sessions = grouped.count()
    if split["by"] == "fraction":
        tf, vf = split["test_fraction"], split["valid_fraction"]
        ks = [min(n_sessions - 1, int(np.floor(n_sessions * (1 - tf)))),
              min(n_sessions - 1, int(np.floor(n_sessions * (1 - tf - vf))))]
        test_cut, valid_cut = _kth_smallest(grouped, "end", ks, n_sessions)
        if vf <= 0:
            valid_cut = test_cut
        test_expr = F.col("end") >= test_cut if tf > 0 else F.lit(False)
        valid_expr = F.col("end") >= valid_cut if (tf > 0 or vf > 0) else F.lit(False)
    else:
        last = t1
        test_cut = last - int(split["test_days"] * 86400e6)
        valid_cut = test_cut - int(split["valid_days"] * 86400e6)
        test_expr, valid_expr = F.col("end") > test_cut, F.col("end") > valid_cut
    grouped = grouped.withColumn(
        "split", F.when(test_expr, "test").when(valid_expr, "valid").otherwise("train")
    ).localCheckpoint()
    train = grouped.filter(F.col("split") == "train")
    if train.limit(1).count() == 0:
        raise EmptySplitError(
            f"prepare: the training split is empty: every session ends in the held-out part "
            f"({describe_split(split)}) of a log that spans {span_days:.2f} days; "
            + ("lower " + " / ".join(split_opts) if not split["auto"]
               else "pass smaller test_days / valid_days, or test_fraction / valid_fraction"),
            options=("test_days", "valid_days", "test_fraction", "valid_fraction"),
        )
    # -- vocabulary: training items, most frequent first, ties by first appearance
    first = F.struct("start", "sid", "pos")
    counts_df = (
        train.select("start", "sid", F.posexplode("items").alias("pos", "item_id"))
        .groupBy("item_id").agg(F.count("*").alias("n"), F.min(first).alias("first"))
        .orderBy(F.col("n").desc(), F.col("first").asc())
    )
    vocab_ids = [r["item_id"] for r in counts_df.select("item_id").collect()]
    ids = pl.Series("item_id", vocab_ids, dtype=item_dtype) if item_dtype is not None else pl.Series(vocab_ids)
    vocab = ItemVocab(ids.to_numpy())
    lookup = spark.createDataFrame(
        pl.DataFrame({"item_id": vocab_ids, "idx": np.arange(1, len(vocab) + 1, dtype=np.int32)}).to_arrow()
    )

    # -- encode each split with the training vocabulary; the per-session rules run on the driver,
    # the same code as the polars path's
    flat = grouped.select("sid", "start", "split", F.posexplode("items").alias("pos", "item_id"))
    encoded = (
        flat.join(F.broadcast(lookup) if len(vocab) <= 1_000_000 else lookup, on="item_id", how="inner")
        .groupBy("sid", "start", "split")
        .agg(F.transform(F.array_sort(F.collect_list(F.struct("pos", "idx"))), lambda x: x["idx"]).alias("idx"))
    )
    sizes = {r["split"]: (int(r["sessions"]), int(r["events"])) for r in grouped.groupBy("split").agg(
        F.count("*").alias("sessions"), F.sum(F.size("items")).alias("events")).collect()}
    if out is not None:
        finished, split_stats = _finish_on_spark(encoded, sizes, cfg, removed, split, split_opts)
    else:
        split_stats = None

    def parts() -> Iterator[tuple[str, int, int, list[Any]]]:
        for name_ in ("train", "valid", "test"):
            n_part, n_events = sizes.get(name_, (0, 0))
            table = encoded.filter(F.col("split") == name_).orderBy("start", "sid").select("idx").toArrow()
            yield name_, n_part, n_events, table.column("idx").to_pylist()

    splits = finish_splits(parts(), cfg, removed, split, split_opts) if out is None else {}
    stats: dict[str, Any] = {
        "name": name,
        "events_in": n_raw,
        "sessions_in": int(n_sessions_in),
        "events_kept": int(height),
        "items": len(vocab),
        "time_range": [str(_when(t0)), str(_when(t1))],
        "config": cfg.to_dict(),
        "split": split,
        "removed": removed,
        **(split_stats or {n: _split_stats(s) for n, s in splits.items()}),
    }
    ranges = {r["split"]: (r["s"], r["e"]) for r in grouped.groupBy("split").agg(
        F.min("start").alias("s"), F.max("end").alias("e")).collect()}
    for n in ("train", "valid", "test"):
        if n in ranges:
            stats[n]["time_range"] = [str(_when(ranges[n][0])), str(_when(ranges[n][1]))]
    for message in _split_size_warnings(stats, split):
        warn(message, SplitWarning)
    stats["warnings"] = said
    if metadata is not None:
        metadata = metadata.filter(pl.col("item_id").is_in(pl.Series(vocab.ids)))
    if out is None:
        return SessionData(**splits, vocab=vocab, stats=stats, metadata=metadata)
    with atomic_dir(out, marker="stats.json") as tmp:
        for name_ in ("train", "valid", "test"):
            _write_split(finished.filter(F.col("split") == name_), tmp / f"{name_}.parquet")
        pl.DataFrame({"item_id": vocab.ids}).write_parquet(tmp / "vocab.parquet")
        if metadata is not None:
            metadata.write_parquet(tmp / "metadata.parquet")
        write_meta(tmp / "stats.json", None, FORMAT_VERSION, stats=stats)
    return stats


def _finish_on_spark(encoded: Any, sizes: dict[str, tuple[int, int]], cfg: PrepareConfig,
                     removed: dict[str, Any], split: dict[str, Any],
                     split_opts: tuple[str, ...]) -> tuple[Any, dict[str, dict[str, Any]]]:
    """:func:`~item2vec.data.sessions.finish_splits` in Spark SQL: the same rules, counts and split stats."""
    from pyspark.sql import functions as F

    d = F.col("idx")
    if cfg.drop_repeats:
        d = F.filter(d, lambda x, i: (i == 0) | (x != F.col("idx")[i - 1]))
    df = encoded.select("sid", "start", "split", d.alias("d"))
    n = F.size("d")
    cap = cfg.max_session_length
    capped = (n > cap) if cap else F.lit(False)
    df = df.withColumn("capped", capped).withColumn(
        "cut", F.when(F.col("capped"), n - cap).otherwise(0) if cap else F.lit(0))
    df = df.withColumn(
        "d", F.when(F.col("capped"), F.slice("d", -cap, cap)).otherwise(F.col("d")) if cap else F.col("d"))
    df = df.withColumn("kept", F.size("d") >= cfg.min_session_length).persist()
    counts = {r["split"]: r for r in df.groupBy("split").agg(
        F.count("*").alias("seqs"), F.sum("cut").alias("capped_events"),
        F.sum(F.col("capped").cast("long")).alias("capped_sessions"),
        F.sum((~F.col("kept")).cast("long")).alias("short"),
        F.sum(F.when(F.col("kept"), F.size("d")).otherwise(0)).alias("kept_events"),
        F.max(F.when(F.col("kept"), F.size("d"))).alias("max_length"),
    ).collect()}
    items = {r["split"]: int(r["items"]) for r in df.filter("kept").select("split", F.explode("d").alias("i"))
             .groupBy("split").agg(F.countDistinct("i").alias("items")).collect()}
    unseen = {"events": 0, "sessions": 0}
    capped_total = {"events": 0, "sessions": 0}
    stats: dict[str, dict[str, Any]] = {}
    for name_ in ("train", "valid", "test"):
        n_part, n_events = sizes.get(name_, (0, 0))
        c = counts.get(name_)
        seqs, cut, cs, short, kept_events, longest = (
            (0, 0, 0, 0, 0, 0) if c is None else
            (int(c["seqs"]), int(c["capped_events"] or 0), int(c["capped_sessions"] or 0), int(c["short"] or 0),
             int(c["kept_events"] or 0), int(c["max_length"] or 0)))
        unseen["sessions"] += n_part - seqs + short
        capped_total["events"] += cut
        capped_total["sessions"] += cs
        unseen["events"] += n_events - kept_events - cut
        kept = seqs - short
        stats[name_] = {"sessions": kept, "events": kept_events, "items": items.get(name_, 0),
                        "mean_length": round(kept_events / kept, 3) if kept else 0.0, "max_length": longest}
    removed["unseen_items"] = unseen
    removed["length_cap"] = capped_total
    if not stats["test"]["sessions"]:
        raise EmptySplitError(
            f"prepare: no test session of length >= {cfg.min_session_length} is left ({describe_split(split)}; "
            "test items unseen in training are dropped); raise " + " / ".join(split_opts) + " or check the data",
            options=split_opts,
        )
    return df.filter("kept"), stats


def _write_split(df: Any, path: Path) -> None:
    """One split as one Parquet file ``items: list<int32>``, in session order, written by an executor."""
    from pyspark.sql import functions as F

    stage = path.with_name(f"_{path.stem}-spark")
    (df.orderBy("start", "sid").select(F.col("d").cast("array<int>").alias("items"))
     .coalesce(1).write.mode("overwrite").parquet(str(stage)))
    parts = sorted(stage.glob("part-*.parquet"))
    if len(parts) == 1:
        os.replace(parts[0], path)
    else:  # an empty split: Spark may write no part file
        pl.DataFrame({"items": []}, schema={"items": pl.List(pl.Int32)}).write_parquet(path)
    shutil.rmtree(stage)
