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

from compress_core import columns
from compress_core.analysis.budget import MAX_EVALS, OBJECTIVES, Budget, BudgetProgress
from compress_core.analysis.sweep import GRID_BITS, GRID_RATES
from compress_core.core.config import (
    GRANULARITIES,
    QUANT_METHODS,
    CompressionConfig,
    ConfigError,
)
from compress_core.core.pipeline import CompressionError
from compress_core.report import budget_report, budget_totals
from compress_core.train.finetune import FinetuneConfig
from ui import cache, charts, controls, i18n, metrics, pick
from ui.format import human_bytes, table
from ui.i18n import percent, t
from ui.jobs import run_job, stopped_note
from ui.report import download_html
from ui.safe import plain

st.set_page_config(page_title="Slimscope · Budget", page_icon="✂️", layout="wide")

GOALS = ("drop", "absolute")


def objective_name(objective: str) -> str:
    """'compressed bytes' or 'non-zero parameters' (``OBJECTIVES``' keys), translated."""
    return t(f"budget.objective_{objective}")


def budget_form(p) -> dict | None:
    """delta, the objective and the search space; returns the request when submitted."""
    with st.form("budget_form"):
        st.caption(t("budget.delta"))  # what delta is, right above the inputs that set it
        a, b, c = st.columns(3)
        goal = a.radio(
            t("budget.keep"), GOALS, key="budget_goal", format_func=lambda g: t(f"budget.goal_{g}")
        )
        drop = b.number_input(
            t("budget.drop"), 0.0, 100.0, 1.0, 0.1, key="budget_drop", help=t("budget.drop_help")
        )
        absolute = b.number_input(
            t("budget.absolute"),
            0.0,
            100.0,
            90.0,
            0.1,
            key="budget_abs",
            help=t("budget.absolute_help"),
        )
        objective = c.radio(
            t("budget.minimise"),
            list(OBJECTIVES),
            key="budget_objective",
            format_func=objective_name,
        )
        with st.expander(t("budget.space")):
            d, e, f = st.columns(3)
            method = d.selectbox(
                t("ctl.method"),
                ["magnitude", "random"],
                key="budget_method",
                format_func=controls.method_label,
            )
            quant = d.selectbox(
                t("ctl.quant"), QUANT_METHODS, key="budget_quant", format_func=controls.quant_label
            )
            gran = e.radio(
                t("ctl.granularity"),
                GRANULARITIES,
                GRANULARITIES.index("per_channel"),
                key="budget_granularity",
                format_func=lambda g: t(f"granularity.{g}"),
            )
            skip = e.toggle(t("budget.skip"), True, key="budget_skip")
            evals = f.slider(
                t("budget.evals"),
                5,
                200,
                MAX_EVALS,
                key="budget_evals",
                help=t("budget.evals_help"),
            )
            rates, bits = controls.grid_choices(
                "budget",
                GRID_RATES,
                GRID_BITS,
                labels=(t("budget.rates"), t("budget.bits")),
            )
        submitted = st.form_submit_button(t("budget.search"), type="primary", key="budget_submit")
    if not submitted:
        return None
    if not (rates and bits):
        st.warning(t("budget.choose"))
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
    box = st.status(t("budget.searching"), expanded=True)
    stop = box.empty()  # pressing Stop reruns the page, which interrupts the running search
    stop.button(t("run.stop"), key="budget_stop", help=t("budget.stop_help"))
    bar = box.progress(0.0)

    def progress(u: BudgetProgress) -> None:
        stage = t(f"budget.stage_{u.stage.replace(' ', '_')}")
        bar.progress(
            u.fraction,
            text=t("budget.progress", stage=stage, done=u.done, message=u.message),
        )

    args = (req["budget"], req["common"], req["rates"], req["bits"], req["evals"])
    result = cache.budget(*p.args, *args, _progress=cache.outside_cache(progress))
    stop.empty()  # nothing runs any more
    box.update(label=searched(result.counts()), state="complete", expanded=False)
    return result


def searched(n) -> str:
    """'Built 19 models: the 9 of the uniform grid and 10 of the 60 evaluations allowed…'."""
    return t("budget.searched", n=n.built, grid=n.grid, used=n.used, allowed=n.allowed, met=n.met)


def show_answer(r) -> None:
    goal = t(
        "budget.goal",
        delta=percent(r.delta, 2),
        base=percent(r.baseline_val_accuracy, 2),
    )
    if not r.met:
        c = r.closest
        st.error(
            t(
                "budget.not_met",
                goal=goal,
                label=c.label,
                val=percent(c.val_accuracy, 2),
                size=human_bytes(c.artifact_bytes),
                test=percent(r.test.accuracy, 2),
            )
        )
        return
    c, u, test = r.best, r.best_uniform, r.test
    st.success(t("budget.found", goal=goal, label=c.label))
    a, b, d, e = st.columns(4)
    a.metric(t("budget.val_accuracy"), percent(c.val_accuracy, 2), help=t("budget.val_help"))
    pp = t("budget.pp_vs_base", value=f"{test.delta_pp:+.2f}")
    b.metric(t("metric.accuracy"), percent(test.accuracy, 2), pp)
    d.metric(
        t("metric.size"),
        human_bytes(c.artifact_bytes),
        t("budget.vs_fp32", value=metrics.change(r.size_vs_dense())),
        delta_color="inverse",
        help=t("budget.size_help", dense=human_bytes(r.dense_bytes)),
    )
    e.metric(
        t("metric.nonzero"),
        i18n.number(c.nonzero_params),
        t("budget.vs_params", value=metrics.change(r.nonzero_vs_baseline())),
        delta_color="inverse",
        help=t("budget.nonzero_help", params=i18n.number(r.baseline_params)),
    )
    if u is not None:
        saved = r.saved_vs_uniform()
        text = t(
            "budget.uniform",
            label=u.label,
            size=human_bytes(u.artifact_bytes),
            nonzero=i18n.number(u.nonzero_params),
            val=percent(u.val_accuracy, 2),
            test=percent(r.uniform_test.accuracy, 2),
            saved=percent(saved),
            objective=objective_name(r.budget["objective"]),
        )
        st.info(text)


