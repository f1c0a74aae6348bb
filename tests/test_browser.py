"""One real-browser test: Chromium driven by Playwright against `streamlit run app.py`."""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import launch_chromium, wait_healthy

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ROOT = Path(__file__).resolve().parent.parent


def _require_browser():
    if Path(CHROMIUM).exists():
        return
    message = "Chromium not found: apt-get install -y chromium (CI installs it)"
    if os.environ.get("SLIMSCOPE_REQUIRE_BROWSER"):
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(digits_lenet):
    port = _free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "streamlit.log", "wb")  # a pipe nobody reads would fill and stall it
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_page_renders_slider_changes_metric_and_plot_is_present(server):
    _require_browser()
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
