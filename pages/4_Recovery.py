"""Recovery: win accuracy back by retraining, and replay Deep Compression stage by stage.

One-shot compression shows how fragile a model is; real deployments retrain. The
first tab fine-tunes the setting chosen with the shared controls (retraining with
the mask held, iterative pruning, quantization-aware training) and shows it beside
the one-shot result; the second runs the Deep Compression pipeline and steps
through its stages next to the paper's figures; the third trains with soft
weight-sharing (``ui/soft_sharing.py``) and shows it beside the published points.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from compress_core.core.config import ConfigError
from compress_core.core.pipeline import CompressionError
from compress_core.train.deep_compression import (
    PAPER,
    PRESET_KINDS,
    SMALLER,
    STAGES,
    DeepCompressionConfig,
    DeepCompressionReport,
    cache_paths,
)
from compress_core.train.finetune import (
    FinetuneConfig,
    FinetuneProgress,
    finetuned_path,
    planned_epochs,
)
from compress_core.train.papers import published
from ui import cache, charts, controls, i18n, pick, remote, soft_sharing
from ui.format import human_bytes, result_columns
from ui.i18n import number, percent, t
from ui.jobs import run_job, stopped_note
from ui.safe import plain

st.set_page_config(page_title="Slimscope · Recovery", page_icon="✂️", layout="wide")

LEARNING_RATES = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3]
CURVE_RATES = [0.5, 0.7, 0.8, 0.9, 0.95]
FT_DEFAULTS = {"rec_epochs": 2, "rec_steps": 1, "rec_qat": 0, "rec_lr": 5e-4}


def stage_title(stage: str) -> str:
    """A Deep Compression stage's title ('pruned + retrained'), translated."""
    return t(f"dc.stage_{stage}")


# --- tab 1: fine-tune one setting --------------------------------------------------------------


def finetune_controls() -> FinetuneConfig:
    for key, default in FT_DEFAULTS.items():
        st.session_state[key] = st.session_state.get(key, default)
    a, b, c, d = st.columns(4)
    epochs = a.slider(
        t("rec.epochs"),
        0,
        20,
        key="rec_epochs",
        help=t("rec.epochs_help"),
    )
    steps = b.slider(
        t("rec.steps"),
        1,
        10,
        key="rec_steps",
        disabled=epochs == 0,
        help=t("rec.steps_help"),
    )
    qat = c.slider(
        t("rec.qat"),
        0,
        10,
        key="rec_qat",
        help=t("rec.qat_help"),
    )
    lr = d.select_slider(
        t("rec.lr"),
        LEARNING_RATES,
        key="rec_lr",
        format_func=lambda v: f"{v:g}",
        help=t("rec.lr_help"),
    )
    return FinetuneConfig(epochs=epochs, prune_steps=steps if epochs else 1, qat_epochs=qat, lr=lr)


def show_pair(one, tuned) -> None:
    left, right = st.columns(2)
    for col, r, title in ((left, one, "rec.one_shot"), (right, tuned, "rec.fine_tuned")):
        col.subheader(t(title))
        if r is None:
            col.info(t("rec.not_yet"))
            continue
        a, b, c = col.columns(3)
        delta = t("budget.pp_vs_base", value=f"{r.delta_pp:+.2f}")
        a.metric(t("metric.accuracy"), percent(r.accuracy, 2), delta)
        smaller = t("rec.smaller", ratio=f"{r.ratio:.1f}")
        b.metric(t("metric.size"), human_bytes(r.artifact_bytes), smaller)
        c.metric(t("metric.nonzero"), number(r.nonzero_params))
        if r is tuned:
            gain = f"{100 * (tuned.accuracy - one.accuracy):+.2f}"
            col.caption(t("rec.gain", label=tuned.label, gain=gain, s=f"{r.seconds:.0f}"))
        for w in r.warnings:
            col.warning(w, icon="⚠️")


def record_row(rows: dict, key: tuple, r, ft_key: str) -> None:
    rows[key] = {**r.to_row(), "finetune": ft_key}


