"""Next-item results tables: the BiLSTM (item2vec-init fine-tuned / frozen, random init) against baselines.

One table per dataset: bilstm variants against pop, markov, sknn, implicit and
item2vec (last-item neighbours), all on the same test prefixes (every prefix of
every test session, the whole catalogue ranked). Item2vec is fitted once per
dataset (:data:`ITEM2VEC` settings, on the training split) and shared by the
item2vec row and the item2vec-initialised BiLSTMs; its fit time is reported on the
item2vec row and not added to the BiLSTM rows. With ``--seeds`` each BiLSTM row is
a mean over training seeds, and a paired bootstrap compares the fine-tuned BiLSTM
with the best baseline and with random init. NEXTITEM.md has the tables.

Run from the repository root (one torch thread; on 2 quiet cores Diginetica takes
~2 minutes with 5 seeds, MovieLens ~6 with 3, Online Retail ~2 hours with 3)::

    nice .venv/bin/python -m benchmarks.nextitem_tables --datasets diginetica --seeds 0,1,2,3,4 \\
        --cache runs/i2v-cache --json runs/final-dig.json

    # one dataset, only the BiLSTM, with other settings
    nice .venv/bin/python -m benchmarks.nextitem_tables --datasets movielens --only bilstm \\
        --set hidden_size=128 --set lr=0.005

    # rows split over runs (e.g. two processes), printed as one table
    nice .venv/bin/python -m benchmarks.nextitem_tables --merge runs/a.json runs/b.json

    # CPU training throughput and peak memory for one configuration (separate process)
    nice .venv/bin/python -m benchmarks.nextitem_tables --throughput --threads 1

    # two logs prepared both ways (consecutive repeats dropped / kept), the fine-tuned BiLSTM only;
    # with repeats kept, a "last item masked" row shows the BiLSTM trained and ranked as if they were dropped
    nice .venv/bin/python -m benchmarks.nextitem_tables --datasets diginetica,gowalla --repeats both \\
        --set 'variants=["bilstm (item2vec, fine-tuned)"]' --json runs/repeats.json

Every model is told whether the data had its consecutive repeats dropped
(``SessionData.repeats_dropped``): only then is a prefix's last item never recommended.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks._common import peak_rss_mb
from item2vec.blend import Blend
from item2vec.data import SessionData
from item2vec.embeddings import Item2Vec, ItemEmbeddings
from item2vec.evaluation import (
    make_prefixes,
    metrics_from_ranks,
    paired_bootstrap,
    prediction_ranks,
    reciprocal_ranks,
)
from item2vec.nextitem import NextItemRecommender, make_examples
from item2vec.recommenders import Item2VecRecommender
from pipelines.datasets import DATASETS as ALL_DATASETS
from pipelines.datasets import ROOT, load_dataset

#: The datasets of the tables, prepared as in pipelines/datasets.py (the choices and why are there).
DATASETS: dict[str, dict[str, Any]] = {k: ALL_DATASETS[k] for k in ("diginetica", "online-retail", "movielens")}

#: BiLSTM base settings: every training prefix, early stopping on the whole validation
#: split with patience 3 (``benchmarks.nextitem_search`` starts from these).
BILSTM: dict[str, Any] = {
    "hidden_size": 64,
    "dropout": 0.25,
    "max_prefix": 10,
    "lr": 3e-3,
    "batch_size": 256,
    "epochs": 30,
    "patience": 3,
    "max_valid": None,
    "max_train": None,
}

#: Epoch caps per dataset (Online Retail: 318k prefixes, ~46 s an epoch on one core; with
#: a cap of 15 the fine-tuned model kept its last or next-to-last epoch on all 3 seeds, i.e.
#: it was still improving on validation, so the cap is 30 as elsewhere).
BUDGET: dict[str, dict[str, Any]] = {
    "diginetica": {"epochs": 40},
    "movielens": {"epochs": 30},
    "online-retail": {"epochs": 30},
}

#: Per dataset, the single change of BILSTM with the best mean validation MRR@20 in the
#: one-at-a-time search for the item2vec-initialised, fine-tuned BiLSTM
#: (``python -m benchmarks.nextitem_search --oat``; NEXTITEM.md has the search tables).
#: It applies to all three variants of the table, so that the init is the only difference
#: (and the table's width: see RANDOM_WIDE).
CHOSEN: dict[str, dict[str, Any]] = {
    "diginetica": {"lr": 5e-3},
    "movielens": {"residual_last": True},
    "online-retail": {"residual_last": True},
}

#: The same search for the random-init BiLSTM, so that random init is also shown with
#: settings chosen for it (not run on Online Retail: hours of CPU). On MovieLens it chose
#: the same change as item2vec init, so the "random init" row is already its own choice.
RANDOM_CHOSEN: dict[str, dict[str, Any]] = {
    "diginetica": {"residual_last": True},
    "movielens": {"residual_last": True},
}

#: Item2vec settings per dataset (on top of the library defaults), chosen on the validation
#: split's last-item recommender. Diginetica: 50 epochs, sample=0, negative=10 (valid HR@20
#: 0.53). MovieLens: the best configuration of ``pipelines.tune`` there (32-d, sample=1e-4,
#: 20 negatives; valid HR@20 0.095 / MRR@20 0.031 against 0.052 / 0.016 with the defaults).
#: Online Retail: the defaults (a longer fit costs minutes). The same vectors serve the
#: item2vec row and the BiLSTM init. The tables were made at 128 dimensions, the library's
#: default then (32 since the defaults study of #14): ``vector_size`` is pinned so they reproduce.
ITEM2VEC: dict[str, dict[str, Any]] = {
    "diginetica": {"sample": 0.0, "epochs": 50, "negative": 10, "vector_size": 128},
    "movielens": {"window": 5, "ns_exponent": 1.0, "sample": 1e-4, "epochs": 40, "vector_size": 32,
                  "negative": 20},
    "online-retail": {"vector_size": 128},
}

#: Where the BiLSTM's init is better served by other item2vec settings than the item2vec
#: row's, chosen by the BiLSTM's own validation MRR@20. MovieLens: the base fine-tuned
#: BiLSTM reached 0.0304 ± 0.0012 from 128-d vectors (library defaults, sample=0, 30 epochs)
#: against 0.0265 ± 0.0002 from the 32-d vectors that are best for the item2vec row (2 seeds).
INIT_ITEM2VEC: dict[str, dict[str, Any]] = {
    "movielens": {"sample": 0.0, "epochs": 30, "vector_size": 128},
}

VARIANTS = {
    "bilstm (item2vec, fine-tuned)": {"init": "item2vec", "freeze": False},
    "bilstm (item2vec, frozen)": {"init": "item2vec", "freeze": True},
    "bilstm (random init)": {"init": "random"},
}
#: On data with repeats kept: the fine-tuned BiLSTM trained and ranked as if they had been
#: dropped (the prefix's last item never recommended), i.e. what a mask by default costs.
MASKED_SUFFIX = " (last item masked)"
MASKED = "bilstm (item2vec, fine-tuned, last item masked)"
#: The fine-tuned BiLSTM blended with baseline rows (:class:`item2vec.blend.Blend`, weights on a
#: 0.1 grid chosen per seed by validation MRR@20; the BiLSTM alone is on the grid), and the same
#: blend with the random-init BiLSTM, so that the init is compared inside the blend too. Which
#: rows: ``--set 'blend_with=["sknn", "markov", "item2vec"]'`` (default :data:`BLEND_WITH`).
BLEND_WITH = ("sknn", "markov")


def blend_label(part: str, others: Sequence[str]) -> str:
    """``blend (bilstm item2vec + sknn + markov)`` for the fine-tuned BiLSTM and ``others``."""
    return f"blend (bilstm {'item2vec' if part == MAIN else 'random init'} + {' + '.join(others)})"
#: The row for random init with its own chosen settings (RANDOM_CHOSEN).
RANDOM_OWN = "bilstm (random init, own search)"
#: Random init with a table as wide as the item2vec vectors (the item2vec-initialised
#: table takes their width, 128 by default; random init's default is 64), so that the
#: init is the only difference. Skipped where the widths already match.
RANDOM_WIDE = "bilstm (random init, item2vec's width)"


def load(name: str, keep_repeats: bool = False) -> SessionData:
    return load_dataset(name, ROOT, keep_repeats=keep_repeats)


def _progress(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


def _parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for it in items:
        key, _, raw = it.partition("=")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def item2vec_vectors(
    name: str, data: SessionData, seed: int, cache: Path | None, init: bool = False
) -> tuple[ItemEmbeddings, float]:
    """The dataset's item2vec vectors (:data:`ITEM2VEC` settings, or with ``init`` those of
    :data:`INIT_ITEM2VEC` where it has the dataset) and their fit seconds, cached when asked."""
    settings = INIT_ITEM2VEC[name] if init and name in INIT_ITEM2VEC else ITEM2VEC.get(name, {})
    i2v_params = {"random_state": seed, **settings}
    prep = "" if data.repeats_dropped else "-repeats-kept"
    key = cache / f"{name}{prep}-{json.dumps(i2v_params, sort_keys=True)}" if cache else None
    if key is not None and (key / "meta.json").exists():
        emb = ItemEmbeddings.load(key)
        _progress(f"{name}: item2vec vectors from the cache {key}")
        return emb, float(emb.metadata["fit_seconds"])
    t = time.perf_counter()
    emb = Item2Vec(show_progress=False, **i2v_params).fit(data.decode(data.train)).embeddings_
    i2v_s = time.perf_counter() - t
    if key is not None:
        emb.metadata["fit_seconds"] = i2v_s
        emb.save(key)
    return emb, i2v_s


#: The BiLSTM row compared (paired bootstrap) with the best baseline and with random init.
MAIN = "bilstm (item2vec, fine-tuned)"
BASELINE_ROWS = ("pop", "markov", "sknn", "implicit", "item2vec")
BLEND_PARTS = (MAIN, "bilstm (random init)")  # the BiLSTM rows that are blended


def run_dataset(
    name: str, only: str | None, overrides: dict[str, Any], seed: int, cache: Path | None = None,
    seeds: tuple[int, ...] | None = None, keep_repeats: bool = False,
) -> dict[str, Any]:
    """One dataset's table. BiLSTM rows are means over ``seeds`` (training seeds; the
    item2vec vectors are fitted once, with ``seed``); every row keeps its per-prediction
    reciprocal ranks and hits (averaged over seeds) for the paired comparisons.
    ``keep_repeats`` prepares the log with consecutive repeats kept and adds the
    :data:`MASKED` row."""
    seeds = seeds or (seed,)
    t0 = time.perf_counter()
    data = load(name, keep_repeats)
    pre = make_prefixes(data.test)
    repeats = np.array([p[-1] == t for p, t in zip(pre.prefixes, pre.targets, strict=True)])
    label_ds = f"{name} (repeats kept)" if keep_repeats else name
    _progress(f"{label_ds}: {data.n_items} items, {len(data.train)} train sessions, {len(pre)} test predictions, "
              f"{repeats.mean():.1%} repeat the last item ({time.perf_counter() - t0:.1f}s)")
    rows: dict[str, dict[str, Any]] = {}
    per_pred: dict[str, dict[str, np.ndarray]] = {}
    fitted: dict[str, list[Any]] = {}  # label -> fitted model per seed (the blends' parts)

    def record(label: str, runs: list[tuple[Any, float, str]]) -> None:
        """``runs``: (fitted model, fit seconds, epochs kept/run) per seed."""
        ranks = [prediction_ranks(model, pre, k=20) for model, _, _ in runs]
        ms = [metrics_from_ranks(r, 20) for r in ranks]
        res: dict[str, Any] = {m: float(np.mean([x[m] for x in ms])) for m in ms[0]}
        if len(runs) > 1:
            res.update({f"{m}_std": float(np.std([x[m] for x in ms])) for m in ms[0]})
            res["per_seed"] = ms
        res.update(n_predictions=len(pre), fit_seconds=round(float(np.mean([f for _, f, _ in runs])), 2),
                   epochs=", ".join(e for _, _, e in runs if e), seeds=len(runs))
        rows[label] = res
        per_pred[label] = {"rr": np.mean([reciprocal_ranks(r) for r in ranks], axis=0),
                           "hit": np.mean([(r > 0).astype(float) for r in ranks], axis=0)}
        _progress(f"{label_ds}: {label:32s} HR@20 {res['hr@20']:.4f} MRR@20 {res['mrr@20']:.4f} "
                  f"fit {res['fit_seconds']:.1f}s {res['epochs']}")

    if only in (None, "baselines"):
        from item2vec.baselines import BASELINES

        for b in ("pop", "markov", "sknn", "implicit"):
            t = time.perf_counter()
            model = BASELINES[b]().fit(data.train, n_items=data.n_items, repeats_dropped=data.repeats_dropped)
            record(b, [(model, time.perf_counter() - t, "")])
            fitted[b] = [model]
    i2v_s = None
    if only in (None, "baselines"):
        emb, i2v_s = item2vec_vectors(name, data, seed, cache)
        model = Item2VecRecommender(embeddings=emb, vocab=data.vocab).fit(
            data.train, data.n_items, repeats_dropped=data.repeats_dropped)
        record("item2vec", [(model, i2v_s, "")])
        fitted["item2vec"] = [model]
        if not data.repeats_dropped:  # each baseline as if the repeats had been dropped
            from item2vec.baselines import BASELINES

            for b in ("pop", "markov", "sknn", "implicit", "item2vec"):
                model = (Item2VecRecommender(embeddings=emb, vocab=data.vocab) if b == "item2vec" else BASELINES[b]())
                record(f"{b}{MASKED_SUFFIX}", [(model.fit(data.train, data.n_items, repeats_dropped=True), 0.0, "")])
    if only in (None, "bilstm"):
        if i2v_s is None or name in INIT_ITEM2VEC:  # not fitted yet, or other settings for the init
            emb, _ = item2vec_vectors(name, data, seed, cache, init=True)
        params = {**BILSTM, **BUDGET.get(name, {}), **CHOSEN.get(name, {}), **overrides}
        base = {**NextItemRecommender().get_params(), **BILSTM}  # every default filled in
        variants = dict(VARIANTS)
        if name in RANDOM_CHOSEN:  # its own settings instead of the item2vec init's
            variants[RANDOM_OWN] = {"init": "random", **{k: base[k] for k in CHOSEN.get(name, {})},
                                    **RANDOM_CHOSEN[name]}
        if emb.dim != params.get("embedding_dim", base["embedding_dim"]):
            variants[RANDOM_WIDE] = {"init": "random", "embedding_dim": emb.dim}
        if not data.repeats_dropped:
            variants[MASKED] = {**VARIANTS[MAIN], "repeats_dropped": True}
        settings = {label: {k: val for k, val in {**params, **v}.items()
                            if k not in ("variants", "init", "freeze", "repeats_dropped", "blend_with")}
                    for label, v in variants.items()}
        if RANDOM_OWN in settings and settings[RANDOM_OWN] == settings["bilstm (random init)"]:
            del variants[RANDOM_OWN]  # the same settings: the random-init row is its own choice already
        for label, v in variants.items():
            if "variants" in overrides and label not in overrides["variants"] and label != MASKED:
                continue
            p = settings[label]
            runs, val_mrr, eps = [], [], []
            for sd in seeds:
                t = time.perf_counter()
                model = NextItemRecommender(
                    embeddings=emb if v["init"] == "item2vec" else None, vocab=data.vocab,
                    init=v["init"], freeze=v.get("freeze", False), show_progress=False, random_state=sd, **p,
                ).fit(data.train, data.n_items, valid=data.valid,
                      repeats_dropped=v.get("repeats_dropped", data.repeats_dropped))
                r = model.train_result_
                runs.append((model, time.perf_counter() - t, f"{r.best_epoch}/{r.epochs_run}"))
                val_mrr.append(r.best_metrics.get("val_mrr@20"))
                eps.append(r.examples_per_second)
            record(label, runs)
            fitted[label] = [m for m, _, _ in runs]
            rows[label]["val_mrr@20"] = float(np.mean(val_mrr))
            rows[label]["examples_per_second"] = round(float(np.mean(eps)))
        rows["_bilstm_params"] = params
        others = tuple(overrides.get("blend_with", BLEND_WITH))
        for part in BLEND_PARTS:
            if part in fitted and all(o in fitted for o in others):
                runs = []
                for bilstm in fitted[part]:
                    t = time.perf_counter()
                    blend = Blend([bilstm, *(fitted[o][0] for o in others)], step=0.1).fit(
                        data.train, data.n_items, repeats_dropped=data.repeats_dropped, valid=data.valid)
                    label = "w " + "/".join(f"{w:.1f}" for w in blend.weights_)
                    if not data.repeats_dropped:  # the last item's factor, chosen on validation after the weights
                        label += f" x{blend.last_item_factor_:g}"
                    runs.append((blend, time.perf_counter() - t, label))
                record(blend_label(part, others), runs)
    return {
        "dataset": label_ds,
        "repeats_dropped": data.repeats_dropped,
        "repeat_share": float(repeats.mean()),
        "n_items": data.n_items,
        "train_sessions": len(data.train),
        "train_examples": sum(len(s) - 1 for s in data.train),
        "valid_predictions": sum(len(s) - 1 for s in data.valid),
        "test_predictions": len(pre),
        "item2vec_seconds": None if i2v_s is None else round(i2v_s, 2),
        "rows": rows,
        "comparisons": compare(rows, per_pred),
        # per test prediction (seed-averaged), so that --merge can compare rows of separate runs
        "per_prediction": {label: {k: np.round(v, 6).tolist() for k, v in pp.items()}
                           for label, pp in per_pred.items()},
    }


def compare(rows: dict[str, dict[str, Any]], per_pred: dict[str, dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    """Paired bootstrap of :data:`MAIN` against the best baseline (per metric), the random-init rows and :data:`MASKED`."""
    out: list[dict[str, Any]] = []
    if MAIN not in per_pred:
        return out
    for metric, key in (("mrr@20", "rr"), ("hr@20", "hit")):
        others = [b for b in BASELINE_ROWS if b in rows]
        best = [max(others, key=lambda b: rows[b][metric])] if others else []
        rivals = best + [v for v in ("bilstm (random init)", RANDOM_OWN, RANDOM_WIDE, MASKED) if v in per_pred]
        for rival in rivals:
            res = paired_bootstrap(per_pred[MAIN][key], per_pred[rival][key])
            out.append({"metric": metric, "row": MAIN, "against": rival, **res})
        # each blend against the best baseline and against the same blend with random init
        for blend in [b for b in per_pred if b.startswith("blend (bilstm item2vec + ")]:
            twin = blend.replace("bilstm item2vec", "bilstm random init")
            for rival in best + [v for v in (twin,) if v in per_pred]:
                res = paired_bootstrap(per_pred[blend][key], per_pred[rival][key])
                out.append({"metric": metric, "row": blend, "against": rival, **res})
    return out


def markdown(result: dict[str, Any]) -> str:
    r = result

    def cell(m: dict[str, Any], key: str) -> str:
        return f"{m[key]:.4f}" + (f" ± {m[key + '_std']:.4f}" if key + "_std" in m else "")

    lines = [
        f"### {r['dataset']}",
        "",
        f"{r['n_items']:,} items; {r['train_sessions']:,} training sessions ({r['train_examples']:,} prefixes); "
        f"{r['valid_predictions']:,} validation and {r['test_predictions']:,} test predictions"
        + (f", {r['repeat_share']:.1%} of which repeat the prefix's last item." if "repeat_share" in r else "."),
        "",
        "| model | HR@20 | MRR@20 | NDCG@20 | train s | epochs (kept/run) |",
        "|---|---|---|---|---|---|",
    ]
    for label, m in r["rows"].items():
        if label.startswith("_"):
            continue
        seeds = f" ({m['seeds']} seeds)" if m.get("seeds", 1) > 1 else ""
        lines.append(
            f"| {label}{seeds} | {cell(m, 'hr@20')} | {cell(m, 'mrr@20')} | {cell(m, 'ndcg@20')} | "
            f"{m['fit_seconds']:.1f} | {m.get('epochs') or ''} |"
        )
    if r.get("comparisons"):
        lines += ["", "Paired bootstrap over the test predictions (10,000 resamples), the row minus the rival:", "",
                  "| metric | row | against | difference | 95% interval | resamples not better |",
                  "|---|---|---|---|---|---|"]
        for c in r["comparisons"]:
            lines.append(f"| {c['metric']} | {c.get('row', MAIN)} | {c['against']} | {c['diff']:+.4f} | "
                         f"[{c['lo']:+.4f}, {c['hi']:+.4f}] | {c['p_le_0']:.3f} |")
    return "\n".join(lines)


def merge(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Results of several runs (their ``--json`` lists) as one result per dataset.

    Rows are taken in run order (the first run that has a row gives it), with their
    per-prediction results where the runs kept them; the paired comparisons are
    recomputed over the merged rows when those are there for :data:`MAIN`, else taken
    from the first run that has any. The runs must share the test predictions.
    """
    out: dict[str, dict[str, Any]] = {}
    for results in runs:
        for r in results:
            cur = out.setdefault(r["dataset"], {**r, "rows": {}, "comparisons": [], "per_prediction": {}})
            if r["test_predictions"] != cur["test_predictions"]:
                raise ValueError(f"{r['dataset']}: runs with {cur['test_predictions']} and "
                                 f"{r['test_predictions']} test predictions cannot be merged")
            for label, row in r["rows"].items():
                if label not in cur["rows"]:
                    cur["rows"][label] = row
                    if label in (r.get("per_prediction") or {}):
                        cur["per_prediction"][label] = r["per_prediction"][label]
            if not cur["comparisons"]:
                cur["comparisons"] = r.get("comparisons") or []
    base_rows = ("pop", "markov", "sknn", "implicit", "item2vec")
    order = (*base_rows, *(b + MASKED_SUFFIX for b in base_rows), *VARIANTS, RANDOM_OWN, RANDOM_WIDE, MASKED,
             *(blend_label(p, BLEND_WITH) for p in BLEND_PARTS))
    for r in out.values():
        r["rows"] = {k: r["rows"][k] for k in sorted(r["rows"], key=lambda k: order.index(k) if k in order else 99)}
        pp = {label: {k: np.asarray(v) for k, v in d.items()} for label, d in r["per_prediction"].items()}
        if MAIN in pp and len(pp) > 1:
            r["comparisons"] = compare({k: v for k, v in r["rows"].items() if k in pp}, pp)
    return list(out.values())


