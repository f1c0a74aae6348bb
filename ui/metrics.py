"""The four numbers every result page leads with, as ``st.metric``s."""

from __future__ import annotations

import streamlit as st

from ui.format import human_bytes
from ui.i18n import number, percent, t


def show(r) -> None:
    """Accuracy, non-zero parameters, artifact bytes and ratio of result ``r``, with deltas."""
    a, b, c, d = st.columns(4)
    a.metric(
        t("metric.accuracy"),
        percent(r.accuracy, 2),
        t("num.pp", value=f"{r.delta_pp:+.2f}"),
        help=t(
            "metric.accuracy_help",
            base=percent(r.baseline_accuracy, 2),
            n=number(r.eval_images),
        ),
    )
    b.metric(
        t("metric.nonzero"),
        number(r.nonzero_params),
        change(r.nonzero_params / r.baseline_params - 1),
        delta_color="inverse",
        help=t("metric.nonzero_help", total=number(r.total_params), base=number(r.baseline_params)),
    )
    c.metric(
        t("metric.size"),
        human_bytes(r.artifact_bytes),
        change(r.artifact_bytes / r.dense_bytes - 1),
        delta_color="inverse",
        help=t("metric.size_help", dense=human_bytes(r.dense_bytes)),
    )
    ratio = t("metric.times", value=f"{r.ratio:.1f}")
    d.metric(t("metric.ratio"), ratio, help=t("metric.ratio_help"))
    for w in r.warnings:
        st.warning(w, icon="⚠️")


def change(fraction: float) -> str:
    """A signed relative change, e.g. -42.0% (st.metric colours it by its sign)."""
    return ("+" if fraction >= 0 else "-") + percent(abs(fraction))
