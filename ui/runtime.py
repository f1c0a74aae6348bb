"""The server process itself: what a slider move costs beyond the page.

Streamlit collects garbage after every run (``runner.postScriptGC``), including a fragment's
rerun. A full collection walks every object the process holds, and most of those are the
~300,000 objects of torch, pandas, plotly and Streamlit that live as long as the process:
on the project's 2-core machine that was ~0.2 s of CPU per slider move, more than the page.
``freeze_once`` moves what exists after the first complete run into the permanent
generation (``gc.freeze``), so later collections only walk what runs create. Objects frozen
are still freed by reference counting when unused; only reference cycles among them stay.

Every rerun runs in a new script thread, and glibc gives threads that contend for ``malloc``
arenas of their own (up to 8 per core), where freed memory is rarely given back. With 8
sessions moving sliders the server grew about 35 MiB a minute on Fashion-MNIST, with every
cache full; capping the arenas lowered the growth but did not stop it (README, "A class at
once": the rest is not explained yet). ``limit_malloc_arenas`` caps them at 2 when this module
is imported (unless the operator set ``MALLOC_ARENA_MAX``; nothing happens where the C
library is not glibc).
"""

from __future__ import annotations

import ctypes
import gc
import os
import threading

M_ARENA_MAX = -8  # glibc's mallopt parameter

_FROZEN = threading.Event()


def freeze_once() -> None:
    """Collect, then freeze every object left (once per process; later calls do nothing)."""
    if _FROZEN.is_set():
        return
    _FROZEN.set()
    gc.collect()
    gc.freeze()


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for the rest of the process; True where it was applied."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False  # the operator's choice; glibc read it at start
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False  # not glibc (macOS, Windows, musl): nothing to cap


limit_malloc_arenas()
