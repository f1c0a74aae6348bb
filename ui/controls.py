"""The compression controls every page shares: sliders, method choices, and shareable URLs.

Widget defaults live in ``st.session_state`` (set once), so a link's settings
can pre-fill them and no widget gets two defaults.
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
    ConfigError,
)
from ui.safe import plain

BITS = [*range(1, 17), FLOAT_BITS]
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
    "ecq": "entropy-constrained — levels chosen for the smallest coded size (Choi et al.)",
}
# The page opens on a setting that already shows something: half the weights, 4 bits.
DEFAULTS = dict(
    prune_rate=50,
    bits=4,
    prune_method="magnitude",
    scope="layer",
    quant="uniform",
    granularity="per_channel",
    skip_first_last=True,
    huffman=False,
    act_on=False,
    act_bits=8,
    act_calibration="minmax",
    recalibrate_bn=False,
    bias_correction=False,
)


def _widget_values(config: CompressionConfig) -> dict:
    values = {k: getattr(config, k) for k in DEFAULTS if hasattr(config, k)}
    values["prune_rate"] = round(100 * config.prune_rate)
    values["act_on"] = config.act_bits != FLOAT_BITS
    values["act_bits"] = config.act_bits if values["act_on"] else DEFAULTS["act_bits"]
    return values


def init_from_url() -> None:
    """Once per session: defaults, overridden by the link's settings when it has valid ones."""
    if "controls_ready" in st.session_state:
        return
    st.session_state.controls_ready = True
    st.session_state.update(DEFAULTS)
    if not st.query_params:
        return
    try:
        config = CompressionConfig.from_strings(st.query_params.to_dict())
    except ConfigError as e:
        st.session_state.url_error = f"The link's settings were not applied: {e}"
        return
    st.session_state.update(_widget_values(config))
    st.session_state.url_extra = {"include": config.include, "exclude": config.exclude}


def to_url(config: CompressionConfig) -> None:
    """Keep the address bar in step with the settings, so the page can be shared as a link."""
    st.query_params.from_dict(config.to_strings())


def controls() -> CompressionConfig:
    """Render the sliders and method choices; returns the config they describe.

    Raises ConfigError when the combination is invalid (the page shows it).
    """
    init_from_url()
    if "url_error" in st.session_state:
        st.error(plain(st.session_state.pop("url_error")))
    left, right = st.columns(2)
    rate = left.slider(
        "Pruning rate (%)",
        0,
        100,
        step=5,
        key="prune_rate",
        help="Share of weights (or, for channel methods, of channels) removed from each "
        "compressed layer. 100 % empties a layer: the result says so.",
    )
    bits = right.select_slider(
        "Weight bits",
        BITS,
        key="bits",
        format_func=lambda b: "32 (float)" if b == FLOAT_BITS else str(b),
        help="Bits per kept weight: at most 2^bits distinct values per layer (or channel). "
        "32 keeps float.",
    )
    with st.expander("Methods", expanded=False):
        c1, c2, c3 = st.columns(3)
        method = c1.selectbox(
            "Pruning method",
            PRUNE_METHODS,
            key="prune_method",
            format_func=lambda n: METHOD_LABELS.get(n, n),  # a registered method: its name
            help="How weights are chosen for removal.",
        )
        scope = c1.radio(
            "Ranking",
            SCOPES,
            key="scope",
            horizontal=True,
            help="layer: every layer loses the same share. global: one ranking across "
            "all layers, so robust layers give up more.",
        )
        quant = c2.selectbox(
            "Quantizer",
            QUANT_METHODS,
            key="quant",
            format_func=lambda n: QUANT_LABELS.get(n, n),
            help="How float weights map to a few levels.",
        )
        granularity = c2.radio(
            "Granularity",
            GRANULARITIES,
            key="granularity",
            horizontal=True,
            format_func=lambda g: g.replace("_", "-"),
            help="One scale/codebook per layer, or one per output channel "
            "(more accurate, a few more bytes).",
        )
        skip = c3.toggle(
            "Keep first and last layer intact",
            key="skip_first_last",
            help="The input and output layers are small and sensitive; most tools skip them.",
        )
        huffman = c3.toggle(
            "Huffman-code the artifact",
            key="huffman",
            help="Entropy-code the weight codes and indexes, as Deep Compression does.",
        )
        bn = c3.toggle(
            "Re-estimate BatchNorm",
            key="recalibrate_bn",
            help="Recompute BatchNorm statistics on 1,024 training images after compressing.",
        )
        bias = c3.toggle(
            "Correct biases",
            key="bias_correction",
            help="Shift each layer's bias so its mean output matches the base model's.",
        )
        act = c3.toggle(
            "Quantize activations",
            key="act_on",
            help="Also quantize each layer's input, calibrated on a few training batches.",
        )
        act_bits, calibration = FLOAT_BITS, DEFAULTS["act_calibration"]
        if act:
            act_bits = c3.slider(
                "Activation bits",
                2,
                16,
                key="act_bits",
                help="Bits for each compressed layer's input.",
            )
            calibration = c3.radio(
                "Calibration",
                CALIBRATIONS,
                key="act_calibration",
                horizontal=True,
                help="min-max covers every observed value; percentile ignores rare outliers.",
            )
    extra = st.session_state.get("url_extra", {})
    return CompressionConfig(
        prune_rate=rate / 100,
        bits=bits,
        prune_method=method,
        scope=scope,
        quant=quant,
        granularity=granularity,
        skip_first_last=skip,
        huffman=huffman,
        act_bits=act_bits,
        act_calibration=calibration,
        recalibrate_bn=bn,
        bias_correction=bias,
        **extra,
    )


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
