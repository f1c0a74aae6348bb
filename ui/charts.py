"""Plotly figures, each a function of a DataFrame so tests can build them without a browser."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from compress_core.analysis.pareto import pareto_mask

from .i18n import t

MARGIN = dict(l=10, r=10, t=40, b=10)  # the top margin holds plotly's toolbar, off the data
# Plotly's toolbar has ~12 buttons; at phone width (390 px) it covered the charts. Keep the few
# a class uses (save picture, zoom, reset), in the top margin.
MODEBAR_REMOVE = ["select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "autoScale2d", "pan2d"]


def _axis(x: str) -> str:
    """The size axis' title: compressed bytes or non-zero parameters, both log scale."""
    known = ("artifact_bytes", "nonzero_params", "latency_ms")
    return t(f"chart.axis_{x}") if x in known else x


def _unit(x: str) -> str:
    units = {"artifact_bytes": "bytes", "nonzero_params": "params", "latency_ms": "ms"}
    return t(f"chart.unit_{units[x]}") if x in units else x


def _hover(unit: str) -> str:
    """Hover text for a tried point: its label, accuracy, size and settings."""
    return (
        f"<b>%{{customdata[0]}}</b><br>{t('chart.accuracy_word')} %{{y:.2f}} %<br>"
        f"%{{x:,.3~f}} {unit}<br>%{{customdata[1]}}<extra></extra>"
    )


def _house_layout(height: int, legend_y: float = -0.25) -> dict:
    """The house layout: thin margins, the legend in a row under the plot."""
    return dict(
        margin=MARGIN,
        height=height,
        legend=dict(orientation="h", y=legend_y),
        modebar=dict(remove=MODEBAR_REMOVE, orientation="h"),
    )


def _tidy(fig: go.Figure, height: int, legend_y: float = -0.25) -> go.Figure:
    fig.update_layout(**_house_layout(height, legend_y))
    return fig


def front_trace(df: pd.DataFrame, x: str) -> dict:
    """The Pareto front of ``df`` (its ``front`` column) as a step line over ``x`` (a trace)."""
    front = df[df["front"]].sort_values(x)
    return dict(
        type="scatter",
        x=front[x],
        y=100 * front["accuracy"],
        mode="lines",
        name=t("chart.front"),
        line=dict(color="#54A24B", width=2, shape="hv"),
        hoverinfo="skip",
    )


def add_front_line(fig: go.Figure, df: pd.DataFrame, x: str) -> None:
    fig.add_trace(front_trace(df, x))


def baseline_trace(baseline: tuple[float, float], unit: str) -> dict:
    """The uncompressed model, (size, accuracy), as an orange diamond with a dark rim.

    Not black: Streamlit's dark theme would hide it.
    """
    return dict(
        type="scatter",
        x=[baseline[0]],
        y=[100 * baseline[1]],
        mode="markers",
        name=t("chart.baseline"),
        marker=dict(size=14, symbol="diamond", color="#F58518", line=dict(color="#333", width=1)),
        hovertemplate=f"{t('chart.baseline')}<br>{t('chart.accuracy_word')} %{{y:.2f}} %<br>"
        f"%{{x:,.3~f}} {unit}<extra></extra>",
    )


def add_baseline(fig: go.Figure, baseline: tuple[float, float], unit: str) -> None:
    fig.add_trace(baseline_trace(baseline, unit))


