"""The view: data set, model, training budget, evaluation subset and every compression control.

One source of truth. Values live in one plain session key (``st.session_state.view``), not
in the widgets: Streamlit deletes a widget's state on any run that does not render it (a page
change), so widgets are seeded from the view when their state is gone (``seed``) and write
back on every run (``put``). The view is mirrored to the URL on every page (only values that
differ from the defaults), so a bare URL means the defaults below and a copied link, opened
in a fresh browser, reproduces the page. Nothing else touches ``st.query_params``.

The mapping is the table ``FIELDS``: a field is a URL name, a default, and a parser that says
what is allowed. The language (``lang``) is one more row: a link without it opens in the
browser's language (``st.context.locale``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from compress_core import catalog
from compress_core.core import config as cfg
from compress_core.io.data import DATASETS
from compress_core.io.models import MODELS
from ui.safe import plain

SUBSETS = (0, 2000, 500)  # test images to evaluate on; 0 = all
BITS = (*range(1, 17), cfg.FLOAT_BITS)


@dataclass(frozen=True)
class Field:
    """One part of the view: its URL name, default, and how URL text becomes a value."""

    name: str  # URL parameter and key in the view
    default: Any
    parse: Callable[[str], Any]  # raises ValueError("what is allowed")
    text: Callable[[Any], str] = str  # value -> URL text (inverse of parse)


def _one_of(options: Callable[[], tuple]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        allowed = tuple(options())
        for option in allowed:
            if text == str(option):
                return option
        raise ValueError(f"one of {', '.join(map(str, allowed))}")

    return parse


def _whole(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not re.fullmatch(r"\d{1,4}", text) or not low <= int(text) <= high:
            raise ValueError(f"a whole number from {low} to {high}")
        return int(text)

    return parse


def _percent(text: str) -> int:
    """URL fraction (0.5, as the CLI's --prune) -> slider percent (50)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise ValueError("a number from 0 to 1 (0.5 = 50 %)")
    return round(100 * value)


def _flag(text: str) -> bool:
    if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError("true or false")
    return text.lower() in ("true", "1")


def _patterns(text: str) -> tuple[str, ...]:
    patterns = tuple(p for p in text.split(",") if p)
    if not all(re.fullmatch(r"[\w.*?\[\]-]{1,100}", p) for p in patterns) or len(patterns) > 50:
        raise ValueError("comma-separated layer-name patterns such as conv*,fc1")
    return patterns


FIELDS = (
    Field("dataset", "digits", _one_of(DATASETS.names)),
    Field("model", "lenet5", _one_of(MODELS.names)),
    Field("epochs", 0, _whole(0, 200)),  # 0 = the model's default for the data set
    Field("subset", 0, _one_of(lambda: SUBSETS)),
    # The page opens on a setting that already shows something: half the weights, 4 bits.
    Field("prune_rate", 50, _percent, lambda v: f"{v / 100:g}"),
    Field("bits", 4, _one_of(lambda: BITS)),
    Field("prune_method", "magnitude", _one_of(lambda: cfg.PRUNE_METHODS)),
    Field("scope", "layer", _one_of(lambda: cfg.SCOPES)),
    Field("quant", "uniform", _one_of(lambda: cfg.QUANT_METHODS)),
    Field("granularity", "per_channel", _one_of(lambda: cfg.GRANULARITIES)),
    Field("skip_first_last", True, _flag, lambda v: str(v).lower()),
    # Legacy (changes no bytes, no control): kept so old links with huffman=1 still open.
    Field("huffman", False, _flag, lambda v: str(v).lower()),
    Field("recalibrate_bn", False, _flag, lambda v: str(v).lower()),
    Field("bias_correction", False, _flag, lambda v: str(v).lower()),
    Field("act_bits", cfg.FLOAT_BITS, _one_of(lambda: (*range(2, 17), cfg.FLOAT_BITS))),
    Field("act_calibration", "minmax", _one_of(lambda: cfg.CALIBRATIONS)),
    Field("include", (), _patterns, ",".join),
    Field("exclude", (), _patterns, ",".join),
    Field("lang", catalog.DEFAULT, _one_of(lambda: tuple(catalog.LANGUAGES))),
)
BY_NAME = {f.name: f for f in FIELDS}
DEFAULTS = {f.name: f.default for f in FIELDS}


def start() -> None:
    """Every run, before the page: the view (from the link on a session's first run), in the URL.

    A link's invalid values are reported (``problems``) and fall back to their defaults,
    one key at a time.
    """
    if "view" not in st.session_state:
        view, problems = from_query(st.query_params.to_dict(), st.context.locale)
        st.session_state.view = view
        st.session_state.view_problems = problems
        st.session_state.view_good_dataset = None
    publish()


def from_query(query: dict[str, str], locale: str | None = None) -> tuple[dict, list[str]]:
    """(view, problems) for a URL's query: defaults, overridden by every valid value.

    Without ``lang`` in the link the language follows ``locale`` (the browser's); the
    problems are written in the view's language.
    """
    view, problems = dict(DEFAULTS), []
    view["lang"] = catalog.language(query.get("lang") or locale)
    tr = lambda key, **fmt: catalog.text(view["lang"], key, **fmt)  # noqa: E731
    for name, text in query.items():
        field = BY_NAME.get(name)
        if field is None:
            problems.append(tr("view.unknown", name=repr(name)))
            continue
        try:
            view[name] = field.parse(text)
        except ValueError as e:
            default = field.text(field.default) or tr("view.none")
            problems.append(
                tr("view.invalid", setting=f"{name}={text[:40]!r}", allowed=e, default=default)
            )
    return view, problems


def to_query(view: dict) -> dict[str, str]:
    """The URL query for a view: the values that differ from the defaults, as text."""
    return {f.name: f.text(view[f.name]) for f in FIELDS if view[f.name] != f.default}


def publish() -> None:
    """Make the address bar show the view (only when it differs, to avoid needless messages)."""
    query = to_query(st.session_state.view)
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)


