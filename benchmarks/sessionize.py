"""Sessionizing a synthetic event log: item2vec's polars path against plain pandas.

The log has ``user_id``, ``item_id``, ``timestamp`` rows in random order (no
session ids): both sides sort by user and time, cut sessions at 30-minute gaps
and drop consecutive repeats of an item within a session. Each side runs in its
own subprocess so that its peak resident memory (``ru_maxrss``) is its own; the
timed part excludes reading the Parquet file, the memory includes it (a
"read only" child gives the floor).

Run one side: ``python -m benchmarks.sessionize --impl polars PATH``.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import Table, progress, run_child

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


def run(n_events: int = 10_000_000, repeats: int = 3, seed: int = 0) -> list[dict[str, Any]]:
    """Time both sides ``repeats`` times, alternating; print and return the table."""
    table = Table(
        f"sessionize + drop repeats, {n_events / 1e6:g}M synthetic events (medians of {repeats})",
        ["implementation", "seconds", "events/s", "peak RSS MB", "rows out", "speed-up vs pandas"],
        note="Timed: sort, 30-minute gap cut, consecutive-repeat drop (reading Parquet excluded). "
        "Peak RSS: whole child process, reading included.",
    )
    with tempfile.TemporaryDirectory(prefix="i2v-bench-") as tmp:
        path = Path(tmp) / "events.parquet"
        progress(f"sessionize: writing {n_events:,} events")
        facts = make_log(path, n_events, seed)
        res: dict[str, list[dict[str, Any]]] = {"polars": [], "pandas": [], "read": []}
        res["read"].append(run_child("benchmarks.sessionize", ["--impl", "read", str(path)]))
        for r in range(repeats):
            for impl in ("polars", "pandas"):
                progress(f"sessionize: {impl} run {r + 1}/{repeats}")
                res[impl].append(run_child("benchmarks.sessionize", ["--impl", impl, str(path)]))
    med = {k: {f: float(np.median([x[f] for x in v])) for f in ("seconds", "maxrss_mb", "rows")} for k, v in res.items()}
    if med["polars"]["rows"] != med["pandas"]["rows"]:
        raise RuntimeError(f"polars and pandas disagree: {med['polars']['rows']} vs {med['pandas']['rows']} rows")
    for impl in ("polars", "pandas"):
        m = med[impl]
        table.add(impl, m["seconds"], facts["events"] / m["seconds"], m["maxrss_mb"], int(m["rows"]),
                  med["pandas"]["seconds"] / m["seconds"])
    table.add("(read Parquet only)", float("nan"), float("nan"), med["read"]["maxrss_mb"], int(med["read"]["rows"]), float("nan"))
    table.print()
    return [table.to_dict()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--impl", choices=("polars", "pandas", "read"), required=True)
    ap.add_argument("path")
    a = ap.parse_args()
    fn = {"polars": _polars, "pandas": _pandas, "read": _read_only}[a.impl]
    secs, rows = fn(a.path)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"impl": a.impl, "seconds": secs, "rows": rows, "maxrss_mb": rss_mb}))


if __name__ == "__main__":
    main()
