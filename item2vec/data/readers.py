"""Readers that turn event logs into one normalised polars frame.

Every reader returns a :class:`polars.DataFrame` with the columns

- ``item_id``   (Int64 or String, as the source has it),
- ``timestamp`` (Datetime, microseconds, no time zone),
- ``session_id`` and/or ``user_id`` (at least one of them),
- ``_order``    (UInt32: the row's position in the source, to keep ties stable).

Data that has users but no sessions (MovieLens, Gowalla, SASRec lines) comes
without ``session_id``; :func:`item2vec.data.sessionize` cuts it by inactivity gap.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from item2vec.exceptions import DataError, EmptyDataError, MissingColumnError, UnknownFormatError

__all__ = ["FORMATS", "TIME_UNITS", "daily_files", "file_day", "infer_time_unit", "normalize_frame", "read_events", "read_item_metadata", "read_table"]

EPOCH = dt.datetime(1970, 1, 1)


def _check_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"event log {str(p)!r} does not exist")
    if p.is_file() and p.stat().st_size == 0:
        raise EmptyDataError(f"event log {str(p)!r} is empty (0 bytes)")
    return p


def _require(df: pl.DataFrame, columns: list[str], source: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MissingColumnError(
            f"{source}: expected column(s) {missing} but the data has {df.columns}"
        )


def _finish(df: pl.DataFrame, source: str) -> pl.DataFrame:
    """Validate the normalised frame: no rows, null ids, column types."""
    if df.height == 0:
        raise EmptyDataError(f"{source}: no events were read")
    for col in ("item_id", "session_id", "user_id"):
        if col in df.columns:
            n_null = df[col].null_count()
            if n_null:
                raise DataError(
                    f"{source}: {n_null} of {df.height} rows have a null {col}; "
                    f"expected every row to have one (drop or fill them first)"
                )
    if df["timestamp"].null_count():
        raise DataError(
            f"{source}: {df['timestamp'].null_count()} of {df.height} rows have no timestamp or one "
            f"that could not be parsed; expected one in every row (drop or fill them first)"
        )
    if "session_id" not in df.columns and "user_id" not in df.columns:
        raise MissingColumnError(f"{source}: expected a session or a user column, found neither")
    order = [c for c in ("session_id", "user_id", "item_id", "timestamp") if c in df.columns]
    if "_order" not in df.columns:
        df = df.with_row_index("_order")
    return df.select([*order, pl.col("_order").cast(pl.UInt32)])


TIME_UNITS = ("s", "ms", "us", "ns")
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def infer_time_unit(values: pl.Series) -> str:
    """The unit of epoch numbers, chosen from the median of their absolute values.

    Below 1e11 the numbers are seconds (1e11 s is the year 5138), below 1e14
    milliseconds, below 1e17 microseconds, otherwise nanoseconds. Every unit
    maps the years 1973 to 5138 to its own band, so any log of this era is
    read right; pass ``time_unit`` for anything else.
    """
    med = values.cast(pl.Float64).abs().median()
    if med is None or med < 1e11:
        return "s"
    if med < 1e14:
        return "ms"
    return "us" if med < 1e17 else "ns"


def _to_datetime(values: pl.Series, unit: str | None, source: str) -> pl.Series:
    """Timestamps as naive UTC datetimes in microseconds.

    Numbers are epoch offsets in ``unit`` (chosen by :func:`infer_time_unit` when
    ``None``); datetimes with a time zone and strings with an offset (``Z``,
    ``+01:00``) are converted to UTC; naive ones are taken as they are.
    """
    name = values.name
    dtype = values.dtype
    if unit is not None and unit not in TIME_UNITS:
        raise DataError(f"{source}: time_unit must be one of {list(TIME_UNITS)}, got {unit!r}")
    if dtype.is_numeric():
        f = values.cast(pl.Float64)
        bad = int(f.is_null().sum() + f.is_nan().sum() + f.is_infinite().sum())
        if bad:
            raise DataError(
                f"{source}: {bad} of {len(values)} rows have no time (NaN, null or infinite) in the "
                f"numeric column {name!r}; expected epoch numbers in every row (drop or fill them first)"
            )
        unit = unit or infer_time_unit(f)
        per = _PER_SECOND[unit]
        if dtype.is_integer():
            v = values.cast(pl.Int64)
            us = v * (1_000_000 // per) if per <= 1_000_000 else v // (per // 1_000_000)
        else:
            us = (f * (1_000_000 / per)).round(0).cast(pl.Int64)
        return us.cast(pl.Datetime("us")).alias(name)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            values = values.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return values.cast(pl.Datetime("us"))
    if dtype == pl.Date:
        return values.cast(pl.Datetime("us"))
    if dtype == pl.Object:  # e.g. Python datetimes with mixed zones
        values = pl.Series(name, [None if v is None else str(v) for v in values], dtype=pl.String)
    elif dtype != pl.String:
        raise DataError(
            f"{source}: the time column {name!r} has type {dtype}; expected datetimes, "
            f"ISO strings or epoch numbers"
        )
    parsed = _parse_time_strings(values)
    failed = parsed.is_null() & values.is_not_null()
    if failed.any():
        examples = values.filter(failed).unique(maintain_order=True).head(3).to_list()
        raise DataError(
            f"{source}: {int(failed.sum())} of {len(values)} timestamps could not be parsed, e.g. "
            f"{examples}; expected ISO datetimes (2024-01-31T10:00:00, with or without Z or +01:00) "
            f"or epoch numbers"
        )
    return parsed


def _parse_time_strings(values: pl.Series) -> pl.Series:
    """ISO-ish strings → naive UTC datetimes; strings polars cannot infer stay null.

    polars infers one format from the first string, so a column that mixes naive
    strings and strings with an offset is parsed in rounds, each on the rows the
    round before left null.
    """
    out = pl.Series(values.name, [None] * len(values), dtype=pl.Datetime("us"))
    todo = values.is_not_null()
    for _ in range(3):
        if not todo.any():
            break
        part = values.filter(todo)
        try:
            parsed = part.str.to_datetime(strict=False, time_unit="us")
        except pl.exceptions.PolarsError:
            break
        if isinstance(parsed.dtype, pl.Datetime) and parsed.dtype.time_zone is not None:
            parsed = parsed.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        if parsed.null_count() == len(parsed):
            break
        idx = todo.arg_true()
        out = out.scatter(idx, parsed)
        todo = todo.scatter(idx, parsed.is_null())
    return out


def normalize_frame(
    raw: pl.DataFrame,
    *,
    item_col: str = "item_id",
    session_col: str | None = "session_id",
    time_col: str | None = "timestamp",
    user_col: str | None = None,
    time_unit: str | None = None,
    source: str = "events",
) -> pl.DataFrame:
    """Map a frame's columns onto the normalised frame (see the module docstring).

    The column mapping is :func:`read_table`'s; ``source`` names the data in errors.
    A ``_order`` column already present is kept (it breaks ties in time).
    """
    wanted = [c for c in (item_col, session_col, time_col, user_col) if c]
    _require(raw, wanted, source)
    if "_order" not in raw.columns:
        raw = raw.with_row_index("_order")
    cols: list[pl.Series] = [raw[item_col].alias("item_id")]
    if session_col:
        cols.append(raw[session_col].alias("session_id"))
    if user_col:
        cols.append(raw[user_col].alias("user_id"))
    if time_col:
        cols.append(_to_datetime(raw[time_col], time_unit, f"{source}, column {time_col!r}").alias("timestamp"))
    else:
        cols.append(pl.int_range(raw.height, eager=True).cast(pl.Datetime("us")).alias("timestamp"))
    cols.append(raw["_order"])
    return _finish(pl.DataFrame(cols), source)


# ---------------------------------------------------------------------------
# generic tables
# ---------------------------------------------------------------------------
def _read_table(path: Path, sep: str | None, has_header: bool = True, **kw: Any) -> pl.DataFrame:
    if path.suffix == ".parquet" or (path.is_dir() and any(path.glob("*.parquet"))):
        src = str(path / "*.parquet") if path.is_dir() else str(path)
        return pl.read_parquet(src)
    try:
        return pl.read_csv(
            path, separator=sep or ",", has_header=has_header, infer_schema_length=10000, **kw
        )
    except pl.exceptions.NoDataError as e:
        raise EmptyDataError(f"event log {str(path)!r} has no data") from e


def read_table(
    path: str | os.PathLike[str],
    *,
    sep: str | None = None,
    item_col: str = "item_id",
    session_col: str | None = "session_id",
    time_col: str | None = "timestamp",
    user_col: str | None = None,
    time_unit: str | None = None,
) -> pl.DataFrame:
    """Read a CSV / TSV / Parquet log with column mapping.

    Parameters
    ----------
    path : path-like
        A ``.csv``, ``.tsv`` or ``.parquet`` file (or a folder of Parquet files).
    sep : str, optional
        Field separator for text files (default: tab for ``.tsv``, else comma).
    item_col, session_col, time_col, user_col : str
        Source column names. ``session_col=None`` with a ``user_col`` means the
        data has users but no sessions. ``time_col=None`` orders by row.
    time_unit : {"s", "ms", "us", "ns"}, optional
        Unit of numeric timestamps; by default chosen from their magnitude
        (:func:`infer_time_unit`). Strings are parsed as ISO datetimes; those with
        an offset (``Z``, ``+01:00``) and zone-aware datetimes are converted to UTC.
    """
    p = _check_path(path)
    if sep is None:
        sep = "\t" if p.suffix in (".tsv", ".tab") else ","
    raw = _read_table(p, sep)
    return normalize_frame(
        raw.drop("_order", strict=False), item_col=item_col, session_col=session_col,
        time_col=time_col, user_col=user_col, time_unit=time_unit, source=str(p),
    )


# ---------------------------------------------------------------------------
# known public formats
# ---------------------------------------------------------------------------
def read_diginetica(path: str | os.PathLike[str]) -> pl.DataFrame:
    """CIKM Cup 2016 ``train-item-views.csv``: ``;``-separated, ordered by ``timeframe``.

    ``timeframe`` is milliseconds from the start of the session and ``eventdate``
    the session's date, so ``timestamp = eventdate + timeframe``.
    """
    p = _check_path(path)
    raw = _read_table(p, ";", null_values=["NA"])
    raw = raw.rename({c: c.split(".")[-1] for c in raw.columns})  # sessionId variants
    raw = raw.rename({c: c.replace("Id", "_id").lower() for c in raw.columns if c.endswith("Id")})
    _require(raw, ["session_id", "item_id", "timeframe", "eventdate"], f"diginetica {p}")
    ts = pl.col("eventdate").str.to_datetime("%Y-%m-%d", time_unit="us") + pl.duration(
        milliseconds=pl.col("timeframe")
    )
    df = raw.with_row_index("_order").select(
        pl.col("session_id"), pl.col("item_id"), ts.alias("timestamp"), "_order"
    )
    return _finish(df, f"diginetica {p}")


def read_session_rec(path: str | os.PathLike[str]) -> pl.DataFrame:
    """session-rec / GRU4Rec TSV: ``SessionId<TAB>ItemId<TAB>Time`` (Unix seconds)."""
    p = _check_path(path)
    raw = _read_table(p, "\t")
    _require(raw, ["SessionId", "ItemId", "Time"], f"session-rec {p}")
    df = raw.with_row_index("_order").select(
        pl.col("SessionId").alias("session_id"),
        pl.col("ItemId").alias("item_id"),
        _to_datetime(raw["Time"], "s", f"session-rec {p}").alias("timestamp"),
        "_order",
    )
    return _finish(df, f"session-rec {p}")


def read_movielens(path: str | os.PathLike[str], min_rating: float | None = None) -> pl.DataFrame:
    """MovieLens ``ratings.csv`` (``userId,movieId,rating,timestamp``): users, no sessions.

    ``path`` may be the file or the folder that holds it.
    """
    p = _check_path(path)
    if p.is_dir():
        p = _check_path(p / "ratings.csv")
    raw = _read_table(p, ",")
    _require(raw, ["userId", "movieId", "timestamp"], f"movielens {p}")
    if min_rating is not None:
        _require(raw, ["rating"], f"movielens {p}")
        raw = raw.filter(pl.col("rating") >= min_rating)
    df = raw.with_row_index("_order").select(
        pl.col("userId").alias("user_id"),
        pl.col("movieId").alias("item_id"),
        _to_datetime(raw["timestamp"], "s", f"movielens {p}").alias("timestamp"),
        "_order",
    )
    return _finish(df, f"movielens {p}")


def read_gowalla(path: str | os.PathLike[str]) -> pl.DataFrame:
    """SNAP Gowalla check-ins: tab-separated ``user time lat lon location``, no header."""
    p = _check_path(path)
    raw = _read_table(p, "\t", has_header=False)
    if raw.width != 5:
        raise DataError(
            f"gowalla {p}: expected 5 tab-separated columns "
            f"(user, check-in time, latitude, longitude, location), found {raw.width}"
        )
    raw.columns = ["user", "time", "lat", "lon", "location"]
    df = raw.with_row_index("_order").select(
        pl.col("user").alias("user_id"),
        pl.col("location").alias("item_id"),
        pl.col("time").str.strip_suffix("Z").str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False, time_unit="us").alias("timestamp"),
        "_order",
    )
    return _finish(df, f"gowalla {p}")


def read_sasrec(path: str | os.PathLike[str]) -> pl.DataFrame:
    """SASRec-style ``user item`` lines (space-separated, chronological per user).

    These files carry no time. The ``timestamp`` is the line number in seconds
    from the epoch, so order is kept, each user's lines form one session at any
    inactivity gap of 1 s or more, and a temporal split holds out the last users
    of the file rather than the last days.
    """
    p = _check_path(path)
    raw = _read_table(p, " ", has_header=False)
    if raw.width != 2:
        raise DataError(f"sasrec {p}: expected 2 space-separated columns (user item), found {raw.width}")
    raw.columns = ["user", "item"]
    df = raw.with_row_index("_order").select(
        pl.col("user").alias("user_id"),
        pl.col("item").alias("item_id"),
        (pl.col("_order").cast(pl.Int64) * 1_000_000).cast(pl.Datetime("us")).alias("timestamp"),
        "_order",
    )
    return _finish(df, f"sasrec {p}")


_RETAIL_SCHEMA = {"InvoiceNo": pl.String, "StockCode": pl.String, "CustomerID": pl.Float64}


_DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})")


def file_day(path: str | os.PathLike[str]) -> str | None:
    """The day ``YYYY-MM-DD`` a daily file's name starts with, ``None`` when it starts with no date."""
    m = _DAY.match(Path(path).name)
    return m.group(1) if m else None


