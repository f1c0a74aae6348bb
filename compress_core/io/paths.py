"""Output files: checked before any work starts, written atomically, their mode kept.

The CLI writes only what is ours: a path that is a folder, a device or a FIFO, the same
file as an input or the result store, or a place we cannot write is refused up front
(not after a long search), and a replaced file keeps its permissions.

Example:
    >>> target = check_output("small.slim", "--export", inputs={"--model-file": "w.pt"})
    >>> write_atomic(target, blob)
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path


class OutputError(ValueError):
    """An output path that must not or cannot be written; the message says what to do."""


def check_output(path: str | os.PathLike, flag: str, inputs: Mapping[str, object] = {}) -> Path:
    """``path`` if ``flag`` may write it: a new or regular, writable file in an existing
    folder, not the same file as any of ``inputs`` (flag -> path, None skipped)."""
    target = Path(path)
    if target.exists():
        mode = target.stat().st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device or FIFO)"
            raise OutputError(f"{flag} {path} is {kind}: give the path of a file to write")
        for other_flag, other in inputs.items():
            if other is not None and same_file(target, other):
                raise OutputError(
                    f"{flag} {path} is the same file as {other_flag} {other}: writing it would "
                    "destroy that file. Pick another name."
                )
    folder = target.parent
    if not folder.is_dir():
        raise OutputError(f"{flag} {path}: the folder {folder} does not exist; create it first")
    try:  # the only honest writability test: write something there (read-only mounts, /proc)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{target.name}.", delete=True):
            pass
    except OSError as e:
        raise OutputError(f"{flag} {path}: cannot write in {folder} ({e.strerror or e})") from None
    if target.exists() and not os.access(target, os.W_OK):
        raise OutputError(f"{flag} {path} is read-only; pick another name or make it writable")
    return target


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when both paths exist and name the same file (links and ``..`` included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all, keeping an existing file's mode."""
    target = Path(path)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """This process's umask, read without changing it (os.umask would, for every thread)."""
    try:
        with open("/proc/self/status") as f:
            line = next(x for x in f if x.startswith("Umask:"))
        return int(line.split()[1], 8)
    except (OSError, StopIteration, ValueError):
        return 0o022
