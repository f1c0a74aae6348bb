"""The Learn page's six lessons: a few sentences, one control, one live figure, one link each.

Each lesson returns a report ``Section`` (its figure and table), so the page can offer the
lessons as one offline HTML file. The numbers come from ``compress_core.analysis.lessons`` and
the shared caches; the words from the catalogs.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from compress_core.analysis import lessons
from compress_core.core.config import FLOAT_BITS, CompressionConfig
from compress_core.report import Section
from compress_core.train.finetune import FinetuneConfig

from . import cache, learn_charts
from .i18n import lang, nbytes, number, percent, t

MODEL, DATASET = "lenet5", "digits"  # the offline default: trains in seconds
ARGS = (MODEL, DATASET, None, 0)  # model, data set, default epochs, seed
PAGES = {"explore": "explore", "sweep": "Sweep", "budget": "Budget", "recovery": "Recovery"}
ZERO_RATE = 0.7  # the pruning rate of the zero-level comparison
FINETUNE = FinetuneConfig(epochs=2)

# The three grids the lesson compares (other registered quantizers are on Explore).
LESSON_QUANTIZERS = ("uniform", "symmetric", "kmeans")


def link(page: str, config: CompressionConfig, key: str) -> None:
    """A button opening ``page`` (in a new tab) with this lesson's model, data and settings."""
    query = {"dataset": DATASET, "model": MODEL, **config.to_strings(), "lang": lang()}
    st.link_button(t(f"learn.open_{page}"), f"{PAGES[page]}?{urlencode(query)}", key=key)


def _result(config: CompressionConfig):
    return cache.result(*ARGS, config.key(), None)


def _bits_label(bits: int) -> str:
    return t("learn.float") if bits == FLOAT_BITS else str(bits)


def pruning(base) -> Section:
    st.markdown(t("lesson1.body"))
    rate = st.slider(t("lesson1.rate"), 0, 95, 70, step=5, key="learn_prune_rate") / 100
    layer = lessons.lesson_layer(base)
    w = lessons.lesson_weight(base, layer)
    keep = lessons.magnitude_keep(w, rate)
    fig = learn_charts.mask_figure(w.numpy(), keep.numpy(), layer, rate)
    st.plotly_chart(fig, key="learn_fig_mask")
    rows = []
    for col, (name, config) in zip(
        st.columns(3), lessons.ranking_configs(rate).items(), strict=True
    ):
        r = _result(config)
        col.metric(
            t(f"ranking.{name}"), percent(r.accuracy, 2), t("num.pp", value=f"{r.delta_pp:+.2f}")
        )
        rows.append({t("col.setting"): t(f"ranking.{name}"), t("col.accuracy"): r.accuracy})
    st.caption(t("lesson1.note"))
    link("explore", CompressionConfig(prune_rate=rate, bits=FLOAT_BITS), "learn_go_1")
    return Section(t("lesson1.tab"), t("lesson1.body"), fig, pd.DataFrame(rows))


def quantization(base) -> Section:
    st.markdown(t("lesson2.body"))
    bits = st.select_slider(t("lesson2.bits"), [1, 2, 3, 4, 5, 6, 8], 3, key="learn_bits")
    w = lessons.lesson_weight(base)
    out = {m: lessons.quant_levels(w, bits, m) for m in LESSON_QUANTIZERS}
    fig = learn_charts.levels_figure(
        w.numpy().ravel(), {m: o["levels"] for m, o in out.items()}, bits
    )
    st.plotly_chart(fig, key="learn_fig_levels")
    table = pd.DataFrame(
        {
            t("col.quantizer"): [t(f"quant.{m}") for m in out],
            t("col.levels"): [len(o["levels"]) for o in out.values()],
            t("col.mse"): [o["mse"] for o in out.values()],
            t("col.sqnr"): [o["sqnr_db"] for o in out.values()],
        }
    )
    st.dataframe(table, hide_index=True, key="learn_table_levels")
    st.markdown(t("lesson2.zero_body", rate=percent(ZERO_RATE, 0)))
    zero = {m: lessons.zero_level(w, ZERO_RATE, bits, m) for m in LESSON_QUANTIZERS}
    zeros = pd.DataFrame(
        {
            t("col.quantizer"): [t(f"quant.{m}") for m in zero],
            t("col.zeros_kept"): [percent(z["zeros_stay_zero"], 0) for z in zero.values()],
            t("col.sqnr_whole"): [z["sqnr_kept_whole_db"] for z in zero.values()],
            t("col.sqnr_kept"): [z["sqnr_kept_only_db"] for z in zero.values()],
        }
    )
    st.dataframe(zeros, hide_index=True, key="learn_table_zero")
    config = CompressionConfig(bits=bits, quant="kmeans", granularity="per_tensor")
    link("explore", config, "learn_go_2")
    return Section(t("lesson2.tab"), t("lesson2.body"), fig, table)


