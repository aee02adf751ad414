"""``item2vec prepare``: an event log to a prepared-data directory (sessions, filters, a time split)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from item2vec.cli._common import engine_parent, spark_session

__all__ = ["add_parser", "cmd_prepare"]


def add_parser(sub: Any) -> None:
    """Register ``prepare`` on ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser("prepare", help="read an event log, sessionize, filter, split by time",
                       parents=[engine_parent()])
    p.add_argument("--events", required=True, help="event log: a file or a folder of daily files")
    p.add_argument("--format", default="csv", help="csv, tsv, parquet, diginetica, session-rec, movielens, online-retail, gowalla, sasrec")
    p.add_argument("--out", required=True, help="output directory (written atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace --out even when it is not prepared data")
    g = p.add_argument_group("generic csv/tsv/parquet columns")
    g.add_argument("--item-col", default=None)
    g.add_argument("--session-col", default=None)
    g.add_argument("--time-col", default=None)
    g.add_argument("--user-col", default=None)
    g.add_argument("--sep", default=None)
    g.add_argument("--time-unit", choices=["s", "ms", "us", "ns"], default=None,
                   help="unit of epoch numbers (default: from their magnitude: < 1e11 s, < 1e14 ms, < 1e17 us, else ns)")
    p.add_argument("--session", choices=["invoice", "customer"], default=None, help="online-retail: what a session is")
    p.add_argument("--gap-minutes", type=float, default=30.0, help="inactivity gap that starts a session (user data)")
    p.add_argument("--keep-repeats", action="store_true", help="keep consecutive repeats of an item")
    p.add_argument("--min-item-support", type=int, default=5)
    p.add_argument("--min-session-length", type=int, default=2)
    p.add_argument("--max-session-length", type=int, default=None)
    s = p.add_argument_group("split (default: test and validation each a seventh of the log's span, at most 7 days)")
    s.add_argument("--test-days", type=float, default=None, help="sessions ending in the last days are test")
    s.add_argument("--valid-days", type=float, default=None, help="validation days before them (default: --test-days)")
    s.add_argument("--test-fraction", type=float, default=None, help="instead of days: the latest fraction of sessions")
    s.add_argument("--valid-fraction", type=float, default=None, help="validation fraction (default: --test-fraction)")
    p.add_argument("--quiet", action="store_true", help="print only the result line, not the breakdown")
    p.set_defaults(func=cmd_prepare)


#: prepare options whose flag is not ``--`` + the option with dashes
_PREPARE_FLAGS = {"session_gap_minutes": "--gap-minutes", "drop_repeats": "--keep-repeats"}


def _with_flags(e: Any) -> Any:
    """The same :class:`~item2vec.exceptions.OptionError`, its option names spelled as flags."""
    import re

    msg = str(e)
    for opt in e.options:
        flag = _PREPARE_FLAGS.get(opt, "--" + opt.replace("_", "-"))
        msg = re.sub(rf"(?<![\w-]){opt}(?!\w)", flag, msg)
    return type(e)(msg, e.options)


def _removed_line(r: dict[str, Any], cfg: dict[str, Any]) -> str:
    parts = [
        f"{r['time_outliers']['events']:,} events with far-off timestamps",
        f"{r['repeats']['events']:,} consecutive repeats",
        f"{r['rare_items']['events']:,} events of {r['rare_items']['items']:,} items with < {cfg['min_item_support']} events",
        f"{r['short_sessions']['sessions']:,} sessions shorter than {cfg['min_session_length']} "
        f"({r['short_sessions']['events']:,} events)",
        f"{r['unseen_items']['events']:,} valid/test events of items unseen in training "
        f"({r['unseen_items']['sessions']:,} sessions left too short)",
    ]
    if cfg.get("max_session_length"):
        parts.append(f"{r['length_cap']['events']:,} events past the {cfg['max_session_length']}-event cap "
                     f"({r['length_cap']['sessions']:,} sessions cut)")
    return "  removed: " + "; ".join(parts)


def cmd_prepare(a: argparse.Namespace) -> int:
    """``item2vec prepare``: read an event log, sessionize, filter, split by time, save."""
    import warnings

    from item2vec.data import (
        PrepareConfig,
        describe_split,
        prepare,
        read_events,
        read_item_metadata,
    )
    from item2vec.exceptions import DataWarning, OptionError

    opts: dict[str, Any] = {}
    if a.format in ("csv", "tsv", "parquet"):
        for key in ("item_col", "session_col", "time_col", "user_col", "sep", "time_unit"):
            val = getattr(a, key)
            if val is not None:
                opts[key] = val
        if a.user_col and not a.session_col:
            opts["session_col"] = None
    if a.format == "online-retail" and a.session:
        opts["session"] = a.session
    try:
        cfg = PrepareConfig(
            session_gap_minutes=a.gap_minutes,
            drop_repeats=not a.keep_repeats,
            min_item_support=a.min_item_support,
            min_session_length=a.min_session_length,
            max_session_length=a.max_session_length,
            test_days=a.test_days,
            valid_days=a.valid_days,
            test_fraction=a.test_fraction,
            valid_fraction=a.valid_fraction,
        )
        run_prepare: Any = prepare
        if a.engine == "spark":  # read by the executors, the same rules in Spark SQL, the same SessionData
            import functools

            from item2vec.spark.readers import read_window_spark
            from item2vec.spark.sessions import prepare_spark_to

            spark = spark_session(a)
            events = read_window_spark(a.events, a.format, spark=spark, **opts)
            run_prepare = functools.partial(prepare_spark_to, a.out, spark=spark)  # the executors write --out
        else:
            events = read_events(a.events, a.format, **opts)
        meta = read_item_metadata(a.events, a.format)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DataWarning)
            data = run_prepare(events, cfg, metadata=meta, name=Path(a.events).name)
    except OptionError as e:
        raise _with_flags(e) from None
    for w in caught:
        if issubclass(w.category, DataWarning):
            msg = str(w.message).replace("test_days / valid_days", "--test-days / --valid-days")
            msg = msg.replace("test_fraction / valid_fraction", "--test-fraction / --valid-fraction")
            print(f"item2vec: warning: {msg}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if isinstance(data, dict):  # --engine spark: the stats of the directory it wrote
        s = data
    else:
        data.save(a.out)
        s = data.stats
    print(f"prepared {s['events_kept']:,} of {s['events_in']:,} events, {s['items']:,} items -> {a.out}")
    if not a.quiet:  # --quiet keeps the result line, not the breakdown
        split = describe_split(s["split"]).replace(
            "test_days/valid_days or test_fraction/valid_fraction", "--test-days/--valid-days or --test-fraction"
        )
        print(
            _removed_line(s["removed"], s["config"]) + "\n"
            + f"  split: {split}\n"
            + "\n".join(
                f"  {n:5s} {s[n]['sessions']:7,} sessions {s[n]['events']:9,} events  mean length {s[n]['mean_length']}"
                for n in ("train", "valid", "test")
            )
        )
    return 0
