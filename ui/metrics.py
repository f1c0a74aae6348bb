"""The four numbers every result page leads with, as ``st.metric``s."""

from __future__ import annotations

import streamlit as st

from ui.format import human_bytes


def show(r) -> None:
    """Accuracy, non-zero parameters, artifact bytes and ratio of result ``r``, with deltas."""
    a, b, c, d = st.columns(4)
    a.metric(
        "Test accuracy",
        f"{r.accuracy:.2%}",
        f"{r.delta_pp:+.2f} pp",
        help=f"Baseline {r.baseline_accuracy:.2%} on {r.eval_images:,} test images.",
    )
    b.metric(
        "Non-zero parameters",
        f"{r.nonzero_params:,}",
        f"{r.nonzero_params / r.baseline_params - 1:+.1%}",
        delta_color="inverse",
        help=f"Of {r.total_params:,} stored ({r.baseline_params:,} in the baseline).",
    )
    c.metric(
        "Compressed size",
        human_bytes(r.artifact_bytes),
        f"{r.artifact_bytes / r.dense_bytes - 1:+.1%}",
        delta_color="inverse",
        help=f"The exported artifact's exact length; fp32 is {human_bytes(r.dense_bytes)}.",
    )
    d.metric("Compression ratio", f"{r.ratio:.1f}×", help="fp32 bytes / artifact bytes.")
    for w in r.warnings:
        st.warning(w, icon="⚠️")
