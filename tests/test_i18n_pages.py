"""Every page opened in Chinese (``?lang=zh``) with AppTest on the real engine: no exception,
the Chinese title, and no English catalog text left on screen."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from compress_core.catalog import catalog, text

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 600  # the first page may train the digits baseline
# (file, the catalog key of its title); app.py is Explore
PAGES = [
    ("app.py", "explore.title"),
    ("pages/0_Learn.py", "learn.title"),
    ("pages/1_Sweep.py", "nav.Sweep"),
    ("pages/2_Sensitivity.py", "sens.title"),
    ("pages/3_Budget.py", "budget.title"),
    ("pages/4_Recovery.py", "nav.Recovery"),
    ("pages/5_Compare.py", "nav.Compare"),
    ("pages/6_Your_model.py", "nav.Your_model"),
]
# English texts that would betray an unconverted label (those that differ in Chinese and are
# more than a word or unit, so a data value such as "float" cannot match by chance).
ENGLISH = {v for k, v in catalog("en").items() if v != catalog("zh")[k] and len(v) > 12}


def _shown(at) -> list[str]:
    """Headings, messages, widget labels and help texts the page drew."""
    out = []
    for kind in ("title", "header", "subheader", "caption", "markdown", "info", "warning"):
        out += [e.value for e in at.get(kind)]
    for kind in ("error", "success"):
        out += [e.value for e in at.get(kind)]
    for kind in ("button", "slider", "select_slider", "selectbox", "radio", "toggle"):
        out += [w.label for w in at.get(kind)] + [w.help or "" for w in at.get(kind)]
    out += [m.label for m in at.metric] + [t.label for t in at.tabs]
    out += [e.proto.label for e in at.get("expander")]
    return out


@pytest.mark.parametrize("page, title", PAGES, ids=[p for p, _ in PAGES])
def test_every_page_opens_in_chinese_without_english_left(digits_lenet, page, title):
    at = AppTest.from_file(str(ROOT / page), default_timeout=TIMEOUT)
    at.query_params["lang"] = "zh"
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == text("zh", title)
    shown = _shown(at)
    assert shown and not [s for s in shown if s in ENGLISH]
    assert at.selectbox(key="lang_picker").value == "zh"


def test_the_english_scan_would_see_an_english_label():
    assert text("en", "ctl.rate_help") in ENGLISH and text("zh", "ctl.rate_help") not in ENGLISH


def test_switching_the_language_keeps_explore_on_the_open_tab(digits_lenet):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["explore_tab"] = text("en", "explore.tab_layers")
    at.run()
    at.selectbox(key="lang_picker").set_value("zh").run()
    assert not at.exception
    assert [tab.label for tab in at.tabs][1] == text("zh", "explore.tab_layers")
    assert at.session_state["explore_tab"] == text("zh", "explore.tab_layers")
    assert len(at.get("plotly_chart")) == 1  # the Layers tab's chart, nothing else drawn


def test_the_budget_answer_reads_in_chinese_tables_included(digits_lenet):
    import json

    from compress_core import columns

    at = AppTest.from_file(str(ROOT / "pages/3_Budget.py"), default_timeout=TIMEOUT).run()
    at.multiselect(key="budget_rates").set_value([0, 50, 90])
    at.multiselect(key="budget_bits").set_value([4, 32])
    at.slider(key="budget_evals").set_value(5)
    at.button(key="budget_submit").click().run()
    # Then switch (AppTest formats options outside the run, in English, so search first).
    at.selectbox(key="lang_picker").set_value("zh").run()
    assert not at.exception and not at.error
    assert at.title[0].value == text("zh", "budget.title")
    shown = _shown(at) + [s.label for s in at.status]
    assert not [s for s in shown if s in ENGLISH]
    assert text("zh", "budget.delta") in [c.value for c in at.caption]
    plan, tried, sens = at.dataframe
    for frame, spec in ((plan, columns.PLAN), (tried, columns.TRIED), (sens, columns.SENSITIVITY)):
        labels = {v["label"] for v in json.loads(frame.proto.columns).values() if "label" in v}
        assert labels == {text("zh", key) for key, _ in spec.values()}
    assert set(tried.value["source"]) <= {
        text("zh", f"source.{s}") for s in ("uniform", "greedy", "refine")
    }
    assert set(sens.value["kind"]) == {
        text("zh", "sens.kind_prune"),
        text("zh", "sens.kind_quantize"),
    }