def run_curve(p, config, ft, rows) -> None:
    """One-shot and fine-tuned results at several pruning rates: the recovery curve."""
    configs = [dataclasses.replace(config, prune_rate=rate) for rate in CURVE_RATES]
    done = [0]

    def job(show):
        tuned = remote.finetune_sweep(p, configs, ft, remote.executor_from_settings())
        for c in configs:
            record_row(
                rows, (p.args, p.subset, c.key(), ""), cache.result(*p.args, c.key(), p.subset), ""
            )
            if c.key() in tuned:  # trained on the operator's cluster or pool
                record_row(rows, (p.args, p.subset, c.key(), ft.key()), tuned[c.key()], ft.key())
                continue

            def scaled(prog: FinetuneProgress) -> None:
                frac = (done[0] + prog.fraction) / len(configs)
                show(dataclasses.replace(prog, fraction=frac))

            cache.train_finetuned(*p.args, c.key(), ft.key(), scaled)
            r = cache.finetuned_result(*p.args, c.key(), ft.key(), p.subset)
            record_row(rows, (p.args, p.subset, c.key(), ft.key()), r, ft.key())
            done[0] += 1

    run_job(t("rec.curve_job", n=len(configs)), job, "rec_curve")


def curve_frame(rows: dict, p, config, ft_key: str) -> pd.DataFrame:
    frame = pd.DataFrame([row for k, row in rows.items() if k[0] == p.args and k[1] == p.subset])
    if not len(frame):
        return frame
    same = pd.Series(True, index=frame.index)
    for field in ("bits", "quant", "granularity", "prune_method", "scope", "act_bits"):
        same &= frame[field] == getattr(config, field)
    return frame[same & frame["finetune"].isin(["", ft_key])]


def finetune_tab(p, base, data) -> None:
    try:
        config = controls.controls()
        ft = finetune_controls()
        one = cache.result(*p.args, config.key(), p.subset)
    except (ConfigError, CompressionError) as e:
        st.error(t("explore.cannot_apply", error=plain(e)))
        return
    rows = st.session_state.setdefault("recovery_rows", {})
    record_row(rows, (p.args, p.subset, config.key(), ""), one, "")
    key = (p.args, p.subset, config.key(), ft.key())
    epochs = planned_epochs(config, ft)
    if not epochs:
        st.info(t("rec.nothing"))
    remote.caption()
    a, b = st.columns(2)
    go = a.button(t("rec.run"), key="rec_run", type="primary", disabled=not epochs)
    curve = b.button(
        t("rec.curve"),
        key="rec_curve",
        disabled=not ft.epochs,
        help=t("rec.curve_help", rates=", ".join(percent(r, 0) for r in CURVE_RATES)),
    )
    stopped_note()
    try:
        if config.structured and ft.prune_steps > 1:
            raise ConfigError("iterative pruning needs magnitude or random pruning")
        if go and run_job(
            t("rec.job", config=config.label(), ft=ft.label()),
            lambda show: cache.train_finetuned(*p.args, config.key(), ft.key(), show),
            "rec_run",
        ):
            record_row(
                rows,
                key,
                cache.finetuned_result(*p.args, config.key(), ft.key(), p.subset),
                ft.key(),
            )
        if curve:
            run_curve(p, config, ft, rows)
    except (ConfigError, CompressionError) as e:
        st.error(t("rec.cannot", error=plain(e)))
        return
    tuned = None
    if epochs and (key in rows or finetuned_path(base, data, config, ft).is_file()):
        tuned = cache.finetuned_result(*p.args, config.key(), ft.key(), p.subset)
        record_row(rows, key, tuned, ft.key())
    show_pair(one, tuned)
    show_recovery_charts(p, one, config, ft.key(), rows)


def show_recovery_charts(p, one, config, ft_key: str, rows: dict) -> None:
    left, right = st.columns(2)
    left.plotly_chart(
        charts.recovery_figure(curve_frame(rows, p, config, ft_key), one.baseline_accuracy),
        key="rec_plot_curve",
    )
    left.caption(t("rec.curve_caption"))
    frame = pd.DataFrame([row for k, row in rows.items() if k[0] == p.args and k[1] == p.subset])
    right.plotly_chart(
        charts.tradeoff_figure(
            frame, "artifact_bytes", config.key(), (one.dense_bytes, one.baseline_accuracy)
        ),
        key="rec_plot_tradeoff",
    )
    right.caption(t("rec.tried_caption"))
    table = frame[["label", "finetuned", "accuracy", "delta_pp", "artifact_bytes", "ratio"]]
    st.dataframe(table, hide_index=True, key="rec_table", column_config=result_columns())


