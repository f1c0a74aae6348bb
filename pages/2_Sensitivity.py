"""Layer sensitivity: each layer alone pruned to rates r, and alone quantized to b bits.

Distiller's and AIMET's sensitivity analysis: the rest of the network is left
untouched, so each curve shows what that one layer can take. Points are cached
one by one (``cache.sensitivity_point``) and kept in ``st.session_state`` as
they land, so Stop keeps the finished ones.
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from compress_core.analysis.sensitivity import (
    SENS_BITS,
    SENS_RATES,
    rank_layers,
    sensitivity_configs,
)
from compress_core.analysis.sensitivity import SensitivityPoint as Point
from compress_core.core.config import (
    GRANULARITIES,
    PRUNE_METHODS,
    QUANT_METHODS,
    CompressionConfig,
    ConfigError,
)
from compress_core.core.layers import weight_layers
from compress_core.core.pipeline import CompressionError
from ui import cache, charts, controls, i18n, pick
from ui.i18n import t
from ui.safe import plain

st.set_page_config(page_title="Slimscope · Sensitivity", page_icon="✂️", layout="wide")

SPLITS = ("val", "test")


def split_name(split: str) -> str:
    return t(f"sens.split_{split}")


def analysis_form(p, layers: list[str]) -> dict | None:
    """Layers, settings and methods; returns the job to run when submitted."""
    with st.form("sens_form"):
        chosen = st.multiselect(
            t("sens.layers"), layers, default=layers, key="sens_layers", help=t("sens.layers_help")
        )
        rates, bits = controls.grid_choices("sens", SENS_RATES, SENS_BITS, st.columns(2))
        c, d, e, f = st.columns(4)
        method = c.selectbox(
            t("ctl.method"), PRUNE_METHODS, key="sens_method", format_func=controls.method_label
        )
        quant = d.selectbox(
            t("ctl.quant"), QUANT_METHODS, key="sens_quant", format_func=controls.quant_label
        )
        gran = e.radio(
            t("ctl.granularity"),
            GRANULARITIES,
            GRANULARITIES.index("per_channel"),
            key="sens_granularity",
            horizontal=True,
            format_func=lambda g: t(f"granularity.{g}"),
        )
        split = f.radio(
            t("sens.split"),
            SPLITS,
            key="sens_split",
            format_func=split_name,
            help=t("sens.split_help"),
        )
        submitted = st.form_submit_button(t("sens.analyse"), type="primary", key="sens_submit")
    if not submitted:
        return None
    if not (chosen and rates and bits):
        st.warning(t("sens.choose"))
        return None
    common = CompressionConfig(prune_method=method, quant=quant, granularity=gran)
    return {
        "pick": (*p.args, p.subset),
        "layers": chosen,
        "rates": sorted(r / 100 for r in rates),
        "bits": sorted(bits),
        "common": common.key(),
        "split": split,
        "finished": False,
    }


def todo(base, job: dict) -> list[tuple[str, str, str]]:
    common = CompressionConfig.from_dict(json.loads(job["common"]))
    configs = sensitivity_configs(base, job["layers"], job["rates"], job["bits"], common)
    return [(layer, kind, config.key()) for layer, kind, config in configs]


def run(p, base, job: dict) -> None:
    """Compute the points one by one with a progress bar; Stop keeps the finished ones."""
    points = st.session_state.sens_points
    stop = st.empty()  # cleared when the run ends
    stop.button(t("run.stop"), key="sens_stop", help=t("run.stop_help"))
    bar = st.progress(0.0, text=t("run.starting"))
    work = todo(base, job)
    for i, (layer, kind, key) in enumerate(work):
        point = cache.sensitivity_point(*p.args, layer, kind, key, job["split"], p.subset)
        points[(*job["pick"], layer, kind, key, job["split"])] = point
        rate = t("sens.pruned", rate=i18n.percent(point.prune_rate, 0))
        setting = rate if kind == "prune" else t("ctl.n_bit", bits=point.bits)
        change = t("num.pp", value=f"{point.delta_pp:+.2f}")
        text = t("sens.progress", i=i + 1, n=len(work), layer=layer, setting=setting, pp=change)
        bar.progress((i + 1) / len(work), text=text)
    bar.empty()
    stop.empty()
    job["finished"] = True


def job_points(base, job: dict) -> list[Point]:
    points = st.session_state.sens_points
    keys = [(*job["pick"], *w, job["split"]) for w in todo(base, job)]
    return [points[k] for k in keys if k in points]


def show(points: list[Point], job: dict, total: int) -> None:
    if not job["finished"]:
        st.warning(t("run.stopped", n=len(points), total=total))
    if not points:
        st.info(t("sens.none_yet"))
        return
    frame = pd.DataFrame([pt.to_row() for pt in points])
    left, right = st.columns(2)
    left.subheader(t("sens.prune_one"))
    left.plotly_chart(charts.sensitivity_figure(frame, "prune"), key="sens_plot_prune")
    right.subheader(t("sens.quant_one"))
    right.plotly_chart(charts.sensitivity_figure(frame, "quantize"), key="sens_plot_quant")
    st.subheader(t("sens.which"))
    tol = st.slider(
        t("sens.tolerance"),
        0.0,
        10.0,
        1.0,
        0.1,
        key="sens_tolerance",
        help=t("sens.tolerance_help"),
    )
    ranked = pd.DataFrame(rank_layers(points, tol)).set_index("rank")
    st.dataframe(
        ranked,
        key="sens_rank",
        column_config={
            "_index": t("sens.col_rank"),
            "layer": t("layers.layer"),
            "params": st.column_config.NumberColumn(t("layers.params"), format="localized"),
            "worst_prune_pp": t("sens.col_worst_prune"),
            "worst_quant_pp": t("sens.col_worst_quant"),
            "mean_drop_pp": t("sens.col_mean_drop"),
            "max_rate": st.column_config.NumberColumn(t("sens.col_max_rate"), format="percent"),
            "min_bits": st.column_config.NumberColumn(t("sens.col_min_bits")),
            "share_of_weights": st.column_config.ProgressColumn(
                t("sens.col_share"), format="percent", min_value=0, max_value=1
            ),
        },
    )
    fixed = ranked.loc[ranked["max_rate"].isna(), "layer"].tolist()
    if fixed:
        st.caption(t("sens.fixed", layers=", ".join(fixed)))
    st.caption(t("sens.ranked_help", split=split_name(job["split"])))
    st.download_button(
        t("run.csv"),
        frame.to_csv(index=False),
        "slimscope-sensitivity.csv",
        "text/csv",
        key="sens_csv",
        on_click="ignore",  # no rerun: the served file stays while it downloads
    )


def main() -> None:
    i18n.language_picker()
    st.title(t("sens.title"))
    st.caption(t("sens.caption"))
    if "sens_points" not in st.session_state:
        st.session_state.sens_points = {}
    p = pick.sidebar()
    base, _ = pick.load_baseline(p)
    job = analysis_form(p, list(weight_layers(base)))
    try:
        if job is not None:
            st.session_state.sens_job = job
            run(p, base, job)
        job = st.session_state.get("sens_job")
        if job is None or job["pick"] != (*p.args, p.subset):
            st.info(t("sens.start"))
            return
        show(job_points(base, job), job, len(todo(base, job)))
    except (ConfigError, CompressionError) as e:
        st.error(t("sens.cannot_run", error=plain(e)))


main()
