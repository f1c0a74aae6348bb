"""Accuracy budget: the smallest model (per-layer rates and bits) that keeps accuracy >= delta.

One call into ``compress_core.analysis.budget.search`` (cached by ``cache.budget``): the
uniform grid, layer sensitivity, AIMET-style greedy selection and Neural
Compressor-style refinement, all decided on the validation split; the chosen
model's test accuracy is reported afterwards.
"""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import streamlit as st

from compress_core.analysis.budget import MAX_EVALS, OBJECTIVES, Budget, BudgetProgress
from compress_core.analysis.sweep import GRID_BITS, GRID_RATES
from compress_core.core.config import (
    GRANULARITIES,
    QUANT_METHODS,
    CompressionConfig,
    ConfigError,
)
from compress_core.core.pipeline import CompressionError
from ui import cache, charts, controls, pick
from ui.format import human_bytes

st.set_page_config(page_title="Slimscope · Budget", page_icon="✂️", layout="wide")

GOALS = {"drop": "at most X pp below the baseline", "absolute": "an absolute accuracy"}


def budget_form(p) -> dict | None:
    """delta, the objective and the search space; returns the request when submitted."""
    with st.form("budget_form"):
        a, b, c = st.columns(3)
        goal = a.radio("Keep", list(GOALS), key="budget_goal", format_func=GOALS.get)
        drop = b.number_input(
            "Allowed drop (pp)", 0.0, 100.0, 1.0, 0.1, key="budget_drop", help="Used for 'at most'."
        )
        absolute = b.number_input(
            "Accuracy to keep (%)",
            0.0,
            100.0,
            90.0,
            0.1,
            key="budget_abs",
            help="Used for absolute.",
        )
        objective = c.radio(
            "Minimise", list(OBJECTIVES), key="budget_objective", format_func=OBJECTIVES.get
        )
        with st.expander("Methods and search space"):
            d, e, f = st.columns(3)
            method = d.selectbox("Pruning method", ["magnitude", "random"], key="budget_method")
            quant = d.selectbox("Quantizer", QUANT_METHODS, key="budget_quant")
            gran = e.radio(
                "Granularity",
                GRANULARITIES,
                GRANULARITIES.index("per_channel"),
                key="budget_granularity",
            )
            skip = e.toggle("Keep first and last layer intact", True, key="budget_skip")
            evals = f.slider("Whole-model evaluations", 5, 200, MAX_EVALS, key="budget_evals")
            rates, bits = controls.grid_choices(
                "budget",
                GRID_RATES,
                GRID_BITS,
                labels=("Rates a layer may take (%)", "Bit widths a layer may take"),
            )
        submitted = st.form_submit_button("Search", type="primary", key="budget_submit")
    if not submitted:
        return None
    if not (rates and bits):
        st.warning("Choose at least one rate and one bit width.")
        return None
    goal_args = {"max_drop_pp": drop} if goal == "drop" else {"min_accuracy": absolute / 100}
    common = CompressionConfig(
        prune_method=method, quant=quant, granularity=gran, skip_first_last=skip
    )
    return {
        "pick": p.args,
        "budget": json.dumps(dataclasses.asdict(Budget(objective=objective, **goal_args))),
        "common": common.key(),
        "rates": tuple(sorted(r / 100 for r in rates)),
        "bits": tuple(sorted(bits)),
        "evals": evals,
    }


def search(p, req: dict):
    """The cached search; on a miss, a progress bar and a Stop button while it runs."""
    box = st.status("Searching …", expanded=True)
    stop = box.empty()  # pressing Stop reruns the page, which interrupts the running search
    stop.button("Stop", key="budget_stop", help="Interrupts the search; nothing is kept.")
    bar = box.progress(0.0)

    def progress(u: BudgetProgress) -> None:
        bar.progress(min(u.done / u.total, 1.0), text=f"{u.stage} {u.done} · {u.message}")

    args = (req["budget"], req["common"], req["rates"], req["bits"], req["evals"])
    result = cache.budget(*p.args, *args, _progress=cache.outside_cache(progress))
    stop.empty()  # nothing runs any more
    box.update(label=f"Searched {len(result.tried)} models", state="complete", expanded=False)
    return result


