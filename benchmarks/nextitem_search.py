"""Search over BiLSTM settings on one dataset, chosen by validation MRR@20.

Each trial is a set of :class:`~item2vec.nextitem.NextItemRecommender` options on
top of the tables' base settings (``nextitem_tables.BILSTM`` and the dataset's epoch
cap, ``BUDGET``): random draws from
:data:`SPACE`, or (``--oat``) each single change of one option. Trial 0 is those
settings unchanged. Every trial is trained with item2vec init, fine-tuned
(``--variant`` picks another), once per seed, early-stopping on the **whole**
validation split; the trial's score is its mean best validation MRR@20 over the
seeds. Test metrics are recorded in the log for the record but play no part in
the choice: the summary names the best trial by validation only.

Results are appended to a JSONL log, one line per (trial, seed), and a re-run skips
what the log already has, so a search can be stopped and resumed::

    nice .venv/bin/python -m benchmarks.nextitem_search --dataset diginetica --trials 24 \\
        --seeds 0,1,2 --cache runs/i2v-cache --log runs/search-diginetica.jsonl
    nice .venv/bin/python -m benchmarks.nextitem_search --dataset movielens --oat \\
        --seeds 0,1 --cache runs/i2v-cache --log runs/search-movielens.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.nextitem_tables import (
    BILSTM,
    BUDGET,
    VARIANTS,
    _parse_set,
    _progress,
    item2vec_vectors,
    load,
)
from item2vec.evaluation import evaluate, make_prefixes
from item2vec.nextitem import NextItemRecommender

#: Option -> values a trial draws from (uniformly, independently).
SPACE: dict[str, list[Any]] = {
    "hidden_size": [64, 128, 256],
    "num_layers": [1, 2],
    "pooling": ["last", "attention"],
    "residual_last": [False, True],
    "tied": [True, False],
    "dropout": [0.1, 0.25, 0.4, 0.5],
    "lr": [1e-3, 2e-3, 3e-3, 5e-3],
    "lr_decay": [1.0, 0.5],
    "batch_size": [128, 256, 512],
    "max_prefix": [5, 10, 20],
}


def trials(n: int, seed: int, space: dict[str, list[Any]] | None = None) -> list[dict[str, Any]]:
    """``n`` option sets: the empty set (the base settings) first, then random draws, no repeats."""
    space = SPACE if space is None else space
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = [{}]
    seen = {json.dumps({}, sort_keys=True)}
    while len(out) < n:
        t = {k: vals[int(rng.integers(len(vals)))] for k, vals in space.items()}
        key = json.dumps(t, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


def one_at_a_time(base: dict[str, Any], space: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The base settings (the empty set) and then each single change of one option."""
    return [{}] + [{k: v} for k, vals in space.items() for v in vals if v != base.get(k)]


def trial_id(options: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(options, sort_keys=True).encode()).hexdigest()[:10]


def _done(log: Path) -> set[tuple[str, str, int]]:
    if not log.exists():
        return set()
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return {(r["variant"], r["trial"], r["seed"]) for r in rows}


