"""The demo job: synthetic sessions -> prepare -> item2vec -> evaluation against baselines.

Run with ``make demo`` (or ``python -m pipelines.demo --out runs/demo``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from item2vec.data import PrepareConfig, make_sessions, prepare
from item2vec.embeddings import Item2Vec
from item2vec.evaluation import format_table, run_evaluation


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="runs/demo", help="where the prepared data and model go")
    ap.add_argument("--sessions", type=int, default=5000)
    ap.add_argument("--models", default="pop,markov,sknn,implicit,item2vec,item2vec-mean")
    args = ap.parse_args(argv)
    out = Path(args.out)

    events, truth = make_sessions(n_sessions=args.sessions, noise=0.05, random_state=0)
    data = prepare(events, PrepareConfig(test_days=3, valid_days=3), name="synthetic")
    data.save(out / "data")
    print(f"synthetic log: {events.height:,} events, {data.n_items} items, "
          f"{len(data.train):,}/{len(data.valid):,}/{len(data.test):,} train/valid/test sessions")

    model = Item2Vec(show_progress=True).fit(data.decode(data.train))
    emb = model.embeddings_
    emb.save(out / "model")
    print(f"item2vec: {len(emb)} items x {emb.dim} dims in {model.fit_seconds_:.1f}s -> {out / 'model'}\n")

    report = run_evaluation(data, args.models.split(","), k=20, embeddings=emb, show_progress=False)
    print(f"{report['n_predictions']:,} test predictions")
    print(format_table(report["models"], 20))

    print("\nnearest items (cluster = the part before '_'; the planted successor is marked *):")
    queries = list(emb.ids[:3])
    ids, scores = emb.similar_items(queries, k=5)
    for q, row, sc in zip(queries, ids, scores, strict=True):
        cells = [f"{i}{'*' if truth.successor[q] == i else ''} ({s:.2f})" for i, s in zip(row, sc, strict=True)]
        print(f"  {q}: " + ", ".join(cells))
    same = sum(truth.cluster[i] == truth.cluster[q] for q, row in zip(queries, ids, strict=True) for i in row)
    print(f"  {same} of {ids.size} neighbours share their query's cluster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