def show_answer(r) -> None:
    goal = f"validation accuracy ≥ **{r.delta:.2%}** (baseline {r.baseline_val_accuracy:.2%})"
    if not r.met:
        c = r.closest
        st.error(
            f"No setting reaches {goal}. The closest: **{c.label}** with validation accuracy "
            f"{c.val_accuracy:.2%} ({human_bytes(c.artifact_bytes)}, test "
            f"{r.test.accuracy:.2%}). Allow a larger drop, or a lower accuracy."
        )
        return
    c, u, t = r.best, r.best_uniform, r.test
    st.success(f"Smallest model found with {goal}: **{c.label}**")
    a, b, d, e = st.columns(4)
    a.metric(
        "Validation accuracy", f"{c.val_accuracy:.2%}", help="The split the search decided on."
    )
    b.metric("Test accuracy", f"{t.accuracy:.2%}", f"{t.delta_pp:+.2f} pp vs baseline")
    d.metric(
        "Compressed size",
        human_bytes(c.artifact_bytes),
        f"{c.artifact_bytes / r.dense_bytes - 1:+.1%} vs fp32",
        delta_color="inverse",
        help=f"fp32: {human_bytes(r.dense_bytes)}; the artifact's exact length.",
    )
    e.metric(
        "Non-zero parameters",
        f"{c.nonzero_params:,}",
        f"{c.nonzero_params / r.baseline_params - 1:+.1%}",
        delta_color="inverse",
    )
    if u is not None:
        saved = 1 - getattr(c, r.budget["objective"]) / max(getattr(u, r.budget["objective"]), 1)
        st.info(
            f"Best uniform setting meeting δ: **{u.label}**: {human_bytes(u.artifact_bytes)}, "
            f"{u.nonzero_params:,} non-zero, validation {u.val_accuracy:.2%}, test "
            f"{r.uniform_test.accuracy:.2%}. The per-layer plan is **{saved:.1%}** smaller in "
            f"{OBJECTIVES[r.budget['objective']]}."
        )


def show_details(p, r, req: dict) -> None:
    chosen = r.chosen
    plan = pd.DataFrame(r.plan_rows())
    st.subheader("Per-layer plan")
    if len(plan):
        st.plotly_chart(charts.plan_figure(plan), key="budget_plan_plot")
        st.dataframe(
            plan,
            hide_index=True,
            key="budget_plan",
            column_config={
                "prune_rate": st.column_config.NumberColumn("rate", format="percent"),
                "weight_bytes": st.column_config.NumberColumn("weight bytes"),
                "uniform_rate": st.column_config.NumberColumn("uniform rate", format="percent"),
                "uniform_bits": st.column_config.NumberColumn("uniform bits"),
                "uniform_weight_bytes": st.column_config.NumberColumn("uniform weight bytes"),
            },
        )
    st.subheader("Every model the search built")
    tried = pd.DataFrame([c.to_row() for c in r.tried])
    uniform = r.best_uniform.label if r.best_uniform else None
    x = r.budget["objective"]
    fig = charts.budget_figure(tried, r.delta, chosen.label, uniform, x)
    st.plotly_chart(fig, key="budget_tried_plot")
    st.caption(
        f"{len(r.tried)} whole models built, measured and evaluated in {r.seconds:.1f} s. "
        "Uniform: one rate and bit width for all layers; greedy: each layer at its cheapest "
        "setting within a tolerance found by bisection; refine: one layer shrunk at a time."
    )
    with st.expander("All candidates and the sensitivity curves used"):
        st.dataframe(tried, hide_index=True, key="budget_tried")
        st.dataframe(pd.DataFrame(r.sensitivity), hide_index=True, key="budget_sens")
    plan_key = json.dumps({"plan": chosen.plan, "config": chosen.config})
    st.download_button(
        f"Download this model ({human_bytes(chosen.artifact_bytes)})",
        cache.budget_artifact(*p.args, plan_key, req["common"]),
        f"{p.model}-{p.dataset}-budget.slim",
        "application/octet-stream",
        key="budget_download",
        help="Read it back with compress_core.format.artifact.load_compressed(path).",
    )


def main() -> None:
    st.title("Accuracy budget")
    st.caption(
        "What is the smallest model I can ship? Minimise the size subject to accuracy ≥ δ, "
        "with a pruning rate and bit width chosen per layer."
    )
    st.caption(
        "δ (delta) is the lowest validation accuracy the model may have: the baseline's minus "
        "the allowed drop, or the absolute accuracy you set. The search decides on the "
        "validation split; test accuracy is measured once, afterwards."
    )
    p = pick.sidebar()
    pick.load_baseline(p)
    req = budget_form(p)
    if req is not None:
        st.session_state.budget_request = req
    req = st.session_state.get("budget_request")
    if req is None or req["pick"] != p.args:
        st.info("Set δ and what to minimise, then press **Search**.")
        return
    try:
        r = search(p, req)
    except (ConfigError, CompressionError) as e:
        st.error(f"The search cannot run: {e}")
        return
    show_answer(r)
    if r.chosen is not None:
        show_details(p, r, req)


main()
