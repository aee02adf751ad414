"""Do item2vec's defaults hold without tuning? Old defaults vs new defaults vs tuned, per shared log.

For each log: the statistics of its training split that the defaults are judged
against (:func:`log_stats`), then test HR@20 / MRR@20 of the last-item
recommender with the previous defaults (:data:`OLD_DEFAULTS`), with today's
(``Item2VecConfig()``, data-derived values resolved on the training split) and
with the configuration tuned on that log's validation split. The goal (issue
#14): new defaults reach at least 0.85 of the tuned test HR@20 on every log.

    python -m pipelines.defaults --out runs/defaults.json
    python -m pipelines.defaults --tuned runs/tune.json        # tuned configurations of a pipelines.tune run
    python -m pipelines.defaults --datasets amazon-videogames --search 4   # 4 random draws more

The tuned configurations of the four logs the defaults were chosen on are
:data:`TUNED` (the ``pipelines.tune`` run in the README) unless ``--tuned`` names
a ``pipelines.tune`` output. A log without one (Amazon, held out) gets a small
search here: :func:`candidates`, then ``--search`` of ``pipelines.tune``'s random
draws, scored on validation MRR@20, the best taken to test.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from item2vec._io import atomic_file
from item2vec.embeddings import Item2VecConfig
from pipelines.datasets import DATASETS, load_dataset
from pipelines.tune import SPACE, WHOLE_SESSION, sample_configs, score

#: The library's defaults before this change (chosen by ``pipelines.tune`` across four logs).
OLD_DEFAULTS: dict[str, Any] = {
    "window": 5, "ns_exponent": 1.0, "sample": 1e-3, "epochs": 40, "vector_size": 128, "negative": 10,
}

#: What ``python -m pipelines.tune --trials 16 --trials-for online-retail=8`` chose on validation (README).
TUNED: dict[str, dict[str, Any]] = {
    "diginetica": {"window": 5, "ns_exponent": 1.0, "sample": 1e-3, "epochs": 40, "vector_size": 128, "negative": 10},
    "online-retail": {"window": None, "ns_exponent": 0.75, "sample": 0.0, "epochs": 20, "vector_size": 128,
                      "negative": 10},
    "movielens": {"window": 5, "ns_exponent": 1.0, "sample": 1e-4, "epochs": 40, "vector_size": 32, "negative": 20},
    "gowalla": {"window": 5, "ns_exponent": 1.0, "sample": 1e-3, "epochs": 40, "vector_size": 128, "negative": 10},
}


def log_stats(train: list[np.ndarray]) -> dict[str, float]:
    """The statistics of a training split that a default could depend on.

    Parameters
    ----------
    train : list of int arrays
        Sessions of item indices (``SessionData.train``).

    Returns
    -------
    dict
        ``sessions``, ``items``, ``events``, ``mean_length``, ``median_length``,
        ``events_per_item``, ``median_item_count``, ``top1_share`` (share of events
        on the most popular 1 % of items) and ``max_item_share``.
    """
    lengths = np.array([len(s) for s in train])
    counts = np.sort(np.array(list(Counter(int(x) for s in train for x in s).values())))[::-1]
    events = int(counts.sum())
    return {
        "sessions": len(train), "items": len(counts), "events": events,
        "mean_length": round(float(lengths.mean()), 2), "median_length": float(np.median(lengths)),
        "events_per_item": round(events / len(counts), 1), "median_item_count": float(np.median(counts)),
        "top1_share": round(float(counts[: max(1, len(counts) // 100)].sum() / events), 3),
        "max_item_share": round(float(counts[0] / events), 4),
    }


def candidates(new: dict[str, Any]) -> list[dict[str, Any]]:
    """The small search on a log without a tuned configuration, before any random draw.

    Both defaults, the new ones at 16 and 64 dimensions, MovieLens' tuned configuration
    and ``pipelines.tune``'s gensim-like start (whole session, 64-d, 10 epochs).
    """
    return [OLD_DEFAULTS, new, {**new, "vector_size": 16}, {**new, "vector_size": 64}, TUNED["movielens"],
            WHOLE_SESSION]


def _new_defaults() -> dict[str, Any]:
    cfg = Item2VecConfig()
    return {k: getattr(cfg, k) for k in SPACE}


def main(argv: list[str] | None = None) -> int:
    """Print and write (``--out``) the statistics and the three test rows of each log; 0 on success."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--tuned", help="a pipelines.tune output (JSON) whose tables[name]['tuned'] replace TUNED")
    ap.add_argument("--search", type=int, default=0,
                    help="random configurations of pipelines.tune tried after candidates() where no tuned one is known")
    ap.add_argument("--no-search", action="store_true", help="no tuned row where no tuned configuration is known")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", default="old,new,tuned",
                    help="which test rows to fit (e.g. 'new' alone where the others are known: Online Retail's fits take minutes)")
    ap.add_argument("--out", default="runs/defaults.json")
    a = ap.parse_args(argv)
    tuned = dict(TUNED)
    if a.tuned:
        tuned.update({n: t["tuned"] for n, t in json.loads(Path(a.tuned).read_text())["tables"].items()})
    new = _new_defaults()
    out: dict[str, Any] = {}
    for name in a.datasets.split(","):
        data = load_dataset(name)
        stats = log_stats(data.train)
        print(f"\n### {name}: {stats}", flush=True)
        search: list[dict[str, Any]] = []
        if name not in tuned and not a.no_search:
            for cfg in [*candidates(new), *sample_configs(a.search + 1, a.seed)[1:]]:
                if cfg in [t["config"] for t in search]:
                    continue
                r = score(data, cfg, "valid")
                search.append({"config": cfg, **r})
                print(f"  valid mrr@20={r['mrr@20']:.4f} hr@20={r['hr@20']:.4f} fit={r['fit_seconds']:.0f}s {cfg}",
                      flush=True)
            tuned[name] = max(search, key=lambda t: t["mrr@20"])["config"]
        rows: dict[str, Any] = {}
        wanted = a.rows.split(",")
        for label, cfg in (("old defaults", OLD_DEFAULTS), ("new defaults", new), ("tuned", tuned.get(name))):
            if label.split()[0] not in wanted or cfg is None:
                continue
            t0 = time.perf_counter()
            rows[label] = {**score(data, cfg, "test"), "config": cfg}
            print(f"  {label:13s} test hr@20={rows[label]['hr@20']:.4f} mrr@20={rows[label]['mrr@20']:.4f} "
                  f"({time.perf_counter() - t0:.0f}s) {cfg}", flush=True)
        ratio = None
        if "new defaults" in rows and "tuned" in rows:
            ratio = round(rows["new defaults"]["hr@20"] / max(rows["tuned"]["hr@20"], 1e-12), 3)
        out[name] = {"stats": stats, "rows": rows, "new_over_tuned_hr@20": ratio, "search": search}
        with atomic_file(Path(a.out)) as fh:
            json.dump(out, fh, indent=2, default=str)
    print("\n| log | old HR@20 / MRR@20 | new HR@20 / MRR@20 | tuned HR@20 / MRR@20 | new / tuned HR@20 |")
    print("|---|---|---|---|---|")
    for name, r in out.items():
        cells = [f"{r['rows'][k]['hr@20']:.4f} / {r['rows'][k]['mrr@20']:.4f}" if k in r["rows"] else "not fitted"
                 for k in ("old defaults", "new defaults", "tuned")]
        ratio = "" if r["new_over_tuned_hr@20"] is None else f"{r['new_over_tuned_hr@20']:.2f}"
        print(f"| {name} | {' | '.join(cells)} | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
