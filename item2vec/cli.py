"""The ``item2vec`` command: prepare, fit, similar, evaluate (and more, wired in by feature modules)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


# ---------------------------------------------------------------------------
# prepare
# ---------------------------------------------------------------------------
def _add_prepare(sub: Any) -> None:
    p = sub.add_parser("prepare", help="read an event log, sessionize, filter, split by time")
    p.add_argument("--events", required=True, help="event log: a file or a folder of daily files")
    p.add_argument("--format", default="csv", help="csv, tsv, parquet, diginetica, session-rec, movielens, online-retail, gowalla, sasrec")
    p.add_argument("--out", required=True, help="output directory (written atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace --out even when it is not prepared data")
    g = p.add_argument_group("generic csv/tsv/parquet columns")
    g.add_argument("--item-col", default=None)
    g.add_argument("--session-col", default=None)
    g.add_argument("--time-col", default=None)
    g.add_argument("--user-col", default=None)
    g.add_argument("--sep", default=None)
    g.add_argument("--time-unit", choices=["s", "ms", "us", "ns"], default=None,
                   help="unit of epoch numbers (default: from their magnitude: < 1e11 s, < 1e14 ms, < 1e17 us, else ns)")
    p.add_argument("--session", choices=["invoice", "customer"], default=None, help="online-retail: what a session is")
    p.add_argument("--gap-minutes", type=float, default=30.0, help="inactivity gap that starts a session (user data)")
    p.add_argument("--keep-repeats", action="store_true", help="keep consecutive repeats of an item")
    p.add_argument("--min-item-support", type=int, default=5)
    p.add_argument("--min-session-length", type=int, default=2)
    p.add_argument("--max-session-length", type=int, default=None)
    s = p.add_argument_group("split (default: test and validation each a seventh of the log's span, at most 7 days)")
    s.add_argument("--test-days", type=float, default=None, help="sessions ending in the last days are test")
    s.add_argument("--valid-days", type=float, default=None, help="validation days before them (default: --test-days)")
    s.add_argument("--test-fraction", type=float, default=None, help="instead of days: the latest fraction of sessions")
    s.add_argument("--valid-fraction", type=float, default=None, help="validation fraction (default: --test-fraction)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_prepare)


#: prepare options whose flag is not ``--`` + the option with dashes
_PREPARE_FLAGS = {"session_gap_minutes": "--gap-minutes", "drop_repeats": "--keep-repeats"}


def _with_flags(e: Any) -> Any:
    """The same :class:`~item2vec.exceptions.OptionError`, its option names spelled as flags."""
    import re

    msg = str(e)
    for opt in e.options:
        flag = _PREPARE_FLAGS.get(opt, "--" + opt.replace("_", "-"))
        msg = re.sub(rf"(?<![\w-]){opt}(?!\w)", flag, msg)
    return type(e)(msg, e.options)


def _removed_line(r: dict[str, Any], cfg: dict[str, Any]) -> str:
    parts = [
        f"{r['time_outliers']['events']:,} events with far-off timestamps",
        f"{r['repeats']['events']:,} consecutive repeats",
        f"{r['rare_items']['events']:,} events of {r['rare_items']['items']:,} items with < {cfg['min_item_support']} events",
        f"{r['short_sessions']['sessions']:,} sessions shorter than {cfg['min_session_length']} "
        f"({r['short_sessions']['events']:,} events)",
        f"{r['unseen_items']['events']:,} valid/test events of items unseen in training "
        f"({r['unseen_items']['sessions']:,} sessions left too short)",
    ]
    if cfg.get("max_session_length"):
        parts.append(f"{r['length_cap']['events']:,} events past the {cfg['max_session_length']}-event cap "
                     f"({r['length_cap']['sessions']:,} sessions cut)")
    return "  removed: " + "; ".join(parts)


def _cmd_prepare(a: argparse.Namespace) -> int:
    import warnings

    from item2vec.data import (
        PrepareConfig,
        describe_split,
        prepare,
        read_events,
        read_item_metadata,
    )
    from item2vec.exceptions import DataWarning, OptionError

    opts: dict[str, Any] = {}
    if a.format in ("csv", "tsv", "parquet"):
        for key in ("item_col", "session_col", "time_col", "user_col", "sep", "time_unit"):
            val = getattr(a, key)
            if val is not None:
                opts[key] = val
        if a.user_col and not a.session_col:
            opts["session_col"] = None
    if a.format == "online-retail" and a.session:
        opts["session"] = a.session
    try:
        cfg = PrepareConfig(
            session_gap_minutes=a.gap_minutes,
            drop_repeats=not a.keep_repeats,
            min_item_support=a.min_item_support,
            min_session_length=a.min_session_length,
            max_session_length=a.max_session_length,
            test_days=a.test_days,
            valid_days=a.valid_days,
            test_fraction=a.test_fraction,
            valid_fraction=a.valid_fraction,
        )
        events = read_events(a.events, a.format, **opts)
        meta = read_item_metadata(a.events, a.format)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DataWarning)
            data = prepare(events, cfg, metadata=meta, name=Path(a.events).name)
    except OptionError as e:
        raise _with_flags(e) from None
    for w in caught:
        if issubclass(w.category, DataWarning):
            msg = str(w.message).replace("test_days / valid_days", "--test-days / --valid-days")
            msg = msg.replace("test_fraction / valid_fraction", "--test-fraction / --valid-fraction")
            print(f"item2vec: warning: {msg}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    data.save(a.out)
    if not a.quiet:
        s = data.stats
        split = describe_split(s["split"]).replace(
            "test_days/valid_days or test_fraction/valid_fraction", "--test-days/--valid-days or --test-fraction"
        )
        print(
            f"prepared {s['events_kept']:,} of {s['events_in']:,} events, {s['items']:,} items -> {a.out}\n"
            + _removed_line(s["removed"], s["config"]) + "\n"
            + f"  split: {split}\n"
            + "\n".join(
                f"  {n:5s} {s[n]['sessions']:7,} sessions {s[n]['events']:9,} events  mean length {s[n]['mean_length']}"
                for n in ("train", "valid", "test")
            )
        )
    return 0


# ---------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------
def _add_item2vec_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("item2vec hyperparameters (defaults: item2vec.Item2VecConfig)")
    g.add_argument("--vector-size", type=int)
    g.add_argument("--window", type=int, help="context window (default 5); 0 = the whole session")
    g.add_argument("--negative", type=int)
    g.add_argument("--ns-exponent", type=float)
    g.add_argument("--sample", type=float)
    g.add_argument("--epochs", type=int)
    g.add_argument("--alpha", type=float)
    g.add_argument("--workers", type=int)
    g.add_argument("--seed", type=int, dest="random_state")


def _item2vec_params(a: argparse.Namespace) -> dict[str, Any]:
    keys = ("vector_size", "window", "negative", "ns_exponent", "sample", "epochs", "alpha", "workers", "random_state")
    params = {k: getattr(a, k) for k in keys if getattr(a, k, None) is not None}
    if params.get("window") == 0:
        params["window"] = None  # Item2VecConfig: None = the whole session
    return params


def _add_fit(sub: Any) -> None:
    p = sub.add_parser("fit", help="train item2vec on prepared data")
    p.add_argument("--data", required=True, help="prepared-data directory (item2vec prepare)")
    p.add_argument("--out", required=True, help="model directory (written atomically; an older model there is replaced)")
    p.add_argument("--overwrite", action="store_true", help="replace --out even when it is not an item2vec model")
    _add_item2vec_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_fit)


def _cmd_fit(a: argparse.Namespace) -> int:
    from item2vec.data import SessionData
    from item2vec.embeddings import Item2Vec

    data = SessionData.load(a.data)
    model = Item2Vec(show_progress=not a.quiet, **_item2vec_params(a)).fit(data.decode(data.train))
    emb = model.embeddings_
    emb.metadata.update({"data_dir": str(Path(a.data).resolve()), "dataset": data.stats.get("name")})
    emb.save(a.out)
    a.fitted = model  # what --mlflow logs (tracking_cli)
    print(f"{len(emb):,} items x {emb.dim} dims in {model.fit_seconds_:.1f}s "
          f"({model.words_per_second_:,.0f} words/s) -> {a.out}")
    return 0


# ---------------------------------------------------------------------------
# similar
# ---------------------------------------------------------------------------
def _add_similar(sub: Any) -> None:
    p = sub.add_parser("similar", help="nearest items of one or more items")
    p.add_argument("--model", required=True,
                   help="model directory (item2vec fit), or a registered model: models:/NAME@champion")
    p.add_argument("items", nargs="+", help="item id(s)")
    p.add_argument("-k", type=int, default=10, help="neighbours per item (default %(default)s)")
    p.add_argument("--missing", choices=["raise", "ignore"], default="raise",
                   help="an unknown item id: fail (default), or skip it with a note on stderr")
    p.add_argument("--data", default=None, help="prepared data with item titles (default: the one the model was fitted on)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for models:/ (default $MLFLOW_TRACKING_URI, "
                   "else sqlite:///mlflow.db)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_similar)


def _titles(data_dir: str | None) -> dict[Any, str]:
    if not data_dir or not (Path(data_dir) / "metadata.parquet").exists():
        return {}
    import polars as pl

    from item2vec.data import item_titles

    return item_titles(pl.read_parquet(Path(data_dir) / "metadata.parquet"))


def _load_embeddings(model: str, tracking_uri: str | None) -> Any:
    """The ItemEmbeddings of a model directory, a served-model directory or an MLflow model URI."""
    from item2vec.embeddings import ItemEmbeddings

    p = Path(model)
    if p.is_dir() and not (p / "served.json").exists() and not (p / "MLmodel").exists():
        return ItemEmbeddings.load(p)
    from item2vec.registry import load

    return load(model, tracking_uri=tracking_uri).embeddings


def _known_queries(emb: Any, items: Sequence[str], missing: str) -> list[Any]:
    """The query ids as the model spells them; unknown ones raise, or are skipped with a note."""
    from item2vec.exceptions import UnknownItemError
    from item2vec.serving import ServedModel

    served = ServedModel(emb)  # the served model's id policy: "32902" finds 32902 in an integer catalogue
    queries: list[Any] = []
    for q in items:
        try:
            item = served.to_id(q)
            if item not in emb:
                raise UnknownItemError(item)
            queries.append(item)
            continue
        except UnknownItemError as e:
            err = e
        if missing == "raise":
            raise err
        print(f"item2vec: note: {err}; skipped", file=sys.stderr)
    return queries


def _cmd_similar(a: argparse.Namespace) -> int:
    emb = _load_embeddings(a.model, a.tracking_uri)
    queries = _known_queries(emb, a.items, a.missing)
    if not queries:
        from item2vec.base import check_k

        check_k(a.k)
        if a.json:
            print("{}")
        return 0
    ids, scores = emb.similar_items(queries, k=a.k)
    titles = _titles(a.data or emb.metadata.get("data_dir"))
    if a.json:
        out = {
            str(q): [{"item_id": i, "score": round(float(s), 4), **({"title": titles[i]} if i in titles else {})}
                     for i, s in zip(row_i.tolist(), row_s.tolist(), strict=True)]
            for q, row_i, row_s in zip(queries, ids, scores, strict=True)
        }
        print(json.dumps(out, indent=2))
        return 0
    for q, row_i, row_s in zip(queries, ids, scores, strict=True):
        print(f"{q}" + (f"  {titles[q]}" if q in titles else ""))
        for i, s in zip(row_i.tolist(), row_s.tolist(), strict=True):
            print(f"  {s:6.3f}  {i}" + (f"  {titles[i]}" if i in titles else ""))
    return 0


# ---------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------
def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="fit and score models on the test prefixes")
    p.add_argument("--data", required=True, help="prepared-data directory")
    p.add_argument("--models", default="pop,markov,sknn,implicit,item2vec",
                   help="comma-separated: pop, markov, sknn, implicit, implicit-als, item2vec, item2vec-mean, bilstm")
    p.add_argument("--embeddings", default=None, help="item2vec model directory to use instead of fitting one")
    p.add_argument("--next-model", default=None, help="BiLSTM checkpoint directory (item2vec train-next) for 'bilstm'")
    p.add_argument("--split", choices=["test", "valid"], default="test")
    p.add_argument("-k", type=int, default=20, help="cut-off of HR@k, MRR@k, NDCG@k (default %(default)s)")
    p.add_argument("--k", type=int, dest="k", default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # older spelling
    p.add_argument("--json", default=None, metavar="PATH", help="write the JSON report here")
    _add_item2vec_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(a: argparse.Namespace) -> int:
    from item2vec.data import SessionData
    from item2vec.embeddings import ItemEmbeddings

    names = [n.strip() for n in a.models.split(",") if n.strip()]
    if not names:
        raise ValueError("--models: expected at least one model name, got none")
    from item2vec.recommenders import MODEL_NAMES

    unknown = [n for n in names if n not in (*MODEL_NAMES, "bilstm")]
    if unknown:
        raise ValueError(f"--models: unknown model(s) {unknown}; expected some of {[*MODEL_NAMES, 'bilstm']}")
    data = SessionData.load(a.data)
    emb = ItemEmbeddings.load(a.embeddings) if a.embeddings else None
    from item2vec.evaluation import format_table, run_evaluation

    report = run_evaluation(data, names, k=a.k, split=a.split, embeddings=emb, next_model=a.next_model,
                            item2vec_params=_item2vec_params(a), show_progress=not a.quiet)
    if a.json:
        from item2vec._io import atomic_file

        with atomic_file(a.json) as fh:
            json.dump(report, fh, indent=2, default=str)
    a.report = report  # what --mlflow logs (tracking_cli)
    print(f"{report['n_predictions']:,} predictions on {a.split} ({data.stats.get('name')})")
    print(format_table(report["models"], report["k"]))
    return 0


# ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from item2vec import __version__

    parser = _Parser(prog="item2vec", description=__doc__)
    parser.add_argument("--version", action="version", version=f"item2vec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_prepare(sub)
    _add_fit(sub)
    _add_similar(sub)
    _add_evaluate(sub)
    for module in ("item2vec.nextitem.cli", "item2vec.tracking_cli", "item2vec.explore_cli"):
        try:
            mod = __import__(module, fromlist=["add_parser"])
        except ModuleNotFoundError as e:
            if e.name and module.startswith(e.name):
                continue
            raise
        mod.add_parser(sub)
    return parser


#: The file that marks each command's --out as an output of that command's kind (see the save methods):
#: an existing --out holding it is replaced; anything else is refused without --overwrite.
OUT_MARKERS = {"prepare": "stats.json", "fit": "vectors.npy", "train-next": "checkpoint.json"}

#: Arguments that name a command's inputs: no output may replace them or a folder above them.
INPUT_ARGS = ("events", "data", "embeddings", "next_model", "model", "config")


def _inputs(args: argparse.Namespace) -> list[Path]:
    paths = (getattr(args, name, None) for name in INPUT_ARGS)
    return [Path(p) for p in paths if isinstance(p, str) and p and Path(p).exists()]


def _run(args: argparse.Namespace) -> int:
    """The command under the output policy: --out checked before any work, inputs protected."""
    from item2vec._io import check_output, output_policy

    overwrite = bool(getattr(args, "overwrite", False))
    inputs = _inputs(args)
    if getattr(args, "out", None):
        check_output(args.out, OUT_MARKERS.get(args.command), overwrite, protect=inputs)
    with output_policy(overwrite=overwrite, protect=inputs):
        rc = int(args.func(args) or 0)
    sys.stdout.flush()  # a closed pipe shows here, inside main, not at interpreter exit
    return rc


def _quiet_broken_pipe() -> int:
    """The reader went away (``| head``): stop writing, without a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail again
    os.close(devnull)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``item2vec`` console script; returns the exit status."""
    from item2vec.exceptions import Item2VecError

    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt:
        print("item2vec: interrupted", file=sys.stderr)
        return 130
    except (Item2VecError, FileNotFoundError, NotADirectoryError, KeyError, ValueError) as e:
        if os.environ.get("ITEM2VEC_DEBUG"):
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"item2vec: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
