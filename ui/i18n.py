"""The dashboard's language: ``t(key, **fmt)`` over the catalogs, and the sidebar picker.

The language is part of the view (``ui/view.py``'s ``lang`` row): read once from the link
(``?lang=zh``), else from the browser (``st.context.locale``), and kept in the URL across
pages like every other setting. Texts come from ``locales/<lang>.json`` through
``compress_core.catalog`` (the HTML report uses the same).
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from compress_core import catalog
from compress_core.catalog import LANGUAGES

from . import view


def lang() -> str:
    """The session's language code ("en" or "zh"); English outside a Streamlit run (tests)."""
    if get_script_run_ctx(suppress_warning=True) is None:
        return catalog.DEFAULT
    return view.get("lang")


def t(key: str, **fmt) -> str:
    """The text for ``key`` in the session's language, e.g. ``t("learn.title")``."""
    return catalog.text(lang(), key, **fmt)


def number(value: float, digits: int = 0) -> str:
    return catalog.number(lang(), value, digits)


def percent(fraction: float, digits: int = 1) -> str:
    return catalog.percent(lang(), fraction, digits)


def nbytes(n: float) -> str:
    return catalog.nbytes(lang(), n)


def language_picker() -> str:
    """A language choice in the sidebar; switching redraws the page (and the URL's ``lang``)."""
    current = lang()
    chosen = st.sidebar.selectbox(
        t("i18n.language"),
        list(LANGUAGES),
        key=view.seed("lang_picker", current),
        format_func=LANGUAGES.get,
    )
    if chosen != current:
        view.put("lang", chosen)
        view.reseed()
        st.rerun()  # texts drawn above the picker (the navigation) were in the old language
    return chosen
