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
        frame["group"] = (
            frame["model"]
            + " · "
            + frame["dataset"]
            + " · base "
            + frame["base_hash"].str[:8]
            + " · "
            + frame["eval_images"].map("{:,} test images".format)
        )
    return frame


def filters(frame: pd.DataFrame) -> pd.DataFrame:
    a, b, c, d = st.columns(4)
    models = a.multiselect("Models", sorted(frame["model"].unique()), key="cmp_models")
    datasets = b.multiselect("Data sets", sorted(frame["dataset"].unique()), key="cmp_datasets")
    sources = c.multiselect(
        "Where from",
        sorted(frame["source"].unique()),
        key="cmp_sources",
        help="dashboard: Explore page; upload: Your model page; cli: the command line.",
    )
    tuned = d.selectbox("Fine-tuning", ["all", "one-shot", "fine-tuned"], key="cmp_tuned")
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
        st.warning(
            f"{len(broken)} result(s) had NaN/Inf outputs: they are listed, never plotted.",
            icon="⚠️",
        )
    groups = frame["group"].value_counts()
    group = st.selectbox(
        "Plot one base model",
        list(groups.index),
        key="cmp_group",
        format_func=lambda g: f"{g} ({groups[g]} results)",
        help="Accuracy is only comparable on the same base weights and test images.",
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
        f"Download these {len(frame)} results (CSV)",
        frame.drop(columns=["group"]).to_csv(index=False),
        "slimscope-history.csv",
        "text/csv",
        key="cmp_csv",
    )
    kept = frame[frame["has_artifact"]]
    if not len(kept):
        right.caption("No compressed model is kept for these results.")
        return
    labels = {r.id: f"#{r.id} {r.model} · {r.dataset} · {r.label}" for r in kept.itertuples()}
    run = right.selectbox("Compressed model", list(labels), key="cmp_run", format_func=labels.get)
    try:
        blob = store.artifact(int(run))
    except StoreError as e:
        right.error(f"{e}")
        return
    if blob is not None:
        row = kept[kept["id"] == run].iloc[0]
        right.download_button(
            f"Download #{run} ({human_bytes(len(blob))})",
            blob,
            f"{row['model']}-{row['dataset'].replace(':', '-')}-{run}.slim",
            "application/octet-stream",
            key="cmp_artifact",
            help="Read it back with compress_core.format.artifact.load_compressed(path).",
        )


def main() -> None:
    i18n.language_picker()
    st.title("Compare")
    st.caption("Every result computed here — any model, any session, the CLI — kept on disk.")
    store = cache.open_store()
    frame, problem = pd.DataFrame(), None
    if store is not None:
        try:
            frame = load(store)
        except StoreError as e:
            problem = str(e)
    for text in dict.fromkeys([*cache.STORE_PROBLEMS, *(store.warnings if store else [])]):
        st.warning(f"Result store: {text}", icon="⚠️")
    if store is None or problem:
        st.error(
            f"The result history cannot be read{f' ({problem})' if problem else ''}; "
            "results are still shown on each page."
        )
        st.stop()
    if not len(frame):
        st.info("No results yet: move a slider on the Explore page, or upload a model.")
        st.stop()
    shown = filters(frame)
    st.caption(f"{len(shown)} of {len(frame)} stored results")
    if not len(shown):
        st.info("No stored result matches these filters.")
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
