"""Slimscope: the Explore page (pick a model, drag the sliders, watch accuracy against size)
and the navigation to the pages in ``pages/``.

Run with ``streamlit run app.py``. Every number comes from ``compress_core``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from compress_core.core.config import ConfigError
from compress_core.core.pipeline import CompressionError
from ui import cache, charts, controls, explain, metrics, pick, view
from ui.format import human_bytes, result_columns

st.set_page_config(page_title="Slimscope", page_icon="✂️", layout="wide")


def history_frame() -> pd.DataFrame:
    return pd.DataFrame(list(st.session_state.history.values()))


def show_tradeoff(r, key: str) -> None:
    frame = history_frame()
    frame = frame[(frame["model"] == r.model) & (frame["dataset"] == r.dataset)]
    left, right = st.columns(2)
    left.plotly_chart(
        charts.tradeoff_figure(
            frame, "nonzero_params", key, (r.baseline_params, r.baseline_accuracy)
        ),
        key="plot_params",
    )
    right.plotly_chart(
        charts.tradeoff_figure(frame, "artifact_bytes", key, (r.dense_bytes, r.baseline_accuracy)),
        key="plot_bytes",
    )
    st.caption(f"{len(frame)} settings tried this session; the green line is their Pareto front.")


LAYER_COLUMNS = {
    "layer": "Layer",
    "type": "Type",
    "shape": "Shape",
    "params": st.column_config.NumberColumn("Weights", format="localized"),
    "nonzero": st.column_config.NumberColumn("Non-zero weights", format="localized"),
    "sparsity": st.column_config.ProgressColumn(
        "Pruned", format="percent", min_value=0, max_value=1
    ),
    "bits": st.column_config.NumberColumn("Bits (32 = float)"),
    "bytes": st.column_config.NumberColumn("Stored bytes", format="localized"),
    "encoding": "Stored as",
    "skipped": "Kept intact because",
}


def show_layers(r) -> None:
    layers = pd.DataFrame(r.layers)
    st.plotly_chart(charts.layer_figure(layers), key="plot_layers")
    st.dataframe(layers, hide_index=True, column_config=LAYER_COLUMNS)
    st.caption(
        "Stored as: how the artifact keeps each weight tensor — dense codes; a bitmask or "
        "relative indexes (the gap to the next kept weight) for pruned layers, whichever is "
        "smaller; raw float32 for layers left intact."
    )


def show_weights(r, p, config_key: str) -> None:
    names = [row["layer"] for row in r.layers]
    layer = st.selectbox(
        "Layer",
        names,
        key="hist_layer",
        index=min(1, len(names) - 1),
        help="Before: the trained weights. After: pruned to zero and quantized.",
    )
    base, _ = cache.baseline(*p.args)
    small = cache.compressed(*p.args, config_key)
    before = dict(base.named_modules())[layer].weight
    after = dict(small.named_modules())[layer].weight
    st.plotly_chart(
        charts.histogram_figure(before.detach().numpy().ravel(), after.detach().numpy().ravel()),
        key="plot_hist",
    )
    distinct = np.unique(after.detach().numpy()).size
    st.caption(f"After: {distinct:,} distinct values, {int((after == 0).sum()):,} exact zeros.")


FLIPS = {
    "now wrong": "Now wrong — the baseline was right",
    "now right": "Now right — the baseline was wrong",
    "other": "Wrong before and after, a different wrong class",
}


def show_changes(r, data) -> None:
    if not r.changed:
        st.success("No test image changed its prediction.")
        return
    st.write(
        f"{len(r.changed)} of {r.eval_images:,} test images changed their prediction. "
        "Caption: true class — before → after."
    )
    groups = {kind: [] for kind in FLIPS}
    for idx, old, new in zip(r.changed, r.changed_from, r.changed_to, strict=True):
        true = int(data.test_y[idx])
        kind = "now wrong" if old == true else "now right" if new == true else "other"
        groups[kind].append((idx, true, old, new))
    for kind, title in FLIPS.items():
        if groups[kind]:
            st.markdown(f"**{title}**: {len(groups[kind])} (showing up to 12)")
            cols = st.columns(6)
            for i, (idx, true, old, new) in enumerate(groups[kind][:12]):
                cols[i % 6].image(
                    data.image("test", idx),
                    width=96,
                    caption=f"{data.classes[true]}: {data.classes[old]} → {data.classes[new]}",
                )


def show_export(r, p, config_key: str) -> None:
    frame = history_frame()
    st.dataframe(frame.drop(columns=["key"]), hide_index=True, column_config=result_columns())
    a, b = st.columns(2)
    a.download_button(
        "Download this session's results (CSV)",
        frame.to_csv(index=False),
        "slimscope-results.csv",
        "text/csv",
        key="dl_csv",
    )
    b.download_button(
        f"Download the compressed model ({human_bytes(r.artifact_bytes)})",
        partial(cache.artifact, *p.args, config_key),  # exported only when clicked
        f"{r.model}-{r.dataset}.slim",
        "application/octet-stream",
        key="dl_artifact",
        help="Read it back with compress_core.format.artifact.load_compressed(path).",
    )


def explore() -> None:
    st.title("✂️ Slimscope")
    st.caption("How far can this network be compressed before it stops working?")
    if "history" not in st.session_state:
        st.session_state.history = {}
    p = pick.sidebar()
    config = controls.controls()
    body = st.empty()  # training replaces the old numbers here instead of greying them
    base, data = pick.load_baseline(p, body)
    with body.container():
        show_result(p, base, data, config)


def show_result(p, base, data, config) -> None:
    try:
        r = cache.result(*p.args, config.key(), p.subset)
    except (ConfigError, CompressionError) as e:
        st.error(f"This setting cannot be applied: {view.plain(e)}")
        st.stop()
    row = r.to_row()
    st.session_state.history[(p.model, p.dataset, p.epochs, p.subset, row["key"])] = row
    metrics.show(r)
    explain.selection(base, config, pick.baseline_caption(p, base))
    explain.show(r, config)
    shows = {
        "Trade-off": lambda: show_tradeoff(r, row["key"]),
        "Layers": lambda: show_layers(r),
        "Weights": lambda: show_weights(r, p, row["key"]),
        "What changed": lambda: show_changes(r, data),
        "History & export": lambda: show_export(r, p, row["key"]),
    }
    # Only the open tab is drawn: with a class on one server, drawing five tabs per slider move
    # (24 images, 4 charts) costs every session time it does not look at.
    tabs = st.tabs(list(shows), key="explore_tab", on_change="rerun")
    for tab, show in zip(tabs, shows.values(), strict=True):
        if tab.open:
            with tab:
                show()


def navigation():
    """Explore first, then every page in pages/ ("3_Budget.py" is listed as "Budget")."""
    view.start()
    view.show_problems()
    pages = [st.Page(explore, title="Explore", icon="✂️", url_path="explore", default=True)]
    for path in sorted((Path(__file__).parent / "pages").glob("*.py")):
        title = path.stem.split("_", 1)[-1].replace("_", " ")
        pages.append(st.Page(f"pages/{path.name}", title=title))
    return st.navigation(pages)


navigation().run()
