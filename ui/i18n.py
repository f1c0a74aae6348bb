"""The dashboard's language: ``t(key, **fmt)`` over the catalogs, and the sidebar picker.

The language is one session key (``lang``), read once from the link (``?lang=zh``), else from
the browser (``st.context.locale``), and mirrored to the URL when the user switches. Texts come
from ``locales/<lang>.json`` through ``compress_core.catalog`` (the HTML report uses the same).
The lead folds ``lang`` into the view module's URL table when the two branches meet.
"""

from __future__ import annotations

import streamlit as st

from compress_core import catalog
from compress_core.catalog import LANGUAGES

KEY = "lang"


def lang() -> str:
    """The session's language code ("en" or "zh")."""
    if KEY not in st.session_state:
        asked = st.query_params.get(KEY) or st.context.locale
        st.session_state[KEY] = catalog.language(asked)
    return st.session_state[KEY]


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
    """A language choice in the sidebar; switching rewrites the page and the URL's ``lang``."""
    current = lang()
    codes = list(LANGUAGES)
    chosen = st.sidebar.selectbox(
        t("i18n.language"),
        codes,
        index=codes.index(current),
        format_func=LANGUAGES.get,
        key="lang_picker",
    )
    if chosen != current:
        st.session_state[KEY] = chosen
        st.rerun()
    if st.query_params.get(KEY) != chosen:
        st.query_params[KEY] = chosen
    return chosen