def _state() -> dict:
    """The view, started here when a page runs on its own (as in AppTest)."""
    if "view" not in st.session_state:
        start()
    return st.session_state.view


def get(name: str) -> Any:
    return _state()[name]


def put(name: str, value: Any) -> None:
    """Set one part of the view (from its widget) and the URL with it."""
    if _state()[name] != value:
        _state()[name] = value
        publish()


def seed(key: str, value: Any) -> str:
    """A widget's key, its state restored to ``value`` when Streamlit dropped it."""
    st.session_state.setdefault("view_widgets", set()).add(key)
    if key not in st.session_state:
        st.session_state[key] = value
    return key


def enter_page(name: str) -> None:
    """Before a page runs: on a page change, reseed every view widget from the view.

    A widget drawn on two pages keeps its state under the old page's widget id, so the
    new page's widget would fall back to its first option (English, the first model) and
    write that back to the view. Dropping the keys lets ``seed`` restore them.
    """
    if st.session_state.get("view_page", name) != name:
        reseed()
    st.session_state.view_page = name


def reseed() -> None:
    """Drop the view widgets' states so ``seed`` redraws them from the view (a page change;
    a language switch, after which a select box would still show its option in the old one)."""
    for key in st.session_state.get("view_widgets", ()):
        st.session_state.pop(key, None)


def config() -> cfg.CompressionConfig:
    """The compression config the view describes (may raise ConfigError)."""
    v = _state()
    # Every view field that is a config field, so a new config option cannot be left out.
    fields = {f.name for f in dataclasses.fields(cfg.CompressionConfig)} & set(v)
    settings = {name: v[name] for name in fields}
    settings["prune_rate"] = v["prune_rate"] / 100  # the view keeps percent
    return cfg.CompressionConfig(**settings)


def dataset_loaded(name: str) -> None:
    st.session_state.view_good_dataset = name


def dataset_missing(message: str, widget_key: str) -> None:
    """Go back to the last data set that loaded (or the default), saying why; reruns."""
    previous = st.session_state.get("view_good_dataset") or DEFAULTS["dataset"]
    if previous == get("dataset"):
        previous = DEFAULTS["dataset"]
    showing = catalog.text(get("lang"), "view.showing", data=previous)
    st.session_state.setdefault("view_problems", []).append(f"{message} {showing}")
    put("dataset", previous)
    st.session_state.pop(widget_key, None)
    st.rerun()


def show_problems() -> None:
    """The view's messages (bad link values, a missing data set), once, as plain text."""
    for text in st.session_state.pop("view_problems", []):
        st.warning(plain(text), icon="⚠️")
    st.session_state.view_problems = []
