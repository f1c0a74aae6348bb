"""Small helpers several test files share (pytest puts ``tests/`` on the path)."""

from __future__ import annotations

import contextlib
import io
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


@contextlib.contextmanager
def streamlit_server(log_path: Path, app: str = "app.py"):
    """`streamlit run app` on a free port of 127.0.0.1, as a user starts it; yields its URL.

    Its output goes to ``log_path``: a pipe nobody reads would fill and stall it.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    flags = {"port": port, "address": "127.0.0.1", "headless": "true"}
    args = [x for k, v in flags.items() for x in (f"--server.{k}", str(v))]
    root = Path(__file__).resolve().parent.parent
    with open(log_path, "wb") as log:
        command = [sys.executable, "-m", "streamlit", "run", app, *args]
        proc = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)