# --- tab 2: the Deep Compression replay ------------------------------------------------------


def dc_settings(model: str) -> str:
    """Which preset: the paper's, or (for a model that has one) the tuned per-layer one."""
    if model not in SMALLER:
        return "paper"
    return st.radio(
        t("dc.settings"),
        list(PRESET_KINDS),
        key="dc_preset",
        format_func=lambda kind: t(f"dc.settings_{kind}"),
        horizontal=True,
        help=t("dc.settings_help"),
    )


def dc_controls(model: str) -> DeepCompressionConfig:
    kind = dc_settings(model)
    base = PRESET_KINDS[kind](model)
    seeded = (model, kind)
    # A new model or preset starts from the preset's values; so does a return to the page,
    # where Streamlit has dropped the sliders' states.
    if st.session_state.get("dc_seeded") != seeded or "dc_keep" not in st.session_state:
        st.session_state.update(
            dc_seeded=seeded,
            dc_keep=round(100 * (1 - base.prune_rate)),
            dc_conv_bits=base.conv_bits,
            dc_fc_bits=base.fc_bits,
            dc_steps=base.prune_steps,
            dc_epochs=base.prune_epochs,
            dc_centroid_epochs=base.centroid_epochs,
        )
    per_layer = bool(base.layer_rates)  # the preset's rates, one per layer, shown in its label
    a, b, c = st.columns(3)
    keep_help = t("dc.keep_per_layer") if per_layer else t("dc.keep_help")
    keep = a.slider(t("chart.kept"), 1, 50, key="dc_keep", help=keep_help, disabled=per_layer)
    conv = b.slider(t("dc.conv_bits"), 1, 8, key="dc_conv_bits", help=t("dc.conv_help"))
    fc = c.slider(t("dc.fc_bits"), 1, 8, key="dc_fc_bits", help=t("dc.fc_help"))
    epochs = a.slider(t("rec.epochs"), 0, 30, key="dc_epochs")
    steps = b.slider(t("rec.steps"), 1, 10, key="dc_steps", disabled=epochs == 0)
    cents = c.slider(t("dc.centroid_epochs"), 0, 10, key="dc_centroid_epochs")
    return dataclasses.replace(
        base,
        # not 1 - keep / 100: 1 - 0.07 is 0.9299999...
        prune_rate=base.prune_rate if per_layer else (100 - keep) / 100,
        conv_bits=conv,
        fc_bits=fc,
        prune_steps=steps,
        prune_epochs=epochs,
        centroid_epochs=cents,
    )


def paper_table(model: str) -> pd.DataFrame | None:
    paper = PAPER.get(model)
    if paper is None:
        return None
    return pd.DataFrame(
        [
            {
                t("dc.col_stage"): stage_title(s),
                t("dc.col_paper_ratio"): f"{paper.ratios.get(s, 1):.0f}×",
                t("dc.col_paper_size"): human_bytes(paper.dense_bytes / paper.ratios.get(s, 1)),
            }
            for s in STAGES
        ]
    )


