"""Many users at once: eight browser tabs against one running server, on one cached model.

The Streamlit server runs in this process (on a thread), so after the tabs are done
the test can look inside its cache: the shared base model must be the same object
with bit-identical weights. Eight Chromium pages each open a link with their own
settings and then move the pruning slider; every tab must end up showing exactly
the numbers a single session computes for its settings.

(AppTest instances in threads are not used: AppTest itself is not thread-safe; it
swaps a global mock Runtime on every run and gives all instances one session id,
and under load a session receives widget values it never set.)
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlencode

import pytest
import torch
from helpers import wait_healthy

from compress_core import CompressionConfig, run_on
from compress_core.io.store import Store
from ui import cache, view
from ui.format import human_bytes

os.environ.setdefault("SLIMSCOPE_DATA_HOME", tempfile.mkdtemp(prefix="slimscope-test-data-"))
APP = str(Path(__file__).resolve().parent.parent / "app.py")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TIMEOUT_MS = 240_000
# Each tab: (rate %, bits) from its link, then ArrowRight presses on the pruning slider
# (5 % each). Tabs open in pairs on the same settings, so each config is computed by two
# sessions at the same moment; then one tab of each pair moves to a new setting.
TABS = [
    ((20, 4), 0),
    ((20, 4), 2),
    ((40, 2), 0),
    ((40, 2), 2),
    ((60, 8), 0),
    ((60, 8), 2),
    ((80, 3), 0),
    ((80, 3), 2),
]
SHOWN = ("Test accuracy", "Compressed size", "Non-zero parameters")


class Peak:
    """Counts how many heavy jobs run at once."""

    def __init__(self):
        self.now = self.peak = 0
        self.lock = threading.Lock()

    def wrap(self, fn):
        def counted(*args, **kwargs):
            with self.lock:
                self.now += 1
                self.peak = max(self.peak, self.now)
            try:
                return fn(*args, **kwargs)
            finally:
                with self.lock:
                    self.now -= 1

        return counted


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server():
    """`streamlit run app.py` on a thread of this process; yields its URL."""
    from streamlit import config
    from streamlit.runtime import Runtime
    from streamlit.web.server import Server

    port = _free_port()
    options = {
        "server.port": port,
        "server.address": "127.0.0.1",
        "server.headless": True,
        "server.fileWatcherType": "none",
        "global.developmentMode": False,
        "browser.gatherUsageStats": False,
    }
    saved = {k: config.get_option(k) for k in options}
    for k, v in options.items():
        config.set_option(k, v)
    srv = Server(APP, False)
    loop = asyncio.new_event_loop()

    async def serve():
        await srv.start()
        await srv.stopped

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        yield url
    finally:
        loop.call_soon_threadsafe(srv.stop)
        thread.join(timeout=30)
        Runtime._instance = None  # later tests run Streamlit in bare mode or AppTest
        for k, v in saved.items():
            config.set_option(k, v)


def _metric(page, label: str):
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")


def _expected(base, data, rate: int, bits: int) -> tuple[str, str, str]:
    r = run_on(base, data, CompressionConfig(prune_rate=rate / 100, bits=bits))
    return (f"{r.accuracy:.2%}", human_bytes(r.artifact_bytes), f"{r.nonzero_params:,}")


def test_eight_tabs_at_once_each_show_single_session_numbers(digits_lenet, server, monkeypatch):
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium not found: apt-get install -y chromium (CI installs it)")
    from playwright.sync_api import expect, sync_playwright

    base, data = digits_lenet
    cached_base, _ = cache.baseline("lenet5", "digits", None, 0)  # what the server will share
    before = {k: v.clone() for k, v in cached_base.state_dict().items()}
    peak = Peak()
    monkeypatch.setattr(cache, "compress", peak.wrap(cache.compress))
    monkeypatch.setattr(cache, "evaluate_compressed", peak.wrap(cache.evaluate_compressed))
    finals = [(rate + 5 * presses, bits) for (rate, bits), presses in TABS]
    expected = {cfg: _expected(base, data, *cfg) for cfg in {c for c, _ in TABS} | set(finals)}

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        try:
            pages = []
            for (rate, bits), _ in TABS:  # all tabs open before any is checked
                page = browser.new_page(viewport={"width": 1300, "height": 900})
                page.goto(f"{server}/?prune_rate={rate / 100}&bits={bits}")
                pages.append(page)
            for page, ((rate, bits), _) in zip(pages, TABS, strict=True):
                for label, value in zip(SHOWN, expected[rate, bits], strict=True):
                    expect(_metric(page, label)).to_have_text(value, timeout=TIMEOUT_MS)
            for page, (_, presses) in zip(pages, TABS, strict=True):  # now move sliders at once
                if presses:
                    page.get_by_role("slider").first.focus()
                    for _ in range(presses):
                        page.keyboard.press("ArrowRight")
            for page, (rate, bits) in zip(pages, finals, strict=True):
                query = urlencode(
                    view.to_query({**view.DEFAULTS, "prune_rate": rate, "bits": bits})
                )
                expect(page).to_have_url(re.compile(re.escape(query) + "$"))
                for label, value in zip(SHOWN, expected[rate, bits], strict=True):
                    expect(_metric(page, label)).to_have_text(value, timeout=TIMEOUT_MS)
                assert not page.get_by_test_id("stException").count()
        finally:
            browser.close()

    assert 1 <= peak.peak <= 2  # HEAVY_JOBS: however many tabs, at most 2 heavy jobs run
    again, _ = cache.baseline("lenet5", "digits", None, 0)
    assert again is cached_base  # one shared model, never rebuilt
    for k, v in again.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} of the shared base model changed"
    stored = {row["key"] for row in Store().rows(model="lenet5", dataset="digits")}
    for rate, bits in expected:
        assert CompressionConfig(prune_rate=rate / 100, bits=bits).key() in stored


def test_the_server_caps_glibcs_malloc_arenas_unless_the_operator_did(monkeypatch):
    """Reruns run in new threads, and glibc's per-thread arenas are part of the server's
    growth under 8 sessions (bench_class --minutes). The cap is applied where the C library
    is glibc and left to the operator where MALLOC_ARENA_MAX is set."""
    import platform

    from ui import runtime

    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert runtime.limit_malloc_arenas() is glibc
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert runtime.limit_malloc_arenas() is False
