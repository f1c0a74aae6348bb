"""The Recovery page's soft weight-sharing tab: train under a mixture prior, then snap.

Three settings with a line each, a progress bar and a Stop button while it trains
(``ui/jobs.py``), then the snapped model's accuracy, bytes and ratio beside the fp32
baseline and the published MNIST points. Finished runs are kept by the engine's
disk cache (``train.soft_sharing.get_soft_sharing``), so a rerun or a page change
shows them again without training.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from compress_core.core.config import ConfigError
from compress_core.train.papers import published
from compress_core.train.soft_sharing import SoftSharingConfig, cache_path

from . import cache, charts
from .format import human_bytes, result_columns
from .i18n import number, percent, t
from .jobs import run_job, stopped_note
from .safe import plain

METHOD = "Soft weight-sharing"  # papers.PublishedPoint.method of Ullrich et al.'s points
TAUS = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)


def controls() -> SoftSharingConfig:
    """Epochs, components and tau; the engine's defaults on first use."""
    d = SoftSharingConfig()
    defaults = {"sws_epochs": d.epochs, "sws_components": d.components, "sws_tau": d.tau}
    for key, default in defaults.items():
        st.session_state[key] = st.session_state.get(key, default)
    a, b, c = st.columns(3)
    epochs = a.slider(t("sws.epochs"), 1, 20, key="sws_epochs", help=t("sws.epochs_help"))
    components = b.slider(
        t("sws.components"), 1, 63, key="sws_components", help=t("sws.components_help")
    )
    tau = c.select_slider(
        t("sws.tau"),
        sorted({*TAUS, d.tau}),
        key="sws_tau",
        format_func=lambda v: f"{v:g}",
        help=t("sws.tau_help"),
    )
    return SoftSharingConfig(epochs=epochs, components=components, tau=tau)


def tab(p, base, data) -> None:
    """The whole tab: settings, the Train button, and the result once there is one."""
    st.caption(t("sws.caption"))
    try:
        cfg = controls()
    except ConfigError as e:
        st.error(t("explore.cannot_apply", error=plain(e)))
        return
    st.caption(t("sws.codes", components=cfg.components, bits=cfg.code_bits))
    go = st.button(t("sws.run"), key="sws_run", type="primary")
    stopped_note()
    rows = st.session_state.setdefault("sws_rows", {})  # every run shown this session
    key = (p.args, cfg.key())
    trained = go and run_job(
        t("sws.job", model=p.model),
        lambda show: cache.train_soft_sharing(*p.args, cfg.key(), show),
        "sws_run",
    )
    if not trained and key not in rows and not cache_path(base, data, cfg).is_file():
        st.info(t("sws.start"))
        return
    out = cache.soft_sharing_run(*p.args, cfg.key())
    r = out["result"]
    rows[key] = r.to_row()
    show_result(p, r, rows)
    st.download_button(
        t("export.artifact", size=human_bytes(len(out["artifact"]))),
        out["artifact"],
        f"{p.model}-{p.dataset}-soft-sharing.slim",
        "application/octet-stream",
        key="sws_download",
        on_click="ignore",  # no rerun: the served file stays while it downloads
    )


def show_result(p, r, rows: dict) -> None:
    """Accuracy, bytes, ratio and non-zeros; the chart beside the baseline and the papers."""
    points = published(p.model)
    theirs = next((q for q in points if q.method == METHOD), None)
    a, b, c, d = st.columns(4)
    a.metric(
        t("metric.accuracy"),
        percent(r.accuracy, 2),
        t("budget.pp_vs_base", value=f"{r.delta_pp:+.2f}"),
    )
    b.metric(t("dc.artifact"), human_bytes(r.artifact_bytes), help=t("dc.artifact_help"))
    c.metric(
        t("dc.ratio"),
        t("metric.times", value=f"{r.ratio:.1f}"),
        t("sws.paper_ratio", ratio=f"{theirs.ratio:.0f}") if theirs else None,
        delta_color="off",
    )
    d.metric(t("metric.nonzero"), number(r.nonzero_params))
    st.caption(
        t(
            "sws.snapped",
            zero=percent(r.config["prune_rate"]),
            bits=r.config["bits"],
            acc=percent(r.baseline_accuracy, 2),
            dense=human_bytes(r.dense_bytes),
        )
    )
    frame = pd.DataFrame([row for k, row in rows.items() if k[0] == p.args])
    papers = pd.DataFrame([q.to_row() for q in points]) if points else None
    baseline = (r.dense_bytes, r.baseline_accuracy)
    fig = charts.soft_sharing_figure(frame, r.label, baseline, papers)
    st.plotly_chart(fig, key="sws_plot")
    if points:
        missing = [f"{q.label} ({q.citation})" for q in points if q.accuracy is None]
        note = t("dc.published_not_drawn", points="; ".join(missing)) if missing else ""
        st.caption(f"{t('sws.published')} {note}".strip())
        if p.dataset != "mnist":
            st.info(t("dc.not_mnist", data=p.dataset))
    else:
        st.info(t("sws.not_in_paper", model=p.model))
    table = frame[["label", "accuracy", "delta_pp", "artifact_bytes", "ratio", "nonzero_params"]]
    st.dataframe(table, hide_index=True, key="sws_table", column_config=result_columns())
