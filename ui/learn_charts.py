"""The Learn page's figures: each a function of plain data, every word through ``t()``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .i18n import t

MARGIN = dict(l=10, r=10, t=40, b=10)
METHOD_COLORS = {"uniform": "#4C78A8", "symmetric": "#F58518", "kmeans": "#54A24B"}


def _tidy(fig: go.Figure, title: str, height: int = 360) -> go.Figure:
    fig.update_layout(
        title=title, margin=MARGIN, height=height, legend=dict(orientation="h", y=-0.2)
    )
    return fig


def mask_figure(w: np.ndarray, keep: np.ndarray, layer: str, rate: float) -> go.Figure:
    """|w| of one layer as an image; pruned weights drawn blank, so the mask shows."""
    shown = np.where(keep, np.abs(w), np.nan)
    fig = go.Figure(
        go.Heatmap(
            z=shown,
            colorscale="Viridis",
            colorbar=dict(title="|w|"),
            hovertemplate=t("chart.mask_hover") + "<extra></extra>",
        )
    )
    fig.update_xaxes(title=t("chart.inputs"), showgrid=False)
    fig.update_yaxes(title=t("chart.outputs"), autorange="reversed", showgrid=False)
    title = t("chart.mask_title", layer=layer, rate=f"{rate:.0%}")
    return _tidy(fig, title, 420)


def levels_figure(w: np.ndarray, levels: dict[str, np.ndarray], bits: int) -> go.Figure:
    """The weight histogram with each quantizer's levels drawn over it as ticks."""
    fig = go.Figure()
    fig.add_histogram(x=w, nbinsx=120, name=t("chart.weights"), marker_color="#bbbbbb")
    counts, _ = np.histogram(w, bins=120)
    top = float(counts.max())
    for i, (method, values) in enumerate(levels.items()):
        height = top * (1.0 - 0.12 * i)
        fig.add_scatter(
            x=np.repeat(values, 3),
            y=np.tile([0.0, height, np.nan], len(values)),
            mode="lines",
            name=t(f"quant.{method}"),
            line=dict(color=METHOD_COLORS[method], width=2),
            hovertemplate="%{x:.4f}<extra></extra>",
        )
    fig.update_xaxes(title=t("chart.weight_value"))
    fig.update_yaxes(title=t("chart.count"))
    return _tidy(fig, t("chart.levels_title", bits=bits))


def bytes_figure(parts: dict[str, dict[str, int]]) -> go.Figure:
    """Stacked bars: each artifact's bytes by component (``parts``: row label -> component)."""
    fig = go.Figure()
    rows = list(parts)
    components = list(next(iter(parts.values())))
    for component in components:
        fig.add_bar(
            y=rows,
            x=[parts[r][component] for r in rows],
            name=t(f"bytes.{component}"),
            orientation="h",
            hovertemplate="%{x:,} B<extra>" + t(f"bytes.{component}") + "</extra>",
        )
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title=t("chart.bytes"))
    return _tidy(fig, t("chart.bytes_title"), 300)


def tradeoff_figure(frame: pd.DataFrame, baseline: tuple[int, float], meets=None) -> go.Figure:
    """Accuracy against bytes for a sweep, with its Pareto front and the baseline.

    ``meets`` (optional): (the bottom accuracy δ, the chosen row) to show the budget lesson.
    """
    fig = go.Figure()
    hover = "%{customdata}<br>%{x:,} B · %{y:.2f} %<extra></extra>"
    fig.add_scatter(
        x=frame["artifact_bytes"],
        y=100 * frame["accuracy"],
        customdata=frame["label"],
        mode="markers",
        name=t("chart.settings"),
        marker=dict(size=9, color="#4C78A8"),
        hovertemplate=hover,
    )
    front = frame[frame["front"]].sort_values("artifact_bytes")
    fig.add_scatter(
        x=front["artifact_bytes"],
        y=100 * front["accuracy"],
        mode="lines",
        name=t("chart.front"),
        line=dict(color="#54A24B", width=2, shape="hv"),
        hoverinfo="skip",
    )
    fig.add_scatter(
        x=[baseline[0]],
        y=[100 * baseline[1]],
        mode="markers",
        name=t("chart.baseline"),
        marker=dict(size=13, symbol="diamond", color="black"),
    )
    if meets is not None:
        delta, chosen = meets
        fig.add_hline(y=100 * delta, line_dash="dash", line_color="#E45756")
        if chosen is not None:
            fig.add_scatter(
                x=[chosen["artifact_bytes"]],
                y=[100 * chosen["accuracy"]],
                mode="markers",
                name=t("chart.chosen"),
                marker=dict(size=18, symbol="star", color="#E45756"),
            )
    fig.update_xaxes(title=t("chart.bytes_log"), type="log")
    fig.update_yaxes(title=t("chart.accuracy"))
    return _tidy(fig, t("chart.tradeoff_title"), 400)


def before_after_figure(values: dict[str, float], baseline: float) -> go.Figure:
    """Accuracy bars (e.g. one-shot vs fine-tuned) against the baseline's line."""
    fig = go.Figure(
        go.Bar(
            x=list(values),
            y=[100 * v for v in values.values()],
            marker_color=["#E45756", "#54A24B", "#4C78A8"][: len(values)],
            text=[f"{100 * v:.2f} %" for v in values.values()],
            textposition="outside",
        )
    )
    fig.add_hline(y=100 * baseline, line_dash="dash", annotation_text=t("chart.baseline"))
    low = min([baseline, *values.values()])
    fig.update_yaxes(title=t("chart.accuracy"), range=[max(0.0, 100 * low - 10), 101])
    return _tidy(fig, t("chart.accuracy_title"), 340)
