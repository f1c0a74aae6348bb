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
from .i18n import t

BITS = list(view.BITS)
RATES = [0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 97, 99]  # percent, for grids


# The on/off settings beside the methods: (view field, catalog word).
TOGGLES = (
    ("skip_first_last", "skip"),
    ("recalibrate_bn", "bn"),
    ("bias_correction", "bias"),
)


def method_label(method: str) -> str:
    """'magnitude — drop the smallest |w| (Han et al.)', in the session's language."""
    return t(f"method.{method}")


def quant_label(quant: str) -> str:
    return t(f"quantizer.{quant}")


def controls() -> CompressionConfig:
    """Render the sliders and method choices; returns the config they describe.

    Raises ConfigError when the combination is invalid (the page shows it).
    """
    left, right = st.columns(2)
    rate = left.slider(
        t("ctl.rate"),
        0,
        100,
        step=5,
        key=view.seed("prune_rate", view.get("prune_rate")),
        help=t("ctl.rate_help"),
    )
    bits = right.select_slider(
        t("ctl.bits"),
        BITS,
        key=view.seed("bits", view.get("bits")),
        format_func=lambda b: t("ctl.bits_float") if b == FLOAT_BITS else str(b),
        help=t("ctl.bits_help"),
    )
    with st.expander(t("ctl.methods"), expanded=False):
        c1, c2, c3 = st.columns(3)
        method = c1.selectbox(
            t("ctl.method"),
            PRUNE_METHODS,
            key=view.seed("prune_method", view.get("prune_method")),
            format_func=method_label,
            help=t("ctl.method_help"),
        )
        scope = c1.radio(
            t("ctl.scope"),
            SCOPES,
            key=view.seed("scope", view.get("scope")),
            horizontal=True,
            format_func=lambda s: t(f"scope.{s}"),
            help=t("ctl.scope_help"),
        )
        quant = c2.selectbox(
            t("ctl.quant"),
            QUANT_METHODS,
            key=view.seed("quant", view.get("quant")),
            format_func=quant_label,
            help=t("ctl.quant_help"),
        )
        granularity = c2.radio(
            t("ctl.granularity"),
            GRANULARITIES,
            key=view.seed("granularity", view.get("granularity")),
            horizontal=True,
            format_func=lambda g: t(f"granularity.{g}"),
            help=t("ctl.granularity_help"),
        )
        skip, bn, bias = (
            c3.toggle(t(f"ctl.{word}"), key=view.seed(f, view.get(f)), help=t(f"ctl.{word}_help"))
            for f, word in TOGGLES
        )
        act_on = view.get("act_bits") != FLOAT_BITS
        act = c3.toggle(
            t("ctl.act"),
            key=view.seed("act_on", act_on),
            help=t("ctl.act_help"),
        )
        act_bits, calibration = FLOAT_BITS, view.get("act_calibration")
        if act:
            act_bits = c3.slider(
                t("ctl.act_bits"),
                2,
                16,
                key=view.seed("act_bits", view.get("act_bits") if act_on else 8),
                help=t("ctl.act_bits_help"),
            )
            calibration = c3.radio(
                t("ctl.calibration"),
                CALIBRATIONS,
                key=view.seed("act_calibration", view.get("act_calibration")),
                horizontal=True,
                format_func=lambda c: t(f"calibration.{c}"),
                help=t("ctl.calibration_help"),
            )
    chosen = {
        "prune_rate": rate,
        "bits": bits,
        "prune_method": method,
        "scope": scope,
        "quant": quant,
        "granularity": granularity,
        "skip_first_last": skip,
        "act_bits": act_bits,
        "act_calibration": calibration,
        "recalibrate_bn": bn,
        "bias_correction": bias,
    }
    for name, value in chosen.items():
        view.put(name, value)
    return view.config()


def bits_label(bits: int) -> str:
    return t("ctl.float") if bits == FLOAT_BITS else t("ctl.n_bit", bits=bits)


def grid_choices(key: str, rates, bits, where=(st, st), labels=None):
    """Two multiselects picking a grid of pruning rates (in %) and bit widths.

    ``rates`` and ``bits`` are the defaults (rates as fractions); ``where`` the two
    containers (e.g. columns) to draw them in. Returns (rates in %, bit widths).
    """
    labels = labels or (t("ctl.rates"), t("ctl.bits"))
    chosen_rates = where[0].multiselect(
        labels[0],
        RATES,
        default=[round(100 * r) for r in rates],
        key=f"{key}_rates",
        help=t("ctl.rates_help"),
    )
    chosen_bits = where[1].multiselect(
        labels[1],
        BITS,
        default=list(bits),
        key=f"{key}_bits",
        format_func=bits_label,
        help=t("ctl.grid_bits_help"),
    )
    return chosen_rates, chosen_bits
