"""Real-browser checks of issue 13: the HTML report offline, and the Learn page in Chinese.

Chromium (Debian's) driven by Playwright. The report is opened from a file with every
non-file request refused; the Learn page from ``streamlit run app.py`` (the ``server`` fixture
of test_browser.py). Chinese glyphs are checked by drawing two different characters in the
font plotly uses: missing glyphs would both be the same empty box.
"""

import json
import re

import pytest
from helpers import CHROMIUM, launch_chromium
from helpers import require_browser as _require_browser
from test_browser import ARTIFACTS, server  # noqa: F401

from compress_core.__main__ import main
from compress_core.catalog import text

# Draws a character in a font family on a canvas and returns the pixels, so two characters can
# be compared: a font without CJK glyphs draws them all as the same .notdef box.
DRAW = """([family, chars]) => chars.map(ch => {
  const c = document.createElement('canvas'); c.width = 48; c.height = 48;
  const g = c.getContext('2d'); g.font = `36px ${family}`; g.fillText(ch, 4, 38);
  return Array.from(g.getImageData(0, 0, 48, 48).data).join(',');
})"""


def _glyphs_render(page, selector: str) -> bool:
    family = page.eval_on_selector(selector, "el => getComputedStyle(el).fontFamily")
    cut, measure, private = page.evaluate(DRAW, [family, ["剪", "量", "\ue000"]])
    blank = page.evaluate(DRAW, [family, [" "]])[0]
    return cut != measure and cut != private and cut != blank


@pytest.fixture(scope="module")
def run_report(tmp_path_factory, digits_lenet, cache_dir):
    path = tmp_path_factory.mktemp("report") / "run-zh.html"
    argv = ["run", "--model", "lenet5", "--data", "digits", "--prune", "0.5", "--bits", "4"]
    code = main(
        argv + ["--no-store", "--cache-dir", cache_dir, "--report", str(path)] + ["--lang", "zh"]
    )
    assert code == 0
    return path


def test_report_is_one_file_with_plotly_embedded_once_and_escaped_text(run_report):
    html = run_report.read_text(encoding="utf-8")
    assert html.count("plotly.js v") == 1  # the library, embedded once
    assert "<script src=" not in html  # nothing fetched from a CDN
    assert html.count('class="plotly-graph-div"') == 1  # the error figure
    assert text("zh", "report.title_run") in html and text("zh", "errors.title") in html
    for part in ("torch", "platform", "lenet5", "digits", "prune_rate"):
        assert part in html


@pytest.mark.parametrize(
    "command",
    [
        ["sweep", "--rates", "0,0.5", "--bits", "4,32"],
        ["budget", "--max-drop", "2", "--rates", "0,0.5", "--bits", "4,32", "--max-evals", "4"],
    ],
    ids=["sweep", "budget"],
)
def test_sweep_and_budget_write_reports_with_their_figure(
    tmp_path, digits_lenet, cache_dir, command
):
    path = tmp_path / "report.html"
    argv = command + [
        "--model",
        "lenet5",
        "--data",
        "digits",
        "--no-store",
        "--cache-dir",
        cache_dir,
    ]
    assert main(argv + ["--report", str(path)]) in (0, 1)  # budget: 1 = delta not met
    html = path.read_text(encoding="utf-8")
    assert html.count('class="plotly-graph-div"') == 1 and html.count("plotly.js v") == 1
    assert text("en", "chart.front") in html


def test_report_opens_offline_in_chromium_with_its_figures_drawn_in_chinese(run_report):
    _require_browser()
    from playwright.sync_api import sync_playwright

    refused = []
    with sync_playwright() as pw:
        browser = launch_chromium(pw, CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})

            def only_files(route):
                if route.request.url.startswith("file:"):
                    return route.continue_()
                refused.append(route.request.url)
                return route.abort()

            page.route("**/*", only_files)
            page.goto(run_report.as_uri())
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
            drawn = page.locator(".js-plotly-plot").count()
            title = page.locator(".js-plotly-plot .gtitle").first.text_content()
            glyphs = _glyphs_render(page, ".js-plotly-plot .gtitle")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report-zh.png"), full_page=True)
        finally:
            browser.close()
    assert drawn == 1 and title == text("zh", "errors.title")
    assert refused == []
    assert glyphs, "Chinese glyphs draw as empty boxes: install a CJK font (fonts-wqy-microhei)"


