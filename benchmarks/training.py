"""Training: ``Item2Vec.fit`` against a direct gensim ``Word2Vec`` call, same corpus and settings.

The corpus is :func:`item2vec.data.make_sessions` (clustered sessions, string
ids). ``Item2Vec.fit`` converts the sessions to tokens, counts them, builds the
vocabulary, trains with loss tracking and copies the vectors out; the gensim
call gets ready-made token lists. Both use the same hyperparameters (item2vec's
defaults: skip-gram, whole-session window, 5 negatives); a second gensim row adds
``compute_loss=True``, which Item2Vec turns on by default for its loss history
(``Item2Vec(compute_loss=False)`` is the like-for-like row against plain gensim). Runs
alternate and the table shows medians, in (words x epochs) per second.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks._common import Table, progress


def corpus(n_sessions: int, seed: int = 0) -> list[list[str]]:
    """Sessions as lists of string ids."""
    from item2vec.data import make_sessions

    events, _ = make_sessions(n_sessions=n_sessions, n_clusters=50, items_per_cluster=200,
                              min_length=3, max_length=12, random_state=seed)
    grouped = events.group_by("session_id", maintain_order=True).agg("item_id")
    return [list(s) for s in grouped["item_id"].to_list()]


def run(n_sessions: int = 30_000, epochs: int = 5, workers: int = 1, repeats: int = 3) -> list[dict[str, Any]]:
    """Print and return the training table."""
    from gensim.models import Word2Vec

    from item2vec.embeddings import Item2Vec, Item2VecConfig

    sessions = corpus(n_sessions)
    n_words = sum(len(s) for s in sessions)
    cfg = Item2VecConfig(epochs=epochs, workers=workers)
    window = cfg.window if cfg.window is not None else max(len(s) for s in sessions) - 1
    common = dict(vector_size=cfg.vector_size, window=window, min_count=cfg.min_count, sg=1, hs=0,
                  negative=cfg.negative, ns_exponent=cfg.ns_exponent, sample=cfg.sample, alpha=cfg.alpha,
                  min_alpha=cfg.min_alpha, seed=cfg.random_state, workers=workers,
                  shrink_windows=cfg.shrink_windows, epochs=epochs)

    def item2vec() -> None:
        Item2Vec(cfg, show_progress=False).fit(sessions)

    def gensim_plain() -> None:
        Word2Vec(sentences=sessions, **common)

    def gensim_loss() -> None:
        Word2Vec(sentences=sessions, compute_loss=True, **common)

    def item2vec_noloss() -> None:
        Item2Vec(cfg, show_progress=False, compute_loss=False).fit(sessions)

    fns = {
        "gensim Word2Vec": gensim_plain,
        "gensim Word2Vec + compute_loss": gensim_loss,
        "Item2Vec.fit": item2vec,
        "Item2Vec.fit (compute_loss=False)": item2vec_noloss,
    }
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(repeats):
        for name, fn in fns.items():
            progress(f"training: {name} run {r + 1}/{repeats}")
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    table = Table(
        f"training, {len(sessions):,} sessions / {n_words:,} events, {epochs} epochs, workers={workers} "
        f"(medians of {repeats})",
        ["trainer", "seconds", "words/s", "overhead vs gensim"],
        note=f"Same settings on both sides: vector_size={cfg.vector_size}, window={window}{' (whole session)' if cfg.window is None else ''}, "
        f"negative={cfg.negative}, sample={cfg.sample}, shrink_windows=False.",
    )
    base = float(np.median(times["gensim Word2Vec"]))
    for name, ts in times.items():
        m = float(np.median(ts))
        table.add(name, m, n_words * epochs / m, f"{(m / base - 1) * 100:+.1f}%")
    table.print()
    return [table.to_dict()]


if __name__ == "__main__":
    run(n_sessions=5000, repeats=1)
