"""Small helpers several test files share (pytest puts ``tests/`` on the path)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import torch

from compress_core.io.data import DATASETS
from compress_core.io.models import MODELS


def torch_bytes(obj, **kw) -> bytes:
    """What ``torch.save(obj)`` writes, as an upload would carry it."""
    buf = io.BytesIO()
    torch.save(obj, buf, **kw)
    return buf.getvalue()


@contextlib.contextmanager
def restored_registries():
    """Models and data sets registered inside the block are forgotten after it."""
    models, datasets = dict(MODELS._items), dict(DATASETS._items)
    try:
        yield
    finally:
        MODELS._items.clear()
        MODELS._items.update(models)
        DATASETS._items.clear()
        DATASETS._items.update(datasets)


def wait_healthy(url: str, seconds: float = 90) -> None:
    """Block until the Streamlit server at ``url`` answers its health check."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"streamlit at {url} did not start within {seconds:.0f} s")


ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Chromium with nothing that phones home: the browser tests must pass without a network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def launch_chromium(pw, executable: str = CHROMIUM):
    """Debian's Chromium through Playwright (never a downloaded browser)."""
    return pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


def require_browser() -> None:
    """Skip (or, with SLIMSCOPE_REQUIRE_BROWSER set, fail) when Chromium is missing."""
    import pytest

    if Path(CHROMIUM).exists():
        return
    message = "Chromium not found: apt-get install -y chromium (CI installs it)"
    if os.environ.get("SLIMSCOPE_REQUIRE_BROWSER"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(log_path: Path, env: dict | None = None):
    """A real ``streamlit run app.py`` on 127.0.0.1; yields (url, process)."""
    port = free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "wb")  # a pipe nobody reads would fill and stall it
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    command += ["--server.address", "127.0.0.1", "--server.headless", "true"]
    command += ["--browser.gatherUsageStats", "false"]
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