def show_details(p, r, req: dict) -> None:
    chosen = r.chosen
    rows = pd.DataFrame(r.plan_rows())
    st.subheader(t("budget.plan"))
    st.plotly_chart(charts.plan_figure(rows), key="budget_plan_plot")
    st.caption(t("budget.plan_help"))
    plan, config = table(rows, columns.PLAN)
    st.dataframe(plan, hide_index=True, key="budget_plan", column_config=config)
    st.caption(budget_totals(i18n.lang(), r.totals()))
    st.subheader(t("budget.every"))
    tried = pd.DataFrame(r.tried_rows())
    uniform = r.best_uniform.label if r.best_uniform else None
    x = r.budget["objective"]
    fig = charts.budget_figure(tried, r.delta, chosen.label, uniform, x)
    st.plotly_chart(fig, key="budget_tried_plot")
    n = r.counts()
    st.caption(
        t(
            "budget.every_help",
            n=n.built,
            met=n.met,
            grid=n.grid,
            used=n.used,
            allowed=n.allowed,
            greedy=n.by_source.get("greedy", 0),
            refine=n.by_source.get("refine", 0),
            sensitivity=n.sensitivity,
            tested=n.tested,
            steps=n.steps,
            s=f"{r.seconds:.1f}",
        )
    )
    with st.expander(t("budget.candidates")):
        frame, config = table(tried, columns.TRIED)
        st.dataframe(frame, hide_index=True, key="budget_tried", column_config=config)
        st.caption(t("budget.sens_help"))
        frame, config = table(pd.DataFrame(r.sensitivity), columns.SENSITIVITY)
        st.dataframe(frame, hide_index=True, key="budget_sens", column_config=config)
    plan_key = json.dumps({"plan": chosen.plan, "config": chosen.config})
    st.download_button(
        t("budget.download", size=human_bytes(chosen.artifact_bytes)),
        cache.budget_artifact(*p.args, plan_key, req["common"]),
        f"{p.model}-{p.dataset}-budget.slim",
        "application/octet-stream",
        key="budget_download",
        help=t("export.artifact_help"),
        on_click="ignore",  # no rerun: the served file stays while it downloads
    )
    report = lambda lang: budget_report(lang, p.model, p.dataset, r)  # noqa: E731
    download_html(report, "slimscope-budget", "budget_report")


def finetune_section(p, r, req: dict) -> None:
    """Fine-tune the chosen plan (masks held, per-layer bits) and show before and after."""
    st.subheader(t("budget.ft_title"))
    st.caption(t("budget.ft_caption"))
    a, b = st.columns(2)
    epochs = a.slider(t("rec.epochs"), 0, 10, 1, key="budget_ft_epochs", help=t("rec.epochs_help"))
    qat = b.slider(t("rec.qat"), 0, 5, 0, key="budget_ft_qat", help=t("rec.qat_help"))
    ft = FinetuneConfig(epochs=epochs, qat_epochs=qat)
    chosen = r.chosen
    plan_key = json.dumps({"plan": chosen.plan}, sort_keys=True)
    args = (*p.args, plan_key, req["common"], ft.key())
    done = st.session_state.setdefault("budget_ft_done", set())
    go = st.button(t("budget.ft_run"), key="budget_ft_run", type="primary", disabled=not ft.trains)
    if not ft.trains:
        st.info(t("budget.ft_nothing"))
    stopped_note()

    def job(show) -> None:
        cache.budget_finetuned(*args, _progress=cache.outside_cache(show))

    if go and run_job(t("rec.job", config=chosen.label, ft=ft.label()), job, "budget_ft"):
        done.add(args)
    if args not in done:
        return
    tuned = cache.budget_finetuned(*args)
    before, after = st.columns(2)
    for col, title, res in (
        (before, "budget.ft_before", r.test),
        (after, "budget.ft_after", tuned),
    ):
        col.subheader(t(title))
        c, d = col.columns(2)
        pp = t("budget.pp_vs_base", value=f"{res.delta_pp:+.2f}")  # both against the baseline
        c.metric(t("metric.accuracy"), percent(res.accuracy, 2), pp)
        d.metric(t("metric.size"), human_bytes(res.artifact_bytes))


def main() -> None:
    i18n.language_picker()
    st.title(t("budget.title"))
    st.caption(t("budget.caption"))
    p = pick.sidebar()
    pick.load_baseline(p)
    req = budget_form(p)
    if req is not None:
        st.session_state.budget_request = req
    req = st.session_state.get("budget_request")
    if req is None or req["pick"] != p.args:
        st.info(t("budget.start"))
        return
    try:
        r = search(p, req)
    except (ConfigError, CompressionError) as e:
        st.error(t("budget.cannot_run", error=plain(e)))
        return
    show_answer(r)
    if r.chosen is not None:
        show_details(p, r, req)
        finetune_section(p, r, req)


main()
