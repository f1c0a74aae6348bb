"""The server process itself: what a slider move costs beyond the page.

Streamlit collects garbage after every run (``runner.postScriptGC``), including a fragment's
rerun. A full collection walks every object the process holds, and most of those are the
~300,000 objects of torch, pandas, plotly and Streamlit that live as long as the process:
on the project's 2-core machine that was ~0.2 s of CPU per slider move, more than the page.
``freeze_once`` moves what exists after the first complete run into the permanent
generation (``gc.freeze``), so later collections only walk what runs create. Objects frozen
are still freed by reference counting when unused; only reference cycles among them stay.
"""

from __future__ import annotations

import gc
import threading

_FROZEN = threading.Event()


def freeze_once() -> None:
    """Collect, then freeze every object left (once per process; later calls do nothing)."""
    if _FROZEN.is_set():
        return
    _FROZEN.set()
    gc.collect()
    gc.freeze()
