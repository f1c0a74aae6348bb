"""The word catalogs (``locales/<lang>.json``) and locale-aware numbers, without Streamlit.

The dashboard's ``ui.i18n.t`` and the HTML report both read texts through ``text``; a key
missing from a language falls back to English, and a key missing from English shows the key
itself (the catalog tests make both impossible for the files that are converted).

Example:
    >>> text("zh", "learn.title")
    '学习：剪枝与量化'
    >>> number("en", 1234567)
    '1,234,567'
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

LOCALES = Path(__file__).resolve().parent.parent / "locales"
LANGUAGES = {"en": "English", "zh": "简体中文"}  # code -> the language's own name
DEFAULT = "en"


@functools.cache
def catalog(lang: str) -> dict[str, str]:
    """The catalog of one language (read once)."""
    with open(LOCALES / f"{lang}.json", encoding="utf-8") as f:
        return json.load(f)


def language(code: str | None) -> str:
    """The supported language for a code such as "zh-CN", "zh_Hans" or "en-GB"; else English."""
    base = (code or "").replace("_", "-").split("-")[0].lower()
    return base if base in LANGUAGES else DEFAULT


def text(lang: str, key: str, **fmt) -> str:
    """The text for ``key`` in ``lang`` (English when missing), formatted with ``fmt``."""
    template = catalog(language(lang)).get(key) or catalog(DEFAULT).get(key, key)
    return template.format(**fmt) if fmt else template


def number(lang: str, value: float, digits: int = 0) -> str:
    """A number with the language's grouping and decimal marks, e.g. 12,345.6."""
    c = catalog(language(lang))
    plain = f"{value:,.{digits}f}"
    return plain.translate(str.maketrans({",": c["num.group"], ".": c["num.decimal"]}))


def percent(lang: str, fraction: float, digits: int = 1) -> str:
    """A fraction as a percentage in the language's format (both catalogs: 12.5%)."""
    return text(lang, "num.percent", value=number(lang, 100 * fraction, digits))


def nbytes(lang: str, n: float) -> str:
    """A byte count with a unit: 950 B, 27.3 KB, 1.2 MB (units from the catalog)."""
    for unit, size in (("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= size:
            return text(lang, f"num.{unit}", value=number(lang, n / size, 1))
    return text(lang, "num.B", value=number(lang, n))
