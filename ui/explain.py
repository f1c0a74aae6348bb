"""Short explanations shown next to numbers that look wrong but are not."""

from __future__ import annotations

import streamlit as st

from compress_core.core.layers import compressed_share


def selection(base, config, baseline: str) -> None:
    """'Compressing 98 % of the weights: conv1 and fc3 kept (small first/last layers).'"""
    share, kept = compressed_share(base, config)
    why = "; ".join(f"{name} kept ({reason.split(' (')[0]})" for name, reason in kept.items())
    st.caption(
        f"Compressing {share:.0%} of the weights"
        + (f": {why}." if why else ".")
        + (f" {baseline}.")
    )


def notes(r, config) -> list[str]:
    """The explanations that apply to result ``r`` of ``config`` (empty when none do)."""
    out = []
    if config.quantized and config.quant != "kmeans" and r.nonzero_params < r.baseline_params:
        out.append(
            "Non-zero parameters can fall when only the bits change: the quantizer's grid has "
            "a level at zero, and weights closer to it than half a step become 0 too (fewer "
            "bits, wider steps, more zeros)."
        )
    if 0 < config.prune_rate <= 0.3:
        out.append(
            "A little pruning can make the file bigger: pruned layers must also store where "
            "the kept weights are (a bitmask or relative indexes, whichever is smaller; see "
            "'Stored as' in the Layers tab), and a few zeros do not pay for that index."
        )
    if config.bits == 2 and config.prune_rate >= 0.7 and config.quant != "kmeans":
        out.append(
            "After heavy pruning the kept weights are the large ones, far from zero. A 2-bit "
            f"{config.quant} grid spreads its 4 levels evenly over the range, so few land "
            "where the weights are; 1 bit stores sign × scale, which fits them better. "
            "The k-means quantizer puts the levels where the weights are and fixes this."
        )
    return out


def show(r, config) -> None:
    for text in notes(r, config):
        st.caption("ℹ️ " + text)
