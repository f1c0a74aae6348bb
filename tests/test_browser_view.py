"""The view in a real browser: page changes keep it, links reproduce it, bad links fall back,
and first-use training shows its progress. Chromium via Playwright against `streamlit run`."""

import re
import tempfile
from pathlib import Path

import pytest
from helpers import CHROMIUM, CHROMIUM_ARGS, require_browser, streamlit_server

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
WAIT = 180_000  # ms; a shared 2-core machine can be slow


@pytest.fixture(scope="module")
def server(digits_lenet, digits_mlp):
    with streamlit_server(ARTIFACTS / "streamlit-view.log") as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser():
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def metric(page, label: str):
    box = page.get_by_test_id("stMetric").filter(has_text=label)
    return box.get_by_test_id("stMetricValue")


def settled(page):
    """Wait until the page shows a result and is no longer running."""
    from playwright.sync_api import expect

    expect(metric(page, "Test accuracy")).to_be_visible(timeout=WAIT)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=WAIT)


def controls(page) -> dict:
    """What the page shows: every slider, select box, toggle and radio button."""
    return {
        "sliders": [s.get_attribute("aria-valuetext") for s in page.get_by_role("slider").all()],
        "selects": [s.input_value() for s in page.get_by_role("combobox").all()],
        "toggles": [t.is_checked() for t in page.get_by_role("switch").all()],
        "radios": [r.is_checked() for r in page.get_by_role("radio").all()],
    }


def change_settings(page):
    from playwright.sync_api import expect

    value = metric(page, "Non-zero parameters")
    before = value.inner_text()
    page.get_by_role("slider").first.focus()
    for _ in range(4):  # pruning 50 % -> 70 %
        page.keyboard.press("ArrowRight")
    expect(value).not_to_have_text(before, timeout=WAIT)
    settled(page)
    page.get_by_role("slider").nth(1).focus()
    page.keyboard.press("ArrowLeft")  # 4 -> 3 bits
    page.wait_for_url("**bits=3**", timeout=WAIT)
    settled(page)
    page.get_by_text("Methods").click()
    page.get_by_text("Keep small first/last layers intact").click()  # on -> off
    page.wait_for_url("**skip_first_last=false**", timeout=WAIT)
    settled(page)


def test_page_round_trip_keeps_every_control_and_the_model(server, browser):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server + "/?model=mlp")
    settled(page)
    change_settings(page)
    before, url = controls(page), page.url
    # the first select box is the language picker (English here)
    assert before["sliders"][:2] == ["70", "3"] and before["selects"][:2] == ["English", "digits"]
    assert before["selects"][2].startswith("mlp")
    assert before["toggles"][0] is False
    for name in ("Sweep", "Compare", "Budget"):
        page.get_by_test_id("stSidebarNav").get_by_text(name, exact=True).click()
        expect(page.get_by_test_id("stSidebarNav")).to_be_visible()
        page.wait_for_timeout(1500)
        assert "prune_rate=0.7" in page.url and "model=mlp" in page.url, page.url
    page.get_by_test_id("stSidebarNav").get_by_text("Explore", exact=True).click()
    settled(page)
    page.get_by_text("Methods").click()
    assert controls(page) == before
    assert page.url.split("?")[1] == url.split("?")[1]
    page.close()


def test_a_copied_link_in_a_new_browser_shows_the_same_controls_and_numbers(server, browser):
    first = browser.new_context().new_page()
    first.goto(server + "/?model=mlp&subset=500")
    settled(first)
    change_settings(first)
    link = first.url
    shown = controls(first), metric(first, "Test accuracy").inner_text()
    fresh = browser.new_context().new_page()  # no shared cookies or session
    fresh.goto(link)
    settled(fresh)
    fresh.get_by_text("Methods").click()
    assert (controls(fresh), metric(fresh, "Test accuracy").inner_text()) == shown
    first.context.close()
    fresh.context.close()


def test_a_bad_link_value_shows_a_message_and_that_key_falls_back(server, browser):
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(server + "/?bits=99&prune_rate=0.3")
    warning = page.get_by_test_id("stAlert").filter(has_text="bits=")
    expect(warning).to_contain_text("was not applied", timeout=WAIT)
    settled(page)
    sliders = page.get_by_role("slider")
    assert sliders.nth(0).get_attribute("aria-valuetext") == "30"  # the valid value is kept
    assert sliders.nth(1).get_attribute("aria-valuetext") == "4"  # the default bits
    page.close()


def test_first_use_training_shows_a_progress_bar_with_epoch_and_time_left(browser):
    from playwright.sync_api import expect

    with tempfile.TemporaryDirectory() as cache:
        env = {"SLIMSCOPE_CACHE": cache}
        with streamlit_server(ARTIFACTS / "streamlit-train.log", env) as (url, _):
            page = browser.new_page()
            page.goto(url + "/?epochs=12")  # a baseline nobody has trained in this cache
            expect(page.get_by_text("Training lenet5 on digits")).to_be_visible(timeout=WAIT)
            bar = page.get_by_test_id("stProgress")
            expect(bar).to_be_visible()
            expect(bar).to_contain_text("epoch", timeout=WAIT)
            expect(bar).to_contain_text("left")
            page.screenshot(path=str(ARTIFACTS / "training.png"))
            settled(page)
            expect(page.get_by_test_id("stProgress")).to_have_count(0)
            page.close()


def test_at_phone_width_every_tab_is_reachable_and_the_toolbar_covers_no_chart(server, browser):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(server)
    settled(page)
    for name in ("History & export", "What changed", "Weights", "Layers", "Trade-off"):
        tab = page.get_by_role("tab", name=name)
        for _ in range(3):  # a click that lands while the page reruns can be dropped: click again
            tab.scroll_into_view_if_needed()
            tab.click()
            try:
                expect(tab).to_have_attribute("aria-selected", "true", timeout=20_000)
                break
            except AssertionError:
                settled(page)
        expect(tab).to_have_attribute("aria-selected", "true", timeout=WAIT)
        settled(page)
    plot = page.locator(".js-plotly-plot").first
    expect(plot).to_be_visible(timeout=WAIT)
    plot.hover()
    bar, area = plot.locator(".modebar").bounding_box(), plot.locator(".nsewdrag").bounding_box()
    assert bar["y"] + bar["height"] <= area["y"] + 1  # the toolbar sits above the data
    page.screenshot(path=str(ARTIFACTS / "explore-390px.png"), full_page=True)
    page.close()


def test_soft_weight_sharing_trains_from_its_tab_and_shows_its_ratio(server, browser):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server + "/Recovery")
    settled(page)
    page.get_by_role("tab", name="Soft weight-sharing").click()
    epochs = page.get_by_test_id("stSlider").filter(has_text="Epochs under the prior")
    epochs.get_by_role("slider").focus()
    page.keyboard.press("Home")  # 1 epoch: not the default, so no other test meets this run
    expect(epochs.get_by_role("slider")).to_have_attribute("aria-valuetext", "1", timeout=WAIT)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=WAIT)  # rerun done
    page.get_by_role("button", name="Train with soft weight-sharing").click()
    expect(page.get_by_text("Soft weight-sharing of lenet5: done")).to_be_visible(timeout=WAIT)
    ratio = metric(page, "Ratio vs fp32")
    expect(ratio).to_have_text(re.compile(r"^\d+\.\d×$"), timeout=WAIT)
    assert float(ratio.inner_text().rstrip("×")) > 1
    page.screenshot(path=str(ARTIFACTS / "recovery-soft-sharing.png"), full_page=True)
    page.close()
