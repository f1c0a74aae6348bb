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

st.set_page_config(page_title="Slimscope · Sensitivity", page_icon="✂️", layout="wide")

SPLIT_NAMES = {"val": "validation split", "test": "test split"}


def analysis_form(p, layers: list[str]) -> dict | None:
    """Layers, settings and methods; returns the job to run when submitted."""
    with st.form("sens_form"):
        chosen = st.multiselect(
            "Layers", layers, default=layers, key="sens_layers", help="Each is analysed alone."
        )
        rates, bits = controls.grid_choices("sens", SENS_RATES, SENS_BITS, st.columns(2))
        c, d, e, f = st.columns(4)
        method = c.selectbox("Pruning method", PRUNE_METHODS, key="sens_method")
        quant = d.selectbox("Quantizer", QUANT_METHODS, key="sens_quant")
        gran = e.radio(
            "Granularity",
            GRANULARITIES,
            GRANULARITIES.index("per_channel"),
            key="sens_granularity",
            horizontal=True,
        )
        split = f.radio(
            "Decide on split",
            list(SPLIT_NAMES),
            key="sens_split",
            format_func=SPLIT_NAMES.get,
            help="Decide on the validation split; keep the test split for reporting.",
        )
        submitted = st.form_submit_button("Analyse", type="primary", key="sens_submit")
    if not submitted:
        return None
    if not (chosen and rates and bits):
        st.warning("Choose at least one layer, one rate and one bit width.")
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
    stop.button("Stop", key="sens_stop", help="Stop after the current point; finished ones stay.")
    bar = st.progress(0.0, text="starting …")
    work = todo(base, job)
    for i, (layer, kind, key) in enumerate(work):
        point = cache.sensitivity_point(*p.args, layer, kind, key, job["split"], p.subset)
        points[(*job["pick"], layer, kind, key, job["split"])] = point
        setting = f"{point.prune_rate:.0%} pruned" if kind == "prune" else f"{point.bits}-bit"
        bar.progress(
            (i + 1) / len(work),
            text=f"{i + 1}/{len(work)} · {layer} {setting}: {point.delta_pp:+.2f} pp",
        )
    bar.empty()
    stop.empty()
    job["finished"] = True


def job_points(base, job: dict) -> list[Point]:
    points = st.session_state.sens_points
    keys = [(*job["pick"], *w, job["split"]) for w in todo(base, job)]
    return [points[k] for k in keys if k in points]


def show(points: list[Point], job: dict, total: int) -> None:
    if not job["finished"]:
        st.warning(f"Stopped: {len(points)} of {total} points finished and are kept below.")
    if not points:
        st.info("No point finished yet. Press **Analyse**.")
        return
    frame = pd.DataFrame([pt.to_row() for pt in points])
    left, right = st.columns(2)
    left.subheader("Pruning one layer")
    left.plotly_chart(charts.sensitivity_figure(frame, "prune"), key="sens_plot_prune")
    right.subheader("Quantizing one layer")
    right.plotly_chart(charts.sensitivity_figure(frame, "quantize"), key="sens_plot_quant")
    st.subheader("Which layers can take the most compression")
    tol = st.slider(
        "Accuracy drop allowed per layer (pp)",
        0.0,
        10.0,
        1.0,
        0.1,
        key="sens_tolerance",
        help="A layer 'takes' a setting while its accuracy stays within this of the baseline.",
    )
    ranked = pd.DataFrame(rank_layers(points, tol)).set_index("rank")
    st.dataframe(
        ranked,
        key="sens_rank",
        column_config={
            "max_rate": st.column_config.NumberColumn("max rate", format="percent"),
            "min_bits": st.column_config.NumberColumn("min bits"),
            "share_of_weights": st.column_config.ProgressColumn(
                "share of weights", format="percent", min_value=0, max_value=1
            ),
        },
    )
    fixed = ranked.loc[ranked["max_rate"].isna(), "layer"].tolist()
    if fixed:
        st.caption(f"Not prunable with this method (its outputs are the classes): {fixed}.")
    st.caption(
        f"On the {SPLIT_NAMES[job['split']]}. max rate: the highest rate before accuracy first "
        "falls more than the allowed drop; min bits likewise. Big layers that take high rates "
        "and few bits are where compression pays."
    )
    st.download_button(
        "Download all points (CSV)",
        frame.to_csv(index=False),
        "slimscope-sensitivity.csv",
        "text/csv",
        key="sens_csv",
    )


def main() -> None:
    i18n.language_picker()
    st.title("Layer sensitivity")
    st.caption(
        "Prune or quantize one layer at a time, the rest untouched: which layers are fragile, "
        "and which can take the most compression?"
    )
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
            st.info("Choose layers and settings and press **Analyse**.")
            return
        show(job_points(base, job), job, len(todo(base, job)))
    except (ConfigError, CompressionError) as e:
        st.error(f"This analysis cannot be run: {e}")


main()
