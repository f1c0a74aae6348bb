"""The compression controls every page shares: sliders and method choices.

Their values live in the view (``ui/view.py``), which also keeps them in the URL: each
widget is seeded from the view and writes back to it, so a page change loses nothing.
"""

from __future__ import annotations

import streamlit as st

from compress_core.core.config import (
    CALIBRATIONS,
    FLOAT_BITS,
    GRANULARITIES,
    PRUNE_METHODS,
    QUANT_METHODS,
    SCOPES,
    CompressionConfig,
)

from . import view

BITS = list(view.BITS)
RATES = [0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 97, 99]  # percent, for grids
METHOD_LABELS = {
    "magnitude": "magnitude — drop the smallest |w| (Han et al.)",
    "random": "random — drop weights at random (the baseline)",
    "l1-structured": "L1 channels — remove whole channels, smallest L1 norm first",
    "l2-structured": "L2 channels — remove whole channels, smallest L2 norm first",
}
QUANT_LABELS = {
    "uniform": "uniform — equal steps from min to max (asymmetric)",
    "symmetric": "symmetric — equal steps around zero",
    "kmeans": "k-means — shared values clustered to the weights (Deep Compression)",
}


def controls() -> CompressionConfig:
    """Render the sliders and method choices; returns the config they describe.

    Raises ConfigError when the combination is invalid (the page shows it).
    """
    left, right = st.columns(2)
    rate = left.slider(
        "Pruning rate (%)",
        0,
        100,
        step=5,
        key=view.seed("prune_rate", view.get("prune_rate")),
        help="Share of weights (or, for channel methods, of channels) removed from each "
        "compressed layer. 100 % empties a layer: the result says so.",
    )
    bits = right.select_slider(
        "Weight bits",
        BITS,
        key=view.seed("bits", view.get("bits")),
        format_func=lambda b: "32 (float)" if b == FLOAT_BITS else str(b),
        help="Bits per kept weight: at most 2^bits distinct values per layer (or channel). "
        "32 keeps float.",
    )
    with st.expander("Methods", expanded=False):
        c1, c2, c3 = st.columns(3)
        method = c1.selectbox(
            "Pruning method",
            PRUNE_METHODS,
            key=view.seed("prune_method", view.get("prune_method")),
            format_func=METHOD_LABELS.get,
            help="How weights are chosen for removal.",
        )
        scope = c1.radio(
            "Ranking",
            SCOPES,
            key=view.seed("scope", view.get("scope")),
            horizontal=True,
            help="layer: every layer loses the same share. global: one ranking across "
            "all layers, so robust layers give up more.",
        )
        quant = c2.selectbox(
            "Quantizer",
            QUANT_METHODS,
            key=view.seed("quant", view.get("quant")),
            format_func=QUANT_LABELS.get,
            help="How float weights map to a few levels.",
        )
        granularity = c2.radio(
            "Granularity",
            GRANULARITIES,
            key=view.seed("granularity", view.get("granularity")),
            horizontal=True,
            format_func=lambda g: g.replace("_", "-"),
            help="One scale/codebook per layer, or one per output channel "
            "(more accurate, a few more bytes).",
        )
        skip = c3.toggle(
            "Keep small first/last layers intact",
            key=view.seed("skip_first_last", view.get("skip_first_last")),
            help="The input and output layers are sensitive and usually small, so most tools "
            "skip them. A first or last layer holding more than 10 % of the weights (the MLP's "
            "fc1) is compressed anyway; the line under the numbers says what is kept.",
        )
        huffman = c3.toggle(
            "Huffman-code the artifact",
            key=view.seed("huffman", view.get("huffman")),
            help="Entropy-code the weight codes and indexes, as Deep Compression does.",
        )
        act_on = view.get("act_bits") != FLOAT_BITS
        act = c3.toggle(
            "Quantize activations",
            key=view.seed("act_on", act_on),
            help="Also quantize each layer's input, calibrated on a few training batches.",
        )
        act_bits, calibration = FLOAT_BITS, view.get("act_calibration")
        if act:
            act_bits = c3.slider(
                "Activation bits",
                2,
                16,
                key=view.seed("act_bits", view.get("act_bits") if act_on else 8),
                help="Bits for each compressed layer's input.",
            )
            calibration = c3.radio(
                "Calibration",
                CALIBRATIONS,
                key=view.seed("act_calibration", view.get("act_calibration")),
                horizontal=True,
                help="min-max covers every observed value; percentile ignores rare outliers.",
            )
    chosen = {
        "prune_rate": rate,
        "bits": bits,
        "prune_method": method,
        "scope": scope,
        "quant": quant,
        "granularity": granularity,
        "skip_first_last": skip,
        "huffman": huffman,
        "act_bits": act_bits,
        "act_calibration": calibration,
    }
    for name, value in chosen.items():
        view.put(name, value)
    return view.config()


def bits_label(bits: int) -> str:
    return "float" if bits == FLOAT_BITS else f"{bits}-bit"


def grid_choices(
    key: str, rates, bits, where=(st, st), labels=("Pruning rates (%)", "Weight bits")
):
    """Two multiselects picking a grid of pruning rates (in %) and bit widths.

    ``rates`` and ``bits`` are the defaults (rates as fractions); ``where`` the two
    containers (e.g. columns) to draw them in. Returns (rates in %, bit widths).
    """
    chosen_rates = where[0].multiselect(
        labels[0],
        RATES,
        default=[round(100 * r) for r in rates],
        key=f"{key}_rates",
        help="Share of weights removed from each compressed layer.",
    )
    chosen_bits = where[1].multiselect(
        labels[1],
        BITS,
        default=list(bits),
        key=f"{key}_bits",
        format_func=bits_label,
        help="Bits per kept weight; float leaves the weights unquantized.",
    )
    return chosen_rates, chosen_bits
