"""The batch retraining job, and a day-by-day simulation of it.

One run (the same as ``item2vec retrain``)::

    python -m pipelines.retrain run --events PATH --format F [--config FILE] [--start D] [--end D]
        [--model-name NAME] [--tracking-uri URI] [--report PATH]

A simulated daily retraining: train on the days up to ``--initial-end``, then
retrain once per following daily file, each run testing on its newest day::

    python -m pipelines.retrain simulate --events ../shared/datasets/online-retail/by-day \\
        --config pipelines/configs/online-retail-daily.toml --initial-end 2011-03-31 --days 6 \\
        --tracking-uri sqlite:///$PWD/runs/retail/mlflow.db --out runs/retail

It prints (and writes to ``OUT/summary.md``) the registry history (versions,
which were promoted and why) and the metrics over time. The job itself is
:func:`item2vec.retrain.run_retrain`; configs live in ``pipelines/configs/``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import polars as pl

from item2vec.cli import main as item2vec_main
from item2vec.retrain import RetrainError, load_config, run_retrain

CONFIGS = Path(__file__).resolve().parent / "configs"


def write_daily_files(events: pl.DataFrame, folder: str | Path) -> list[str]:
    """Split a normalised event frame into ``YYYY-MM-DD.csv`` files (one per day); returns the days."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ev = events.drop("_order", strict=False).with_columns(pl.col("timestamp").dt.date().alias("_day"))
    days = sorted(ev["_day"].unique().to_list())
    for d in days:
        ev.filter(pl.col("_day") == d).drop("_day").write_csv(folder / f"{d}.csv")
    return [str(d) for d in days]


def daily_files(folder: str | Path) -> list[str]:
    """The days (``YYYY-MM-DD``) of the daily files in ``folder``, sorted."""
    days = {m.group(1) for f in Path(folder).iterdir() if (m := re.match(r"^(\d{4}-\d{2}-\d{2})", f.name))}
    return sorted(days)


def simulate(
    events: str | Path,
    config: Any,
    initial_end: str,
    days: int,
    *,
    start: str | None = None,
    tracking_uri: str | None = None,
    out: str | Path | None = None,
    log: Any = print,
) -> list[dict[str, Any]]:
    """Train up to ``initial_end``, then retrain once per following daily file (``days`` of them).

    A failed day is reported and the simulation goes on (the champion stays).

    Returns
    -------
    list of dict
        The reports, one per run (failed runs carry ``status="failed"``).
    """
    all_days = daily_files(events)
    later = [d for d in all_days if d > initial_end][:days]
    ends = [initial_end, *later]
    reports: list[dict[str, Any]] = []
    for i, end in enumerate(ends):
        report_path = Path(out) / f"report-{end}.json" if out else None
        try:
            r = run_retrain(events, config, start=start, end=end, tracking_uri=tracking_uri, report_path=report_path)
        except RetrainError as e:
            r = e.report
            log(f"[{i}] {end}: FAILED at {e.step}: {r.get('error')}")
        else:
            g = r["gating"]
            champ = "-" if g["champion"] is None else f"{g['champion']:.4f}"
            mk = (r.get("metrics") or {}).get("markov", {}).get(g["metric"])
            log(f"[{i}] {end}: v{r['model_version']} serving {r.get('served_model')} "
                f"{'promoted' if r['promoted'] else 'challenger'} ({g['metric']} {g['challenger']:.4f} vs champion "
                f"{champ}" + ("" if mk is None else f", markov {mk:.4f}") + f") in {r['seconds']:.0f}s")
        reports.append(r)
    return reports