def throughput(threads: int, n_examples: int = 20000) -> dict[str, Any]:
    """Training examples/s and peak RSS: online-retail, default BiLSTM settings, random init."""
    data = load("online-retail")
    ex = make_examples(data.train, BILSTM["max_prefix"])
    rss0 = peak_rss_mb()
    params = {**BILSTM, "epochs": 1, "max_train": n_examples, "num_threads": threads, "device": "cpu"}
    model = NextItemRecommender(init="random", vocab=data.vocab, valid_fraction=0.0, show_progress=False, **params)
    t = time.perf_counter()
    model.fit(data.train, data.n_items)
    secs = time.perf_counter() - t
    rss1 = peak_rss_mb()
    return {
        "threads": threads,
        "config": {k: v for k, v in model.get_params().items()},
        "n_items": data.n_items,
        "examples": n_examples,
        "all_train_examples": len(ex),
        "seconds": round(secs, 2),
        "examples_per_second": round(model.train_result_.examples_per_second),
        "peak_rss_mib": round(rss1),
        "rss_before_training_mib": round(rss0),
        "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--only", choices=["baselines", "bilstm"], default=None)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="BiLSTM option override (JSON values), e.g. hidden_size=64; variants=[...] picks rows")
    ap.add_argument("--seed", type=int, default=0, help="seed of the item2vec fit (and of the BiLSTM without --seeds)")
    ap.add_argument("--seeds", default=None, help="comma-separated BiLSTM training seeds; rows are their means")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is steadiest on shared cores)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--cache", default=None, help="keep fitted item2vec vectors here and reuse them")
    ap.add_argument("--repeats", choices=["dropped", "kept", "both"], default="dropped",
                    help="prepare each log with consecutive repeats dropped (the default), kept, or both ways")
    ap.add_argument("--throughput", action="store_true", help="measure training throughput and peak memory only")
    ap.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                    help="print one table per dataset from --json files of runs that split the rows")
    a = ap.parse_args(argv)
    if a.merge:
        for res in merge([json.loads(Path(f).read_text()) for f in a.merge]):
            print(markdown(res) + "\n")
        return 0
    torch.set_num_threads(a.threads)
    if not ROOT.is_dir():
        print(f"no shared datasets at {ROOT}", file=sys.stderr)
        return 1
    if a.throughput:
        print(json.dumps(throughput(a.threads), indent=2))
        return 0
    results = []
    ways = {"dropped": (False,), "kept": (True,), "both": (False, True)}[a.repeats]
    for name in [d.strip() for d in a.datasets.split(",") if d.strip()]:
        seeds = tuple(int(x) for x in a.seeds.split(",")) if a.seeds else None
        for keep in ways:
            res = run_dataset(name, a.only, _parse_set(a.set), a.seed, Path(a.cache) if a.cache else None, seeds,
                              keep_repeats=keep)
            results.append(res)
            print(markdown(res) + "\n", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