def daily_files(
    path: str | os.PathLike[str],
    start: str | None = None,
    end: str | None = None,
    *,
    suffixes: tuple[str, ...] | None = None,
    label: str = "",
) -> list[Path]:
    """The daily files of a folder whose day falls in ``start``..``end`` (inclusive), sorted.

    Parameters
    ----------
    path : path-like
        A folder of files named ``YYYY-MM-DD...`` (one per day).
    start, end : str, optional
        ``YYYY-MM-DD``; ``None``: no bound.
    suffixes : tuple of str, optional
        Only files ending so (``(".csv", ".csv.gz")``); then a file whose name is
        not a date counts by the name before its first dot. Default: every file named by a date.
    label : str
        Prefix of the error messages (``"online-retail "``).

    Returns
    -------
    list of Path

    Raises
    ------
    EmptyDataError
        When the folder has no such file, or none in the range.
    """
    p = Path(path)
    if suffixes is None:
        files = sorted(f for f in p.iterdir() if f.is_file() and file_day(f))
        if not files:
            raise EmptyDataError(f"{label}{p}: expected daily files named YYYY-MM-DD.<ext>, found none")
    else:
        files = sorted(f for f in p.iterdir() if f.is_file() and f.name.endswith(suffixes))
        if not files:
            raise EmptyDataError(f"{label}{p}: no {' or '.join(suffixes)} files in the folder")

    def day(f: Path) -> str:
        return file_day(f) or f.name.split(".")[0]

    files = [f for f in files if (start is None or day(f) >= start) and (end is None or day(f) <= end)]
    if not files:
        raise EmptyDataError(f"{label}{p}: no daily file between {start} and {end}")
    return files


