"""The BiLSTM trained data-parallel: 1 process against N, same seeds, on a shared log.

For each seed and each process count, :class:`item2vec.nextitem.NextItemRecommender`
(random init, the library's defaults otherwise, ``epochs`` capped) is trained on the
log's training split with early stopping on its validation split, and the table gives
the kept epoch's validation MRR@20 and HR@20 (mean and spread over the seeds), the
training examples/s (rank 0's loop: all ranks' prefixes per second of training),
seconds per epoch, and the wall seconds of the whole fit (process start-up included).
Runs alternate between process counts within each seed so that a busy machine slows
both alike. The machine's cores are split between the processes
(``num_threads // processes`` torch threads each).

Run (from the repository root, the shared logs under ``../shared/datasets``)::

    nice .venv/bin/python -m benchmarks.nextitem_ddp --dataset gowalla --seeds 0,1,2 --processes 1,2 \\
        --epochs 5 --max-train 5000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np

from benchmarks._common import Table, machine, progress


def run(dataset: str, seeds: list[int], processes: list[int], epochs: int, threads: int,
        max_train: int | None = None) -> dict[str, Any]:
    """Train once per (seed, processes); return the rows and the table."""
    from item2vec.nextitem import NextItemRecommender
    from pipelines.datasets import load_dataset

    data = load_dataset(dataset)
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        for n in processes:
            progress(f"nextitem_ddp: {dataset}, seed {seed}, {n} process(es)")
            m = NextItemRecommender(init="random", vocab=data.vocab, epochs=epochs, random_state=seed,
                                    processes=n, num_threads=threads, max_train=max_train, show_progress=False,
                                    device="cpu")
            t0 = time.perf_counter()
            m.fit(data.train, n_items=data.n_items, valid=data.valid, repeats_dropped=data.repeats_dropped)
            wall = time.perf_counter() - t0
            r = m.train_result_
            rows.append({"seed": seed, "processes": n, "val_mrr@20": r.best_metrics["val_mrr@20"],
                         "val_hr@20": r.best_metrics["val_hr@20"], "best_epoch": r.best_epoch,
                         "epochs_run": r.epochs_run, "examples_per_second": r.examples_per_second,
                         "seconds_per_epoch": r.n_examples / r.examples_per_second, "wall_seconds": wall,
                         "n_examples": r.n_examples})
    table = Table(
        f"BiLSTM data-parallel on {dataset} ({rows[0]['n_examples']:,} training prefixes, "
        f"{len(seeds)} seeds, up to {epochs} epochs)",
        ["processes", "torch threads each", "val MRR@20 (mean ± sd)", "val HR@20 (mean ± sd)", "kept epochs",
         "examples/s", "s per epoch", "fit wall s"],
        note=f"Machine: {machine()}. Random init, defaults otherwise (batch 256 in all: with N processes each "
             "takes 256/N of every batch); early stopping on the validation split. Spread: standard "
             "deviation over the seeds.",
    )
    for n in processes:
        rs = [r for r in rows if r["processes"] == n]

        def ms(key: str, rs: list[dict[str, Any]] = rs) -> str:
            v = np.array([r[key] for r in rs])
            return f"{v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.4f}"

        table.add(n, max(1, threads // n), ms("val_mrr@20"), ms("val_hr@20"),
                  ", ".join(str(r["best_epoch"]) for r in rs),
                  float(np.mean([r["examples_per_second"] for r in rs])),
                  float(np.mean([r["seconds_per_epoch"] for r in rs])),
                  float(np.mean([r["wall_seconds"] for r in rs])))
    return {"rows": rows, "table": table}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--dataset", default="gowalla", help="a pipelines.datasets name (default gowalla)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--processes", default="1,2")
    p.add_argument("--epochs", type=int, default=15, help="upper bound on epochs (early stopping on validation)")
    p.add_argument("--max-train", type=int, default=None, help="a fixed random sample of this many training prefixes")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads in all, split between processes")
    p.add_argument("--json", default=None, help="also write the per-run rows here")
    a = p.parse_args(argv)
    out = run(a.dataset, [int(s) for s in a.seeds.split(",")], [int(s) for s in a.processes.split(",")],
              a.epochs, a.threads, a.max_train)
    out["table"].print()
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out["rows"], fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
