"""``item2vec tune``: search item2vec's (or the BiLSTM's) hyperparameters on the validation split."""

from __future__ import annotations

import argparse
from typing import Any

from item2vec.cli._common import tracking_parent

__all__ = ["add_parser", "cmd_tune"]


def add_parser(sub: Any) -> None:
    """Register ``tune`` on ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "tune",
        help="tune item2vec or the BiLSTM on the validation split (Optuna); write a params file",
        description="Search hyperparameters with Optuna (TPE, pruned per epoch on validation MRR@K), choosing on "
        "the validation split only (the test split is never read), and write the chosen values as the model's "
        "section of a JSON params file that `fit --params`, `train-next --params` and retrain's "
        "`params = \"FILE\"` read.",
        parents=[tracking_parent()],
    )
    p.add_argument("--data", required=True, help="prepared-data directory (item2vec prepare) with a validation split")
    # not `out`: an existing params file is updated (the other model's section kept), anything else refused
    p.add_argument("--out", required=True, dest="params_out", metavar="FILE",
                   help="params file (JSON); an existing one gets this model's section, the other's is kept")
    p.add_argument("--model", choices=["item2vec", "bilstm"], default="item2vec", help="what to tune")
    p.add_argument("--trials", type=int, default=None, help="number of trials")
    p.add_argument("--minutes", type=float, default=None, help="time budget (a running trial finishes)")
    p.add_argument("--seed", type=int, default=0, help="sampler and training seed (default %(default)s)")
    p.add_argument("-k", type=int, default=20, help="MRR@K is the chosen metric (default %(default)s)")
    p.add_argument("--params", default=None, metavar="FILE",
                   help="with --model bilstm: the params file whose item2vec section makes the initial vectors "
                   "(default: --out when it has one, else the defaults)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_tune)


def cmd_tune(a: argparse.Namespace) -> int:
    """``item2vec tune``: run the search and write the model's section of ``--out``."""
    from pathlib import Path

    from item2vec.tuning import _check_budget, read_params, tune_bilstm, tune_item2vec, write_params

    timeout = None if a.minutes is None else a.minutes * 60
    _check_budget(a.trials, timeout)  # before reading the data
    out = Path(a.params_out)
    if out.exists():
        read_params(out, a.model)  # a params file, else a one-line refusal before minutes of search
    tracking: bool | str = a.tracking_uri or bool(a.mlflow)
    common = {"n_trials": a.trials, "timeout": timeout, "seed": a.seed, "k": a.k, "mlflow": tracking,
              "experiment": a.experiment, "show_progress": not a.quiet}
    if a.model == "item2vec":
        res = tune_item2vec(a.data, **common)
    else:
        source = a.params or (out if out.exists() else None)
        i2v = read_params(source, "item2vec") if source else {}
        res = tune_bilstm(a.data, item2vec_params=i2v, **common)
    write_params(out, res)
    metric = ", ".join(f"{k} {v:.4f}" for k, v in res.valid.items())
    print(f"{a.model}: {res.n_trials} trials ({res.n_pruned} pruned) in {res.seconds:.0f}s; "
          f"best on validation: {metric}; {res.params} -> {out}")
    if res.parent_run_id:
        print(f"mlflow: parent run {res.parent_run_id}")
    return 0
