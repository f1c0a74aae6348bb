"""Sweep: a grid of pruning rates x bit widths (x methods), the Pareto front, a heatmap, a table.

Each point is ``cache.result`` (the Explore page's cache), so a point seen once
is instant afterwards. Points land in ``st.session_state`` as they finish, so
pressing Stop (which reruns the page and so interrupts the loop) keeps them.
"""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from compress_core.analysis.pareto import pareto_mask
from compress_core.analysis.sweep import GRID_BITS, GRID_RATES, method_grid
from compress_core.core.config import PRUNE_METHODS, QUANT_METHODS, ConfigError
from compress_core.core.pipeline import CompressionError
from compress_core.report import sweep_report
from ui import charts, controls, i18n, pick, remote, ship
from ui.format import human_bytes, result_columns
from ui.i18n import t
from ui.report import download_html
from ui.safe import plain

st.set_page_config(page_title="Slimscope · Sweep", page_icon="✂️", layout="wide")

LIVE_SECONDS = 0.5  # redraw the live chart at most this often
MAX_POINTS = 600  # a bigger grid would keep a shared 2-core server busy for many minutes
TABLE = [
    "label",
    "prune_method",
    "prune_rate",
    "quant",
    "bits",
    "accuracy",
    "delta_pp",
    "artifact_bytes",
    "ratio",
    "nonzero_params",
    "front_bytes",
    "front_params",
]


def grid_form(p) -> dict | None:
    """The grid chosen with multiselects; returns the job to run when submitted."""
    with st.form("sweep_form"):
        rates, bits = controls.grid_choices("sweep", GRID_RATES, GRID_BITS, st.columns(2))
        c, d, e = st.columns(3)
        lists = (
            (
                c,
                "sweep.methods",
                PRUNE_METHODS,
                "magnitude",
                "sweep_methods",
                controls.method_label,
            ),
            (d, "sweep.quants", QUANT_METHODS, "uniform", "sweep_quants", controls.quant_label),
        )
        methods, quants = (
            where.multiselect(t(label), options, [first], key=key, format_func=name)
            for where, label, options, first, key, name in lists
        )
        skip = e.toggle(t("ctl.skip"), True, key="sweep_skip")
        submitted = st.form_submit_button(t("sweep.run"), type="primary", key="sweep_submit")
    if not submitted:
        return None
    if not (rates and bits and methods and quants):
        st.warning(t("sweep.choose"))
        return None
    configs = method_grid(
        sorted(r / 100 for r in rates), sorted(bits), methods, quants, skip_first_last=skip
    )
    if len(configs) > MAX_POINTS:
        st.warning(t("sweep.too_many", n=len(configs), max=MAX_POINTS))
        return None
    return {"pick": (*p.args, p.subset), "keys": [c.key() for c in configs], "finished": False}


def run(p, job: dict) -> None:
    """Compute the job's points, showing each as it lands (in any order); Stop keeps them."""
    points = st.session_state.sweep_points
    stop = st.empty()  # cleared when the run ends
    stop.button(t("run.stop"), key="sweep_stop", help=t("run.stop_help"))
    bar = st.progress(0.0, text=t("run.starting"))
    live = st.empty()
    total, drawn, landed = len(job["keys"]), 0.0, []

    def land(i: int, r) -> None:
        nonlocal drawn
        landed.append(i)
        if isinstance(r, (ConfigError, CompressionError)):
            st.warning(t("sweep.skipped", error=plain(r)))
            return
        points[(*job["pick"], job["keys"][i])] = r.to_row()
        n = len(landed)
        bar.progress(
            n / total,
            text=t(
                "sweep.progress",
                i=n,
                total=total,
                label=r.label,
                acc=i18n.percent(r.accuracy, 2),
                size=human_bytes(r.artifact_bytes),
            ),
        )
        if time.monotonic() - drawn > LIVE_SECONDS or n == total:  # cached points fly by
            base = (r.dense_bytes, r.baseline_accuracy)
            fig = charts.sweep_figure(job_frame(job), baseline=base)
            live.plotly_chart(fig, key=f"sweep_live_{n}")
            drawn = time.monotonic()

    remote.run_sweep(p, job["keys"], land, remote.executor_from_settings())
    live.empty()
    bar.empty()
    stop.empty()
    job["finished"] = True