def _retail_files(p: Path, start: str | None, end: str | None) -> list[Path]:
    if p.is_file():
        return [p]
    return daily_files(p, start or None, end or None, suffixes=(".csv", ".csv.gz"), label="online-retail ")


def _read_retail_raw(p: Path, start: str | None = None, end: str | None = None) -> pl.DataFrame:
    frames = []
    for f in _retail_files(p, start, end):
        if f.stat().st_size == 0:
            continue
        try:
            frames.append(pl.read_csv(f, schema_overrides=_RETAIL_SCHEMA, infer_schema_length=0))
        except (OSError, pl.exceptions.PolarsError) as e:  # a corrupt daily file: name it, one line
            first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
            raise DataError(f"online-retail {f}: not a readable CSV file: {first}") from None
    if not frames:
        raise EmptyDataError(f"online-retail {p}: every file is empty")
    raw = pl.concat(frames, how="diagonal_relaxed")
    _require(raw, ["InvoiceNo", "StockCode", "InvoiceDate", "Quantity"], f"online-retail {p}")
    return raw


def read_online_retail(
    path: str | os.PathLike[str],
    session: str = "invoice",
    start: str | None = None,
    end: str | None = None,
) -> pl.DataFrame:
    """UCI Online Retail: one CSV, or a folder of daily ``YYYY-MM-DD.csv[.gz]`` files.

    Cancellations (``C…`` invoices), non-positive quantities and non-product
    stock codes (``POST``, ``M``, ``BANK CHARGES``: codes not starting with a digit)
    are dropped.

    Parameters
    ----------
    session : {"invoice", "customer"}
        ``"invoice"``: a session is one invoice (a basket, in line order).
        ``"customer"``: a customer's purchases, to be cut into sessions by
        :func:`sessionize` (rows without a ``CustomerID`` are dropped).
    start, end : str, optional
        ``YYYY-MM-DD`` bounds on the daily files to read (inclusive).
    """
    if session not in ("invoice", "customer"):
        raise ValueError(f"session must be 'invoice' or 'customer', got {session!r}")
    p = _check_path(path)
    raw = _read_retail_raw(p, start, end).with_row_index("_order")
    raw = raw.filter(
        ~pl.col("InvoiceNo").str.starts_with("C")
        & (pl.col("Quantity").cast(pl.Int64, strict=False) > 0)
        & pl.col("StockCode").str.contains(r"^\d")
    )
    ts = pl.col("InvoiceDate").str.to_datetime(strict=False, time_unit="us").alias("timestamp")
    item = pl.col("StockCode").str.to_uppercase().alias("item_id")
    if session == "invoice":
        df = raw.select(pl.col("InvoiceNo").alias("session_id"), item, ts, "_order")
    else:
        raw = raw.filter(pl.col("CustomerID").is_not_null())
        df = raw.select(
            pl.col("CustomerID").cast(pl.Float64).cast(pl.Int64).alias("user_id"), item, ts, "_order"
        )
    return _finish(df, f"online-retail {p}")


