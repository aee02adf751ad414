"""The BiLSTM on large catalogues: the sampled loss against the full softmax, speed and memory.

Synthetic sessions over ``n`` items (each prefix a run of consecutive item ids, its
target the next id: a task the model can learn at any ``n``), the library's
:class:`~item2vec.nextitem.Trainer` for one pass over ``batches`` batches of 256 (Adam,
clipping at 5, no validation), the default architecture (64-d tied item table, hidden
64 per direction, prefix cap 10). Each configuration runs in a fresh interpreter
(``python -m benchmarks.nextitem_large --child ...``) so that its peak memory is its own:
peak resident set (``VmHWM`` of ``/proc/self/status``, :func:`benchmarks._common.peak_rss_mb`)
of the whole process, and the same figure read after torch was imported and before the
model was built, so their difference is what the model, its optimiser and the training
steps added. Rows run one after another on one torch thread.

Run (from the repository root)::

    nice .venv/bin/python -m benchmarks.nextitem_large
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

from benchmarks._common import Table, machine, peak_rss_mb, progress, run_child

#: (catalogue size, loss, batches): kept short (a shared 2-core machine); the full softmax at 1M
#: items gets fewer batches (each takes seconds).
CONFIGS: tuple[tuple[int, str, int], ...] = (
    (10_000, "full", 100), (10_000, "sampled", 100),
    (100_000, "full", 50), (100_000, "sampled", 50),
    (1_000_000, "sampled", 50), (1_000_000, "full", 10),
)
BATCH = 256
N_NEGATIVES = 2048


def examples(n_items: int, n: int, max_prefix: int = 10, seed: int = 0) -> Any:
    """``n`` (prefix, target) pairs: prefixes of 1..``max_prefix`` consecutive ids, the target the next id."""
    from item2vec.nextitem import Examples

    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_prefix + 1, n)
    start = rng.integers(1, n_items + 1, n)
    pos = np.arange(max_prefix)
    items = np.where(pos[None, :] < lengths[:, None], (start[:, None] + pos[None, :] - 1) % n_items + 1, 0)
    targets = (start + lengths - 1) % n_items + 1
    return Examples(items.astype(np.int64), lengths.astype(np.int64), targets.astype(np.int64))


def child(n_items: int, loss: str, batches: int, n_negatives: int) -> dict[str, Any]:
    """One configuration in this (fresh) process: examples/s and memory."""
    import torch

    from item2vec.nextitem import NextItemConfig, NextItemModel, Trainer

    torch.set_num_threads(1)
    ex = examples(n_items, batches * BATCH)
    rss_before = peak_rss_mb()
    torch.manual_seed(0)
    model = NextItemModel(NextItemConfig(n_items=n_items, loss=loss, n_negatives=n_negatives if loss == "sampled" else 0))
    model.init_bias(np.bincount(ex.targets, minlength=n_items + 1))
    t0 = time.perf_counter()
    res = Trainer(epochs=1, batch_size=BATCH, num_threads=1, show_progress=False, device="cpu").fit(model, ex)
    seconds = time.perf_counter() - t0
    return {"n_items": n_items, "loss": loss, "batches": batches, "examples_per_second": res.examples_per_second,
            "seconds": seconds, "peak_rss_mb": peak_rss_mb(), "rss_before_model_mb": rss_before,
            "train_loss": res.history[-1]["loss"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--items", type=int)
    p.add_argument("--loss")
    p.add_argument("--batches", type=int)
    p.add_argument("--n-negatives", type=int, default=N_NEGATIVES)
    p.add_argument("--scale", type=float, default=1.0, help="multiply every row's batches by this")
    p.add_argument("--losses", default="full,sampled", help="comma-separated losses to run (default both)")
    p.add_argument("--only", default=None, help="comma-separated catalogue sizes to run (default: all of CONFIGS)")
    p.add_argument("--json", default=None, help="also write the rows here")
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.items, a.loss, a.batches, a.n_negatives)))
        return 0
    only = {int(s) for s in a.only.split(",")} if a.only else None
    table = Table(
        f"BiLSTM training on large catalogues (batch {BATCH}, one torch thread, one pass)",
        ["items", "loss", "batches", "examples/s", "peak RSS MB", "RSS before the model MB", "added by the model MB"],
        note=f"Machine: {machine()}. `sampled`: the batch's targets plus {a.n_negatives:,} shared uniform "
             "negatives with the log-Q correction; `full`: cross-entropy over the whole catalogue. Peak RSS: "
             "VmHWM of a fresh process per row.",
    )
    rows: list[dict[str, Any]] = []
    for n, loss, batches in CONFIGS:
        if (only and n not in only) or loss not in a.losses.split(","):
            continue
        batches = max(1, round(batches * a.scale))
        progress(f"nextitem_large: {n:,} items, {loss} loss, {batches} batches")
        try:
            r = run_child("benchmarks.nextitem_large", ["--child", "--items", str(n), "--loss", loss,
                                                        "--batches", str(batches),
                                                        "--n-negatives", str(a.n_negatives)], timeout=3600)
        except RuntimeError as e:  # killed (out of memory) or failed: a row that says so
            first = str(e).splitlines()[0]
            r = {"n_items": n, "loss": loss, "batches": batches, "failed": first[first.rfind("failed"):]}
            table.add(f"{n:,}", loss, batches, r["failed"], float("nan"), float("nan"), float("nan"))
        else:
            table.add(f"{n:,}", r["loss"], r["batches"], r["examples_per_second"], r["peak_rss_mb"],
                      r["rss_before_model_mb"], r["peak_rss_mb"] - r["rss_before_model_mb"])
        rows.append(r)
        if a.json:
            with open(a.json, "w") as fh:
                json.dump(rows, fh, indent=1)
    table.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
