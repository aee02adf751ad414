"""The evaluation loop's predictions per second for every model, batched and one by one.

Every model from :data:`item2vec.baselines.BASELINES` plus item2vec (last item and
mean of the prefix, :class:`item2vec.recommenders.Item2VecRecommender`) is fitted
on the same synthetic sessions (:func:`item2vec.data.make_sessions`), then
:func:`item2vec.evaluation.evaluate` ranks the whole catalogue for every test
prefix: once with ``batch_size=512`` (one ``recommend_batch`` per 512 prefixes)
and once with ``batch_size=1`` on a subset of the prefixes (a loop of single
predictions, as a naive serving loop would do).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks._common import Table, progress


def data(n_sessions: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """Train and test sessions of item indices (last 10% of sessions are test), and n_items."""
    from item2vec.data import ItemVocab, make_sessions

    events, _ = make_sessions(n_sessions=n_sessions, n_clusters=50, items_per_cluster=200,
                              min_length=3, max_length=12, random_state=seed)
    grouped = events.group_by("session_id", maintain_order=True).agg("item_id")["item_id"].to_list()
    vocab = ItemVocab(sorted({x for s in grouped for x in s}))
    sessions = [vocab.indices(s) for s in grouped]
    cut = int(0.9 * len(sessions))
    return sessions[:cut], sessions[cut:], len(vocab)


def models() -> dict[str, Any]:
    """Name -> unfitted model, for every baseline and both item2vec modes."""
    from item2vec.baselines import BASELINES
    from item2vec.recommenders import Item2VecRecommender

    out: dict[str, Any] = {name: cls() for name, cls in BASELINES.items()}
    out["item2vec"] = Item2VecRecommender(mode="last", epochs=5, workers=1)
    out["item2vec-mean"] = Item2VecRecommender(mode="mean", epochs=5, workers=1)
    return out


def run(n_sessions: int = 20_000, n_single: int = 500, repeats: int = 1) -> list[dict[str, Any]]:
    """Print and return the evaluation-throughput table."""
    from item2vec.evaluation import Prefixes, evaluate, make_prefixes

    train, test, n_items = data(n_sessions)
    pre = make_prefixes(test)
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(pre), size=min(n_single, len(pre)), replace=False))
    sub = Prefixes([pre.prefixes[i] for i in pick], pre.targets[pick])
    table = Table(
        f"evaluation loop, {n_items:,} items, {len(pre):,} test predictions (batched), "
        f"{len(sub):,} (single)",
        ["model", "fit s", "batched pred/s", "single pred/s", "batched/single", "hr@20"],
        note="`evaluate(model, prefixes, k=20, batch_size=512)` against `batch_size=1` "
        f"on a random subset; medians of {repeats}.",
    )
    for name, model in models().items():
        progress(f"evaluation: {name}")
        fit = evaluate_fit(model, train, n_items)
        b, s, hr = [], [], 0.0
        for _ in range(repeats):
            res = evaluate(model, pre, k=20, batch_size=512)
            b.append(res["predictions_per_second"])
            hr = res["hr@20"]
            s.append(evaluate(model, sub, k=20, batch_size=1)["predictions_per_second"])
        bm, sm = float(np.median(b)), float(np.median(s))
        table.add(name, fit, bm, sm, bm / sm, hr)
    table.print()
    return [table.to_dict()]


def evaluate_fit(model: Any, train: list[np.ndarray], n_items: int) -> float:
    """Fit and return the seconds it took."""
    import time

    t0 = time.perf_counter()
    model.fit(train, n_items=n_items)
    return time.perf_counter() - t0


if __name__ == "__main__":
    run(n_sessions=5000, n_single=200)
