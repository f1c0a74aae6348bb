"""The per-layer error table (weight MSE, SQNR, cosine, output SQNR): sortable, worst row marked.

Explore's Layers tab calls ``show(*pick.args, config_key)``; the numbers come from
``compress_core.eval.errors`` through ``cache.layer_errors``.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from compress_core.eval.errors import worst_layer

from . import cache
from .i18n import t

WORST = "background-color: #fde0dd"


def show(model: str, dataset: str, epochs, seed: int, config_key: str) -> pd.DataFrame:
    """Render the table for one config (sortable by any column); returns it untranslated."""
    table = cache.layer_errors(model, dataset, epochs, seed, config_key)
    st.subheader(t("errors.title"))
    if table.empty:
        st.info(t("errors.none"))
        return table
    worst = worst_layer(table)
    shown = table.rename(columns={c: t(f"errors.{c}") for c in table.columns})
    marked = table["layer"] == worst
    styled = shown.style.apply(lambda row: [WORST if marked[row.name] else ""] * len(row), axis=1)
    st.caption(t("errors.help"))
    st.dataframe(styled.format(precision=4), hide_index=True, key="errors_table")
    if worst is not None:
        row = table.set_index("layer").loc[worst]
        st.caption(t("errors.worst", layer=worst, sqnr=f"{row['output_sqnr_db']:.1f}"))
    return table
