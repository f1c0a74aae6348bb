"""The "Download report" button: one offline HTML file of a page, in the page's language.

The HTML is built only when the button is clicked (a deferred ``data`` callable), from
values captured on this run, so a page pays nothing for offering it.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from compress_core.report import Section, build_report

from .i18n import lang, t


def download_report(title: str, about: dict, sections: list[Section], name: str, key: str) -> None:
    """A download button writing ``build_report`` of these sections as ``<name>-<lang>.html``."""
    download_html(lambda language: build_report(language, title, about, sections), name, key)


def download_html(make: Callable[[str], str], name: str, key: str) -> None:
    """A download button for ``make(lang)``, an HTML report (e.g. ``report.run_report``)."""
    language = lang()  # read now: the callable runs outside the script run
    st.download_button(
        t("report.download"),
        lambda: make(language),
        f"{name}-{language}.html",
        "text/html",
        key=key,
        help=t("report.download_help"),
        on_click="ignore",  # no rerun: the served file stays while it downloads
    )
