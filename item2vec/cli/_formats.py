"""How ``retrain`` and ``history`` show their results.

Their interim home while the CLI is re-cut: they move next to the code whose results
they format (:mod:`item2vec.retrain`, :mod:`item2vec.registry`); :mod:`item2vec.cli.retrain`
is the one place that imports them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["format_history", "format_report"]


def format_report(report: dict[str, Any]) -> str:
    """A retraining report as a few lines and a metrics table."""
    from item2vec.evaluation import format_table

    g = report.get("gating") or {}
    lines = [
        f"run {report['run_id']}: {report['model_name']} version {report['model_version']} "
        f"{'PROMOTED to champion' if report['promoted'] else 'is the challenger'}",
        f"  reason: {report['reason']}",
    ]
    if report.get("served_model"):
        lines.append(f"  serves recommend(): {report['served_model']} ({report.get('served_choice') or ''}); "
                     "similar_items: item2vec")
    for dead in report.get("reaped") or []:
        lines.append(f"  marked FAILED: run {dead['run_id']} (its process died during step {dead['failed_step']!r})")
    if report.get("stability"):
        s = report["stability"]
        key = next((k for k in s if k.startswith("overlap@")), None)
        if key and s[key] is not None:
            lines.append(f"  neighbour stability vs the previous champion: {key} {s[key]:.3f} "
                         f"over {int(s['n_common'])} common items")
    k = report["config"]["k"]
    lines += ["", format_table(report["metrics"], k)]
    if g.get("metric") and f"@{k}" not in g["metric"]:
        lines.append(f"gating on {g['metric']}: challenger {g['challenger']:.4f}, champion {g.get('champion')}")
    return "\n".join(lines)


def format_history(hist: list[dict[str, Any]]) -> str:
    """Registry versions as a Markdown table (version, aliases, data end, gating numbers, reason)."""
    import datetime as dt

    rows = ["| version | aliases | data up to | served model | challenger | champion | promoted | reason |",
            "|---|---|---|---|---|---|---|---|"]
    for v in hist:
        t = v["tags"]
        metric = t.get("gating_metric", "")
        key = metric.replace("@", "_at_")
        rows.append(
            f"| {v['version']} | {', '.join(v['aliases'])} | {t.get('data_end', '')[:10]} | {t.get('served_model', t.get('next_model', ''))} "
            f"| {_num(t.get('challenger_' + key))} | {_num(t.get('champion_' + key))} "
            f"| {t.get('promoted', '')} | {t.get('reason', '')} |"
        )
    created = dt.datetime.fromtimestamp(hist[-1]["created"] / 1000).isoformat(timespec="seconds")
    rows.append(f"\n({len(hist)} versions; latest registered {created})")
    return "\n".join(rows)


def _num(s: str | None) -> str:
    try:
        return f"{float(s):.4f}" if s else ""
    except ValueError:
        return str(s)
