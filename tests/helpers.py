"""Small helpers several test files share (pytest puts ``tests/`` on the path)."""

from __future__ import annotations

import contextlib
import io
import time
import urllib.request

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


# Chromium with nothing that phones home: the browser tests must pass without a network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def launch_chromium(pw, executable: str = "/usr/bin/chromium"):
    """Debian's Chromium through Playwright (never a downloaded browser)."""
    return pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


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