def where_bytes_go() -> Section:
    st.markdown(t("lesson3.body"))
    rate = st.slider(t("lesson3.rate"), 0, 95, 90, step=5, key="learn_bytes_rate") / 100
    config = CompressionConfig(prune_rate=rate, bits=4)
    info = cache.lesson_bytes(*ARGS, config.key())
    plain, coded = info["parts"]["plain"], info["parts"]["huffman"]
    fig = learn_charts.bytes_figure({t("bytes.row_plain"): plain, t("bytes.row_huffman"): coded})
    st.plotly_chart(fig, key="learn_fig_bytes")
    saved = sum(plain.values()) - sum(coded.values())
    st.caption(
        t("lesson3.huffman", bytes=nbytes(saved), share=percent(saved / sum(plain.values())))
    )
    st.markdown(t("lesson3.surprise"))
    saves = info["saves"]
    table = pd.DataFrame(
        {
            t("col.what"): [t(f"save.{k}") for k in saves],
            t("col.bytes"): [number(v) for v in saves.values()],
            t("col.vs_dense"): [f"{v / saves['dense']:.2f}x" for v in saves.values()],
        }
    )
    st.dataframe(table, hide_index=True, key="learn_table_saves")
    link("explore", config, "learn_go_3")
    return Section(t("lesson3.tab"), t("lesson3.body"), fig, table)


def _sweep(bit_widths) -> tuple[pd.DataFrame, object]:
    configs = {c.key(): c for b in bit_widths for c in lessons.pareto_configs(b)}
    results = [_result(c) for c in configs.values()]
    return lessons.trade_off([r.to_row() for r in results]), results[0]


def trade_off() -> Section:
    st.markdown(t("lesson4.body"))
    bits = st.select_slider(
        t("lesson4.bits"),
        [2, 3, 4, 8, FLOAT_BITS],
        4,
        format_func=_bits_label,
        key="learn_pareto_bits",
    )
    frame, r = _sweep([bits])
    fig = learn_charts.tradeoff_figure(frame, (r.dense_bytes, r.baseline_accuracy))
    st.plotly_chart(fig, key="learn_fig_pareto")
    worst = frame.loc[frame["accuracy"].idxmin()]
    relative = 100 * (worst["accuracy"] / r.baseline_accuracy - 1)
    st.markdown(
        t(
            "lesson4.pp",
            before=percent(r.baseline_accuracy, 2),
            after=percent(worst["accuracy"], 2),
            pp=f"{worst['delta_pp']:+.2f}",
            rel=f"{relative:+.2f}",
        )
    )
    link("sweep", CompressionConfig(bits=bits), "learn_go_4")
    columns = {
        "label": t("col.setting"),
        "accuracy": t("col.accuracy"),
        "artifact_bytes": t("col.bytes"),
    }
    return Section(
        t("lesson4.tab"), t("lesson4.body"), fig, frame[list(columns)].rename(columns=columns)
    )


def budget() -> Section:
    st.markdown(t("lesson5.body"))
    drop = st.slider(t("lesson5.drop"), 0.0, 5.0, 1.0, step=0.5, key="learn_drop")
    frame, r = _sweep([2, 4, 8])
    chosen = lessons.smallest_meeting(frame, drop)
    delta = r.baseline_accuracy - drop / 100
    fig = learn_charts.tradeoff_figure(frame, (r.dense_bytes, r.baseline_accuracy), (delta, chosen))
    st.plotly_chart(fig, key="learn_fig_budget")
    if chosen is None:
        st.info(t("lesson5.none"))
    else:
        st.markdown(
            t(
                "lesson5.chosen",
                delta=percent(delta, 2),
                label=chosen["label"],
                size=nbytes(chosen["artifact_bytes"]),
                accuracy=percent(chosen["accuracy"], 2),
            )
        )
    st.caption(t("lesson5.note"))
    link("budget", CompressionConfig(), "learn_go_5")
    return Section(t("lesson5.tab"), t("lesson5.body"), fig)


def finetuning() -> Section:
    st.markdown(t("lesson6.body"))
    rate = st.select_slider(t("lesson6.rate"), [50, 70, 80, 90, 95], 90, key="learn_ft_rate")
    config = CompressionConfig(prune_rate=rate / 100, bits=FLOAT_BITS)
    one_shot = _result(config)
    with st.spinner(t("lesson6.training")):
        cache.train_finetuned(*ARGS, config.key(), FINETUNE.key())
    tuned = cache.finetuned_result(*ARGS, config.key(), FINETUNE.key(), None)
    values = {t("lesson6.one_shot"): one_shot.accuracy, t("lesson6.tuned"): tuned.accuracy}
    fig = learn_charts.before_after_figure(values, one_shot.baseline_accuracy)
    st.plotly_chart(fig, key="learn_fig_finetune")
    gained = 100 * (tuned.accuracy - one_shot.accuracy)
    st.caption(t("lesson6.gained", pp=f"{gained:+.2f}", epochs=FINETUNE.epochs))
    link("recovery", config, "learn_go_6")
    return Section(t("lesson6.tab"), t("lesson6.body"), fig)
