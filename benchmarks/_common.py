"""Small helpers shared by the benchmark sections: timing, tables, subprocess runs."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["Table", "machine", "median_time", "peak_rss_mb", "percentiles_ms", "progress", "run_child"]


def machine() -> str:
    """One line describing the machine the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = float("nan")
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}, "
        f"numpy {np.__version__}, {platform.system()} {platform.release()}"
    )


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall seconds of ``repeats`` calls of ``fn`` and the last result."""
    times, out = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def peak_rss_mb() -> float:
    """Peak resident memory of this process's address space, in MB (``VmHWM``).

    Not ``ru_maxrss``: on Linux that survives fork and exec, so a child started
    by a large parent reports at least the parent's peak. ``VmHWM`` belongs to
    the address space made at exec. Falls back to ``ru_maxrss`` off Linux.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentiles_ms(seconds: Sequence[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    a = np.asarray(seconds) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def run_child(module: str, args: Sequence[str], timeout: float = 900) -> dict[str, Any]:
    """Run ``python -m module args`` and parse the JSON object it prints last."""
    cmd = [sys.executable, "-m", module, *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def progress(msg: str) -> None:
    """A progress line on stderr (stdout carries only the tables)."""
    print(f"  .. {msg}", file=sys.stderr, flush=True)


class Table:
    """A markdown table: rows are added as they are measured, :meth:`print` shows it."""

    def __init__(self, title: str, columns: Sequence[str], note: str = "") -> None:
        self.title, self.columns, self.note = title, list(columns), note
        self.rows: list[list[str]] = []

    def add(self, *cells: Any) -> None:
        row = [_fmt(c) for c in cells]
        self.rows.append(row)
        progress(f"{self.title}: " + ", ".join(f"{c}={v}" for c, v in zip(self.columns, row, strict=False)))

    def print(self) -> None:
        print(f"\n### {self.title}\n")
        if self.note:
            print(self.note + "\n")
        print("| " + " | ".join(self.columns) + " |")
        print("|" + "|".join("---" for _ in self.columns) + "|")
        for row in self.rows:
            print("| " + " | ".join(row) + " |")
        sys.stdout.flush()

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.columns, "rows": self.rows}


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        if x != x:
            return "n/a"
        if abs(x) >= 100:
            return f"{x:,.0f}"
        if abs(x) >= 1:
            return f"{x:.2f}"
        return f"{x:.4g}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)