def summarise(
    log: Path, variant: str, only: set[str] | None = None, seeds: set[int] | None = None
) -> list[dict[str, Any]]:
    """Trials of ``variant`` in ``log``, best mean validation MRR@20 first.

    Only the trials in ``only`` and the runs of ``seeds`` count, when given (a log can
    hold several searches that share trials)."""
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["variant"] == variant and (only is None or r["trial"] in only) and (seeds is None or r["seed"] in seeds):
            by.setdefault(r["trial"], []).append(r)
    out = []
    for tid, rs in by.items():
        val = [r["val_mrr@20"] for r in rs]
        out.append({
            "trial": tid, "options": rs[0]["options"], "seeds": len(rs),
            "val_mrr@20": float(np.mean(val)), "val_mrr@20_std": float(np.std(val)),
            "val_hr@20": float(np.mean([r["val_hr@20"] for r in rs])),
            "test_mrr@20": float(np.mean([r["test"]["mrr@20"] for r in rs])),
            "test_hr@20": float(np.mean([r["test"]["hr@20"] for r in rs])),
            "epochs": [r["epochs"] for r in rs], "seconds": float(np.mean([r["seconds"] for r in rs])),
        })
    return sorted(out, key=lambda t: -t["val_mrr@20"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--trials", type=int, default=16, help="random trials (ignored with --oat)")
    ap.add_argument("--oat", action="store_true",
                    help="one option at a time: the base settings, then each single change from SPACE")
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds per trial")
    ap.add_argument("--search-seed", type=int, default=0, help="seed of the random draws")
    ap.add_argument("--variant", default="bilstm (item2vec, fine-tuned)", choices=list(VARIANTS))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="fixed option for every trial (JSON value), e.g. epochs=15")
    ap.add_argument("--space", action="append", default=[], metavar="KEY=[VALUES]",
                    help="replace one option's values in SPACE (JSON list), e.g. hidden_size=[64,128]")
    ap.add_argument("--only-trials", default=None, help="comma-separated trial numbers to run (default all)")
    ap.add_argument("--summary", action="store_true", help="print the table of these trials from the log; train nothing")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default=None, help="item2vec vectors cache directory")
    ap.add_argument("--log", required=True, type=Path)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    seeds = [int(s) for s in a.seeds.split(",")]
    if not a.summary:
        data = load(a.dataset)
        pre = make_prefixes(data.test)
        emb, _ = item2vec_vectors(a.dataset, data, 0, Path(a.cache) if a.cache else None, init=True)
    base = {**BILSTM, **BUDGET.get(a.dataset, {}), **_parse_set(a.set)}
    variant = VARIANTS[a.variant]
    space = {**SPACE, **_parse_set(a.space)}
    effective = NextItemRecommender(**base).get_params()  # the base with every default filled in
    all_trials = one_at_a_time(effective, space) if a.oat else trials(a.trials, a.search_seed, space)
    pick = range(len(all_trials)) if a.only_trials is None else [int(x) for x in a.only_trials.split(",")]
    a.log.parent.mkdir(parents=True, exist_ok=True)
    for i in ([] if a.summary else pick):
        options = all_trials[i]
        tid = trial_id(options)
        for seed in seeds:
            if (a.variant, tid, seed) in _done(a.log):  # re-read: another process may share the log
                continue
            params = {k: v for k, v in {**base, **options}.items()}
            extra = {k: v for k, v in variant.items() if k not in ("init", "freeze")}
            t = time.perf_counter()
            model = NextItemRecommender(
                embeddings=emb if variant["init"] == "item2vec" else None, vocab=data.vocab,
                init=variant["init"], freeze=variant.get("freeze", False), show_progress=False,
                random_state=seed, **{**params, **extra},
            ).fit(data.train, data.n_items, valid=data.valid)
            secs = time.perf_counter() - t
            r = model.train_result_
            test = evaluate(model, pre, k=20)
            row = {
                "dataset": a.dataset, "variant": a.variant, "trial": tid, "trial_no": i, "seed": seed,
                "options": options, "params": params, "val_mrr@20": r.best_metrics["val_mrr@20"],
                "val_hr@20": r.best_metrics["val_hr@20"], "epochs": f"{r.best_epoch}/{r.epochs_run}",
                "seconds": round(secs, 1), "examples_per_second": round(r.examples_per_second),
                "test": {k: test[k] for k in ("hr@20", "mrr@20", "ndcg@20", "n_predictions")},
            }
            with a.log.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            _progress(f"{a.dataset} trial {i} ({tid}) seed {seed}: val MRR@20 {row['val_mrr@20']:.4f} "
                      f"HR@20 {row['val_hr@20']:.4f} epochs {row['epochs']} {secs:.0f}s {options}")
    ranked = summarise(a.log, a.variant, {trial_id(all_trials[i]) for i in pick}, set(seeds))
    print(f"### {a.dataset}: {a.variant}, {len(ranked)} trials, by mean validation MRR@20\n")
    print("| # | val MRR@20 (± std) | val HR@20 | seeds | epochs | s | options |")
    print("|---|---|---|---|---|---|---|")
    for n, t in enumerate(ranked, 1):
        print(f"| {n} | {t['val_mrr@20']:.4f} ± {t['val_mrr@20_std']:.4f} | {t['val_hr@20']:.4f} | {t['seeds']} | "
              f"{', '.join(t['epochs'])} | {t['seconds']:.0f} | {json.dumps(t['options']) if t['options'] else 'base'} |")
    if ranked:
        best = ranked[0]
        print(f"\nchosen by validation: trial {best['trial']} {best['options'] or 'base'}; "
              f"its test HR@20 {best['test_hr@20']:.4f}, MRR@20 {best['test_mrr@20']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