def _settings(row: pd.Series) -> str:
    parts = [f"{row['prune_method']} {row['prune_rate']:.0%} ({row['scope']})"]
    if row["bits"] != 32:
        parts.append(f"{row['bits']}-bit {row['quant']} {row['granularity'].replace('_', '-')}")
    if row.get("act_bits", 32) != 32:
        parts.append(t("chart.activations", bits=row["act_bits"]))
    if row.get("finetuned"):
        parts.append(t("chart.finetuned"))
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

    Explore draws two of these on every slider move, so the figure is written as one dict
    and validated once: adding traces and layout call by call took twice as long (26 ms
    against 11-12 ms for 20 points).
    """
    unit, data, shapes = _unit(x), [], []
    if len(frame):
        df = frame[frame["finite"]].copy() if "finite" in frame else frame.copy()
        df["front"] = pareto_mask(df, x, "accuracy")
        df["settings"] = df.apply(_settings, axis=1)
        custom = np.stack([df["label"], df["settings"]], axis=1)
        groups = df["finetuned"] if "finetuned" in df else pd.Series(False, index=df.index)
        for tuned, color in ((False, "#4C78A8"), (True, "#F58518")):
            part = groups == tuned
            if part.any():
                data.append(
                    dict(
                        type="scatter",
                        x=df.loc[part, x],
                        y=100 * df.loc[part, "accuracy"],
                        mode="markers",
                        name=t("chart.tried_tuned" if tuned else "chart.tried_oneshot"),
                        marker=dict(size=8, color=color, opacity=0.75),
                        customdata=custom[part.to_numpy()],
                        hovertemplate=_hover(unit),
                    )
                )
        data.append(front_trace(df, x))
        if current is not None and (df["key"] == current).any():
            row = df[df["key"] == current].iloc[0]
            data.append(
                dict(
                    type="scatter",
                    x=[row[x]],
                    y=[100 * row["accuracy"]],
                    mode="markers",
                    name=t("chart.current"),
                    marker=dict(size=18, symbol="star", color="#E45756", line=dict(width=1)),
                    customdata=[[row["label"], row["settings"]]],
                    hovertemplate=_hover(unit),
                )
            )
    if baseline is not None:
        data.append(baseline_trace(baseline, unit))
        line = dict(dash="dot", color="grey")
        y = 100 * baseline[1]
        shapes.append(
            dict(type="line", x0=0, x1=1, xref="x domain", y0=y, y1=y, yref="y", line=line)
        )
    if extra is not None and len(extra):
        data.append(
            dict(
                type="scatter",
                x=extra[x],
                y=100 * extra["accuracy"],
                mode="markers+text",
                name=t("chart.paper"),
                text=extra["label"],
                textposition="top center",
                marker=dict(size=12, symbol="x", color="#B279A2"),
            )
        )
    layout = dict(
        xaxis=dict(type="log", title=dict(text=_axis(x))),
        yaxis=dict(title=dict(text=t("chart.test_accuracy"))),
        **_house_layout(380),
    )
    if shapes:
        layout["shapes"] = shapes
    return go.Figure(dict(data=data, layout=layout))


def layer_figure(layers: pd.DataFrame) -> go.Figure:
    """Per layer: the share of weights kept (bars) and the bit width (markers)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    kept = 100 * (1 - layers["sparsity"])
    fig.add_bar(
        x=layers["layer"],
        y=kept,
        name=t("chart.kept"),
        marker_color="#4C78A8",
        hovertemplate="%{x}: %{y:.1f} %<extra></extra>",
    )
    fig.add_scatter(
        x=layers["layer"],
        y=layers["bits"],
        name=t("chart.bits"),
        mode="markers+lines",
        marker=dict(size=10, color="#F58518"),
        secondary_y=True,
        hovertemplate="%{x}: %{y}<extra></extra>",
    )
    fig.update_yaxes(title=t("chart.kept"), range=[0, 105], secondary_y=False)
    fig.update_yaxes(title=t("chart.bits"), range=[0, 33], secondary_y=True)
    return _tidy(fig, 320, legend_y=-0.3)


def histogram_figure(before: np.ndarray, after: np.ndarray, bins: int = 120) -> go.Figure:
    """Weight values of one layer before and after: quantization levels and the zero spike."""
    fig = go.Figure()
    lo, hi = float(min(before.min(), after.min())), float(max(before.max(), after.max()))
    size = (hi - lo) / bins or 1.0
    spec = dict(start=lo, end=hi + size, size=size)
    fig.add_histogram(x=before, name=t("chart.before"), xbins=spec, marker_color="#9ecae1")
    fig.add_histogram(x=after, name=t("chart.after"), xbins=spec, marker_color="#E45756")
    fig.update_traces(opacity=0.75)
    fig.update_layout(
        barmode="overlay",
        height=320,
        margin=MARGIN,
        xaxis_title=t("chart.weight_value"),
        yaxis_title=t("chart.count_log"),
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
            y=[(t("ctl.float") if b == 32 else t("ctl.n_bit", bits=b)) for b in table.index],
            colorscale="Viridis",
            colorbar=dict(title=t("chart.acc_pct") if value == "accuracy" else value),
            hovertemplate="%{x}, %{y}: %{z:.2f}<extra></extra>",
        )
    )
    fig.update_layout(
        height=360,
        margin=MARGIN,
        xaxis_title=t("chart.prune_rate"),
        yaxis_title=t("ctl.bits"),
    )
    return fig


# --- analysis pages: sweep, sensitivity, budget (issue 4) ----------------------------------

PALETTE = ("#4C78A8", "#F58518", "#E45756", "#72B7B2", "#54A24B", "#EECA3B", "#B279A2", "#9D755D")


def method_label(row: pd.Series) -> str:
    """'magnitude + uniform': the methods a sweep point used (rate 0 / float points included)."""
    return f"{row['prune_method']} + {row['quant']}"


