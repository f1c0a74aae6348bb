"""Learn: six short lessons on pruning and quantization, on the real cached model, in English
and 简体中文. Each lesson is a few sentences, one control, one live figure and a link that opens
the matching page with the lesson's settings.
"""

from __future__ import annotations

import streamlit as st

from compress_core.core.config import CompressionConfig
from ui import cache, i18n, learn
from ui.i18n import t
from ui.report import download_report

st.set_page_config(page_title="Slimscope · Learn", page_icon="✂️", layout="wide")
i18n.language_picker()
st.title(t("learn.title"))
st.caption(t("learn.intro", model=learn.MODEL, data=learn.DATASET))
with st.spinner(t("learn.loading")):
    base, data = cache.baseline(*learn.ARGS)

LESSONS = [
    lambda: learn.pruning(base),
    lambda: learn.quantization(base),
    learn.where_bytes_go,
    learn.trade_off,
    learn.budget,
    learn.finetuning,
]
sections = []
for tab, lesson in zip(st.tabs([t(f"lesson{i}.tab") for i in range(1, 7)]), LESSONS, strict=True):
    with tab:
        sections.append(lesson())

about = {
    t("report.model"): learn.MODEL,
    t("report.dataset"): learn.DATASET,
    t("report.config"): CompressionConfig().to_dict(),
}
with st.sidebar:
    download_report(t("report.title_learn"), about, sections, "slimscope-learn", "learn_report")
