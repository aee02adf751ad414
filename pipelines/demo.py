"""The demo job: the batch retraining pipeline end to end on synthetic daily event files.

Synthetic sessions (planted clusters and successor chains) are written as one CSV
per day; the retraining job trains on the first days, then retrains day after
day: item2vec (warm-started from the champion), the BiLSTM, evaluation of every
model on the newest day, the model that serves ``recommend()`` chosen among the
BiLSTM, item2vec and the baselines on the validation day, MLflow logging, a
registered version per run, and the alias ``champion`` moved only when the new
version wins on MRR@20. At the end it
prints the last run's results table, the registry history, example neighbours
from the champion loaded by alias, and how to open the MLflow UI and serve it.

Run with ``make demo`` (or ``python -m pipelines.demo --out runs/demo``).
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

import polars as pl

from item2vec.data import make_sessions
from item2vec.retrain import load_config
from pipelines.retrain import CONFIGS, metrics_table, simulate, write_daily_files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/demo", help="events, MLflow store and reports go here (recreated)")
    ap.add_argument("--sessions", type=int, default=3000)
    ap.add_argument("--days", type=int, default=30, help="days of synthetic traffic")
    ap.add_argument("--retrains", type=int, default=3, help="daily retrains after the first run")
    ap.add_argument("--config", default=str(CONFIGS / "retrain.toml"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    out = Path(args.out).resolve()
    for old in ("events", "mlflow.db", "mlartifacts", "reports"):  # a fresh registry every time
        p = out / old
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    out.mkdir(parents=True, exist_ok=True)

    events, truth = make_sessions(n_sessions=args.sessions, days=args.days, noise=0.05, random_state=0)
    days = write_daily_files(events, out / "events")
    # item metadata for the t-SNE colours: the planted cluster is the item's category
    pl.DataFrame({"item_id": list(truth.cluster), "title": list(truth.cluster),
                  "category": [f"cluster {c}" for c in truth.cluster.values()]}).write_csv(out / "items.csv")
    print(f"synthetic log: {events.height:,} events in {len(days)} daily files -> {out / 'events'}")

    cfg = load_config(args.config, model_name="item2vec-demo", experiment="item2vec-demo",
                      metadata=str(out / "items.csv"))
    uri = f"sqlite:///{out / 'mlflow.db'}"
    initial_end = days[-1 - args.retrains]
    print(f"retraining: first run on {days[0]}..{initial_end}, then {args.retrains} daily runs "
          f"(each tests on its newest day)\n")
    reports = simulate(out / "events", cfg, initial_end, args.retrains, tracking_uri=uri, out=out / "reports")

    from item2vec.registry import format_history, registry_history
    from item2vec.retrain import format_report

    last = next((r for r in reversed(reports) if r.status == "ok"), None)
    if last is not None:
        print("\nlast run:\n" + format_report(last))
    print("\nregistry history:\n" + format_history(registry_history(cfg.model_name, tracking_uri=uri)))
    print("\nmetrics over time:\n" + metrics_table(reports, cfg.k))

    import item2vec

    model = item2vec.load(f"models:/{cfg.model_name}@champion", tracking_uri=uri)
    print(f"\nnearest items from models:/{cfg.model_name}@champion "
          "(cluster = the part before '_'; the planted successor is marked *):")
    queries = [str(q) for q in model.embeddings.ids[:3]]
    same = total = 0
    for q in queries:
        ids, scores = model.similar_items(q, k=5)
        same += sum(truth.cluster[i] == truth.cluster[q] for i in ids)
        total += len(ids)
        cells = [f"{i}{'*' if truth.successor[q] == i else ''} ({s:.2f})" for i, s in zip(ids, scores, strict=True)]
        print(f"  {q}: " + ", ".join(cells))
    print(f"  {same} of {total} neighbours share their query's cluster")
    sess = [queries[0], truth.successor[queries[0]]]
    ids, _ = model.recommend(sess, k=5)
    print(f"  next after {sess}: {', '.join(ids.tolist())} (planted successor: {truth.successor[sess[-1]]}; "
          f"served by {model.info.get('served_model', 'bilstm' if model.next_model is not None else 'item2vec')}, "
          "chosen on validation)")

    print(f"""
MLflow UI (runs, per-epoch curves, t-SNE pictures, the registry):
  .venv/bin/mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000
  then open http://127.0.0.1:5000 (experiment 'item2vec-demo', model '{cfg.model_name}')
Serve the champion:
  MLFLOW_TRACKING_URI={uri} .venv/bin/mlflow models serve -m models:/{cfg.model_name}@champion \\
      --env-manager local -h 127.0.0.1 -p 5001
  curl -s -X POST http://127.0.0.1:5001/invocations -H 'Content-Type: application/json' \\
      -d '{{"dataframe_records": [{{"item_id": "{queries[0]}"}}], "params": {{"k": 5}}}}'""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