def job_frame(job: dict) -> pd.DataFrame:
    """The finished points of a job, in grid order, with Pareto flags for both size measures."""
    points = st.session_state.sweep_points
    rows = [points[(*job["pick"], k)] for k in job["keys"] if (*job["pick"], k) in points]
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["front_bytes"] = pareto_mask(frame, "artifact_bytes", "accuracy")
        frame["front_params"] = pareto_mask(frame, "nonzero_params", "accuracy")
    return frame


def show(frame: pd.DataFrame, job: dict, base) -> None:
    total = len(job["keys"])
    if not job["finished"]:
        st.warning(t("run.stopped", n=len(frame), total=total))
    if not len(frame):
        st.info(t("sweep.none_yet"))
        return
    params = sum(p.numel() for p in base.parameters())
    acc = float((frame["accuracy"] - frame["delta_pp"] / 100).iloc[0])  # the baseline's
    a, b, c = st.columns(3)
    a.metric(t("sweep.points"), t("sweep.n_of", n=len(frame), total=total))
    b.metric(t("sweep.on_front"), int(frame["front_bytes"].sum()))
    best = frame.loc[frame["accuracy"].idxmax()]
    pp = t("num.pp", value=f"{best['delta_pp']:+.2f}")
    c.metric(t("sweep.best"), i18n.percent(best["accuracy"], 2), pp)
    left, right = st.columns(2)
    left.plotly_chart(
        charts.sweep_figure(frame, "artifact_bytes", (4 * params, acc)), key="sweep_plot_bytes"
    )
    right.plotly_chart(
        charts.sweep_figure(frame, "nonzero_params", (params, acc)), key="sweep_plot_params"
    )
    st.caption(t("sweep.ringed"))
    show_heatmap(frame)
    show_table(frame)


def show_heatmap(frame: pd.DataFrame) -> None:
    frame = frame.assign(methods=frame.apply(charts.method_label, axis=1))
    pairs = sorted(frame["methods"].unique())
    a, b = st.columns(2)
    pair = (
        a.selectbox(t("sweep.heatmap_of"), pairs, key="sweep_heat_methods")
        if len(pairs) > 1
        else pairs[0]
    )
    value = b.radio(
        t("sweep.value"),
        ["accuracy", "artifact_bytes", "nonzero_params"],
        horizontal=True,
        key="sweep_heat_value",
        format_func=lambda v: t(f"sweep.value_{v}"),
    )
    st.plotly_chart(
        charts.heatmap_figure(frame[frame["methods"] == pair], value), key="sweep_heatmap"
    )


def show_table(frame: pd.DataFrame) -> None:
    st.dataframe(
        frame[TABLE],
        hide_index=True,
        key="sweep_table",
        column_config=result_columns(),
    )
    st.download_button(
        t("run.csv"),
        frame.to_csv(index=False),
        "slimscope-sweep.csv",
        "text/csv",
        key="sweep_csv",
        on_click="ignore",  # no rerun: the served file stays while it downloads
    )
    model, dataset = frame["model"].iloc[0], frame["dataset"].iloc[0]
    common = {"skip_first_last": bool(frame["skip_first_last"].iloc[0])}
    report = lambda lang: sweep_report(lang, model, dataset, frame, common)  # noqa: E731
    download_html(report, "slimscope-sweep", "sweep_report")


def main() -> None:
    i18n.language_picker()
    st.title(t("nav.Sweep"))
    st.caption(t("sweep.caption"))
    if "sweep_points" not in st.session_state:
        st.session_state.sweep_points = {}
    p = pick.sidebar()
    base, _ = pick.load_baseline(p)
    remote.caption()
    job = grid_form(p)
    if job is not None:
        st.session_state.sweep_job = job
        run(p, job)
    job = st.session_state.get("sweep_job")
    if job is None or job["pick"] != (*p.args, p.subset):
        st.info(t("sweep.start"))
        return
    show(job_frame(job), job, base)
    ship.latency_tradeoff(job_frame(job), p, "sweep")


main()
