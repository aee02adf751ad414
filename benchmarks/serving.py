"""In-process cost of a served request: ``ServedModel.predict_frame`` against the search it wraps.

``python -m benchmarks.serving [--items 3400] [--dim 64] [--repeats 2000]``

A synthetic catalogue (Online Retail's size by default: 3,400 items, 64-d, integer
ids) served without a next-item model, so a session is answered with the neighbours
of its last known item. Printed, side by side in one run:

- p50 / p99 of one item request and one session request (a one-row DataFrame, as
  MLflow's server hands it over), and of the bare ``ItemEmbeddings.similar_items``
  call under them: the floor the wrapper adds to;
- items/s of one request of 1,000 items (one batched ``similar_items`` call) against
  1,000 one-item requests.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from benchmarks._common import Table, machine, percentiles_ms
from item2vec.embeddings import ItemEmbeddings
from item2vec.serving import ServedModel


def _times(fn, repeats: int) -> list[float]:
    fn()  # warm: the exact index is built on the first query
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> None:
    """Print the two tables (markdown) for a synthetic catalogue."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=3400)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2000)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    ids = np.arange(10_000, 10_000 + args.items)
    model = ServedModel(ItemEmbeddings(ids, rng.standard_normal((args.items, args.dim)).astype(np.float32)))
    one = int(ids[5])
    item_req = pd.DataFrame({"item_id": [one]})
    session_req = pd.DataFrame({"session": [[int(x) for x in ids[[5, 17, 300]]]]})
    print(f"\n{machine()}\n{args.items:,} items x {args.dim}-d, k={args.k}")

    lat = Table("In-process latency of one request", ["what", "p50 ms", "p99 ms"])
    for name, fn in [
        ("similar_items (the search alone)", lambda: model.embeddings.similar_items(one, k=args.k)),
        ("predict_frame, one item", lambda: model.predict_frame(item_req, k=args.k)),
        ("predict_frame, one session", lambda: model.predict_frame(session_req, k=args.k)),
    ]:
        lat.add(name, *percentiles_ms(_times(fn, args.repeats)))
    lat.print()

    batch = [int(x) for x in rng.choice(ids, 1000)]
    batch_req = pd.DataFrame({"item_id": batch})
    singles = [pd.DataFrame({"item_id": [x]}) for x in batch]
    thr = Table("Items per second, 1,000 items", ["how", "median s", "items/s"])
    t_batch = float(np.median(_times(lambda: model.predict_frame(batch_req, k=args.k), 5)))
    t_loop = float(np.median(_times(lambda: [model.predict_frame(r, k=args.k) for r in singles], 3)))
    thr.add("one request of 1,000 items (one matrix product)", t_batch, 1000 / t_batch)
    thr.add("1,000 one-item requests", t_loop, 1000 / t_loop)
    thr.print()


if __name__ == "__main__":
    main()
