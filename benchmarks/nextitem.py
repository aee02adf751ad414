"""The BiLSTM next-item model on CPU: training and inference throughput, and what changes them.

One stated configuration (:data:`CONFIG`: random init, 64-d items, hidden 64 per
direction, prefix cap 10, full softmax) on the synthetic sessions of the
``eval`` section (:func:`benchmarks.evaluation.data`, 10,000 items). Three
tables, each measured alternating within one run, medians of ``repeats``:

1. training examples/s of :class:`item2vec.nextitem.Trainer` (the library's own
   loop, one epoch, no validation) for torch thread counts x batch sizes;
2. ``torch.compile`` against eager on the raw training step and the inference
   forward, batch 256, one thread, after warm-up (compile time reported apart);
3. inference: top-20 predictions/s of ``NextItemRecommender.recommend_batch`` (scores
   over the whole catalogue under ``torch.inference_mode``, then the top 20), one
   request of ``batch`` prefixes at a time, for batch sizes x threads.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from benchmarks._common import Table, progress

#: The stated configuration (NextItemConfig / TrainConfig fields).
CONFIG: dict[str, Any] = {"embedding_dim": 64, "hidden_size": 64, "max_prefix": 10, "dropout": 0.25,
                          "loss": "full", "lr": 3e-3}


def _model(n_items: int, seed: int = 0) -> Any:
    import torch

    from item2vec.nextitem import NextItemConfig, NextItemModel

    torch.manual_seed(seed)
    keys = ("embedding_dim", "hidden_size", "max_prefix", "dropout", "loss")
    return NextItemModel(NextItemConfig(n_items=n_items, **{k: CONFIG[k] for k in keys}))


def _train_table(examples: Any, n_items: int, threads: tuple[int, ...], batches: tuple[int, ...],
                 repeats: int) -> Table:
    from item2vec.nextitem import Trainer

    table = Table(
        f"BiLSTM training, examples/s ({len(examples):,} examples, 1 epoch, medians of {repeats})",
        ["torch threads", "batch", "examples/s", "vs 1 thread, batch 256"],
        note="The library's Trainer (Adam, clipping at 5, no validation); random init.",
    )
    res: dict[tuple[int, int], list[float]] = {(t, b): [] for t in threads for b in batches}
    for r in range(repeats):
        for t in threads:
            for b in batches:
                progress(f"nextitem: training, {t} thread(s), batch {b}, run {r + 1}/{repeats}")
                trainer = Trainer(epochs=1, batch_size=b, lr=CONFIG["lr"], num_threads=t,
                                  show_progress=False, device="cpu", random_state=r)
                res[(t, b)].append(trainer.fit(_model(n_items), examples).examples_per_second)
    med = {key: float(np.median(v)) for key, v in res.items()}
    base = med.get((1, 256), next(iter(med.values())))
    for (t, b), v in med.items():
        table.add(t, b, v, v / base)
    return table


def _compile_table(examples: Any, n_items: int, steps: int, repeats: int) -> Table:
    import torch

    torch.set_num_threads(1)
    b = 256
    idx = np.arange(b)
    items, lengths, targets = examples.batch(idx, torch.device("cpu"))
    table = Table(
        f"torch.compile against eager, batch {b}, 1 thread ({steps} steps, medians of {repeats})",
        ["mode", "train examples/s", "inference predictions/s", "compile s (train + inference)"],
        note="compile: torch.compile(model), default mode; Dynamo breaks the graph at "
        "pack_padded_sequence (skipped by design), so only the pieces around the LSTM compile.",
    )
    eager = _model(n_items)
    compiled_src = _model(n_items)
    compiled_src.load_state_dict(eager.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = torch.compile(compiled_src)
    models = {"eager": eager, "torch.compile": compiled}
    opts = {k: torch.optim.Adam(m.parameters(), lr=CONFIG["lr"]) for k, m in models.items()}

    def train_steps(name: str, n: int) -> float:
        m, opt = models[name], opts[name]
        m.train()
        t0 = time.perf_counter()
        for _ in range(n):
            _, loss = m(items, lengths, targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return time.perf_counter() - t0

    def infer_steps(name: str, n: int) -> float:
        m = models[name]
        m.eval()
        t0 = time.perf_counter()
        with torch.inference_mode():
            for _ in range(n):
                m(items, lengths)
        return time.perf_counter() - t0

    compile_s = {"eager": 0.0}
    progress("nextitem: compiling (train step, then inference)")
    compile_s["torch.compile"] = train_steps("torch.compile", 1) + infer_steps("torch.compile", 1)
    for name in models:  # warm-up
        train_steps(name, 3)
        infer_steps(name, 3)
    tr: dict[str, list[float]] = {k: [] for k in models}
    inf: dict[str, list[float]] = {k: [] for k in models}
    for r in range(repeats):
        for name in models:
            progress(f"nextitem: {name}, run {r + 1}/{repeats}")
            tr[name].append(steps * b / train_steps(name, steps))
            inf[name].append(steps * b / infer_steps(name, steps))
    for name in models:
        table.add(name, float(np.median(tr[name])), float(np.median(inf[name])), compile_s[name])
    return table


def _inference_table(train: list[np.ndarray], test: list[np.ndarray], n_items: int,
                     threads: tuple[int, ...], batches: tuple[int, ...], n_predictions: int,
                     repeats: int) -> Table:
    import torch

    from item2vec.evaluation import make_prefixes
    from item2vec.nextitem import NextItemRecommender

    rec = NextItemRecommender(init="random", valid_fraction=0.0, epochs=1, show_progress=False,
                              device="cpu", num_threads=1, max_train=5000, **CONFIG)
    rec.fit(train, n_items)
    prefixes = make_prefixes(test).prefixes[:n_predictions]
    table = Table(
        f"BiLSTM inference, top-20 predictions/s over {n_items:,} items (medians of {repeats})",
        ["torch threads", "batch", "predictions", "predictions/s", "vs batch 1, 1 thread"],
        note="recommend_batch(prefixes, k=20) per request of `batch` prefixes: scores over the whole "
        "catalogue under torch.inference_mode, then the top 20; batch 1 is a serving loop of single "
        "prefixes (on fewer prefixes).",
    )
    res: dict[tuple[int, int], list[float]] = {(t, b): [] for t in threads for b in batches}
    n_of = {b: min(len(prefixes), 300 if b == 1 else len(prefixes)) for b in batches}
    before = torch.get_num_threads()
    try:
        for r in range(repeats):
            for t in threads:
                torch.set_num_threads(t)
                for b in batches:
                    progress(f"nextitem: inference, {t} thread(s), batch {b}, run {r + 1}/{repeats}")
                    ps = prefixes[: n_of[b]]
                    t0 = time.perf_counter()
                    for start in range(0, len(ps), b):  # one request of b prefixes at a time
                        rec.recommend_batch(ps[start : start + b], k=20)
                    res[(t, b)].append(len(ps) / (time.perf_counter() - t0))
    finally:
        torch.set_num_threads(before)
    med = {key: float(np.median(v)) for key, v in res.items()}
    base = med.get((1, 1), next(iter(med.values())))
    for (t, b), v in med.items():
        table.add(t, b, n_of[b], v, v / base)
    return table


def run(
    n_sessions: int = 20_000,
    threads: tuple[int, ...] = (1, 2),
    train_batches: tuple[int, ...] = (64, 256, 1024),
    infer_batches: tuple[int, ...] = (1, 64, 512, 2048),
    n_train: int = 30_000,
    n_predictions: int = 10_000,
    compile_steps: int = 40,
    repeats: int = 3,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Print the three BiLSTM tables; return them as dicts."""
    from benchmarks.evaluation import data
    from item2vec.nextitem import make_examples

    train, test, n_items = data(n_sessions, seed)
    examples = make_examples(train, CONFIG["max_prefix"])
    rng = np.random.default_rng(seed)
    if len(examples) > n_train:
        examples = examples.subset(np.sort(rng.choice(len(examples), n_train, replace=False)))
    progress(f"nextitem: {n_items:,} items, {len(examples):,} training examples")
    tables = [
        _train_table(examples, n_items, threads, train_batches, repeats),
        _compile_table(examples, n_items, compile_steps, repeats),
        _inference_table(train, test, n_items, threads, infer_batches, n_predictions, repeats),
    ]
    for t in tables:
        t.print()
    return [t.to_dict() for t in tables]


if __name__ == "__main__":
    run(n_sessions=5000, n_train=5000, n_predictions=1000, compile_steps=10, repeats=1)
