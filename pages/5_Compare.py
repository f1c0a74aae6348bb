"""Compare: every result ever computed here, across models, uploads and sessions.

Read from the SQLite result store (``compress_core.io.store``): filter it, plot the
trade-off per base model, export it as CSV, and download a kept artifact again.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from compress_core.io.store import StoreError
from ui import cache, charts, i18n
from ui.format import human_bytes, result_columns
from ui.i18n import number, t
from ui.safe import plain

st.set_page_config(page_title="Slimscope · Compare", page_icon="✂️", layout="wide")

COLUMNS = [
    "id",
    "created",
    "model",
    "dataset",
    "label",
    "accuracy",
    "delta_pp",
    "artifact_bytes",
    "ratio",
    "nonzero_params",
    "finetuned",
    "finite",
    "eval_images",
    "source",
    "base_hash",
    "has_artifact",
]


def load(store) -> pd.DataFrame:
    frame = pd.DataFrame(store.rows())
    if len(frame):
        frame["created"] = pd.to_datetime(frame["created"], unit="s").dt.floor("s")
        frame["group"] = [
            t("cmp.group", model=m, data=d, base=h[:8], n=number(n))
            for m, d, h, n in zip(
                frame["model"],
                frame["dataset"],
                frame["base_hash"],
                frame["eval_images"],
                strict=True,
            )
        ]
    return frame


def filters(frame: pd.DataFrame) -> pd.DataFrame:
    a, b, c, d = st.columns(4)
    models = a.multiselect(t("cmp.models"), sorted(frame["model"].unique()), key="cmp_models")
    datasets = b.multiselect(
        t("cmp.datasets"), sorted(frame["dataset"].unique()), key="cmp_datasets"
    )
    sources = c.multiselect(
        t("rcol.source"),
        sorted(frame["source"].unique()),
        key="cmp_sources",
        help=t("cmp.sources_help"),
    )
    tuned = d.selectbox(
        t("rcol.finetuned"),
        ["all", "one-shot", "fine-tuned"],
        key="cmp_tuned",
        format_func=lambda v: t(f"cmp.tuned_{v.replace('-', '_')}"),
    )
    keep = pd.Series(True, index=frame.index)
    for column, chosen in (("model", models), ("dataset", datasets), ("source", sources)):
        if chosen:
            keep &= frame[column].isin(chosen)
    if tuned != "all":
        keep &= frame["finetuned"] == (tuned == "fine-tuned")
    return frame[keep]


def plot(frame: pd.DataFrame) -> None:
    broken = frame[~frame["finite"]]
    if len(broken):
        st.warning(t("cmp.broken", n=len(broken)), icon="⚠️")
    groups = frame["group"].value_counts()
    group = st.selectbox(
        t("cmp.plot_one"),
        list(groups.index),
        key="cmp_group",
        format_func=lambda g: t("cmp.group_n", group=g, n=groups[g]),
        help=t("cmp.plot_one_help"),
    )
    part = frame[frame["group"] == group]
    first = part.iloc[0]
    base_acc = first["accuracy"] - first["delta_pp"] / 100
    left, right = st.columns(2)
    left.plotly_chart(
        charts.tradeoff_figure(part, "nonzero_params", None, (first["dense_bytes"] / 4, base_acc)),
        key="cmp_plot_params",
    )
    right.plotly_chart(
        charts.tradeoff_figure(part, "artifact_bytes", None, (first["dense_bytes"], base_acc)),
        key="cmp_plot_bytes",
    )


def downloads(store, frame: pd.DataFrame) -> None:
    left, right = st.columns(2)
    left.download_button(
        t("cmp.csv", n=len(frame)),
        frame.drop(columns=["group"]).to_csv(index=False),
        "slimscope-history.csv",
        "text/csv",
        key="cmp_csv",
        on_click="ignore",  # no rerun: the served file stays while it downloads
    )
    kept = frame[frame["has_artifact"]]
    if not len(kept):
        right.caption(t("cmp.none_kept"))
        return
    labels = {r.id: f"#{r.id} {r.model} · {r.dataset} · {r.label}" for r in kept.itertuples()}
    run = right.selectbox(t("cmp.compressed"), list(labels), key="cmp_run", format_func=labels.get)
    try:
        blob = store.artifact(int(run))
    except StoreError as e:
        right.error(t("cmp.store_error", error=e))
        return
    if blob is not None:
        row = kept[kept["id"] == run].iloc[0]
        right.download_button(
            t("cmp.download", run=run, size=human_bytes(len(blob))),
            blob,
            f"{row['model']}-{row['dataset'].replace(':', '-')}-{run}.slim",
            "application/octet-stream",
            key="cmp_artifact",
            help=t("export.artifact_help"),
            on_click="ignore",  # no rerun: the served file stays while it downloads
        )


def main() -> None:
    i18n.language_picker()
    st.title(t("nav.Compare"))
    st.caption(t("cmp.caption"))
    store = cache.open_store()
    frame, problem = pd.DataFrame(), None
    if store is not None:
        try:
            frame = load(store)
        except StoreError as e:
            problem = str(e)
    for text in dict.fromkeys([*cache.STORE_PROBLEMS, *(store.warnings if store else [])]):
        st.warning(t("cmp.store_warning", text=plain(text)), icon="⚠️")
    if store is None or problem:
        st.error(t("cmp.unreadable", problem=f" ({plain(problem)})" if problem else ""))
        st.stop()
    if not len(frame):
        st.info(t("cmp.empty"))
        st.stop()
    shown = filters(frame)
    st.caption(t("cmp.shown", n=len(shown), total=len(frame)))
    if not len(shown):
        st.info(t("cmp.no_match"))
        st.stop()
    st.dataframe(
        shown[COLUMNS],
        hide_index=True,
        key="cmp_table",
        column_config=result_columns(),
    )
    plot(shown)
    downloads(store, shown)


main()
