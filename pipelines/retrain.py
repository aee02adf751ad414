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
which were promoted and why), the metrics over time and which model served each day.

Three concurrent retrains against one fresh store, then a run killed at each step, then
a clean run; prints the registry and the runs afterwards::

    python -m pipelines.retrain stress --events ../shared/datasets/online-retail/by-day \\
        --config pipelines/configs/online-retail-daily.toml --end 2011-04-07 --out runs/stress

The job itself is :func:`item2vec.retrain.run_retrain`; configs live in ``pipelines/configs/``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import polars as pl

from item2vec._io import json_default
from item2vec.cli import main as item2vec_main
from item2vec.data.readers import daily_files, file_day
from item2vec.retrain import RetrainError, RetrainReport, load_config, run_retrain

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
) -> list[RetrainReport]:
    """Train up to ``initial_end``, then retrain once per following daily file (``days`` of them).

    A failed day is reported and the simulation goes on (the champion stays).

    Returns
    -------
    list of RetrainReport
        The reports, one per run (failed runs carry ``status="failed"``).
    """
    all_days = sorted({file_day(f) for f in daily_files(events)})
    later = [d for d in all_days if d > initial_end][:days]
    ends = [initial_end, *later]
    reports: list[RetrainReport] = []
    for i, end in enumerate(ends):
        report_path = Path(out) / f"report-{end}.json" if out else None
        try:
            r = run_retrain(events, config, start=start, end=end, tracking_uri=tracking_uri, report_path=report_path)
        except RetrainError as e:
            r = e.report or RetrainReport(status="failed", failed_step=e.step, error=str(e), end=end)
            log(f"[{i}] {end}: FAILED at {e.step}: {r.error}")
        else:
            g = r.gating or {}
            champ = "-" if g["champion"] is None else f"{g['champion']:.4f}"
            mk = (r.metrics or {}).get("markov", {}).get(g["metric"])
            log(f"[{i}] {end}: v{r.model_version} serving {r.served_model} "
                f"{'promoted' if r.promoted else 'challenger'} ({g['metric']} {g['challenger']:.4f} vs champion "
                f"{champ}" + ("" if mk is None else f", markov {mk:.4f}") + f") in {r.seconds:.0f}s")
        reports.append(r)
    return reports


