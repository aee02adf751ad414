"""Tune item2vec on the validation split of the shared datasets, then score everything on test.

The same random configurations are tried on every dataset (validation MRR@20 of the
last-item recommender), so one can ask which configuration holds *across*
datasets: the candidate new default is the one with the best mean of
``MRR / best MRR on that dataset``. Then each dataset's test split scores the
baselines, item2vec with whole-session gensim-like settings (the starting point),
item2vec tuned on that dataset, and item2vec with the cross-dataset configuration
(the library's defaults since this search; a row of its own if they differ).

    python -m pipelines.tune --trials 16 --trials-for online-retail=8 --out runs/tune.json

Search space from Caselles-Dupré et al., "Word2vec applied to Recommendation:
Hyperparameters Matter" (RecSys 2018): window, ns_exponent (negative values
allowed), sub-sampling, epochs, vector size.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

from item2vec._io import atomic_file
from item2vec.embeddings import Item2VecConfig
from item2vec.evaluation import evaluate, make_prefixes, run_evaluation
from item2vec.recommenders import Item2VecRecommender
from item2vec.tuning import ITEM2VEC_SPACE
from pipelines.datasets import DATASETS, load_dataset

#: The search space: the library tuner's (:data:`item2vec.tuning.ITEM2VEC_SPACE`).
SPACE: dict[str, list[Any]] = ITEM2VEC_SPACE


#: The starting point: item2vec's whole-session context with gensim-like settings
#: (the library's defaults before this search chose new ones).
WHOLE_SESSION: dict[str, Any] = {
    "window": None, "ns_exponent": 0.75, "sample": 1e-3, "epochs": 10, "vector_size": 64, "negative": 5,
}


def sample_configs(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """:data:`WHOLE_SESSION` first, then ``n - 1`` distinct random draws from :data:`SPACE`."""
    rng = random.Random(seed)
    out, seen = [dict(WHOLE_SESSION)], {json.dumps(WHOLE_SESSION, sort_keys=True)}
    while len(out) < n:
        c = {k: rng.choice(v) for k, v in SPACE.items()}
        key = json.dumps(c, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def score(data: Any, params: dict[str, Any], split: str = "valid") -> dict[str, float]:
    t0 = time.perf_counter()
    model = Item2VecRecommender(mode="last", **params).fit(data.train, n_items=data.n_items)
    fit_s = time.perf_counter() - t0
    res = evaluate(model, make_prefixes(getattr(data, split)), k=20)
    return {"mrr@20": res["mrr@20"], "hr@20": res["hr@20"], "fit_seconds": round(fit_s, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trials-for", action="append", default=[], metavar="NAME=N",
                    help="fewer trials for an expensive dataset (a prefix of the same configurations)")
    ap.add_argument("--cache", default="runs/tune-trials.json", help="trial results, reused by later runs")
    ap.add_argument("--out", default="runs/tune.json")
    a = ap.parse_args(argv)
    names = a.datasets.split(",")
    limit = {n: a.trials for n in names} | {k: int(v) for k, v in (s.split("=") for s in a.trials_for)}
    configs = sample_configs(a.trials, a.seed)
    cache_path = Path(a.cache)
    cache: dict[str, dict[str, Any]] = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    data = {n: load_dataset(n) for n in names}
    for n in sorted(names, key=lambda n: limit[n], reverse=True):  # cheap, many-trial datasets first
        for i, cfg in enumerate(configs):
            key = json.dumps(cfg, sort_keys=True)
            if i >= limit[n] or key in cache.get(n, {}):
                continue
            r = score(data[n], cfg)
            cache.setdefault(n, {})[key] = r
            with atomic_file(cache_path) as fh:
                json.dump(cache, fh, indent=1)
            print(f"[{i + 1}/{len(configs)}] {n:14s} valid mrr@20={r['mrr@20']:.4f} hr@20={r['hr@20']:.4f} "
                  f"fit={r['fit_seconds']:.1f}s {cfg}", flush=True)
    trials = {n: [{"config": c, **cache[n][json.dumps(c, sort_keys=True)]} for c in configs[: limit[n]]]
              for n in names}
    best = {n: max(trials[n], key=lambda t: t["mrr@20"]) for n in names}
    shared = range(min(limit.values()))  # configurations tried on every dataset
    rel = {i: sum(trials[n][i]["mrr@20"] / max(best[n]["mrr@20"], 1e-12) for n in names) / len(names)
           for i in shared}
    across_i = max(rel, key=lambda i: rel[i])
    across = configs[across_i]
    print(f"\ncross-dataset config (mean relative valid MRR {rel[across_i]:.3f}; whole-session start "
          f"{rel[0]:.3f}): {across}")

    tables: dict[str, Any] = {}
    for n in names:
        d = data[n]
        rep = run_evaluation(d, ["pop", "markov", "sknn", "implicit", "item2vec-mean"], show_progress=False)
        rows = rep["models"]
        defaults = {k: getattr(Item2VecConfig(), k) for k in SPACE}
        for label, cfg in (("item2vec (whole session, 10 epochs)", configs[0]),
                           ("item2vec (tuned on this dataset)", best[n]["config"]),
                           ("item2vec (best across datasets)", across),
                           ("item2vec (library defaults)", defaults)):
            if label == "item2vec (library defaults)" and cfg == across:
                continue  # the same row
            t0 = time.perf_counter()
            m = Item2VecRecommender(mode="last", **cfg).fit(d.train, n_items=d.n_items)
            fit_s = time.perf_counter() - t0
            rows[label] = {**evaluate(m, make_prefixes(d.test), k=20), "fit_seconds": round(fit_s, 2)}
        tables[n] = {"n_predictions": rep["n_predictions"], "stats": d.stats, "models": rows,
                     "tuned": best[n]["config"]}
        print(f"\n### {n} (test: {rep['n_predictions']:,} predictions)\n")
        print("| model | HR@20 | MRR@20 | NDCG@20 | fit s |\n|---|---|---|---|---|")
        for label, r in rows.items():
            print(f"| {label} | {r['hr@20']:.4f} | {r['mrr@20']:.4f} | {r['ndcg@20']:.4f} | {r['fit_seconds']:.2f} |")
        print(f"\ntuned here: {best[n]['config']} (valid MRR@20 {best[n]['mrr@20']:.4f}, default {trials[n][0]['mrr@20']:.4f})")
    with atomic_file(Path(a.out)) as fh:
        json.dump({"trials": trials, "across": across, "tables": tables}, fh, indent=2, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
