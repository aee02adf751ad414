"""Defaults vs tuned item2vec on every shared log: validation and test, tuning time, chosen settings.

For each dataset, :func:`item2vec.tuning.tune_item2vec` searches on the validation
split within a time budget and writes ``runs/tune-all/<name>.params.json``; then
last-item neighbours of ``Item2Vec()`` (the library's defaults, read at run time)
and of the tuned settings are fitted on the training split and scored on the
validation and the test split. The table goes to ``runs/tune-all/table.md`` (and
``results.json``).

    python -m pipelines.tune_all --minutes diginetica=5,gowalla=5,movielens=5,online-retail=10

``--reuse pipelines/configs/tuned`` takes the tuned settings from the params files the
README's table was made with instead of tuning again, so the defaults rows can be re-run
alone after the defaults change (a few minutes of fitting instead of 25 of tuning).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from item2vec._io import atomic_file
from item2vec.embeddings import Item2Vec
from item2vec.evaluation import evaluate, make_prefixes
from item2vec.recommenders import Item2VecRecommender
from item2vec.tuning import ITEM2VEC_SPACE, read_params, tune_item2vec, write_params
from pipelines.datasets import DATASETS, load_dataset

BUDGET_MINUTES = {"diginetica": 5.0, "gowalla": 5.0, "movielens": 5.0, "online-retail": 10.0}


def score_both(data: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Last-item neighbours of ``Item2Vec(**params)`` on train, scored on valid and test (k = 20)."""
    t0 = time.perf_counter()
    model = Item2VecRecommender(mode="last", **params).fit(data.train, n_items=data.n_items,
                                                           repeats_dropped=data.repeats_dropped)
    fit_s = time.perf_counter() - t0
    out: dict[str, Any] = {"fit_seconds": round(fit_s, 1)}
    for split in ("valid", "test"):
        r = evaluate(model, make_prefixes(getattr(data, split)), k=20)
        out[split] = {"hr@20": r["hr@20"], "mrr@20": r["mrr@20"], "n": r["n_predictions"]}
    return out


def _settings(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={'session' if v is None and k == 'window' else v}" for k, v in params.items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="diginetica,gowalla,movielens,online-retail")
    ap.add_argument("--minutes", default=",".join(f"{k}={v:g}" for k, v in BUDGET_MINUTES.items()),
                    help="tuning budget per dataset, NAME=MINUTES,...")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/tune-all")
    ap.add_argument("--reuse", default=None, metavar="DIR",
                    help="take the tuned settings from DIR/<name>.params.json instead of tuning (e.g. "
                    "pipelines/configs/tuned, the files of the README's table)")
    a = ap.parse_args(argv)
    budget = {k: float(v) for k, v in (s.split("=") for s in a.minutes.split(","))}
    out = Path(a.out)
    defaults = {k: Item2Vec().get_params()[k] for k in ITEM2VEC_SPACE}
    results: dict[str, Any] = {}
    for name in a.datasets.split(","):
        if name not in DATASETS:
            raise SystemExit(f"unknown dataset {name!r}; expected some of {sorted(DATASETS)}")
        data = load_dataset(name)
        pfile = (Path(a.reuse) if a.reuse else out) / f"{name}.params.json"
        if a.reuse:
            tuned = read_params(pfile, "item2vec", required=True)
            meta = json.loads(pfile.read_text())["item2vec"]["tuned"]
        else:
            res = tune_item2vec(data, timeout=budget[name] * 60, seed=a.seed, show_progress=False)
            write_params(pfile, res)
            tuned, meta = res.params, res.section()["tuned"]
        row = {"budget_minutes": budget.get(name), "tuning_seconds": meta["seconds"], "trials": meta["trials"],
               "pruned": meta["pruned"], "defaults_params": defaults, "tuned_params": tuned,
               "defaults": score_both(data, {}), "tuned": score_both(data, tuned), "params_file": str(pfile)}
        results[name] = row
        print(f"{name}: defaults test HR@20 {row['defaults']['test']['hr@20']:.4f}, tuned "
              f"{row['tuned']['test']['hr@20']:.4f} ({meta['trials']} trials, {meta['pruned']} pruned, "
              f"{meta['seconds']:.0f}s) {tuned}", flush=True)
        with atomic_file(out / "results.json") as fh:
            json.dump(results, fh, indent=2)
    lines = ["| dataset | budget | trials (pruned) | tuning s | split | defaults HR@20 | defaults MRR@20 | tuned HR@20 "
             "| tuned MRR@20 | defaults' HR loss |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        for split in ("valid", "test"):
            d, t = r["defaults"][split], r["tuned"][split]
            loss = 1 - d["hr@20"] / t["hr@20"] if t["hr@20"] else float("nan")
            lines.append(f"| {name} | {r['budget_minutes']:g} min | {r['trials']} ({r['pruned']}) | "
                         f"{r['tuning_seconds']:.0f} | {split} | {d['hr@20']:.4f} | {d['mrr@20']:.4f} | "
                         f"{t['hr@20']:.4f} | {t['mrr@20']:.4f} | {100 * loss:+.0f} % |")
    lines += ["", f"defaults (Item2Vec() at run time): {_settings(defaults)}", ""]
    lines += [f"- {name}: {_settings(r['tuned_params'])}" for name, r in results.items()]
    table = "\n".join(lines) + "\n"
    with atomic_file(out / "table.md") as fh:
        fh.write(table)  # type: ignore[attr-defined]
    print("\n" + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
