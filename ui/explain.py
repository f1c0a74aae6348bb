"""Short explanations shown next to numbers that look wrong but are not."""

from __future__ import annotations

import streamlit as st

from compress_core.core.layers import compressed_share
from compress_core.core.quantize import PIN_ZERO_BITS

from .i18n import percent, t


def selection(base, config, baseline: str) -> None:
    """'Compressing 98 % of the weights: conv1 and fc3 kept (small first/last layers).'"""
    share, kept = compressed_share(base, config)
    why = t("list.sep").join(
        t("explain.kept", layer=name, reason=reason.split(" (")[0]) for name, reason in kept.items()
    )
    key = "explain.selection_kept" if why else "explain.selection"
    st.caption(t(key, share=percent(share, 0), why=why, baseline=baseline))


def notes(r, config) -> list[str]:
    """The explanations that apply to result ``r`` of ``config`` (empty when none do)."""
    out = []
    if config.quantized and config.quant != "kmeans" and r.nonzero_params < r.baseline_params:
        out.append(t("explain.bits_zero"))
    # Affine codes with a zero level store light pruning as zero codes, with no index; so do
    # k-means codebooks from PIN_ZERO_BITS up, which pin a 0.0 entry where weights are pruned.
    zero_level = config.bits in range(2, 17) and config.quant in ("uniform", "symmetric", "ecq")
    zero_level |= config.quant == "kmeans" and config.bits in range(PIN_ZERO_BITS, 17)
    if 0 < config.prune_rate <= 0.3 and not zero_level:
        out.append(t("explain.index_cost"))
    if config.bits == 2 and config.prune_rate >= 0.7 and config.quant != "kmeans":
        out.append(t("explain.two_bits", quant=config.quant))
    return out


def show(r, config) -> None:
    for text in notes(r, config):
        st.caption("ℹ️ " + text)
