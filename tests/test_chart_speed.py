"""Explore's trade-off figure is written as one dict (a slider move draws two): it must be
the same figure, field by field, as the one plotly's call-by-call API builds."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from compress_core.analysis.pareto import pareto_mask
from compress_core.core.config import CompressionConfig
from ui import charts
from ui.charts import _axis, _hover, _settings, _tidy, _unit
from ui.i18n import t


def reference_tradeoff_figure(frame, x="artifact_bytes", current=None, baseline=None, extra=None):
    """The figure built with add_scatter / add_hline / update_*: the reference."""
    fig = go.Figure()
    unit = _unit(x)
    if len(frame):
        df = frame[frame["finite"]].copy() if "finite" in frame else frame.copy()
        df["front"] = pareto_mask(df, x, "accuracy")
        df["settings"] = df.apply(_settings, axis=1)
        custom = np.stack([df["label"], df["settings"]], axis=1)
        groups = df["finetuned"] if "finetuned" in df else pd.Series(False, index=df.index)
        for tuned, color in ((False, "#4C78A8"), (True, "#F58518")):
            part = groups == tuned
            if part.any():
                fig.add_scatter(
                    x=df.loc[part, x],
                    y=100 * df.loc[part, "accuracy"],
                    mode="markers",
                    name=t("chart.tried_tuned" if tuned else "chart.tried_oneshot"),
                    marker=dict(size=8, color=color, opacity=0.75),
                    customdata=custom[part.to_numpy()],
                    hovertemplate=_hover(unit),
                )
        front = df[df["front"]].sort_values(x)
        fig.add_scatter(
            x=front[x],
            y=100 * front["accuracy"],
            mode="lines",
            name=t("chart.front"),
            line=dict(color="#54A24B", width=2, shape="hv"),
            hoverinfo="skip",
        )
        if current is not None and (df["key"] == current).any():
            row = df[df["key"] == current].iloc[0]
            fig.add_scatter(
                x=[row[x]],
                y=[100 * row["accuracy"]],
                mode="markers",
                name=t("chart.current"),
                marker=dict(size=18, symbol="star", color="#E45756", line=dict(width=1)),
                customdata=[[row["label"], row["settings"]]],
                hovertemplate=_hover(unit),
            )
    if baseline is not None:
        fig.add_scatter(
            x=[baseline[0]],
            y=[100 * baseline[1]],
            mode="markers",
            name=t("chart.baseline"),
            marker=dict(
                size=14, symbol="diamond", color="#F58518", line=dict(color="#333", width=1)
            ),
            hovertemplate=f"{t('chart.baseline')}<br>{t('chart.accuracy_word')} %{{y:.2f}} %<br>"
            f"%{{x:,.3~f}} {unit}<extra></extra>",
        )
        fig.add_hline(y=100 * baseline[1], line_dash="dot", line_color="grey")
    if extra is not None and len(extra):
        fig.add_scatter(
            x=extra[x],
            y=100 * extra["accuracy"],
            mode="markers+text",
            name=t("chart.paper"),
            text=extra["label"],
            textposition="top center",
            marker=dict(size=12, symbol="x", color="#B279A2"),
        )
    fig.update_xaxes(type="log", title=_axis(x))
    fig.update_yaxes(title=t("chart.test_accuracy"))
    return _tidy(fig, 380)


def history(n: int, tuned_every: int = 0) -> pd.DataFrame:
    """``n`` tried settings as Explore keeps them (Result.to_row() columns)."""
    rng = np.random.default_rng(n)
    rows = []
    for i in range(n):
        config = CompressionConfig(prune_rate=round(i / (n + 1), 2), bits=int(rng.integers(1, 9)))
        row = {"model": "lenet5", "dataset": "digits", "label": f"setting {i}"}
        row.update(key=config.key(), **dataclasses.asdict(config))
        row.update(
            accuracy=float(rng.uniform(0.5, 0.99)),
            nonzero_params=int(rng.integers(1_000, 60_000)),
            artifact_bytes=int(rng.integers(2_000, 240_000)),
            dense_bytes=240_000,
            finetuned=bool(tuned_every and i % tuned_every == 0),
            finite=i != 3,  # one non-finite result is left out of the plot
        )
        rows.append(row)
    return pd.DataFrame(rows)


def as_data(fig: go.Figure) -> dict:
    return json.loads(fig.to_json())


@pytest.mark.parametrize("x", ["artifact_bytes", "nonzero_params"])
@pytest.mark.parametrize("n,tuned_every", [(1, 0), (12, 0), (12, 3)])
def test_tradeoff_figure_equals_the_call_by_call_figure(x, n, tuned_every):
    frame = history(n, tuned_every)
    current = frame["key"].iloc[n // 2]
    args = (frame, x, current, (240_000, 0.975))
    assert as_data(charts.tradeoff_figure(*args)) == as_data(reference_tradeoff_figure(*args))


def test_tradeoff_figure_equals_it_with_paper_points_and_without_a_baseline():
    frame = history(6)
    extra = pd.DataFrame({"artifact_bytes": [5_000, 9_000], "accuracy": [0.99, 0.98]})
    extra["label"] = ["Han et al.", "Ullrich et al."]
    for args in ((frame, "artifact_bytes", None, None, extra), (frame.iloc[:0], "latency_ms")):
        assert as_data(charts.tradeoff_figure(*args)) == as_data(reference_tradeoff_figure(*args))