def test_learn_page_in_chinese_from_the_link_the_picker_and_the_browser_locale(server):  # noqa: F811
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw, CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{server}/Learn?lang=zh")
            expect(page.get_by_role("heading", name=text("zh", "learn.title"))).to_be_visible(
                timeout=240_000
            )
            tab = page.get_by_role("tab", name=text("zh", "lesson1.tab"))
            expect(tab).to_be_visible(timeout=240_000)
            plot_title = page.locator(".js-plotly-plot .gtitle").first
            expect(plot_title).to_be_visible(timeout=120_000)
            chinese_title = plot_title.text_content()
            glyphs = _glyphs_render(page, ".js-plotly-plot .gtitle")
            page.wait_for_timeout(500)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "learn-zh.png"), full_page=True)

            page.goto(f"{server}/Learn")  # a fresh session in English, then the picker
            english = page.get_by_role("heading", name=text("en", "learn.title"))
            expect(english).to_be_visible(timeout=240_000)
            page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").first.click()
            page.get_by_role("option", name="简体中文").click()
            expect(page.get_by_role("heading", name=text("zh", "learn.title"))).to_be_visible(
                timeout=60_000
            )
            url = page.url

            # no lang in the link: the browser's locale (st.context.locale) decides
            chinese_browser = browser.new_context(locale="zh-CN").new_page()
            chinese_browser.goto(f"{server}/Learn")
            expect(
                chinese_browser.get_by_role("heading", name=text("zh", "learn.title"))
            ).to_be_visible(timeout=240_000)
        finally:
            browser.close()
    assert re.search("[\u4e00-\u9fff]", chinese_title)
    assert chinese_title == json.loads(json.dumps(chinese_title))  # plain text, not markup
    assert glyphs, "Chinese glyphs draw as empty boxes: install a CJK font (fonts-wqy-microhei)"
    assert "lang=zh" in url


def test_explore_switches_to_chinese_and_stays_chinese_across_pages(server):  # noqa: F811
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    zh = lambda key: text("zh", key)  # noqa: E731
    with sync_playwright() as pw:
        browser = launch_chromium(pw, CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server)  # a fresh session in English
            metric = page.get_by_test_id("stMetricLabel")
            expect(metric.filter(has_text=text("en", "metric.size"))).to_be_visible(timeout=240_000)
            page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").first.click()
            page.get_by_role("option", name="简体中文").click()
            expect(metric.filter(has_text=zh("metric.size"))).to_be_visible(timeout=120_000)
            expect(page.get_by_text(zh("ctl.rate"))).to_be_visible(timeout=60_000)
            expect(page.get_by_role("tab", name=zh("explore.tab_layers"))).to_be_visible()
            page.wait_for_timeout(500)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "explore-zh.png"), full_page=True)
            switched_url = page.url

            nav = page.get_by_test_id("stSidebarNav")
            nav.get_by_role("link", name=zh("nav.Sweep")).click()
            heading = page.get_by_role("heading", name=zh("nav.Sweep"))
            expect(heading).to_be_visible(timeout=120_000)
            expect(page.get_by_role("button", name=zh("sweep.run"))).to_be_visible(timeout=60_000)
            sweep_url = page.url
            nav.get_by_role("link", name=zh("nav.Explore")).click()
            expect(metric.filter(has_text=zh("metric.accuracy"))).to_be_visible(timeout=120_000)
            back_url = page.url

            fresh = browser.new_context(locale="en-US").new_page()  # an English browser
            fresh.goto(f"{server}/?lang=zh")  # a shared link with lang=zh
            fresh_metric = fresh.get_by_test_id("stMetricLabel")
            expect(fresh_metric.filter(has_text=zh("metric.size"))).to_be_visible(timeout=240_000)
            expect(fresh.get_by_text(zh("explore.tagline"))).to_be_visible()
        finally:
            browser.close()
    assert "model=mlp" not in back_url  # the sidebar kept the model too (not its first option)
    assert all("lang=zh" in u for u in (switched_url, sweep_url, back_url)), (
        switched_url,
        sweep_url,
        back_url,
    )
