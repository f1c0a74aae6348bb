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

from compress_core import catalog
from compress_core.catalog import LANGUAGES
from compress_core.core.config import ConfigError
from compress_core.core.pipeline import CompressionError
from compress_core.report import run_report
from ui import (
    cache,
    charts,
    controls,
    error_table,
    explain,
    i18n,
    metrics,
    pick,
    runtime,
    ship,
    view,
)
from ui.format import human_bytes, layer_columns, result_columns
from ui.i18n import t
from ui.report import download_html
from ui.safe import plain

st.set_page_config(page_title="Slimscope", page_icon="✂️", layout="wide")


def history_frame() -> pd.DataFrame:
    return pd.DataFrame(list(st.session_state.history.values()))


def show_tradeoff(r, key: str) -> None:
    tried = tuple(k for k in st.session_state.history if k[:2] == (r.model, r.dataset))
    frame = history_frame()
    frame = frame[(frame["model"] == r.model) & (frame["dataset"] == r.dataset)]
    plots = {
        "plot_params": ("nonzero_params", r.baseline_params),
        "plot_bytes": ("artifact_bytes", r.dense_bytes),
    }
    for column, (plot, (x, size)) in zip(st.columns(2), plots.items(), strict=True):
        baseline = (size, r.baseline_accuracy)
        figure = cache.tradeoff_figure(tried, x, key, baseline, i18n.lang(), frame)
        column.plotly_chart(figure, key=plot)
    st.caption(t("explore.tried", n=i18n.number(len(frame))))


def show_layers(r) -> None:
    layers = pd.DataFrame(r.layers)
    st.plotly_chart(charts.layer_figure(layers), key="plot_layers")
    st.dataframe(layers, hide_index=True, column_config=layer_columns())
    st.caption(t("layers.stored_as_help"))


def show_weights(r, p, config_key: str) -> None:
    names = [row["layer"] for row in r.layers]
    layer = st.selectbox(
        t("layers.layer"),
        names,
        key="hist_layer",
        index=min(1, len(names) - 1),
        help=t("weights.layer_help"),
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
    zeros = int((after == 0).sum())
    st.caption(t("weights.after", values=i18n.number(distinct), zeros=i18n.number(zeros)))


FLIPS = ("now_wrong", "now_right", "other")  # how a changed prediction changed


def show_changes(r, data) -> None:
    if not r.changed:
        st.success(t("changes.none"))
        return
    st.write(t("changes.count", n=i18n.number(len(r.changed)), of=i18n.number(r.eval_images)))
    groups = {kind: [] for kind in FLIPS}
    for idx, old, new in zip(r.changed, r.changed_from, r.changed_to, strict=True):
        true = int(data.test_y[idx])
        kind = "now_wrong" if old == true else "now_right" if new == true else "other"
        groups[kind].append((idx, true, old, new))
    for kind in FLIPS:
        if groups[kind]:
            st.markdown(t("changes.group", title=t(f"changes.{kind}"), n=len(groups[kind])))
            cols = st.columns(6)
            for i, (idx, true, old, new) in enumerate(groups[kind][:12]):
                names = {"true": data.classes[true], "old": data.classes[old]}
                cols[i % 6].image(
                    data.image("test", idx),
                    width=96,
                    caption=t("changes.caption", **names, new=data.classes[new]),
                )


def show_export(r, p, config_key: str) -> None:
    frame = history_frame()
    st.dataframe(frame.drop(columns=["key"]), hide_index=True, column_config=result_columns())
    a, b = st.columns(2)
    a.download_button(
        t("export.csv"),
        frame.to_csv(index=False),
        "slimscope-results.csv",
        "text/csv",
        key="dl_csv",
        on_click="ignore",  # no rerun: the served file stays while it downloads
    )
    b.download_button(
        t("export.artifact", size=human_bytes(r.artifact_bytes)),
        partial(cache.artifact, *p.args, config_key),  # exported only when clicked
        f"{r.model}-{r.dataset}.slim",
        "application/octet-stream",
        key="dl_artifact",
        help=t("export.artifact_help"),
        on_click="ignore",  # no rerun: the served file stays while it downloads
    )
    errors = cache.layer_errors(*p.args, config_key)
    download_html(lambda lang: run_report(lang, r, errors), "slimscope-explore", "explore_report")


def explore() -> None:
    i18n.language_picker()
    st.title(t("explore.title"))
    st.caption(t("explore.tagline"))
    if "history" not in st.session_state:
        st.session_state.history = {}
    explore_body(pick.sidebar())


@st.fragment
def explore_body(p) -> None:
    """Controls, numbers and the open tab: a slider move reruns only this part.

    With a class on one server, rerunning the title, the sidebar, the language picker and
    the navigation on every move costs every session time that shows nothing new. A change
    in the sidebar (data set, model, language) reruns the whole page, and this with it.
    """
    config = controls.controls()
    body = st.empty()  # training replaces the old numbers here instead of greying them
    base, data = pick.load_baseline(p, body)
    with body.container():
        show_result(p, base, data, config)


def show_result(p, base, data, config) -> None:
    try:
        r = cache.result(*p.args, config.key(), p.subset)
    except (ConfigError, CompressionError) as e:
        st.error(t("explore.cannot_apply", error=plain(e)))
        st.stop()
    row = r.to_row()
    st.session_state.history[(p.model, p.dataset, p.epochs, p.subset, row["key"])] = row
    metrics.show(r)
    explain.selection(base, config, pick.baseline_caption(p, base))
    explain.show(r, config)
    ship.latency_metric(p, config)
    shows = {
        "tradeoff": lambda: (
            show_tradeoff(r, row["key"]),
            ship.latency_tradeoff(history_frame(), p, "explore"),
        ),
        "layers": lambda: (show_layers(r), error_table.show(*p.args, row["key"])),
        "weights": lambda: show_weights(r, p, row["key"]),
        "changes": lambda: show_changes(r, data),
        "export": lambda: show_export(r, p, row["key"]),
        "ship": lambda: ship.render_ship_panel(p, config, r),
    }
    # Only the open tab is drawn: with a class on one server, drawing five tabs per slider move
    # (24 images, 4 charts) costs every session time it does not look at.
    labels = [t(f"explore.tab_{name}") for name in shows]
    keep_open_tab("explore_tab", [f"explore.tab_{name}" for name in shows])
    tabs = st.tabs(labels, key="explore_tab", on_change="rerun")
    for tab, show in zip(tabs, shows.values(), strict=True):
        if tab.open:
            with tab:
                show()


def keep_open_tab(key: str, label_keys: list[str]) -> None:
    """Tabs remember the open one by its label: after a language switch, the same tab's label."""
    for label_key in label_keys:
        if st.session_state.get(key) in {catalog.text(lang, label_key) for lang in LANGUAGES}:
            st.session_state[key] = t(label_key)


def navigation():
    """Explore first, then every page in pages/ ("3_Budget.py" is listed as t("nav.Budget"))."""
    view.start()
    view.show_problems()
    pages = [st.Page(explore, title=t("nav.Explore"), icon="✂️", url_path="explore", default=True)]
    for path in sorted((Path(__file__).parent / "pages").glob("*.py")):
        # the URL keeps the file's name ("Your_model"); only the title is translated
        name = path.stem.split("_", 1)[-1]
        pages.append(st.Page(f"pages/{path.name}", title=t(f"nav.{name}"), url_path=name))
    page = st.navigation(pages)
    view.enter_page(page.url_path)
    return page


navigation().run()
# After the first complete run (modules, the baseline, plotly's lazy imports are loaded):
# later garbage collections skip them (see ui/runtime.py).
runtime.freeze_once()
