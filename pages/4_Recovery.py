"""Recovery: win accuracy back by retraining, and replay Deep Compression stage by stage.

One-shot compression shows how fragile a model is; real deployments retrain. The
first tab fine-tunes the setting chosen with the shared controls (retraining with
the mask held, iterative pruning, quantization-aware training) and shows it beside
the one-shot result; the second runs the Deep Compression pipeline and steps
through its stages next to the paper's figures.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from compress_core.core.config import ConfigError
from compress_core.core.pipeline import CompressionError
from compress_core.train.baseline import TrainingCancelled
from compress_core.train.deep_compression import (
    PAPER,
    STAGES,
    TITLES,
    DeepCompressionConfig,
    DeepCompressionReport,
    cache_paths,
    preset,
)
from compress_core.train.finetune import (
    FinetuneConfig,
    FinetuneProgress,
    finetuned_path,
    planned_epochs,
)
from ui import cache, charts, controls, pick
from ui.format import human_bytes

st.set_page_config(page_title="Slimscope · Recovery", page_icon="✂️", layout="wide")

LEARNING_RATES = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3]
CURVE_RATES = [0.5, 0.7, 0.8, 0.9, 0.95]
FT_DEFAULTS = {"rec_epochs": 2, "rec_steps": 1, "rec_qat": 0, "rec_lr": 5e-4}
STAGE_WORDS = {
    "prune": "retraining",
    "qat": "quantization-aware training",
    "centroids": "centroids",
}


# --- running a job: progress bar, stop button ------------------------------------------------


def _stopped() -> None:
    st.session_state.rec_stopped = True


def run_job(label: str, job, key: str) -> bool:
    """Run ``job(progress)`` under a progress bar with a Stop button; False when it was stopped.

    Stop reruns the page, which interrupts the job at its next progress update; the
    engine writes a run to its cache only once it has finished, so nothing is kept.
    """
    stop = st.empty()  # only while the job runs
    stop.button(
        "⏹ Stop", key=f"{key}_stop", on_click=_stopped, help="Nothing half-trained is kept."
    )
    box = st.status(label, expanded=True)
    bar = box.progress(0.0)

    def show(p: FinetuneProgress) -> None:
        text = (
            f"{STAGE_WORDS.get(p.stage, p.stage)} · epoch {p.epoch}/{p.epochs} · "
            f"loss {p.loss:.3f} · train accuracy {p.accuracy:.1%} · sparsity {p.sparsity:.0%}"
        )
        if p.val_accuracy is not None:
            text += f" · validation {p.val_accuracy:.1%}"
        bar.progress(min(max(p.fraction, 0.0), 1.0), text=text)

    try:
        job(show)
    except TrainingCancelled as e:
        box.update(label=f"Stopped: {e}", state="error")
        return False
    finally:
        stop.empty()
    box.update(label=f"{label}: done", state="complete", expanded=False)
    return True


# --- tab 1: fine-tune one setting --------------------------------------------------------------


def finetune_controls() -> FinetuneConfig:
    for key, default in FT_DEFAULTS.items():
        st.session_state[key] = st.session_state.get(key, default)
    a, b, c, d = st.columns(4)
    epochs = a.slider(
        "Retraining epochs",
        0,
        20,
        key="rec_epochs",
        help="Training after pruning with the mask held fixed: pruned weights stay zero. "
        "0 = one-shot.",
    )
    steps = b.slider(
        "Pruning steps",
        1,
        10,
        key="rec_steps",
        disabled=epochs == 0,
        help="Prune a step, retrain, repeat up to the target (Zhu & Gupta's gradual schedule "
        "over the first half of the retraining). 1 = prune once, then retrain.",
    )
    qat = c.slider(
        "Quantization-aware epochs",
        0,
        10,
        key="rec_qat",
        help="Train through fake-quantized weights (straight-through estimator); with k-means "
        "the shared centroids are trained instead. 0 = quantize after training.",
    )
    lr = d.select_slider(
        "Learning rate",
        LEARNING_RATES,
        key="rec_lr",
        format_func=lambda v: f"{v:g}",
        help="Adam's learning rate at the start of each phase, decayed to 0 (cosine).",
    )
    return FinetuneConfig(epochs=epochs, prune_steps=steps if epochs else 1, qat_epochs=qat, lr=lr)


def show_pair(one, tuned) -> None:
    left, right = st.columns(2)
    for col, r, title in ((left, one, "One-shot"), (right, tuned, "Fine-tuned")):
        col.subheader(title)
        if r is None:
            col.info("Not fine-tuned yet: press **Fine-tune this setting**.")
            continue
        a, b, c = col.columns(3)
        delta = f"{r.delta_pp:+.2f} pp vs baseline"
        a.metric("Test accuracy", f"{r.accuracy:.2%}", delta)
        b.metric("Compressed size", human_bytes(r.artifact_bytes), f"{r.ratio:.1f}× smaller")
        c.metric("Non-zero parameters", f"{r.nonzero_params:,}")
        if r is tuned:
            gain = 100 * (tuned.accuracy - one.accuracy)
            col.caption(f"{tuned.label}: {gain:+.2f} pp against one-shot, in {r.seconds:.0f} s.")
        for w in r.warnings:
            col.warning(w, icon="⚠️")


def record_row(rows: dict, key: tuple, r, ft_key: str) -> None:
    rows[key] = {**r.to_row(), "finetune": ft_key}


def run_curve(p, config, ft, rows) -> None:
    """One-shot and fine-tuned results at several pruning rates: the recovery curve."""
    configs = [dataclasses.replace(config, prune_rate=rate) for rate in CURVE_RATES]
    done = [0]

    def job(show):
        for c in configs:
            record_row(
                rows, (p.args, p.subset, c.key(), ""), cache.result(*p.args, c.key(), p.subset), ""
            )

            def scaled(prog: FinetuneProgress) -> None:
                frac = (done[0] + prog.fraction) / len(configs)
                show(dataclasses.replace(prog, fraction=frac))

            cache.train_finetuned(*p.args, c.key(), ft.key(), scaled)
            r = cache.finetuned_result(*p.args, c.key(), ft.key(), p.subset)
            record_row(rows, (p.args, p.subset, c.key(), ft.key()), r, ft.key())
            done[0] += 1

    run_job(f"Fine-tuning at {len(configs)} pruning rates", job, "rec_curve")


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
        st.error(f"This setting cannot be applied: {e}")
        return
    rows = st.session_state.setdefault("recovery_rows", {})
    record_row(rows, (p.args, p.subset, config.key(), ""), one, "")
    key = (p.args, p.subset, config.key(), ft.key())
    epochs = planned_epochs(config, ft)
    if not epochs:
        st.info(
            "Nothing to train with these settings: retraining needs pruning, quantization-aware "
            "epochs need quantized weights."
        )
    a, b = st.columns(2)
    go = a.button("Fine-tune this setting", key="rec_run", type="primary", disabled=not epochs)
    curve = b.button(
        "Fine-tune across pruning rates",
        key="rec_curve",
        disabled=not ft.epochs,
        help=f"One-shot and fine-tuned at {', '.join(f'{r:.0%}' for r in CURVE_RATES)}: "
        "the curves side by side.",
    )
    if st.session_state.pop("rec_stopped", False):
        st.info("Stopped. Nothing half-trained was kept; the page is ready for another run.")
    try:
        if config.structured and ft.prune_steps > 1:
            raise ConfigError("iterative pruning needs magnitude or random pruning")
        if go and run_job(
            f"Fine-tuning {config.label()} ({ft.label()})",
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
        st.error(f"This setting cannot be fine-tuned: {e}")
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
    left.caption("Same settings, other pruning rates: one-shot against fine-tuned.")
    frame = pd.DataFrame([row for k, row in rows.items() if k[0] == p.args and k[1] == p.subset])
    right.plotly_chart(
        charts.tradeoff_figure(
            frame, "artifact_bytes", config.key(), (one.dense_bytes, one.baseline_accuracy)
        ),
        key="rec_plot_tradeoff",
    )
    right.caption("Everything tried on this page; fine-tuned points in orange.")
    table = frame[["label", "finetuned", "accuracy", "delta_pp", "artifact_bytes", "ratio"]]
    st.dataframe(table, hide_index=True, key="rec_table")


# --- tab 2: the Deep Compression replay ------------------------------------------------------


def dc_controls(model: str) -> DeepCompressionConfig:
    if st.session_state.get("dc_model") != model:  # a new model starts from its preset
        d = preset(model)
        st.session_state.update(
            dc_model=model,
            dc_keep=round(100 * (1 - d.prune_rate)),
            dc_conv_bits=d.conv_bits,
            dc_fc_bits=d.fc_bits,
            dc_steps=d.prune_steps,
            dc_epochs=d.prune_epochs,
            dc_centroid_epochs=d.centroid_epochs,
        )
    a, b, c = st.columns(3)
    keep = a.slider("Weights kept (%)", 1, 50, key="dc_keep", help="The paper keeps 8 %.")
    conv = b.slider("Conv bits", 1, 8, key="dc_conv_bits", help="The paper: 8 for LeNet-5.")
    fc = c.slider("FC bits", 1, 8, key="dc_fc_bits", help="The paper: 5 (LeNet-300-100: 6).")
    epochs = a.slider("Retraining epochs", 0, 30, key="dc_epochs")
    steps = b.slider("Pruning steps", 1, 10, key="dc_steps", disabled=epochs == 0)
    cents = c.slider("Centroid fine-tuning epochs", 0, 10, key="dc_centroid_epochs")
    base = preset(model)
    return dataclasses.replace(
        base,
        prune_rate=(100 - keep) / 100,  # not 1 - keep / 100: 1 - 0.07 is 0.9299999...
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
                "stage": TITLES[s],
                "paper ratio": f"{paper.ratios.get(s, 1):.0f}×",
                "paper size": human_bytes(paper.dense_bytes / paper.ratios.get(s, 1)),
            }
            for s in STAGES
        ]
    )


def stepper(report: DeepCompressionReport) -> None:
    frame = pd.DataFrame(report.rows())
    if "dc_stage" not in st.session_state:  # open on the result: the final stage
        st.session_state.dc_stage = len(STAGES) - 1
    i = st.select_slider(
        "Stage",
        options=list(range(len(STAGES))),
        key="dc_stage",
        format_func=lambda k: f"{k}. {TITLES[STAGES[k]]}",
        help="Step through the pipeline: each stage's accuracy, bytes and ratio.",
    )
    stage = report.stages[i]
    paper = PAPER.get(report.model)
    a, b, c, d = st.columns(4)
    a.metric("Test accuracy", f"{stage.accuracy:.2%}", f"{frame.delta_pp[i]:+.2f} pp")
    b.metric("Artifact", human_bytes(stage.artifact_bytes), help="The exact file length.")
    theirs = paper.ratios.get(stage.name) if paper else None
    c.metric(
        "Ratio vs fp32",
        f"{stage.ratio:.1f}×",
        f"paper: {theirs:.0f}×" if theirs else None,
        delta_color="off",
    )
    d.metric("Non-zero weights", f"{stage.nonzero_params:,}")
    if stage.one_shot_accuracy is not None:
        st.caption(
            f"Before this stage's retraining: {stage.one_shot_accuracy:.2%} "
            f"({100 * (stage.one_shot_accuracy - report.baseline.accuracy):+.2f} pp)."
        )
    points = pd.DataFrame(paper.points()) if paper else None
    st.plotly_chart(charts.replay_figure(frame, i, points), key="dc_plot")
    table = frame[["title", "accuracy", "delta_pp", "artifact_bytes", "ratio", "nonzero_params"]]
    if paper:
        table = table.assign(paper_ratio=[paper.ratios.get(s, 1.0) for s in STAGES])
    st.dataframe(table, hide_index=True, key="dc_table")


def replay_tab(p, base, data) -> None:
    paper = PAPER.get(p.model)
    if paper:
        ratio = paper.ratios["huffman"]
        st.caption(
            f"Han, Mao & Dally (ICLR 2016), Table 1: {paper.network} on MNIST, "
            f"{human_bytes(paper.dense_bytes)} → {human_bytes(paper.dense_bytes / ratio)} "
            f"({ratio:.0f}×), error {paper.error_before} % → {paper.error_after} % "
            f"({paper.bits} weights)."
        )
        if p.dataset != "mnist":
            st.info(
                f"The paper's figures are for MNIST; this run uses {p.dataset}, so compare the "
                "ratios, not the accuracies."
            )
    else:
        other = (
            " (this `lenet5` is a smaller LeNet-5 than the paper's)" if "lenet" in p.model else ""
        )
        st.info(
            f"The paper reports LeNet-300-100 (`mlp`) and Caffe's LeNet-5 (`lenet5-caffe`), not "
            f"`{p.model}`{other}: pick one of them in the sidebar to see its figures beside yours."
        )
    try:
        dc = dc_controls(p.model)
    except ConfigError as e:
        st.error(f"These settings cannot be applied: {e}")
        return
    st.caption(f"Prune → retrain → k-means → centroid fine-tuning → Huffman: {dc.label()}.")
    go = st.button("Run Deep Compression", key="dc_run", type="primary")
    if st.session_state.pop("rec_stopped", False):
        st.info("Stopped. Nothing half-trained was kept; the page is ready for another run.")
    done = st.session_state.setdefault("dc_done", set())
    key = (p.args, dc.key())
    if go and run_job(
        f"Deep Compression of {p.model}",
        lambda show: cache.train_deep_compression(*p.args, dc.key(), show),
        "dc_run",
    ):
        done.add(key)
    if key not in done and not cache_paths(base, data, dc)[1].is_file():
        table = paper_table(p.model)
        if table is not None:
            st.dataframe(table, hide_index=True, key="dc_paper")
        st.info("Press **Run Deep Compression** to replay the three stages on this model.")
        return
    out = cache.deep_compression_run(*p.args, dc.key())
    report = DeepCompressionReport.from_dict(out["report"])
    stepper(report)
    st.download_button(
        f"Download the compressed model ({human_bytes(len(out['artifact']))})",
        out["artifact"],
        f"{p.model}-{p.dataset}-deep-compression.slim",
        "application/octet-stream",
        key="dc_download",
    )


def main() -> None:
    st.title("Recovery")
    st.caption("One-shot compression shows how fragile a model is; retraining wins accuracy back.")
    p = pick.sidebar()
    base, data = pick.load_baseline(p)
    tabs = st.tabs(["Fine-tune", "Deep Compression replay"])
    with tabs[0]:
        finetune_tab(p, base, data)
    with tabs[1]:
        replay_tab(p, base, data)


main()
