"""One self-contained HTML report: figures, tables, the settings, the machine, in one language.

plotly.js is embedded once (``include_plotlyjs=True`` on the first figure), so the file opens
offline in any browser. Every text written from user or model data is HTML-escaped.

Example:
    >>> html = build_report("zh", "剪枝与量化", {"model": "lenet5"}, [Section("表", table=df)])
    >>> open("report.html", "w", encoding="utf-8").write(html)
"""

from __future__ import annotations

import html
import json
import platform
import time
from dataclasses import dataclass
from importlib import metadata

import pandas as pd
import plotly.graph_objects as go

from . import catalog, columns
from .analysis.pareto import pareto_mask

STYLE = """
body{font-family:system-ui,"Noto Sans CJK SC","WenQuanYi Micro Hei",sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto}
"""


@dataclass
class Section:
    """One part of a report: a heading, a paragraph, and optionally a figure and a table."""

    heading: str
    text: str = ""
    figure: go.Figure | None = None
    table: pd.DataFrame | None = None


def machine() -> dict[str, str]:
    """Where the report was made: platform, Python and the library versions."""
    out = {"platform": platform.platform(), "python": platform.python_version()}
    for package in ("torch", "plotly", "pandas", "streamlit"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "-"
    return out


def build_report(lang: str, title: str, about: dict, sections: list[Section]) -> str:
    """The report as one HTML document in ``lang`` ("en" or "zh").

    ``about`` holds what was compressed (model, data set, config, …), shown as a table with
    the machine and versions; ``sections`` follow in order.
    """
    tr = lambda key, **fmt: html.escape(catalog.text(lang, key, **fmt))  # noqa: E731
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    parts = [
        f'<!DOCTYPE html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head>',
        f'<meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style>',
        f"</head><body><h1>{html.escape(title)}</h1>",
        f"<p>{tr('report.made', when=stamp)}</p>",
        f"<h2>{tr('report.about')}</h2>",
        _pairs(about),
        f"<h2>{tr('report.machine')}</h2>",
        _pairs(machine()),
    ]
    plotly_js = True
    for s in sections:
        parts.append(f"<h2>{html.escape(s.heading)}</h2>")
        if s.text:
            parts.append(f"<p>{html.escape(s.text)}</p>")
        if s.figure is not None:
            parts.append(s.figure.to_html(full_html=False, include_plotlyjs=plotly_js))
            plotly_js = False
        if s.table is not None:
            parts.append(s.table.to_html(index=False, escape=True, float_format="{:.4g}".format))
    parts.append("</body></html>")
    return "\n".join(parts)


def _pairs(values: dict) -> str:
    rows = []
    for key, value in values.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        rows.append(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(shown)}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


# --- the CLI's reports: run, sweep, budget ---------------------------------------------------


def _about(lang: str, model: str, dataset: str, config: dict) -> dict:
    tr = lambda key: catalog.text(lang, key)  # noqa: E731
    return {tr("report.model"): model, tr("report.dataset"): dataset, tr("report.config"): config}


def tradeoff_figure(lang: str, frame: pd.DataFrame) -> go.Figure:
    """Accuracy against artifact bytes with the Pareto front (a sweep or a budget search)."""
    tr = lambda key: catalog.text(lang, key)  # noqa: E731
    fig = go.Figure()
    acc = "accuracy" if "accuracy" in frame else "val_accuracy"
    fig.add_scatter(
        x=frame["artifact_bytes"],
        y=100 * frame[acc],
        text=frame["label"],
        mode="markers",
        name=tr("chart.settings"),
    )
    front = frame[pareto_mask(frame, "artifact_bytes", acc)].sort_values("artifact_bytes")
    fig.add_scatter(
        x=front["artifact_bytes"],
        y=100 * front[acc],
        mode="lines",
        line=dict(shape="hv"),
        name=tr("chart.front"),
    )
    fig.update_layout(
        title=tr("chart.tradeoff_title"),
        xaxis=dict(title=tr("chart.bytes_log"), type="log"),
        yaxis=dict(title=tr("chart.accuracy")),
    )
    return fig


def errors_figure(lang: str, errors: pd.DataFrame) -> go.Figure:
    """Weight and output SQNR per layer, as grouped bars."""
    tr = lambda key: catalog.text(lang, key)  # noqa: E731
    fig = go.Figure()
    fig.add_bar(x=errors["layer"], y=errors["weight_sqnr_db"], name=tr("errors.weight_sqnr_db"))
    fig.add_bar(x=errors["layer"], y=errors["output_sqnr_db"], name=tr("errors.output_sqnr_db"))
    fig.update_layout(title=tr("errors.title"), yaxis=dict(title="dB"), barmode="group")
    return fig


def run_report(lang: str, result, errors: pd.DataFrame) -> str:
    """A report of one compressed setting: its numbers, its layers and their errors."""
    tr = lambda key, **fmt: catalog.text(lang, key, **fmt)  # noqa: E731
    summary = pd.DataFrame(
        [
            {
                tr("col.setting"): result.label,
                tr("col.accuracy"): catalog.percent(lang, result.accuracy, 2),
                tr("col.delta_pp"): f"{result.delta_pp:+.2f}",
                tr("col.bytes"): catalog.number(lang, result.artifact_bytes),
                tr("col.ratio"): f"{result.ratio:.1f}x",
            }
        ]
    )
    named = errors.rename(columns={c: tr(f"errors.{c}") for c in errors.columns})
    layers = pd.DataFrame(result.layers)
    sections = [
        Section(tr("report.result"), tr("report.result_text"), table=summary),
        Section(tr("report.layers"), table=columns.formatted(lang, layers, columns.LAYERS)),
        Section(tr("errors.title"), tr("errors.help"), errors_figure(lang, errors), named),
    ]
    about = _about(lang, result.model, result.dataset, result.config)
    return build_report(lang, tr("report.title_run"), about, sections)


def sweep_report(lang: str, model: str, dataset: str, frame: pd.DataFrame, common: dict) -> str:
    tr = lambda key: catalog.text(lang, key)  # noqa: E731
    sections = [Section(tr("report.sweep"), tr("report.sweep_text"), tradeoff_figure(lang, frame))]
    sections.append(
        Section(tr("report.table"), table=columns.formatted(lang, frame, columns.RESULT))
    )
    return build_report(
        lang, tr("report.title_sweep"), _about(lang, model, dataset, common), sections
    )


def budget_report(lang: str, model: str, dataset: str, answer) -> str:
    tr = lambda key, **fmt: catalog.text(lang, key, **fmt)  # noqa: E731
    tried = pd.DataFrame(answer.tried_rows())
    goal = tr("report.budget_text", delta=catalog.percent(lang, answer.delta, 2))
    goal += " " + tr("budget.delta")
    plan = columns.formatted(lang, pd.DataFrame(answer.plan_rows()), columns.PLAN)
    n = answer.totals()
    totals = "" if n is None else budget_totals(lang, n)
    sections = [
        Section(tr("report.budget"), goal, tradeoff_figure(lang, tried)),
        Section(tr("report.plan"), totals, table=plan),
        Section(tr("report.table"), table=columns.formatted(lang, tried, columns.TRIED)),
    ]
    about = _about(lang, model, dataset, {"budget": answer.budget, "common": answer.common})
    return build_report(lang, tr("report.title_budget"), about, sections)


def budget_totals(lang: str, n) -> str:
    """The plan table summed in words (``PlanTotals``): non-zero parameters and exact bytes."""
    exact = lambda v: catalog.text(lang, "num.B", value=catalog.number(lang, v))  # noqa: E731
    return catalog.text(
        lang,
        "budget.totals",
        nonzero=catalog.number(lang, n.nonzero),
        params=catalog.number(lang, n.params),
        layers=exact(n.layer_bytes),
        header=exact(n.header_bytes),
        total=exact(n.artifact_bytes),
    )


def write(path: str, text: str) -> None:
    """Write the report atomically, keeping the mode of a file it replaces."""
    from .io.paths import write_atomic

    write_atomic(path, text.encode("utf-8"))