def stepper(report: DeepCompressionReport) -> None:
    frame = pd.DataFrame(report.rows())
    frame["title"] = frame["name"].map(stage_title)
    if "dc_stage" not in st.session_state:  # open on the result: the final stage
        st.session_state.dc_stage = len(STAGES) - 1
    i = st.select_slider(
        t("dc.stage"),
        options=list(range(len(STAGES))),
        key="dc_stage",
        format_func=lambda k: f"{k}. {stage_title(STAGES[k])}",
        help=t("dc.stage_help"),
    )
    stage = report.stages[i]
    paper = PAPER.get(report.model)
    a, b, c, d = st.columns(4)
    pp = t("num.pp", value=f"{frame.delta_pp[i]:+.2f}")
    a.metric(t("metric.accuracy"), percent(stage.accuracy, 2), pp)
    b.metric(t("dc.artifact"), human_bytes(stage.artifact_bytes), help=t("dc.artifact_help"))
    theirs = paper.ratios.get(stage.name) if paper else None
    c.metric(
        t("dc.ratio"),
        t("metric.times", value=f"{stage.ratio:.1f}"),
        t("dc.paper_ratio", ratio=f"{theirs:.0f}") if theirs else None,
        delta_color="off",
    )
    d.metric(t("layers.nonzero"), number(stage.nonzero_params))
    if stage.one_shot_accuracy is not None:
        change = f"{100 * (stage.one_shot_accuracy - report.baseline.accuracy):+.2f}"
        acc = percent(stage.one_shot_accuracy, 2)
        st.caption(t("dc.before_retraining", acc=acc, pp=t("num.pp", value=change)))
    points = pd.DataFrame(paper.points()) if paper else None
    # The paper's own points are drawn above; the other published methods beside them.
    others = published(report.model, exclude=("Deep Compression",))
    rows = pd.DataFrame([p.to_row() for p in others]) if others else None
    st.plotly_chart(charts.replay_figure(frame, i, points, rows), key="dc_plot")
    if others:
        missing = [f"{p.label} ({p.citation})" for p in others if p.accuracy is None]
        note = t("dc.published_not_drawn", points="; ".join(missing)) if missing else ""
        st.caption(f"{t('dc.published')} {note}".strip())
    table = frame[["title", "accuracy", "delta_pp", "artifact_bytes", "ratio", "nonzero_params"]]
    if paper:
        table = table.assign(paper_ratio=[paper.ratios.get(s, 1.0) for s in STAGES])
    columns = {
        **result_columns(),
        "title": t("dc.col_stage"),
        "paper_ratio": t("dc.col_paper_ratio"),
    }
    st.dataframe(table, hide_index=True, key="dc_table", column_config=columns)


def replay_tab(p, base, data) -> None:
    paper = PAPER.get(p.model)
    if paper:
        ratio = paper.ratios["huffman"]
        caption = t(
            "dc.paper",
            network=paper.network,
            dense=human_bytes(paper.dense_bytes),
            small=human_bytes(paper.dense_bytes / ratio),
            ratio=f"{ratio:.0f}",
            before=paper.error_before,
            after=paper.error_after,
            bits=paper.bits,
        )
        st.caption(caption)
        if p.dataset != "mnist":
            st.info(t("dc.not_mnist", data=p.dataset))
    else:
        other = t("dc.smaller_lenet") if "lenet" in p.model else ""
        st.info(t("dc.not_in_paper", model=p.model, other=other))
    try:
        dc = dc_controls(p.model)
    except ConfigError as e:
        st.error(t("explore.cannot_apply", error=plain(e)))
        return
    st.caption(t("dc.pipeline", label=dc.label()))
    go = st.button(t("dc.run"), key="dc_run", type="primary")
    stopped_note()
    done = st.session_state.setdefault("dc_done", set())
    key = (p.args, dc.key())
    if go and run_job(
        t("dc.job", model=p.model),
        lambda show: cache.train_deep_compression(*p.args, dc.key(), show),
        "dc_run",
    ):
        done.add(key)
    if key not in done and not cache_paths(base, data, dc)[1].is_file():
        table = paper_table(p.model)
        if table is not None:
            st.dataframe(table, hide_index=True, key="dc_paper")
        st.info(t("dc.start"))
        return
    out = cache.deep_compression_run(*p.args, dc.key())
    report = DeepCompressionReport.from_dict(out["report"])
    stepper(report)
    st.download_button(
        t("export.artifact", size=human_bytes(len(out["artifact"]))),
        out["artifact"],
        f"{p.model}-{p.dataset}-deep-compression.slim",
        "application/octet-stream",
        key="dc_download",
        on_click="ignore",  # no rerun: the served file stays while it downloads
    )


def main() -> None:
    i18n.language_picker()
    st.title(t("nav.Recovery"))
    st.caption(t("rec.caption"))
    p = pick.sidebar()
    base, data = pick.load_baseline(p)
    tabs = st.tabs([t("rec.tab_finetune"), t("rec.tab_replay"), t("rec.tab_sws")])
    with tabs[0]:
        finetune_tab(p, base, data)
    with tabs[1]:
        replay_tab(p, base, data)
    with tabs[2]:
        soft_sharing.tab(p, base, data)


main()
