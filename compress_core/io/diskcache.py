"""The one disk cache: every file Slimscope keeps under its cache folder goes through here.

Trained baselines, fine-tuned models, Deep Compression and soft weight-sharing runs are
cached as files at ``root/kind/name`` (``root``: a ``cache_dir`` argument, else
``$SLIMSCOPE_CACHE``, else ``~/.cache/slimscope``). Three promises:

- **Atomic writes.** A file is written to a temp file in the same folder, fsynced and
  renamed over the final name, so a reader sees a whole file or none; a write that fails
  (read-only or full disk) warns and leaves nothing behind, and the caller keeps its value
  in memory.
- **Reads fall back to recomputing.** ``read`` returns None for a missing file, and for a
  file its reader rejects (truncated, garbage, another model's), with a warning: the
  caller recomputes and the next ``write`` replaces the bad file.
- **A size limit.** After each write the cache's files together are kept within
  ``$SLIMSCOPE_CACHE_MB`` MiB (default 4096; 0 turns the disk cache off) by deleting the
  least recently used. ``read`` marks a file used by setting its mtime (atime is not
  reliable: most mounts use ``relatime`` or ``noatime``), so no index file is needed.

Downloaded data sets (``root/data``) are not cache entries: never counted, never evicted.

Example:
    >>> path = entry("baselines", "mlp-digits-8px-seed0-e20-v1.pt")
    >>> blob = read(path, load_checkpoint, "baseline checkpoint", "retraining it")
    >>> if blob is None:
    ...     write(path, lambda f: torch.save(train(), f), "the baseline")
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO, TypeVar

from .data import cache_root
from .paths import _umask

KINDS = ("baselines", "finetuned", "deep-compression", "soft-sharing")  # eviction looks here
DEFAULT_LIMIT_MB = 4096
STALE_TEMP_SECONDS = 3600  # a temp file this old is a crashed write, not one in progress

T = TypeVar("T")


class Unusable(Exception):
    """A reader's verdict on a file it read but cannot serve; the message says why."""


def root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir`` when given, else ``$SLIMSCOPE_CACHE`` or the default."""
    return Path(cache_dir) if cache_dir else cache_root()


def entry(kind: str, name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The path of cache file ``name`` of ``kind`` (one of ``KINDS``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown cache kind {kind!r}; known: {', '.join(KINDS)}")
    return root(cache_dir) / kind / name


def limit_bytes() -> int:
    """The size limit from ``$SLIMSCOPE_CACHE_MB`` (MiB, default 4096), in bytes."""
    raw = os.environ.get("SLIMSCOPE_CACHE_MB", "").strip()
    if not raw:
        return DEFAULT_LIMIT_MB * 2**20
    try:
        mb = float(raw)
    except ValueError:
        mb = math.nan
    if not (math.isfinite(mb) and mb >= 0):
        warnings.warn(
            f"SLIMSCOPE_CACHE_MB={raw[:40]!r} is not a size in MiB (a number >= 0); "
            f"using {DEFAULT_LIMIT_MB}",
            stacklevel=2,
        )
        return DEFAULT_LIMIT_MB * 2**20
    return int(mb * 2**20)


def mark_used(path: Path) -> None:
    """Make ``path`` the most recently used file (for eviction)."""
    with contextlib.suppress(OSError):  # a read-only cache is still served
        os.utime(path)


def read(path: Path, reader: Callable[[Path], T], what: str, redo: str) -> T | None:
    """``reader(path)``, or None when the file is missing or its reader fails.

    A failure warns "{what} {path} is ... ; {redo}" and the caller recomputes: the
    reason is an ``Unusable`` reader's message, else "unreadable (the error)".
    """
    try:
        if not path.is_file():
            return None
        value = reader(path)
    except FileNotFoundError:  # evicted (or replaced) by another process since is_file()
        return None
    except Exception as e:  # truncated zip, garbage bytes, unpickling refused, I/O error
        first = (str(e).splitlines() or [""])[0][:300]  # torch's errors run to paragraphs
        why = first if isinstance(e, Unusable) else f"unreadable ({type(e).__name__}: {first})"
        warnings.warn(f"{what} {path} is {why}; {redo}", stacklevel=2)
        return None
    mark_used(path)
    return value


def write(path: Path, writer: Callable[[BinaryIO], object] | bytes, what: str) -> bool:
    """Write ``path`` atomically with ``writer(file)`` (or the given bytes); then evict.

    ``path`` must come from ``entry`` (its grandparent is the cache root). Returns
    whether the file is in the cache now; a failure warns "could not cache {what} ...".
    """
    limit = limit_bytes()
    if limit == 0:
        return False
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            if isinstance(writer, (bytes, bytearray, memoryview)):
                f.write(writer)
            else:
                writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        tmp = None
        size = path.stat().st_size
    except (OSError, RuntimeError) as e:  # read-only or full disk: keep the value in memory
        warnings.warn(
            f"could not cache {what} in {path.parent} ({e}); it is kept in memory only",
            stacklevel=2,
        )
        return False
    finally:
        if tmp is not None:  # never leave a half-written file behind, even on Ctrl-C
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    evict(path.parent.parent, limit, keep=[path])
    if not path.exists():
        warnings.warn(
            f"{what} ({size:,} bytes) is larger than the disk cache's limit "
            f"(SLIMSCOPE_CACHE_MB={limit / 2**20:g}); it is kept in memory only",
            stacklevel=2,
        )
        return False
    return True


def _files(cache: Path) -> Iterable[Path]:
    for kind in KINDS:
        folder = cache / kind
        if folder.is_dir():
            yield from (p for p in folder.iterdir() if p.is_file())


def evict(cache: Path, limit: int | None = None, keep: Iterable[Path] = ()) -> list[Path]:
    """Delete the least recently used files until those left take at most ``limit`` bytes.

    ``keep`` goes last (a file just written); temp files of writes in progress are
    neither counted nor touched, those of crashed writes are removed. Returns what went.
    """
    limit = limit_bytes() if limit is None else limit
    keep = {Path(p) for p in keep}
    now, entries = time.time(), []
    for p in _files(cache):
        try:
            st = p.stat()
        except OSError:
            continue
        if p.name.startswith("."):  # a temp file: ours in progress, or left by a crash
            if now - st.st_mtime > STALE_TEMP_SECONDS:
                with contextlib.suppress(OSError):
                    p.unlink()
            continue
        entries.append((p in keep, st.st_mtime_ns, p, st.st_size))
    total = sum(size for *_, size in entries)
    removed = []
    for _, _, p, size in sorted(entries):
        if total <= limit:
            break
        try:
            p.unlink()
            removed.append(p)
        except FileNotFoundError:  # another process evicted it first
            pass
        except OSError:  # a read-only cache: nothing to be done
            continue
        total -= size
    return removed


def usage(cache_dir: str | os.PathLike | None = None) -> int:
    """Bytes the cache's files take now (temp files left out)."""
    total = 0
    for p in _files(root(cache_dir)):
        if not p.name.startswith("."):
            with contextlib.suppress(OSError):
                total += p.stat().st_size
    return total
