"""Plotly figures, each a function of a DataFrame so tests can build them without a browser."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from compress_core.pareto import pareto_mask

AXES = {
    "artifact_bytes": "compressed size (bytes, log scale)",
    "nonzero_params": "non-zero parameters (log scale)",
}
HOVER = (
    "<b>%{customdata[0]}</b><br>accuracy %{y:.2f} %<br>%{x:,.0f} "
    "{unit}<br>%{customdata[1]}<extra></extra>"
)


def _settings(row: pd.Series) -> str:
    parts = [f"{row['prune_method']} {row['prune_rate']:.0%} ({row['scope']})"]
    if row["bits"] != 32:
        parts.append(f"{row['bits']}-bit {row['quant']} {row['granularity'].replace('_', '-')}")
    if row.get("act_bits", 32) != 32:
        parts.append(f"activations {row['act_bits']}-bit")
    if row.get("finetuned"):
        parts.append("fine-tuned")
    return " · ".join(parts)


def tradeoff_figure(
    frame: pd.DataFrame,
    x: str = "artifact_bytes",
    current: str | None = None,
    baseline: tuple[float, float] | None = None,
    extra: pd.DataFrame | None = None,
) -> go.Figure:
    """Accuracy against size: every tried point, the Pareto front, the baseline, the current one.

    ``frame`` has Result.to_row() columns plus ``key`` (config key); ``current`` is the key
    to highlight; ``baseline`` is (size, accuracy); ``extra`` are reference points
    (columns x, accuracy, label), e.g. a paper's figures.
    """
    fig = go.Figure()
    unit = "bytes" if x == "artifact_bytes" else "non-zero params"
    if len(frame):
        df = frame[frame["finite"]].copy() if "finite" in frame else frame.copy()
        df["front"] = pareto_mask(df, x, "accuracy")
        df["settings"] = df.apply(_settings, axis=1)
        custom = np.stack([df["label"], df["settings"]], axis=1)
        groups = df["finetuned"] if "finetuned" in df else pd.Series(False, index=df.index)
        for tuned, name, color in ((False, "one-shot", "#4C78A8"), (True, "fine-tuned", "#F58518")):
            part = groups == tuned
            if part.any():
                fig.add_scatter(
                    x=df.loc[part, x],
                    y=100 * df.loc[part, "accuracy"],
                    mode="markers",
                    name=f"tried ({name})",
                    marker=dict(size=8, color=color, opacity=0.75),
                    customdata=custom[part.to_numpy()],
                    hovertemplate=HOVER.replace("{unit}", unit),
                )
        front = df[df["front"]].sort_values(x)
        fig.add_scatter(
            x=front[x],
            y=100 * front["accuracy"],
            mode="lines",
            name="Pareto front",
            line=dict(color="#54A24B", width=2, shape="hv"),
            hoverinfo="skip",
        )
        if current is not None and (df["key"] == current).any():
            row = df[df["key"] == current].iloc[0]
            fig.add_scatter(
                x=[row[x]],
                y=[100 * row["accuracy"]],
                mode="markers",
                name="current",
                marker=dict(size=18, symbol="star", color="#E45756", line=dict(width=1)),
                customdata=[[row["label"], row["settings"]]],
                hovertemplate=HOVER.replace("{unit}", unit),
            )
    if baseline is not None:
        fig.add_scatter(
            x=[baseline[0]],
            y=[100 * baseline[1]],
            mode="markers",
            name="baseline (fp32)",
            marker=dict(size=13, symbol="diamond", color="black"),
            hovertemplate=f"baseline<br>accuracy %{{y:.2f}} %<br>%{{x:,.0f}} {unit}<extra></extra>",
        )
        fig.add_hline(y=100 * baseline[1], line_dash="dot", line_color="grey")
    if extra is not None and len(extra):
        fig.add_scatter(
            x=extra[x],
            y=100 * extra["accuracy"],
            mode="markers+text",
            name="paper",
            text=extra["label"],
            textposition="top center",
            marker=dict(size=12, symbol="x", color="#B279A2"),
        )
    fig.update_xaxes(type="log", title=AXES.get(x, x))
    fig.update_yaxes(title="test accuracy (%)")
    fig.update_layout(
        margin=dict(l=10, r=10, t=30, b=10), height=380, legend=dict(orientation="h", y=-0.25)
    )
    return fig


def layer_figure(layers: pd.DataFrame) -> go.Figure:
    """Per layer: the share of weights kept (bars) and the bit width (markers)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    kept = 100 * (1 - layers["sparsity"])
    fig.add_bar(
        x=layers["layer"],
        y=kept,
        name="weights kept (%)",
        marker_color="#4C78A8",
        hovertemplate="%{x}: %{y:.1f} % kept<extra></extra>",
    )
    fig.add_scatter(
        x=layers["layer"],
        y=layers["bits"],
        name="bits",
        mode="markers+lines",
        marker=dict(size=10, color="#F58518"),
        secondary_y=True,
        hovertemplate="%{x}: %{y} bits<extra></extra>",
    )
    fig.update_yaxes(title="weights kept (%)", range=[0, 105], secondary_y=False)
    fig.update_yaxes(title="bits", range=[0, 33], secondary_y=True)
    fig.update_layout(
        margin=dict(l=10, r=10, t=30, b=10), height=320, legend=dict(orientation="h", y=-0.3)
    )
    return fig


def histogram_figure(before: np.ndarray, after: np.ndarray, bins: int = 120) -> go.Figure:
    """Weight values of one layer before and after: quantization levels and the zero spike."""
    fig = go.Figure()
    lo, hi = float(min(before.min(), after.min())), float(max(before.max(), after.max()))
    size = (hi - lo) / bins or 1.0
    spec = dict(start=lo, end=hi + size, size=size)
    fig.add_histogram(x=before, name="before", xbins=spec, marker_color="#9ecae1", opacity=0.7)
    fig.add_histogram(x=after, name="after", xbins=spec, marker_color="#E45756", opacity=0.8)
    fig.update_layout(
        barmode="overlay",
        height=320,
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis_title="weight value",
        yaxis_title="count (log scale)",
        legend=dict(orientation="h", y=-0.3),
    )
    fig.update_yaxes(type="log")
    return fig


def heatmap_figure(frame: pd.DataFrame, value: str = "accuracy") -> go.Figure:
    """``value`` over (pruning rate, bits): the sweep at a glance."""
    table = frame.pivot_table(index="bits", columns="prune_rate", values=value, aggfunc="max")
    scale = 100 if value == "accuracy" else 1
    fig = go.Figure(
        go.Heatmap(
            z=scale * table.to_numpy(),
            x=[f"{c:.0%}" for c in table.columns],
            y=[("float" if b == 32 else f"{b}-bit") for b in table.index],
            colorscale="Viridis",
            colorbar=dict(title="acc %" if value == "accuracy" else value),
            hovertemplate="rate %{x}, %{y}: %{z:.2f}<extra></extra>",
        )
    )
    fig.update_layout(
        height=360,
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis_title="pruning rate",
        yaxis_title="weight bits",
    )
    return fig