def metrics_table(reports: list[RetrainReport], k: int = 20) -> str:
    """Metrics over time as Markdown: one row per run (test day), MRR@k of every model, stability."""
    models: list[str] = []
    for r in reports:
        for m in r.metrics or {}:
            if m not in models:
                models.append(m)
    head = ["test day", "version", "served model", "promoted", "test preds"] + [f"{m} MRR@{k}" for m in models] + \
        ["HR@20 served", "overlap@10", "run s"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in reports:
        met = r.metrics or {}
        test_range = ((r.dataset or {}).get("test") or {}).get("time_range") or ["", ""]
        stab = (r.stability or {}).get("overlap@10")
        ch = met.get("challenger", {})
        cells = [str(test_range[1])[:10] or str(r.end), str(r.model_version or "-"),
                 str(r.served_model or "-"),
                 "FAILED " + str(r.failed_step) if r.status == "failed" else str(r.promoted).lower(),
                 str(ch.get("n_predictions", ""))]
        cells += [f"{met[m][f'mrr@{k}']:.4f}" if m in met else "" for m in models]
        cells += [f"{ch[f'hr@{k}']:.4f}" if ch else "", "" if stab is None else f"{stab:.3f}",
                  str(round(sum((r.step_seconds or {}).values())))]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def choice_table(reports: list[RetrainReport]) -> str:
    """The served-model choice per run as Markdown: every candidate's validation score, the served one in bold,
    and the served model's test score next to Markov's."""
    names: list[str] = []
    for r in reports:
        for m in r.validation or {}:
            if m not in names:
                names.append(m)
    metric = next((r.gating["metric"] for r in reports if r.gating), "mrr@20")
    head = ["test day", "served model"] + [f"{m} valid {metric.upper()}" for m in names] + \
        [f"served test {metric.upper()}", f"markov test {metric.upper()}"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in reports:
        if r.status != "ok":
            continue
        val, met, served = r.validation or {}, r.metrics or {}, r.served_model
        cells = [str(r.end), str(served)]
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

    from item2vec.registry import format_history, registry_history
    from item2vec.tracking import resolve_tracking_uri

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    cfg = load_config(a.config, format=a.format, model_name=a.model_name, use_bilstm=False if a.no_bilstm else None)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    uri = resolve_tracking_uri(a.tracking_uri or f"sqlite:///{(out / 'mlflow.db').resolve()}")
    reports = simulate(a.events, cfg, a.initial_end, a.days, start=a.start, tracking_uri=uri, out=out)
    (out / "reports.json").write_text(json.dumps([r.to_dict() for r in reports], indent=2, default=json_default))
    hist = format_history(registry_history(cfg.model_name, tracking_uri=uri))
    table = metrics_table(reports, cfg.k)
    text = (f"## Registry history ({cfg.model_name})\n\n{hist}\n\n## Metrics over time\n\n{table}\n\n"
            f"## Which model serves recommend()\n\n{choice_table(reports)}\n")
    (out / "summary.md").write_text(text)
    print("\n" + text)
    print(f"store: {uri}\nUI:    mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000")
    return 0


def _cmd_job(a: argparse.Namespace) -> int:
    """One run with fault injection (for ``stress``): SIGKILL itself at a step, or wait at a barrier before promote."""
    import os
    import signal
    import time

    cfg = load_config(a.config, **json.loads(a.override))

    def on_step(step: str) -> None:
        if step == a.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if a.barrier and step == "promote":  # every job gated against the champion it read; promote in turn
            folder, n, delay = a.barrier.rsplit(":", 2)
            Path(folder, f"ready-{os.getpid()}").touch()
            give_up = time.monotonic() + 300  # a job that died before the barrier does not hang the others
            while len(list(Path(folder).glob("ready-*"))) < int(n) and time.monotonic() < give_up:
                time.sleep(0.1)
            time.sleep(float(delay))

    try:
        r = run_retrain(a.events, cfg, end=a.end, tracking_uri=a.tracking_uri, on_step=on_step)
    except RetrainError as e:
        print(f"FAILED at {e.step}: {e}")
        return 1
    print(f"v{r.model_version} serving {r.served_model}: {'PROMOTED' if r.promoted else 'challenger'}; {r.reason}")
    return 0


def stress(events: str | Path, config: str, end: str, out: str | Path, serve: list[str]) -> str:
    """Three (``len(serve)``) concurrent retrains on one fresh SQLite store, then a run killed at each step, then a
    clean run; returns the registry history and the runs as Markdown.

    The concurrent jobs all read the champion before any of them promotes (a barrier before the promote step),
    then promote in the order given by ``serve`` (one served model each).
    """
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    from item2vec.registry import format_history, registry_history
    from item2vec.retrain import STEPS

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in ("mlflow.db", "mlartifacts", "barrier"):
        p = out / old
        if p.is_dir():
            import shutil

            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    (out / "barrier").mkdir()
    uri = f"sqlite:///{out / 'mlflow.db'}"
    cfg = load_config(config)

    def job(serve_as: list[str], *extra: str) -> subprocess.Popen:
        override = json.dumps({"serve": serve_as, "baselines": [s for s in serve_as if s not in ("item2vec", "bilstm")],
                               "use_bilstm": "bilstm" in serve_as, "tsne": False})
        return subprocess.Popen([sys.executable, "-m", "pipelines.retrain", "_job", "--events", str(events),
                                 "--config", config, "--end", end, "--tracking-uri", uri, "--override", override,
                                 *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    lines = [f"### {len(serve)} concurrent retrains on a fresh store, promoting in the order {', '.join(serve)}\n"]
    jobs = [job([name], "--barrier", f"{out / 'barrier'}:{len(serve)}:{3 * i}") for i, name in enumerate(serve)]
    for name, j in zip(serve, jobs, strict=True):
        text = j.communicate()[0].strip().splitlines()
        lines.append(f"- {name} (exit {j.returncode}): {text[-1] if text else ''}")
    lines.append("\n### then a run killed (SIGKILL) at each step, then a clean run\n")
    for step in STEPS:
        j = job([serve[-1]], "--kill-at", step)
        j.communicate()
        lines.append(f"- killed at {step}: exit {j.returncode}")
    j = job([serve[0]])
    text = j.communicate()[0].strip().splitlines()
    lines.append(f"- clean run (exit {j.returncode}): {text[-1] if text else ''}")
    hist = format_history(registry_history(cfg.model_name, tracking_uri=uri))
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(cfg.experiment)
    runs = sorted(client.search_runs([exp.experiment_id]), key=lambda r: r.info.start_time)
    rows = ["| run | status | failed_step | served_model | model_version | promoted |", "|---|---|---|---|---|---|"]
    for r in runs:
        t = r.data.tags
        rows.append(f"| {r.info.run_id[:8]} | {r.info.status} | {t.get('failed_step', '')} | {t.get('served_model', '')} "
                    f"| {t.get('model_version', '')} | {t.get('promoted', '')} |")
    return ("\n".join(lines) + f"\n\n### `item2vec history --model-name {cfg.model_name} --tracking-uri {uri}`\n\n"
            + hist + "\n\n### the runs (`mlflow.search_runs`)\n\n" + "\n".join(rows) + "\n")


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
    st = sub.add_parser("stress", help="concurrent retrains on one fresh store, a kill at each step; the registry after")
    st.add_argument("--events", required=True)
    st.add_argument("--config", default=str(CONFIGS / "retrain.toml"))
    st.add_argument("--end", required=True, help="last day every run reads")
    st.add_argument("--out", default="runs/stress", help="the store (recreated) and summary.md go here")
    st.add_argument("--serve", default="markov,pop,item2vec",
                    help="one served model per concurrent job, in the order they promote")
    j = sub.add_parser("_job", help=argparse.SUPPRESS)
    for opt in ("--events", "--config", "--end", "--tracking-uri"):
        j.add_argument(opt, required=True)
    j.add_argument("--override", default="{}")
    j.add_argument("--kill-at", default=None)
    j.add_argument("--barrier", default=None)
    args, rest = ap.parse_known_args(argv)
    if args.cmd == "run":
        return item2vec_main(["retrain", *rest])
    if args.cmd == "_job":
        return _cmd_job(args)
    if args.cmd == "stress":
        text = stress(args.events, args.config, args.end, args.out, args.serve.split(","))
        (Path(args.out) / "summary.md").write_text(text)
        print(text)
        return 0
    if rest:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    return _cmd_simulate(args)


if __name__ == "__main__":
    raise SystemExit(main())