def sweep_figure(
    frame: pd.DataFrame, x: str = "artifact_bytes", baseline: tuple[float, float] | None = None
) -> go.Figure:
    """Accuracy against size for a sweep: one colour per method pair, the Pareto front ringed.

    ``frame`` has Result.to_row() columns; the front is over all methods together.
    """
    fig = go.Figure()
    unit = _unit(x)
    df = frame[frame["finite"]].copy() if "finite" in frame else frame.copy()
    if len(df):
        df["front"] = pareto_mask(df, x, "accuracy")
        df["methods"] = df.apply(method_label, axis=1)
        df["settings"] = df.apply(_settings, axis=1)
        for i, (name, part) in enumerate(df.groupby("methods", sort=True)):
            fig.add_scatter(
                x=part[x],
                y=100 * part["accuracy"],
                mode="markers",
                name=name,
                marker=dict(
                    size=np.where(part["front"], 12, 8),
                    color=PALETTE[i % len(PALETTE)],
                    opacity=0.8,
                    line=dict(width=np.where(part["front"], 2, 0), color="#1b5e20"),
                ),
                customdata=np.stack([part["label"], part["settings"]], axis=1),
                hovertemplate=_hover(unit),
            )
        add_front_line(fig, df, x)
    if baseline is not None:
        add_baseline(fig, baseline, unit)
    fig.update_xaxes(type="log", title=_axis(x))
    fig.update_yaxes(title=t("chart.test_accuracy"))
    return _tidy(fig, 400)


def sensitivity_figure(points: pd.DataFrame, kind: str = "prune") -> go.Figure:
    """One line per layer: accuracy as that layer alone is pruned (or quantized).

    ``points`` has SensitivityPoint.to_row() columns; ``kind`` is "prune" or "quantize".
    """
    df = points[points["kind"] == kind]
    x = "prune_rate" if kind == "prune" else "bits"
    fig = go.Figure()
    for i, (layer, part) in enumerate(df.groupby("layer", sort=False)):
        part = part.sort_values(x)
        xs = 100 * part[x] if kind == "prune" else part[x].astype(str)
        fig.add_scatter(
            x=xs,
            y=100 * part["accuracy"],
            mode="lines+markers",
            name=layer,
            line=dict(color=PALETTE[i % len(PALETTE)]),
            customdata=part["delta_pp"],
            hovertemplate=f"{layer}: %{{x}} → %{{y:.2f}} % (%{{customdata:+.2f}} "
            f"{t('chart.pp')})<extra></extra>",
        )
    if len(df):
        fig.add_hline(
            y=100 * df["baseline_accuracy"].iloc[0],
            line_dash="dot",
            line_color="grey",
            annotation_text=t("chart.baseline"),
        )
    if kind == "prune":
        fig.update_xaxes(title=t("chart.layer_rate"))
    else:
        order = sorted(df["bits"].unique(), reverse=True)
        fig.update_xaxes(
            title=t("chart.layer_bits"),
            type="category",
            categoryorder="array",
            categoryarray=[str(b) for b in order],
        )
    split = df["split"].iloc[0] if len(df) else "val"
    fig.update_yaxes(title=t("chart.val_accuracy" if split == "val" else "chart.test_accuracy"))
    return _tidy(fig, 380)


def budget_figure(
    tried: pd.DataFrame, delta: float, chosen: str | None, uniform: str | None, x: str
) -> go.Figure:
    """Every model the budget search built: validation accuracy against size, and delta.

    ``tried`` has Candidate.to_row() columns; ``chosen``/``uniform`` are labels to mark.
    """
    fig = go.Figure()
    unit = _unit(x)
    hover = f"%{{text}}<br>{t('chart.val')} %{{y:.2f}} %<br>%{{x:,.3~f}} {unit}<extra></extra>"
    styles = {"uniform": "#9ecae1", "greedy": "#F58518", "refine": "#B279A2"}
    for source, color in styles.items():
        part = tried[tried["source"] == source]
        if len(part):
            fig.add_scatter(
                x=part[x],
                y=100 * part["val_accuracy"],
                mode="markers",
                name=t("chart.source", source=t(f"source.{source}"), n=len(part)),
                marker=dict(size=8, color=color, opacity=0.85),
                text=part["label"],
                hovertemplate=hover,
            )
    for label, name, symbol, color in (
        (uniform, t("chart.best_uniform"), "square", "#4C78A8"),
        (chosen, t("chart.chosen"), "star", "#E45756"),
    ):
        row = tried[tried["label"] == label]
        if label is not None and len(row):
            fig.add_scatter(
                x=row[x].iloc[:1],
                y=100 * row["val_accuracy"].iloc[:1],
                mode="markers",
                name=name,
                marker=dict(size=18, symbol=symbol, color=color, line=dict(width=1)),
                text=row["label"].iloc[:1],
                hovertemplate=hover,
            )
    fig.add_hline(y=100 * delta, line_dash="dash", line_color="#E45756", annotation_text="δ")
    fig.update_xaxes(type="log", title=_axis(x))
    fig.update_yaxes(title=t("chart.val_accuracy"))
    return _tidy(fig, 400)


