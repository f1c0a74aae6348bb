"""The Learn page, run in-process with AppTest on the real engine (digits + LeNet-5)."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from compress_core import CompressionConfig, run_on
from compress_core.catalog import text

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "0_Learn.py")
TIMEOUT = 600  # the first run trains the baseline and fine-tunes one setting
# Each lesson's control, a new value for it, and the index of the figure it drives.
CONTROLS = [
    ("slider", "learn_prune_rate", 30, 0),
    ("select_slider", "learn_bits", 5, 1),
    ("slider", "learn_bytes_rate", 50, 2),
    ("select_slider", "learn_pareto_bits", 8, 3),
    ("slider", "learn_drop", 3.0, 4),
    ("select_slider", "learn_ft_rate", 70, 5),
]


def _figures(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


@pytest.fixture(scope="module")
def learn(digits_lenet):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    return at


def test_the_page_opens_with_six_lessons_each_with_a_figure_and_a_link(learn):
    assert [tab.label for tab in learn.tabs] == [text("en", f"lesson{i}.tab") for i in range(1, 7)]
    assert len(learn.get("plotly_chart")) == 6
    links = [b.proto.url for b in learn.get("link_button")]
    assert len(links) == 6 and all("dataset=digits" in u and "model=lenet5" in u for u in links)
    assert links[0].startswith("explore?") and "prune_rate=0.7" in links[0]
    assert learn.get("download_button")


def test_magnitude_beats_random_at_the_same_rate_and_the_numbers_are_the_engines(
    learn, digits_lenet
):
    shown = {m.label: m.value for m in learn.metric}
    base, data = digits_lenet
    for name, method in (("magnitude_layer", "magnitude"), ("random_layer", "random")):
        r = run_on(base, data, CompressionConfig(prune_rate=0.7, prune_method=method))
        assert shown[text("en", f"ranking.{name}")] == f"{100 * r.accuracy:.2f}%"
    magnitude = float(shown[text("en", "ranking.magnitude_layer")].rstrip("%"))
    assert magnitude > float(shown[text("en", "ranking.random_layer")].rstrip("%"))


@pytest.mark.parametrize("kind, key, value, figure", CONTROLS, ids=[c[1] for c in CONTROLS])
def test_every_lesson_control_changes_its_figure(learn, kind, key, value, figure):
    before = _figures(learn)
    getattr(learn, kind)(key=key).set_value(value).run()
    assert not learn.exception
    after = _figures(learn)
    assert after[figure] != before[figure]
    others = [i for i in range(6) if i != figure]
    assert [after[i] for i in others] == [before[i] for i in others]


def test_lang_zh_in_the_link_opens_the_page_in_chinese(digits_lenet):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.query_params["lang"] = "zh"
    at.run()
    assert not at.exception
    assert at.title[0].value == "学习：剪枝与量化"
    assert at.tabs[0].label == "1 · 剪枝"
    titles = [f["layout"]["title"]["text"] for f in _figures(at)]
    assert "帕累托" not in titles[0] and any("准确率" in t for t in titles)
    assert all("lang=zh" in b.proto.url for b in at.get("link_button"))


def test_the_sidebar_picker_switches_the_language(learn):
    learn.selectbox(key="lang_picker").set_value("zh").run()
    assert not learn.exception
    assert learn.title[0].value == text("zh", "learn.title")
    assert learn.query_params["lang"] == ["zh"] or learn.query_params["lang"] == "zh"
    learn.selectbox(key="lang_picker").set_value("en").run()
    assert learn.title[0].value == text("en", "learn.title")
