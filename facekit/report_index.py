"""`reports/index.html`: compare the runs of each notebook at a glance.

Per notebook: the parameters swept across its runs come first, parameters and metrics equal in every
run are folded into one line above the table, only metrics that vary get a column, and each varying
metric is plotted against each swept parameter (inline SVG, no script). The page fits 1,400 px.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

LOWER_IS_BETTER = ("false_accept", "seconds", "noise", "loss")
MAX_METRIC_COLUMNS = 8  # what fits 1,400 px beside a few swept parameters
MAX_PLOTS = 12
SERIES_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metrics as "a.b.c" → scalar; lists and tables left out."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out[name] = value
    return out


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def best_of(values: list[Any], key: str) -> Any:
    """The best of a metric column: the lowest for errors and costs, else the highest."""
    numbers = [v for v in values if is_number(v)]
    if not numbers:
        return None
    return min(numbers) if any(word in key for word in LOWER_IS_BETTER) else max(numbers)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape("" if value is None else str(value))


def _short(value: Any, limit: int = 60, *, keep_end: bool = False) -> str:
    """`value` as text of at most `limit` characters (the start kept, or the end for dotted names)."""
    text = value if isinstance(value, str) else json.dumps(value) if not isinstance(value, float) else f"{value:.4g}"
    if len(text) <= limit:
        return text
    return "…" + text[-(limit - 1) :] if keep_end else text[: limit - 1] + "…"


def read_runs(reports_dir: Path) -> list[dict[str, Any]]:
    """Every run folder under `reports_dir` (run.json, params.yaml, metrics.json), oldest first."""
    runs = []
    for run_file in sorted(reports_dir.glob("*/run.json")):
        folder = run_file.parent
        run = json.loads(run_file.read_text())
        params_file, metrics_file = folder / "params.yaml", folder / "metrics.json"
        params = yaml.safe_load(params_file.read_text()) if params_file.exists() else {}
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        runs.append({"run_id": folder.name, **run, "params": params or {}, "metrics": flatten(metrics)})
    return sorted(runs, key=lambda r: (r.get("started", ""), r["run_id"]))


def _varies(values: list[Any]) -> bool:
    return len({repr(v) for v in values}) > 1


def split_columns(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Swept parameters, constant parameters, varying metrics (deduplicated, parameters echoed into the
    metrics left out) and constant metrics of one notebook's runs."""
    param_keys = sorted({k for r in runs for k in r["params"]})
    swept = [k for k in param_keys if _varies([r["params"].get(k) for r in runs])]
    fixed = {k: runs[-1]["params"].get(k) for k in param_keys if k not in swept}
    varying, constant, seen = [], {}, set()
    for r in runs:
        for key, value in r["metrics"].items():
            column = tuple(repr(q["metrics"].get(key)) for q in runs)
            echoed = key.rsplit(".", 1)[-1] in param_keys  # a parameter the notebook copied into its metrics
            if not is_number(value) or echoed or column in seen:
                continue
            seen.add(column)  # the same numbers under another name (recommended.person_threshold) once
            if len(runs) > 1 and _varies([q["metrics"].get(key) for q in runs]):
                varying.append(key)
            else:
                constant[key] = value
    return {"swept": swept, "fixed": fixed, "varying": varying, "constant": constant}


def _scale(value: float, low: float, high: float, start: float, end: float) -> float:
    return (start + end) / 2 if high == low else start + (value - low) / (high - low) * (end - start)


