"""``item2vec train-next``: train the BiLSTM next-item model on prepared data.

``item2vec evaluate --models ...,bilstm --next-model DIR`` loads the result with
:func:`item2vec.nextitem.recommender.load_next_model`.
"""

from __future__ import annotations

import argparse
from typing import Any

from item2vec.cli._common import (
    engine_parent,
    log_dataset,
    mlflow_run,
    spark_session,
    tracking_parent,
)

__all__ = ["add_parser", "cmd_train_next"]


def add_parser(sub: Any) -> None:
    """Register ``train-next`` on ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "train-next",
        help="train the BiLSTM next-item model (item2vec-initialised or random)",
        description="Train the BiLSTM next-item model on a prepared-data directory, early-stopping "
        "on validation MRR@20, and write a checkpoint directory.",
        parents=[tracking_parent(), engine_parent()],
    )
    p.add_argument("--data", required=True, help="prepared-data directory (item2vec prepare)")
    p.add_argument("--embeddings", default=None,
                   help="item2vec model directory (item2vec fit); default: fit item2vec on the training split")
    p.add_argument("--init", choices=["item2vec", "random"], default="item2vec", help="item table initialisation")
    p.add_argument("--freeze", action="store_true", help="keep the item2vec vectors fixed")
    p.add_argument("--out", required=True,
                   help="checkpoint directory (written atomically; an older checkpoint there is replaced)")
    p.add_argument("--overwrite", action="store_true", help="replace --out even when it is not a checkpoint directory")
    g = p.add_argument_group("model (defaults: item2vec.nextitem.NextItemConfig)")
    g.add_argument("--hidden-size", type=int)
    g.add_argument("--num-layers", type=int)
    g.add_argument("--embedding-dim", type=int, help="random init: table width; item2vec init: projection width")
    g.add_argument("--pooling", choices=["last", "mean", "attention"])
    g.add_argument("--untied", action="store_true", help="a separate output item table")
    g.add_argument("--residual-last", action="store_true",
                   help="add the last item's vector to the session vector (chosen on MovieLens and Online Retail)")
    g.add_argument("--dropout", type=float)
    g.add_argument("--max-prefix", type=int, help="read only the last N items of a prefix")
    g.add_argument("--loss", choices=["full", "sampled"], help="full softmax, or in-batch negatives for huge catalogues")
    g.add_argument("--n-negatives", type=int, help="extra uniform negatives for --loss sampled")
    t = p.add_argument_group("training (defaults: item2vec.nextitem.TrainConfig)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--clip-norm", type=float)
    t.add_argument("--patience", type=int)
    t.add_argument("--lr-decay", type=float, help="multiply the learning rate by this after an epoch without progress")
    t.add_argument("--max-train", type=int, help="sample this many training prefixes")
    t.add_argument("--max-valid", type=int, help="sample this many validation prefixes")
    t.add_argument("--seed", type=int, dest="random_state")
    t.add_argument("--processes", type=_positive_int, default=None, metavar="N",
                   help="data-parallel training processes (torch.distributed; with --engine spark launched by "
                   "Spark's TorchDistributor on the driver); default 1")
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: $ITEM2VEC_DEVICE, else CUDA if present)")
    p.add_argument("--params", default=None, metavar="FILE",
                   help="params file (item2vec tune): its bilstm values, and its item2vec values for the vectors "
                   "fitted here; options given here override them")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train_next)


_PARAMS = (
    "hidden_size", "num_layers", "embedding_dim", "pooling", "dropout", "max_prefix", "loss", "n_negatives",
    "epochs", "batch_size", "lr", "weight_decay", "clip_norm", "patience", "lr_decay", "max_train", "max_valid",
    "random_state", "device", "processes",
)


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return n


def cmd_train_next(a: argparse.Namespace) -> int:
    """``item2vec train-next``: train the BiLSTM, save the checkpoint (``--mlflow``: log the training)."""
    from item2vec.data import SessionData
    from item2vec.embeddings import Item2Vec, ItemEmbeddings
    from item2vec.nextitem.recommender import NextItemRecommender

    with mlflow_run(a, "train-next") as tracked:
        if a.init == "random" and a.embeddings:
            raise ValueError("--embeddings is for --init item2vec; with --init random there is nothing to load")
        if a.freeze and a.init == "random":
            raise ValueError("--freeze needs --init item2vec: there is nothing to keep fixed in a random table")
        from item2vec.tuning import read_params

        tuned = read_params(a.params, "bilstm") if a.params else {}
        params: dict[str, Any] = {**tuned, **{k: getattr(a, k) for k in _PARAMS if getattr(a, k, None) is not None}}
        if a.untied:
            params["tied"] = False
        if a.residual_last:
            params["residual_last"] = True
        if a.engine == "spark" and params.get("processes", 1) > 1:
            spark_session(a)  # TorchDistributor runs on the active session's driver
            params["launcher"] = "spark"
        data = SessionData.load(a.data)
        emb = None
        if a.init == "item2vec":
            if a.embeddings:
                emb = ItemEmbeddings.load(a.embeddings)
            else:
                i2v_params = read_params(a.params, "item2vec") if a.params else {}
                i2v = Item2Vec(show_progress=not a.quiet, **i2v_params).fit(data.decode(data.train))
                emb = i2v.embeddings_
                if not a.quiet:
                    print(f"item2vec: {len(emb):,} items x {emb.dim} dims in {i2v.fit_seconds_:.1f}s")
        model = NextItemRecommender(
            embeddings=emb, vocab=data.vocab, init=a.init, freeze=a.freeze, show_progress=not a.quiet, **params
        )
        model.fit(data.train, n_items=data.n_items, valid=data.valid if data.valid else None,
                  repeats_dropped=data.repeats_dropped)
        model.save(a.out)
        r = model.train_result_
        val = ", ".join(f"{k} {v:.4f}" for k, v in r.best_metrics.items() if k.startswith("val_"))
        print(
            f"bilstm ({a.init}{', frozen' if a.freeze else ''}): kept epoch {r.best_epoch} of {r.epochs_run}"
            f"{' (' + val + ')' if val else ''}, {r.seconds:.1f}s, {r.examples_per_second:,.0f} examples/s -> {a.out}"
        )
        if tracked:
            _log_train_next(model, data)
    return 0


def _log_train_next(model: Any, data: Any) -> None:
    """The trained BiLSTM: its settings, every epoch's metrics, the kept epoch's, and its data."""
    from item2vec import tracking

    r = model.train_result_
    tracking.log_params(model.get_params(), prefix="bilstm")
    for row in r.history:
        tracking.log_metrics({k: v for k, v in row.items() if k != "epoch"}, prefix="bilstm", step=int(row["epoch"]))
    tracking.log_metrics({"best_epoch": r.best_epoch, "epochs_run": r.epochs_run, "train_seconds": r.seconds,
                          **(r.best_metrics or {})}, prefix="bilstm.best")
    log_dataset(data)
