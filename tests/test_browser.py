"""One real-browser test: Chromium driven by Playwright against `streamlit run app.py`."""

from pathlib import Path

import pytest
from helpers import CHROMIUM, launch_chromium, require_browser, streamlit_server

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server(digits_lenet):
    with streamlit_server(ARTIFACTS / "streamlit.log") as (url, _):
        yield url


def test_page_renders_slider_changes_metric_and_plot_is_present(server):
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = launch_chromium(pw, CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server)
            size = page.get_by_test_id("stMetric").filter(has_text="Compressed size")
            value = size.get_by_test_id("stMetricValue")
            expect(value).to_be_visible(timeout=180_000)
            expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=60_000)
            before = value.inner_text()
            thumb = page.get_by_role("slider").first  # the pruning-rate slider
            thumb.focus()
            for _ in range(8):  # 50 % -> 90 %, 5 % per key press
                page.keyboard.press("ArrowRight")
            expect(value).not_to_have_text(before, timeout=60_000)
            after = value.inner_text()
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "explore.png"), full_page=True)
        finally:
            browser.close()
    assert before != after
    assert (ARTIFACTS / "explore.png").stat().st_size > 10_000