FORMATS: dict[str, Callable[..., pl.DataFrame]] = {
    "csv": read_table,
    "tsv": read_table,
    "parquet": read_table,
    "diginetica": read_diginetica,
    "session-rec": read_session_rec,
    "movielens": read_movielens,
    "online-retail": read_online_retail,
    "gowalla": read_gowalla,
    "sasrec": read_sasrec,
}


def read_events(path: str | os.PathLike[str], format: str = "csv", **options: Any) -> pl.DataFrame:
    """Read an event log into the normalised frame (see the module docstring).

    Parameters
    ----------
    path : path-like
        File or folder.
    format : str
        One of :data:`FORMATS`: ``csv``, ``tsv``, ``parquet`` (generic, with
        column-mapping ``options``), ``diginetica``, ``session-rec``,
        ``movielens``, ``online-retail``, ``gowalla``, ``sasrec``.
    **options
        Passed to the format's reader.

    Raises
    ------
    UnknownFormatError, FileNotFoundError, EmptyDataError, MissingColumnError, DataError
    """
    if format not in FORMATS:
        raise UnknownFormatError(
            f"unknown event-log format {format!r}; expected one of {sorted(FORMATS)}"
        )
    if format == "tsv":
        options.setdefault("sep", "\t")
    try:
        return FORMATS[format](path, **options)
    except TypeError as e:
        if "unexpected keyword" in str(e):
            raise DataError(f"format {format!r} does not take that option: {e}") from None
        raise


