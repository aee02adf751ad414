"""Sessionizing a synthetic event log: item2vec's polars path against plain pandas.

Implementations (``LABELS``): the library with integer user ids (its packed-key
sort) and with string user ids (the general three-key sort); pandas written the
vectorised way (``sort_values``, ``groupby().diff()``, ``groupby().shift()``: the
baseline of the speed goal); and, on a smaller log, pandas with a Python
function per user (``groupby().apply``), for scale.

The log has ``user_id``, ``item_id``, ``timestamp`` rows in random order (no
session ids): both sides sort by user and time, cut sessions at 30-minute gaps
and drop consecutive repeats of an item within a session. Each side runs in its
own subprocess so that its peak resident memory (``VmHWM``) is its own; the
timed part excludes reading the Parquet file, the memory includes it (a
"read only" child gives the floor).

Run one side: ``python -m benchmarks.sessionize --impl polars PATH``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import Table, peak_rss_mb, progress, run_child

GAP_MINUTES = 30.0


def make_log(path: Path, n_events: int, seed: int = 0) -> dict[str, Any]:
    """Write a shuffled synthetic log of about ``n_events`` rows to Parquet."""
    import polars as pl

    rng = np.random.default_rng(seed)
    mean_len = 5
    n_sessions = n_events // mean_len
    n_users = max(1, n_sessions // 5)
    n_items = max(10, n_events // 50)
    lengths = rng.integers(1, 2 * mean_len, size=n_sessions)
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), n_events) + 1]
    total = int(lengths.sum())
    sess = np.repeat(np.arange(len(lengths)), lengths)
    user = rng.integers(0, n_users, size=len(lengths))[sess]
    start = rng.integers(0, 30 * 86400, size=len(lengths))[sess]  # seconds within 30 days
    pos = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    t = start + pos * rng.integers(10, 300, size=total)  # 10 s .. 5 min apart
    item = (rng.zipf(1.3, size=total) % n_items).astype(np.int64)
    repeat = rng.random(total) < 0.15  # some consecutive repeats to drop
    item[1:][repeat[1:]] = item[:-1][repeat[1:]]
    order = rng.permutation(total)
    ts = (np.datetime64("2024-01-01T00:00:00", "us") + t.astype("timedelta64[s]")).astype("datetime64[us]")
    df = pl.DataFrame({"user_id": user[order], "item_id": item[order], "timestamp": ts[order]})
    df.write_parquet(path)
    return {"events": total, "users": n_users, "items": n_items}


def _polars(path: str) -> tuple[float, int]:
    import polars as pl

    from item2vec.data import drop_consecutive_repeats, sessionize

    ev = pl.read_parquet(path)
    t0 = time.perf_counter()
    out = drop_consecutive_repeats(sessionize(ev, gap_minutes=GAP_MINUTES))
    secs = time.perf_counter() - t0
    return secs, out.height


def _polars_str(path: str) -> tuple[float, int]:
    """The library path with string user ids: the general three-key sort (no packed key)."""
    import polars as pl

    from item2vec.data import drop_consecutive_repeats, sessionize

    ev = pl.read_parquet(path).with_columns(pl.col("user_id").cast(pl.String))
    t0 = time.perf_counter()
    out = drop_consecutive_repeats(sessionize(ev, gap_minutes=GAP_MINUTES))
    secs = time.perf_counter() - t0
    return secs, out.height


def _pandas_apply(path: str) -> tuple[float, int]:
    """The other thing "straightforward" can mean: a Python function per user group."""
    import pandas as pd

    df = pd.read_parquet(path)
    gap = pd.Timedelta(minutes=GAP_MINUTES)
    t0 = time.perf_counter()

    def per_user(g: pd.DataFrame) -> pd.DataFrame:
        g = g.sort_values("timestamp", kind="stable")
        sess = (g["timestamp"].diff() > gap).cumsum()
        keep = (g["item_id"] != g["item_id"].shift()) | (sess != sess.shift())
        return g.assign(session=sess)[keep]

    out = df.groupby("user_id", group_keys=False).apply(per_user)
    secs = time.perf_counter() - t0
    return secs, len(out)


def _pandas(path: str) -> tuple[float, int]:
    import pandas as pd

    df = pd.read_parquet(path)
    t0 = time.perf_counter()
    df = df.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    gap = pd.Timedelta(minutes=GAP_MINUTES)
    new = (df["user_id"] != df["user_id"].shift()) | (df.groupby("user_id")["timestamp"].diff() > gap)
    df["session_id"] = new.cumsum()
    prev = df.groupby("session_id")["item_id"].shift()
    df = df[prev != df["item_id"]]
    secs = time.perf_counter() - t0
    return secs, len(df)


def _read_only(path: str) -> tuple[float, int]:
    import polars as pl

    return 0.0, pl.read_parquet(path).height


#: What each implementation is called in the tables.
LABELS = {
    "polars": "item2vec (polars), int user ids: packed-key sort",
    "polars-str": "item2vec (polars), string user ids: three-key sort",
    "pandas": "pandas, vectorised groupby (diff / shift)",
    "pandas-apply": "pandas, groupby().apply per user",
}


def _time_impls(path: Path, impls: tuple[str, ...], repeats: int) -> dict[str, dict[str, float]]:
    """Medians of ``repeats`` child runs per implementation, alternating; rows out must agree."""
    res: dict[str, list[dict[str, Any]]] = {i: [] for i in impls}
    for r in range(repeats):
        for impl in impls:
            progress(f"sessionize: {impl} run {r + 1}/{repeats}")
            res[impl].append(run_child("benchmarks.sessionize", ["--impl", impl, str(path)], timeout=3600))
    med = {k: {f: float(np.median([x[f] for x in v])) for f in ("seconds", "maxrss_mb", "rows")} for k, v in res.items()}
    rows = {k: int(m["rows"]) for k, m in med.items()}
    if len(set(rows.values())) != 1:
        raise RuntimeError(f"the implementations disagree on the rows out: {rows}")
    return med


def run(
    n_events: int = 10_000_000, repeats: int = 3, seed: int = 0, apply_events: int = 1_000_000
) -> list[dict[str, Any]]:
    """Time the implementations ``repeats`` times, alternating; print and return the tables.

    The per-user ``groupby().apply`` takes minutes at 10M events, so it is timed
    once, on a separate log of ``apply_events`` events, against the polars path
    (0 skips it).
    """
    note = ("Timed: sort, 30-minute gap cut, consecutive-repeat drop (reading Parquet excluded). "
            "Peak RSS: whole child process, reading included.")
    cols = ["implementation", "seconds", "events/s", "peak RSS MB", "rows out", "speed-up vs pandas"]
    table = Table(f"sessionize + drop repeats, {n_events / 1e6:g}M synthetic events (medians of {repeats})",
                  cols, note=note)
    tables = [table]
    with tempfile.TemporaryDirectory(prefix="i2v-bench-") as tmp:
        path = Path(tmp) / "events.parquet"
        progress(f"sessionize: writing {n_events:,} events")
        facts = make_log(path, n_events, seed)
        read = run_child("benchmarks.sessionize", ["--impl", "read", str(path)])
        med = _time_impls(path, ("polars", "polars-str", "pandas"), repeats)
        for impl, m in med.items():
            table.add(LABELS[impl], m["seconds"], facts["events"] / m["seconds"], m["maxrss_mb"], int(m["rows"]),
                      med["pandas"]["seconds"] / m["seconds"])
        table.add("(read Parquet only)", float("nan"), float("nan"), read["maxrss_mb"], int(read["rows"]), float("nan"))
        if apply_events:
            small = Path(tmp) / "events-small.parquet"
            facts_s = make_log(small, apply_events, seed)
            med_s = _time_impls(small, ("polars", "pandas", "pandas-apply"), 1)
            t2 = Table(f"the same on {facts_s['events'] / 1e6:.1f}M events, with a per-user groupby().apply (one run)",
                       [*cols[:-1], "speed-up vs groupby().apply"], note=note)
            for impl, m in med_s.items():
                t2.add(LABELS[impl], m["seconds"], facts_s["events"] / m["seconds"], m["maxrss_mb"], int(m["rows"]),
                       med_s["pandas-apply"]["seconds"] / m["seconds"])
            tables.append(t2)
    for t in tables:
        t.print()
    return [t.to_dict() for t in tables]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--impl", choices=("polars", "polars-str", "pandas", "pandas-apply", "read"), required=True)
    ap.add_argument("path")
    a = ap.parse_args()
    fn = {"polars": _polars, "polars-str": _polars_str, "pandas": _pandas, "pandas-apply": _pandas_apply,
          "read": _read_only}[a.impl]
    secs, rows = fn(a.path)
    print(json.dumps({"impl": a.impl, "seconds": secs, "rows": rows, "maxrss_mb": peak_rss_mb()}))


if __name__ == "__main__":
    main()