def metric_plot(runs: list[dict[str, Any]], param: str, metric: str, others: list[str]) -> str:
    """An SVG of `metric` against `param`, one line per combination of the other swept parameters."""
    width, height, left, right, top, bottom = 300, 170, 52, 10, 22, 34
    points = [(r["params"].get(param), r["metrics"].get(metric), r) for r in runs]
    points = [p for p in points if is_number(p[1])]
    if not points:
        return ""
    xs = [p[0] for p in points]
    numeric_x = all(is_number(x) for x in xs)
    categories = [] if numeric_x else sorted({repr(x) for x in xs})

    def x_pos(x: Any) -> float:
        if numeric_x:
            return _scale(float(x), min(xs), max(xs), left, width - right)
        return _scale(categories.index(repr(x)), 0, max(len(categories) - 1, 1), left + 20, width - right - 20)

    ys = [float(p[1]) for p in points]
    low, high = min(ys), max(ys)
    pad = (high - low) * 0.08 or abs(high) * 0.01 or 1.0
    low, high = low - pad, high + pad

    def y_pos(y: float) -> float:
        return _scale(y, low, high, height - bottom, top)

    series: dict[str, list[tuple[float, float]]] = {}
    for x, y, run in points:
        label = ", ".join(f"{k}={_short(run['params'].get(k), 40)}" for k in others)
        series.setdefault(label, []).append((x_pos(x), y_pos(float(y))))
    parts = [
        f"<svg class='plot' width='{width}' height='{height}' viewBox='0 0 {width} {height}' role='img'>",
        f"<title>{html.escape(metric)} against {html.escape(param)}</title>",
        f"<text x='{left}' y='14' class='t'>{html.escape(_short(metric, 44, keep_end=True))}</text>",
        f"<line x1='{left}' y1='{height - bottom}' x2='{width - right}' y2='{height - bottom}' class='axis'/>",
        f"<line x1='{left}' y1='{top}' x2='{left}' y2='{height - bottom}' class='axis'/>",
        f"<text x='{left - 4}' y='{top + 4}' class='yl'>{_short(high - pad, 8)}</text>",
        f"<text x='{left - 4}' y='{height - bottom}' class='yl'>{_short(low + pad, 8)}</text>",
    ]
    ticks = sorted({float(x) for x in xs}) if numeric_x else categories
    for tick in ticks[:8]:
        x = x_pos(tick) if numeric_x else x_pos(next(v for v in xs if repr(v) == tick))
        label = _short(tick, 10) if numeric_x else _short(next(v for v in xs if repr(v) == tick), 14)
        parts.append(f"<text x='{x:.1f}' y='{height - bottom + 13}' class='xl'>{html.escape(label)}</text>")
    parts.append(f"<text x='{(left + width - right) / 2:.1f}' y='{height - 4}' class='xn'>{html.escape(param)}</text>")
    for index, (label, xy) in enumerate(sorted(series.items())):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        xy.sort()
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        parts.append(f"<polyline points='{path}' fill='none' stroke='{colour}' stroke-width='1.5'>"
                     f"<title>{html.escape(label)}</title></polyline>")  # fmt: skip
        parts += [f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3' fill='{colour}'/>" for x, y in xy]
    parts.append("</svg>")
    return "".join(parts)


def _legend(runs: list[dict[str, Any]], others: list[str]) -> str:
    labels = sorted({", ".join(f"{k}={_short(r['params'].get(k), 40)}" for k in others) for r in runs})
    if len(labels) < 2:
        return ""
    items = "".join(
        f"<span style='color:{SERIES_COLOURS[i % len(SERIES_COLOURS)]}'>&#9632; {html.escape(label)}</span> "
        for i, label in enumerate(labels)
    )
    return f"<p class='legend'>Lines: {items}</p>"


def _folded(title: str, values: Mapping[str, Any]) -> str:
    if not values:
        return ""
    items = ", ".join(f"<code>{html.escape(k)}</code>&nbsp;=&nbsp;{html.escape(_short(v))}" for k, v in values.items())
    return f"<p class='folded'><b>{title}:</b> {items}</p>"


def notebook_section(name: str, runs: list[dict[str, Any]]) -> str:
    """One notebook's header lines, plots and table."""
    columns = split_columns(runs)
    swept, varying = columns["swept"], columns["varying"]
    shown, hidden = varying[:MAX_METRIC_COLUMNS], varying[MAX_METRIC_COLUMNS:]
    best = {k: best_of([r["metrics"].get(k) for r in runs], k) for k in shown}
    head = ["run", "status", "seconds", *swept, *shown]
    head_html = "".join(
        f"<th title='{html.escape(k)}'{' class=p' if k in swept else ''}>{html.escape(k).replace('.', '.<wbr>')}</th>"
        for k in head
    )
    rows = []
    for r in runs:
        short_id = r["run_id"][len(name) + 1 :] or r["run_id"]
        cells = [f"<a href='{html.escape(r['run_id'])}/report.html' title='{html.escape(r['run_id'])}'>"
                 f"{html.escape(short_id)}</a>", _cell(r.get("status")), f"{r.get('seconds') or 0:.1f}"]  # fmt: skip
        cells += [f"<span class=p>{_cell(r['params'].get(k))}</span>" for k in swept]
        for k in shown:
            v = r["metrics"].get(k)
            cells.append(f"<b>{_cell(v)}</b>" if v is not None and v == best[k] else _cell(v))
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    plot_rows, budget = [], MAX_PLOTS
    for param in swept:
        others = [p for p in swept if p != param]
        plots = [metric_plot(runs, param, metric, others) for metric in varying[: max(budget, 0)]]
        budget -= len(plots)
        if any(plots):
            plot_rows.append(f"<div class='plots'>{''.join(plots)}</div>{_legend(runs, others)}")
    more = (
        f"<p class='folded'>{len(hidden)} more varying metrics are in each run's metrics.json: "
        f"{html.escape(', '.join(hidden))}</p>"
        if hidden
        else ""
    )
    return (
        f"<h2>{html.escape(name)} <small>({len(runs)} runs; swept: {html.escape(', '.join(swept) or 'nothing')})"
        f"</small></h2>"
        + _folded("Same in every run (parameters)", columns["fixed"])
        + _folded("Same in every run (metrics)", columns["constant"])
        + f"<table><thead><tr>{head_html}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"
        + "".join(plot_rows)
    )


STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1360px}"
    "table{border-collapse:collapse;margin:.5em 0 1em}"
    "th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;font-size:12.5px}"
    "th{background:#f3f3f3;max-width:9em;overflow-wrap:anywhere;font-weight:600;vertical-align:bottom}th.p,span.p{color:#1a4f8a}"
    "td:first-child{text-align:left;white-space:nowrap}.folded{color:#444;font-size:13px;margin:.3em 0}"
    ".plots{display:flex;flex-wrap:wrap;gap:8px}.plot{border:1px solid #e4e4e4;background:#fff}"
    ".plot .axis{stroke:#888}.plot text{font-size:10px;fill:#333}.plot .t{font-size:11px;font-weight:600}"
    ".plot .yl{text-anchor:end}.plot .xl{text-anchor:middle}.plot .xn{text-anchor:middle;fill:#1a4f8a}"
    ".legend{font-size:12px}"
)


def write_index(reports_dir: str | os.PathLike[str] = "reports") -> Path:
    """Write `reports_dir/index.html` from the run folders there; returns its path."""
    root = Path(reports_dir)
    root.mkdir(parents=True, exist_ok=True)
    by_notebook: dict[str, list[dict[str, Any]]] = {}
    for run in read_runs(root):
        by_notebook.setdefault(run["notebook"], []).append(run)
    sections = [notebook_section(name, runs) for name, runs in sorted(by_notebook.items())]
    page = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>facekit reports</title>"
        f"<style>{STYLE}</style></head><body><h1>facekit reports</h1>"
        "<p>One section per notebook, one row per run. Swept parameters come first (blue); what is equal "
        "in every run is folded into the lines above each table; the best value of each metric column is "
        "in bold (the lowest for false accept, noise, loss and seconds, else the highest). Old runs: "
        "<code>facekit prune-reports --keep N</code>.</p>"
        + ("".join(sections) or "<p>No runs yet: <code>facekit report NOTEBOOK</code>.</p>")
        + "</body></html>"
    )
    out = root / "index.html"
    out.write_text(page, encoding="utf-8")
    return out
