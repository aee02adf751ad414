"""One entry point for the speed benchmarks: ``python -m benchmarks.run [--quick]``.

Sections (``--only`` picks some):

- ``sessionize``: polars path against pandas on synthetic events, each in a subprocess;
- ``train``: ``Item2Vec.fit`` against a direct gensim ``Word2Vec`` call;
- ``similar``: ``similar_items`` exact against gensim ``most_similar``, HNSW against exact;
- ``eval``: the evaluation loop's predictions/s per model, batched and single;
- ``nextitem``: BiLSTM training and inference throughput on CPU: threads, batch
  size, ``torch.compile`` against eager;
- ``serving``: a served request in process (``predict_records`` / ``predict_frame``
  against the ``similar_items`` under them; a batch request against one-row
  requests); with ``--serving-http``, also over HTTP with ``mlflow models serve``
  against an identity pyfunc (MLflow's floor), and the server side's profile.

Every comparison is measured side by side in the same run (alternating where it
can), because the machine may be shared: ratios are what to read, absolute times
move with the load. Prints markdown tables; ``--json`` also writes them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

SECTIONS = ("sessionize", "train", "similar", "eval", "nextitem", "serving")

FULL: dict[str, dict[str, Any]] = {
    "sessionize": {"n_events": 10_000_000, "repeats": 3},
    "train": {"n_sessions": 15_000, "epochs": 5, "workers": 1, "repeats": 3},
    "similar": {"sizes": (100_000, 1_000_000), "n_single": 200, "n_batch": 1000},
    "eval": {"n_sessions": 20_000, "n_single": 500, "repeats": 1},
    "nextitem": {"n_sessions": 20_000, "n_train": 30_000, "n_predictions": 10_000, "compile_steps": 40, "repeats": 3},
    "serving": {"n_items": 3400, "repeats": 2000, "n_batch": 1000},
}
QUICK: dict[str, dict[str, Any]] = {
    "sessionize": {"n_events": 1_000_000, "repeats": 1, "apply_events": 200_000},
    "train": {"n_sessions": 5_000, "epochs": 5, "workers": 1, "repeats": 1},
    "similar": {"sizes": (100_000,), "n_single": 100, "n_batch": 300},
    "eval": {"n_sessions": 5_000, "n_single": 200, "repeats": 1},
    "nextitem": {"n_sessions": 5_000, "n_train": 5_000, "n_predictions": 1_000, "compile_steps": 10, "repeats": 1},
    "serving": {"n_items": 3400, "repeats": 300, "n_batch": 200},
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, one repeat (about a minute)")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="limit BLAS threads (default: the library's own choice)")
    ap.add_argument("--json", type=Path, default=None, help="also write the tables here")
    ap.add_argument("--serving-http", type=int, default=0, metavar="N",
                    help="serving: also N requests per case over HTTP, and the server side's profile (minutes)")
    a = ap.parse_args(argv)
    if a.blas_threads is not None:  # before numpy is imported; children inherit it
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(a.blas_threads)

    from benchmarks import evaluation, nextitem, serving, sessionize, similar, training
    from benchmarks._common import machine

    cfg = {name: dict(opts) for name, opts in (QUICK if a.quick else FULL).items()}
    if a.serving_http:
        cfg["serving"].update(http_requests=a.serving_http, profile_calls=500)
    print("## item2vec benchmarks\n")
    print(f"- command: `{' '.join([Path(sys.executable).name, '-m', 'benchmarks.run', *sys.argv[1:]])}`")
    print(f"- date: {dt.datetime.now().isoformat(timespec='seconds')}")
    print(f"- machine: {machine()}")
    print(f"- load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    sys.stdout.flush()
    runners = {"sessionize": sessionize.run, "train": training.run, "similar": similar.run,
               "eval": evaluation.run, "nextitem": nextitem.run, "serving": serving.run}
    results: dict[str, Any] = {}
    t_all = time.perf_counter()
    for name in SECTIONS:
        if name not in a.only:
            continue
        t0 = time.perf_counter()
        results[name] = runners[name](**cfg[name])
        print(f"\n_{name}: {time.perf_counter() - t0:.0f} s_")
    print(f"\n_total: {time.perf_counter() - t_all:.0f} s; load average at end: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}_")
    if a.json:
        a.json.write_text(json.dumps({"machine": machine(), "quick": a.quick, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