def item_titles(metadata: Any) -> dict[Any, str]:
    """``item_id → title`` from an ``item_id, title[, category]`` frame; the one title lookup.

    Empty without a frame or a ``title`` column; items whose title is missing are left out.
    """
    if metadata is None or "title" not in getattr(metadata, "columns", []):
        return {}
    return {i: str(t) for i, t in zip(metadata["item_id"].to_list(), metadata["title"].to_list(), strict=True)
            if t is not None and not (isinstance(t, float) and t != t)}  # None, or NaN in a pandas frame


def read_item_metadata(path: str | os.PathLike[str], format: str) -> pl.DataFrame | None:
    """Item descriptions for display: ``item_id, title[, category]``, or ``None``.

    Online Retail gives each stock code its most frequent description; MovieLens
    gives the title and the first genre from ``movies.csv`` next to ``ratings.csv``.
    """
    p = Path(path)
    if format == "online-retail":
        raw = _read_retail_raw(_check_path(p)).filter(pl.col("Description").is_not_null())
        return (
            raw.group_by(pl.col("StockCode").str.to_uppercase().alias("item_id"), "Description")
            .len()
            .sort(["item_id", "len", "Description"], descending=[False, True, False])
            .group_by("item_id", maintain_order=True)
            .first()
            .select("item_id", pl.col("Description").str.strip_chars().alias("title"))
        )
    if format == "movielens":
        movies = (p if p.is_dir() else p.parent) / "movies.csv"
        if not movies.exists():
            return None
        m = pl.read_csv(movies)
        return m.select(
            pl.col("movieId").alias("item_id"),
            pl.col("title"),
            pl.col("genres").str.split("|").list.first().alias("category"),
        )
    return None