def plan_figure(plan: pd.DataFrame) -> go.Figure:
    """Per layer: the share of parameters left non-zero and the bits, chosen plan against
    the best uniform setting; every stored layer, the intact ones too.

    ``plan`` has BudgetResult.plan_rows() columns. The share is the engine's
    ``nonzero_share`` (non-zero parameters over all, bias included): quantizing can zero
    weights pruning kept, so it may be below 1 - the pruning rate.
    """
    fig = make_subplots(rows=1, cols=2)
    pairs = (
        (t("chart.chosen"), "nonzero_share", "bits", "#E45756"),
        (t("chart.best_uniform"), "uniform_nonzero_share", "uniform_bits", "#4C78A8"),
    )
    for name, share, bits, color in pairs:
        if plan[share].isna().all():
            continue
        fig.add_bar(
            x=plan["layer"],
            y=plan[share],
            name=name,
            marker_color=color,
            legendgroup=name,
            row=1,
            col=1,
        )
        fig.add_bar(
            x=plan["layer"],
            y=plan[bits],
            name=name,
            marker_color=color,
            legendgroup=name,
            showlegend=False,
            row=1,
            col=2,
        )
    fig.update_yaxes(
        range=[0, 1.05], tickformat=".0%", title=t("chart.nonzero_share"), row=1, col=1
    )
    fig.update_yaxes(range=[0, 33], title=t("rcol.bits"), row=1, col=2)
    fig.update_layout(
        barmode="group",
        height=320,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


# --- recovery: one-shot against fine-tuned, and the Deep Compression replay (issue 5) ------


def recovery_figure(frame: pd.DataFrame, baseline: float | None = None) -> go.Figure:
    """Accuracy against pruning rate: the one-shot curve beside the fine-tuned one.

    ``frame`` has Result.to_row() columns (``finetuned`` tells the two curves apart);
    for each (curve, rate) the latest row is drawn. ``baseline`` is the fp32 accuracy.
    """
    fig = go.Figure()
    curves = ((False, "#4C78A8", "circle"), (True, "#F58518", "diamond"))
    for tuned, color, symbol in curves:
        name = t("chart.finetuned" if tuned else "chart.oneshot")
        part = frame[frame["finetuned"] == tuned] if len(frame) else frame
        if not len(part):
            continue
        part = part.drop_duplicates("prune_rate", keep="last").sort_values("prune_rate")
        fig.add_scatter(
            x=100 * part["prune_rate"],
            y=100 * part["accuracy"],
            mode="lines+markers",
            name=name,
            line=dict(color=color, width=2),
            marker=dict(size=9, symbol=symbol, color=color),
            customdata=part[["label"]].to_numpy(),
            hovertemplate=f"<b>%{{customdata[0]}}</b><br>{t('chart.pruned')} %{{x:.0f}} %<br>"
            f"{t('chart.accuracy_word')} %{{y:.2f}} %<extra>{name}</extra>",
        )
    if baseline is not None:
        fig.add_hline(
            y=100 * baseline,
            line_dash="dot",
            line_color="grey",
            annotation_text=t("chart.baseline"),
        )
    fig.update_xaxes(title=t("chart.pruned_pct"))
    fig.update_yaxes(title=t("chart.test_accuracy"))
    return _tidy(fig, 360)


def add_published(fig: go.Figure, points: pd.DataFrame | None) -> None:
    """Published results (``papers.PublishedPoint.to_row()`` rows) as one trace.

    Hover says what each ratio counts; points without an accuracy are left out.
    """
    if points is None or not len(points):
        return
    points = points[points["accuracy"].notna()]
    if not len(points):
        return
    hover = [
        t(
            "chart.published_hover",
            method=r.method,
            citation=r.citation,
            network=r.network,
            ratio=f"{r.ratio:.0f}",
            error=f"{r.error:g}",
            counts=t(f"papers.counts_{r.counts}"),
        )
        for r in points.itertuples()
    ]
    fig.add_scatter(
        x=points["size_bytes"],
        y=100 * points["accuracy"],
        mode="markers+text",
        name=t("chart.published_mnist"),
        text=points["label"],
        textposition="bottom center",
        marker=dict(size=12, symbol="diamond", color="#54A24B"),
        hovertext=hover,
        hovertemplate="%{hovertext}<br>%{x:,.0f} " + t("chart.unit_bytes") + "<extra></extra>",
    )


def replay_figure(
    stages: pd.DataFrame,
    upto: int | None = None,
    paper: pd.DataFrame | None = None,
    published: pd.DataFrame | None = None,
) -> go.Figure:
    """Deep Compression's stages on the accuracy-against-bytes plane, the paper's beside them.

    ``stages`` has the report's rows (stage, title, accuracy, artifact_bytes, ratio);
    stages after index ``upto`` are drawn faint; ``paper`` (stage, artifact_bytes,
    accuracy, label) are the paper's reported points; ``published`` are other
    methods' published points (``add_published``).
    """
    fig = go.Figure()
    upto = len(stages) - 1 if upto is None else upto
    shown, later = stages.iloc[: upto + 1], stages.iloc[upto:]
    hover = (
        f"<b>%{{customdata[0]}}</b><br>{t('chart.accuracy_word')} %{{y:.2f}} %<br>"
        f"%{{x:,.0f}} {t('chart.unit_bytes')} (%{{customdata[1]:.1f}}×)"
    )
    if len(later) > 1:
        fig.add_scatter(
            x=later["artifact_bytes"],
            y=100 * later["accuracy"],
            mode="lines+markers",
            name=t("chart.next_stages"),
            line=dict(color="#BBBBBB", dash="dot"),
            marker=dict(size=8, color="#BBBBBB"),
            hoverinfo="skip",
        )
    fig.add_scatter(
        x=shown["artifact_bytes"],
        y=100 * shown["accuracy"],
        mode="lines+markers+text",
        name=t("chart.this_run"),
        text=[f"{r:.0f}×" for r in shown["ratio"]],
        textposition="top center",
        line=dict(color="#F58518", width=2),
        marker=dict(size=11, color="#F58518"),
        customdata=shown[["title", "ratio"]].to_numpy(),
        hovertemplate=hover + "<extra></extra>",
    )
    if paper is not None and len(paper):
        fig.add_scatter(
            x=paper["artifact_bytes"],
            y=100 * paper["accuracy"],
            mode="lines+markers+text",
            name=t("chart.paper_mnist"),
            text=paper["label"],
            textposition="bottom center",
            line=dict(color="#B279A2", dash="dash"),
            marker=dict(size=12, symbol="x", color="#B279A2"),
        )
    add_published(fig, published)
    fig.update_xaxes(type="log", title=_axis("artifact_bytes"), autorange="reversed")
    fig.update_yaxes(title=t("chart.test_accuracy"))
    return _tidy(fig, 380)


def soft_sharing_figure(
    runs: pd.DataFrame,
    current: str | None,
    baseline: tuple[float, float],
    published: pd.DataFrame | None = None,
) -> go.Figure:
    """Soft weight-sharing runs on the accuracy-against-bytes plane, beside the fp32 baseline
    and published MNIST results (``add_published``).

    ``runs`` has ``Result.to_row()`` columns; the row labelled ``current`` is this run,
    the others were tried earlier. ``baseline`` is (dense bytes, accuracy).
    """
    fig = go.Figure()
    fig.add_trace(baseline_trace(baseline, t("chart.unit_bytes")))
    hover = (
        f"<b>%{{customdata[0]}}</b><br>{t('chart.accuracy_word')} %{{y:.2f}} %<br>"
        f"%{{x:,.0f}} {t('chart.unit_bytes')} (%{{customdata[1]:.1f}}×)<extra></extra>"
    )
    now = runs["label"] == current if len(runs) else pd.Series(dtype=bool)
    parts = (
        (runs[~now], t("chart.sws_tried"), "#9D9D9D", 9),
        (runs[now], t("chart.this_run"), "#F58518", 13),
    )
    for part, name, color, size in parts:
        if not len(part):
            continue
        fig.add_scatter(
            x=part["artifact_bytes"],
            y=100 * part["accuracy"],
            mode="markers+text",
            name=name,
            text=[f"{r:.0f}×" for r in part["ratio"]],
            textposition="top center",
            marker=dict(size=size, color=color),
            customdata=part[["label", "ratio"]].to_numpy(),
            hovertemplate=hover,
        )
    add_published(fig, published)
    fig.update_xaxes(type="log", title=_axis("artifact_bytes"), autorange="reversed")
    fig.update_yaxes(title=t("chart.test_accuracy"))
    return _tidy(fig, 380)