def metrics_table(reports: list[dict[str, Any]], k: int = 20) -> str:
    """Metrics over time as Markdown: one row per run (test day), MRR@k of every model, stability."""
    models: list[str] = []
    for r in reports:
        for m in r.get("metrics") or {}:
            if m not in models:
                models.append(m)
    head = ["test day", "version", "served model", "promoted", "test preds"] + [f"{m} MRR@{k}" for m in models] + \
        ["HR@20 served", "overlap@10", "run s"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in reports:
        met = r.get("metrics") or {}
        test_range = ((r.get("dataset") or {}).get("test") or {}).get("time_range") or ["", ""]
        stab = (r.get("stability") or {}).get("overlap@10")
        ch = met.get("challenger", {})
        cells = [str(test_range[1])[:10] or str(r.get("end")), str(r.get("model_version") or "-"),
                 str(r.get("served_model") or "-"),
                 "FAILED " + str(r.get("failed_step")) if r.get("status") == "failed" else str(r.get("promoted")).lower(),
                 str(ch.get("n_predictions", ""))]
        cells += [f"{met[m][f'mrr@{k}']:.4f}" if m in met else "" for m in models]
        cells += [f"{ch[f'hr@{k}']:.4f}" if ch else "", "" if stab is None else f"{stab:.3f}",
                  str(round(sum((r.get("step_seconds") or {}).values())))]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def choice_table(reports: list[dict[str, Any]]) -> str:
    """The served-model choice per run as Markdown: every candidate's validation score, the served one in bold,
    and the served model's test score next to Markov's."""
    names: list[str] = []
    for r in reports:
        for m in r.get("validation") or {}:
            if m not in names:
                names.append(m)
    metric = next((r["gating"]["metric"] for r in reports if r.get("gating")), "mrr@20")
    head = ["test day", "served model"] + [f"{m} valid {metric.upper()}" for m in names] + \
        [f"served test {metric.upper()}", f"markov test {metric.upper()}"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in reports:
        if r.get("status") != "ok":
            continue
        val, met, served = r.get("validation") or {}, r.get("metrics") or {}, r.get("served_model")
        cells = [str(r.get("end")), str(served)]
        for m in names:
            v = (val.get(m) or {}).get(metric)
            cell = "" if v is None else f"{v:.4f}"
            cells.append(f"**{cell}**" if m == served and cell else cell)
        mk = (met.get("markov") or {}).get(metric)
        cells += [f"{met['challenger'][metric]:.4f}", "" if mk is None else f"{mk:.4f}"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _cmd_simulate(a: argparse.Namespace) -> int:
    import logging

    from item2vec.registry import registry_history
    from item2vec.tracking import resolve_tracking_uri
    from item2vec.tracking_cli import format_history

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    cfg = load_config(a.config, format=a.format, model_name=a.model_name, use_bilstm=False if a.no_bilstm else None)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    uri = resolve_tracking_uri(a.tracking_uri or f"sqlite:///{(out / 'mlflow.db').resolve()}")
    reports = simulate(a.events, cfg, a.initial_end, a.days, start=a.start, tracking_uri=uri, out=out)
    (out / "reports.json").write_text(json.dumps(reports, indent=2, default=str))
    hist = format_history(registry_history(cfg.model_name, tracking_uri=uri))
    table = metrics_table(reports, cfg.k)
    text = (f"## Registry history ({cfg.model_name})\n\n{hist}\n\n## Metrics over time\n\n{table}\n\n"
            f"## Which model serves recommend()\n\n{choice_table(reports)}\n")
    (out / "summary.md").write_text(text)
    print("\n" + text)
    print(f"store: {uri}\nUI:    mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.retrain", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("run", help="one retraining run (the options of `item2vec retrain`)", add_help=False)
    s = sub.add_parser("simulate", help="train up to a day, then retrain day after day")
    s.add_argument("--events", required=True, help="a folder of daily YYYY-MM-DD files")
    s.add_argument("--config", default=str(CONFIGS / "retrain.toml"))
    s.add_argument("--format", default=None)
    s.add_argument("--model-name", default=None)
    s.add_argument("--start", default=None, help="first day read by every run (default: the first file)")
    s.add_argument("--initial-end", required=True, help="last day of the first run (YYYY-MM-DD)")
    s.add_argument("--days", type=int, default=5, help="daily retrains after the first run")
    s.add_argument("--tracking-uri", default=None, help="default: sqlite:///OUT/mlflow.db")
    s.add_argument("--out", default="runs/simulate", help="reports and summary.md go here")
    s.add_argument("--no-bilstm", action="store_true")
    args, rest = ap.parse_known_args(argv)
    if args.cmd == "run":
        return item2vec_main(["retrain", *rest])
    if rest:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    return _cmd_simulate(args)


if __name__ == "__main__":
    raise SystemExit(main())
