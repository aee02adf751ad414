"""Event-log readers in Spark SQL: the files are read by the executors, never by the driver.

:func:`read_events_spark` gives the normalised frame of :mod:`item2vec.data.readers`
(``item_id``, ``session_id`` and/or ``user_id``, ``timestamp``, ``_order``) as a Spark
frame, with the same column mapping, time units and checks, for the plain-file formats
of :data:`SPARK_FORMATS`. The others (``online-retail``: its cleaning rules and item
descriptions; ``sasrec``: its time is the line number) are read by the polars reader
and handed to Spark (:func:`read_window_spark` says so in a log line).

``_order`` is Spark's ``monotonically_increasing_id``: increasing in the order of the
lines of each file (it breaks ties in time within a session, as the polars row index does).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from item2vec.exceptions import DataError, EmptyDataError, MissingColumnError, UnknownFormatError

__all__ = ["SPARK_FORMATS", "read_events_spark", "read_window_spark"]

log = logging.getLogger(__name__)

#: Formats read by Spark itself; the rest go through the polars readers.
SPARK_FORMATS = ("csv", "tsv", "parquet", "diginetica", "session-rec", "movielens", "gowalla")

_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _files(path: str | os.PathLike[str]) -> Path:
    from item2vec.data.readers import _check_path

    return _check_path(path)


def _csv(spark: Any, paths: list[str], sep: str, header: bool = True, null: str | None = None) -> Any:
    reader = spark.read.option("header", str(header).lower()).option("inferSchema", "true").option("sep", sep)
    if null is not None:
        reader = reader.option("nullValue", null)
    return reader.csv(paths)


def _epoch(col: Any, dtype: Any, unit: str | None, median: float | None) -> Any:
    """Epoch numbers in ``unit`` (inferred from the median as :func:`infer_time_unit` does) → a timestamp."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegralType

    if unit is None:
        m = abs(median or 0.0)
        unit = "s" if m < 1e11 else "ms" if m < 1e14 else "us" if m < 1e17 else "ns"
    per = _PER_SECOND[unit]
    if isinstance(dtype, IntegralType):
        v = col.cast("long")
        us = v * (1_000_000 // per) if per <= 1_000_000 else (v - F.pmod(v, F.lit(per // 1_000_000))) / (per // 1_000_000)
        return F.timestamp_micros(us.cast("long"))
    return F.timestamp_micros(F.round(col.cast("double") * (1_000_000 / per)).cast("long"))


def _to_timestamp(df: Any, name: str, unit: str | None, source: str) -> Any:
    """Column ``name`` as a Spark timestamp (UTC): epoch numbers, ISO strings (offsets converted) or timestamps."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType, NumericType, StringType, TimestampNTZType, TimestampType

    from item2vec.data.readers import TIME_UNITS

    if unit is not None and unit not in TIME_UNITS:
        raise DataError(f"{source}: time_unit must be one of {list(TIME_UNITS)}, got {unit!r}")
    dtype = df.schema[name].dataType
    col = F.col(f"`{name}`")
    if isinstance(dtype, NumericType):
        row = df.select(F.sum((col.isNull() | F.isnan(col.cast("double"))).cast("long")).alias("bad"),
                        F.median(F.abs(col.cast("double"))).alias("m")).first()
        if row["bad"]:
            raise DataError(f"{source}: {row['bad']} of {df.count()} rows have no time (NaN, null or infinite) in "
                            f"the numeric column {name!r}; expected epoch numbers in every row (drop or fill them first)")
        return _epoch(col, dtype, unit, row["m"] if unit is None else None)
    if isinstance(dtype, (TimestampType, TimestampNTZType, DateType)):
        return col.cast("timestamp")
    if not isinstance(dtype, StringType):
        raise DataError(f"{source}: the time column {name!r} has type {dtype.simpleString()}; expected "
                        "datetimes, ISO strings or epoch numbers")
    return F.try_to_timestamp(col)


def _finish(df: Any, source: str, parsed_from: str | None = None) -> Any:
    """The checks of the polars readers' ``_finish``: rows, null ids, unparsed times; ``_order`` added."""
    from pyspark.sql import functions as F

    ids = [c for c in ("item_id", "session_id", "user_id") if c in df.columns]
    if "session_id" not in ids and "user_id" not in ids:
        raise MissingColumnError(f"{source}: expected a session or a user column, found neither")
    df = df.select(*ids, "timestamp", F.monotonically_increasing_id().alias("_order"))
    checks = [F.count("*").alias("n"), *(F.sum(F.col(c).isNull().cast("long")).alias(c) for c in ids),
              F.sum(F.col("timestamp").isNull().cast("long")).alias("timestamp")]
    row = df.select(*checks).first()
    n = int(row["n"])
    if n == 0:
        raise EmptyDataError(f"{source}: no events were read")
    for c in ids:
        if row[c]:
            raise DataError(f"{source}: {row[c]} of {n} rows have a null {c}; expected every row to have one "
                            "(drop or fill them first)")
    if row["timestamp"]:
        what = (f"timestamps could not be parsed (column {parsed_from!r}); expected ISO datetimes "
                "(2024-01-31T10:00:00, with or without Z or +01:00) or epoch numbers") if parsed_from else \
            "rows have no timestamp or one that could not be parsed; expected one in every row"
        raise DataError(f"{source}: {row['timestamp']} of {n} {what}")
    return df.select(*[c for c in ("session_id", "user_id", "item_id") if c in ids], "timestamp", "_order")


def _ints(df: Any) -> Any:
    """Integer ids as ``long`` (polars reads them as Int64)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegralType

    return df.select(*[F.col(c).cast("long").alias(c) if c in ("item_id", "session_id", "user_id")
                       and isinstance(df.schema[c].dataType, IntegralType) else F.col(c) for c in df.columns])


def _require(df: Any, columns: list[str], source: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MissingColumnError(f"{source}: expected column(s) {missing} but the data has {df.columns}")


def read_events_spark(
    path: str | os.PathLike[str] | list[str | os.PathLike[str]],
    format: str = "csv",
    spark: Any = None,
    **options: Any,
) -> Any:
    """Read an event log with ``spark.read`` into the normalised frame (a Spark frame).

    Parameters
    ----------
    path : path-like or list of path-likes
        A file, a folder of Parquet files, or several files of the same format (daily files).
    format : str
        One of :data:`SPARK_FORMATS`.
    spark : pyspark.sql.SparkSession, optional
        Default: the active session, else ``local[*]``.
    **options
        The polars reader's options: ``sep, item_col, session_col, time_col, user_col,
        time_unit`` for ``csv`` / ``tsv`` / ``parquet``; ``min_rating`` for ``movielens``.

    Returns
    -------
    pyspark.sql.DataFrame
        ``session_id`` and/or ``user_id``, ``item_id``, ``timestamp`` (UTC), ``_order``.

    Raises
    ------
    UnknownFormatError
        For a format Spark does not read here (use :func:`item2vec.read_events`).
    DataError, EmptyDataError, MissingColumnError
        As the polars readers raise them.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    from item2vec.spark.session import get_spark

    if format not in SPARK_FORMATS:
        raise UnknownFormatError(f"read_events_spark: format {format!r} is read by the polars readers only; "
                                 f"Spark reads {list(SPARK_FORMATS)}")
    spark = spark or get_spark()
    files = [_files(p) for p in (path if isinstance(path, list) else [path])]
    first = files[0]
    source = str(first) if len(files) == 1 else f"{first.parent} ({len(files)} files)"
    paths = [str(p) for p in files]
    if format in ("csv", "tsv", "parquet"):
        allowed = {"sep", "item_col", "session_col", "time_col", "user_col", "time_unit"}
        if set(options) - allowed:
            raise TypeError(f"read_events_spark: unknown option(s) {sorted(set(options) - allowed)} for {format!r}")
        item_col, session_col = options.get("item_col", "item_id"), options.get("session_col", "session_id")
        time_col, user_col = options.get("time_col", "timestamp"), options.get("user_col")
        parquet = first.suffix == ".parquet" or (first.is_dir() and any(first.glob("*.parquet")))
        if parquet:
            raw = spark.read.parquet(*paths)
        else:
            sep = options.get("sep") or ("\t" if first.suffix in (".tsv", ".tab") else ",")
            raw = _csv(spark, paths, sep)
        _require(raw, [c for c in (item_col, session_col, time_col, user_col) if c], source)
        cols = [F.col(f"`{item_col}`").alias("item_id")]
        cols += [F.col(f"`{session_col}`").alias("session_id")] if session_col else []
        cols += [F.col(f"`{user_col}`").alias("user_id")] if user_col else []
        if time_col:
            ts = _to_timestamp(raw, time_col, options.get("time_unit"), f"{source}, column {time_col!r}")
        else:
            ts = F.timestamp_micros(F.monotonically_increasing_id())
        return _finish(_ints(raw.select(*cols, ts.alias("timestamp"))), source, parsed_from=time_col)
    if options and not (format == "movielens" and set(options) <= {"min_rating"}):
        raise TypeError(f"read_events_spark: unknown option(s) {sorted(options)} for {format!r}")
    if format == "diginetica":
        raw = _csv(spark, paths, ";", null="NA")
        raw = raw.toDF(*[c.split(".")[-1] for c in raw.columns])
        raw = raw.toDF(*[c.replace("Id", "_id").lower() if c.endswith("Id") else c for c in raw.columns])
        source = f"diginetica {source}"
        _require(raw, ["session_id", "item_id", "timeframe", "eventdate"], source)
        day = F.unix_micros(F.to_timestamp(F.col("eventdate").cast("string"), "yyyy-MM-dd"))
        ts = F.timestamp_micros(day + F.col("timeframe").cast("long") * 1000)
        return _finish(_ints(raw.select("session_id", "item_id", ts.alias("timestamp"))), source)
    if format == "session-rec":
        raw = _csv(spark, paths, "\t")
        source = f"session-rec {source}"
        _require(raw, ["SessionId", "ItemId", "Time"], source)
        ts = _to_timestamp(raw, "Time", "s", source)
        return _finish(_ints(raw.select(F.col("SessionId").alias("session_id"), F.col("ItemId").alias("item_id"),
                                        ts.alias("timestamp"))), source)
    if format == "movielens":
        if len(files) == 1 and first.is_dir():
            paths = [str(_files(first / "ratings.csv"))]
            source = paths[0]
        raw = _csv(spark, paths, ",")
        source = f"movielens {source}"
        _require(raw, ["userId", "movieId", "timestamp"], source)
        if options.get("min_rating") is not None:
            _require(raw, ["rating"], source)
            raw = raw.filter(F.col("rating") >= float(options["min_rating"]))
        ts = _to_timestamp(raw, "timestamp", "s", source)
        return _finish(_ints(raw.select(F.col("userId").alias("user_id"), F.col("movieId").alias("item_id"),
                                        ts.alias("timestamp"))), source)
    # gowalla: user, check-in time, latitude, longitude, location; no header
    raw = spark.read.option("sep", "\t").option("inferSchema", "true").csv(paths)
    source = f"gowalla {source}"
    if len(raw.columns) != 5:
        raise DataError(f"{source}: expected 5 tab-separated columns (user, check-in time, latitude, longitude, "
                        f"location), found {len(raw.columns)}")
    raw = raw.toDF("user", "time", "lat", "lon", "location")
    if isinstance(raw.schema["time"].dataType, StringType):
        ts = F.try_to_timestamp(F.regexp_replace("time", "Z$", ""), F.lit("yyyy-MM-dd'T'HH:mm:ss"))
    else:  # inferred as a timestamp (the Z read as UTC)
        ts = F.col("time").cast("timestamp")
    return _finish(_ints(raw.select(F.col("user").alias("user_id"), F.col("location").alias("item_id"),
                                    ts.alias("timestamp"))), source)


def read_window_spark(
    path: str | os.PathLike[str],
    format: str,
    start: str | None = None,
    end: str | None = None,
    spark: Any = None,
    **options: Any,
) -> Any:
    """:func:`item2vec.retrain.read_window` on Spark: a file, a folder of daily files, or their ``start``..``end`` days.

    The formats of :data:`SPARK_FORMATS` are read by the executors; the others by the
    polars reader (the events then pass through the driver once, on their way to Spark).

    Returns
    -------
    pyspark.sql.DataFrame
        The normalised frame (see :func:`read_events_spark`).

    Raises
    ------
    EmptyDataError
        When no file or event falls in the range.
    """
    import polars as pl
    from pyspark.sql import functions as F

    from item2vec.data.readers import daily_files
    from item2vec.retrain import check_days, read_window
    from item2vec.spark.session import get_spark

    check_days(start, end)
    spark = spark or get_spark()
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"event log {str(p)!r} does not exist")
    if format not in SPARK_FORMATS:
        log.info("read: %r is read by the polars reader, then handed to Spark", format)
        ev = read_window(p, format, start=start, end=end, **options)
        ev = ev.with_columns(pl.col(c).cast(pl.Int64) for c in ev.columns
                             if c == "_order" or ev.schema[c].is_unsigned_integer())
        return spark.createDataFrame(ev.to_arrow())
    if p.is_dir() and (start or end or not any(p.glob("*.parquet"))) and format != "movielens":
        return read_events_spark([str(f) for f in daily_files(p, start, end)], format, spark, **options)
    df = read_events_spark(p, format, spark, **options)
    if start or end:
        day = F.to_date("timestamp")
        if start:
            df = df.filter(day >= F.lit(start).cast("date"))
        if end:
            df = df.filter(day <= F.lit(end).cast("date"))
        if df.limit(1).count() == 0:
            raise EmptyDataError(f"{p}: no event between {start} and {end}")
    return df
