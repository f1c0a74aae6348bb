"""Every result kept: a SQLite file in the user's data folder, safe for many writers.

One row per computed result, keyed by what makes it unique (the base weights'
hash, the config, the evaluation subset and the fine-tune settings), so storing
the same computation twice keeps one row. The whole ``Result`` is kept as JSON
beside indexed columns for filtering. Compressed artifacts are kept too (each
up to ``max_artifact_bytes``; the oldest are dropped past ``max_total_bytes``),
so they can be downloaded again after a restart.

Writes are single transactions in WAL mode with a busy timeout: a crash
mid-write leaves the last committed state, and two processes or threads that
write at once both land. A damaged Slimscope database is moved aside (never
deleted) with a warning, and a fresh one is started. Anything that is not ours
is left untouched and refused: a file that is not SQLite, another application's
database, a ``results`` table of another shape, a device. A store we may not
write (a read-only file system) is opened read-only: rows are shown, none kept.

Example:
    >>> store = Store()  # $SLIMSCOPE_DATA_HOME or ~/.local/share/slimscope/results.sqlite
    >>> store.save(result, subset=None, identity={"source": "cli"})
    >>> store.rows(model="lenet5")[0]["accuracy"]
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import sqlite3
import stat
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..core.config import CompressionConfig
from ..core.pipeline import Result

FILE_NAME = "results.sqlite"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0  # a writer waits this long for another one to finish
MAX_ARTIFACT_BYTES = 16 << 20  # an artifact above this is not kept (re-create it instead)
MAX_TOTAL_ARTIFACT_BYTES = 512 << 20  # past this the oldest artifacts are dropped
MAX_ROWS = 20_000  # rows returned to a page at most, newest first
SQLITE_MAGIC = b"SQLite format 3\x00"
OURS = ("results", "artifacts")  # the tables a Slimscope store holds

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    run_key TEXT NOT NULL UNIQUE,
    artifact_key TEXT NOT NULL,
    created REAL NOT NULL,
    model TEXT NOT NULL,
    dataset TEXT NOT NULL,
    base_hash TEXT NOT NULL,
    config_key TEXT NOT NULL,
    label TEXT NOT NULL,
    subset INTEGER,
    finetuned INTEGER NOT NULL,
    finite INTEGER NOT NULL,
    accuracy REAL,
    baseline_accuracy REAL,
    artifact_bytes INTEGER,
    nonzero_params INTEGER,
    source TEXT NOT NULL,
    identity TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_model ON results (model, dataset);
CREATE INDEX IF NOT EXISTS results_base ON results (base_hash);
CREATE INDEX IF NOT EXISTS results_created ON results (created);
CREATE TABLE IF NOT EXISTS artifacts (
    artifact_key TEXT PRIMARY KEY,
    created REAL NOT NULL,
    sha256 TEXT NOT NULL,
    blob BLOB NOT NULL
);
"""


class StoreError(RuntimeError):
    """The result store cannot be opened or written; the message says where and why."""


def default_path() -> Path:
    """``$SLIMSCOPE_DATA_HOME/results.sqlite``, else ``$XDG_DATA_HOME/slimscope/...``,
    else ``~/.local/share/slimscope/results.sqlite``."""
    home = os.environ.get("SLIMSCOPE_DATA_HOME")
    if home:
        return Path(home).expanduser() / FILE_NAME
    xdg = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(xdg).expanduser() / "slimscope" / FILE_NAME


def run_key(base_hash: str, config_key: str, subset: int | None, finetune: dict) -> str:
    """What makes a result unique: its base weights, config, test subset and fine-tuning."""
    text = json.dumps([base_hash, config_key, subset, finetune], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def artifact_key(base_hash: str, config_key: str, finetune: dict) -> str:
    """The compressed model's identity; the evaluation subset does not change it."""
    text = json.dumps([base_hash, config_key, finetune], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Store:
    """The result history in one SQLite file. Safe to share across threads and processes.

    Each call opens its own connection, so any thread may use the same Store.
    """

    _checked: set[Path] = set()  # files found healthy in this process
    _lock = threading.Lock()

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        max_artifact_bytes: int = MAX_ARTIFACT_BYTES,
        max_total_bytes: int = MAX_TOTAL_ARTIFACT_BYTES,
    ):
        self.path = Path(path).expanduser() if path else default_path()
        self.max_artifact_bytes = max_artifact_bytes
        self.max_total_bytes = max_total_bytes
        self.warnings: list[str] = []  # e.g. "the old file was corrupt and moved to ..."
        self.read_only = False
        self._open()

    # --- writing ---------------------------------------------------------------------------

    def save(
        self,
        result: Result,
        subset: int | None = None,
        identity: dict[str, Any] | None = None,
        artifact: bytes | None = None,
    ) -> str:
        """Keep ``result`` (once per run key) and optionally its artifact; returns the run key.

        ``identity`` says where the base model came from, e.g. ``{"source": "dashboard",
        "epochs": None, "seed": 0}`` or an upload's file name and hash.
        """
        identity = dict(identity or {})
        config_key = CompressionConfig.from_dict(result.config).key()
        key = run_key(result.base_hash, config_key, subset, result.finetune)
        akey = artifact_key(result.base_hash, config_key, result.finetune)
        row = (
            key,
            akey,
            result.created,
            result.model,
            result.dataset,
            result.base_hash,
            config_key,
            result.label,
            subset,
            int(bool(result.finetune)),
            int(bool(result.finite)),
            _real(result.accuracy),
            _real(result.baseline_accuracy),
            result.artifact_bytes,
            result.nonzero_params,
            str(identity.get("source", "python")),
            json.dumps(identity, sort_keys=True, default=str),
            json.dumps(result.to_dict(), default=str),
        )
        with self._write() as con:
            con.execute(
                "INSERT INTO results (run_key, artifact_key, created, model, dataset, base_hash, "
                "config_key, label, subset, finetuned, finite, accuracy, baseline_accuracy, "
                "artifact_bytes, nonzero_params, source, identity, result) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (run_key) DO NOTHING",
                row,
            )
            if artifact is not None:
                self._put_artifact(con, akey, artifact)
        return key

    def save_artifact(self, base_hash: str, config_key: str, finetune: dict, blob: bytes) -> bool:
        """Keep a compressed artifact; False when it is over the size limit (not kept)."""
        with self._write() as con:
            return self._put_artifact(con, artifact_key(base_hash, config_key, finetune), blob)

    def _put_artifact(self, con: sqlite3.Connection, key: str, blob: bytes) -> bool:
        if len(blob) > self.max_artifact_bytes:
            return False
        con.execute(
            "INSERT INTO artifacts (artifact_key, created, sha256, blob) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (artifact_key) DO NOTHING",
            (key, time.time(), hashlib.sha256(blob).hexdigest(), sqlite3.Binary(blob)),
        )
        total = con.execute("SELECT COALESCE(SUM(LENGTH(blob)), 0) FROM artifacts").fetchone()[0]
        while total > self.max_total_bytes:
            oldest = con.execute(
                "SELECT artifact_key, LENGTH(blob) FROM artifacts ORDER BY created LIMIT 1"
            ).fetchone()
            con.execute("DELETE FROM artifacts WHERE artifact_key = ?", (oldest[0],))
            total -= oldest[1]
        return True

    # --- reading ---------------------------------------------------------------------------

    def rows(
        self, model: str | None = None, dataset: str | None = None, limit: int = MAX_ROWS
    ) -> list[dict[str, Any]]:
        """Stored results, newest first, as flat dicts: ``Result.to_row()`` plus the run's
        ``id``, ``created``, ``base_hash``, ``subset``, ``source``, ``identity`` and
        ``has_artifact``."""
        where, args = [], []
        for column, value in (("model", model), ("dataset", dataset)):
            if value is not None:
                where.append(f"r.{column} = ?")
                args.append(value)
        sql = (
            "SELECT r.id, r.created, r.base_hash, r.subset, r.source, r.identity, r.result, "
            "a.artifact_key IS NOT NULL FROM results r "
            "LEFT JOIN artifacts a ON a.artifact_key = r.artifact_key"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY r.created DESC, r.id DESC LIMIT ?"
        )
        with self._read() as con:
            fetched = con.execute(sql, [*args, int(limit)]).fetchall()
        out, unreadable = [], 0
        for rid, created, base, subset, source, identity, text, has_artifact in fetched:
            try:
                row = _result(text).to_row()
            except (ValueError, TypeError, KeyError):  # written by another version: skip it
                unreadable += 1
                continue
            row.update(
                id=rid,
                created=created,
                base_hash=base,
                subset=subset,
                source=source,
                identity=identity,
                has_artifact=bool(has_artifact),
            )
            out.append(row)
        if unreadable:
            self.warnings.append(
                f"{unreadable} stored result(s) could not be read and are left out"
            )
        return out

    def result(self, run_id: int) -> Result:
        """The full stored Result of run ``run_id`` (a KeyError when there is none)."""
        with self._read() as con:
            found = con.execute("SELECT result FROM results WHERE id = ?", (run_id,)).fetchone()
        if found is None:
            raise KeyError(f"no stored run {run_id}")
        return _result(found[0])

    def artifact(self, run_id: int) -> bytes | None:
        """The stored artifact of run ``run_id``, checked against its hash; None if not kept."""
        with self._read() as con:
            found = con.execute(
                "SELECT a.blob, a.sha256 FROM results r JOIN artifacts a "
                "ON a.artifact_key = r.artifact_key WHERE r.id = ?",
                (run_id,),
            ).fetchone()
        if found is None:
            return None
        blob = bytes(found[0])
        if hashlib.sha256(blob).hexdigest() != found[1]:
            raise StoreError(f"the stored artifact of run {run_id} is damaged (hash mismatch)")
        return blob

    def count(self) -> int:
        with self._read() as con:
            return con.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    # --- the file ----------------------------------------------------------------------------

    def _open(self) -> None:
        """Create or check the database once per process; move a corrupt file aside."""
        with Store._lock:
            if self.path in Store._checked:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create {self.path.parent}: {e.strerror or e}") from None
            self._refuse_if_not_ours()
            if self.path.exists() and not _writable(self.path):
                self.read_only = True
                self.warnings.append(
                    f"the result store {self.path} is read-only: stored results are shown, "
                    "new ones are not kept"
                )
                return
            try:
                self._init()
            except sqlite3.DatabaseError as e:
                if not self.path.exists() or _is_locked(e):
                    raise StoreError(f"cannot open {self.path}: {e}") from None
                moved = self._move_aside()
                self.warnings.append(
                    f"the result store {self.path} was damaged ({e}); it was moved to {moved} "
                    "(nothing deleted) and a new, empty store was started"
                )
                warnings.warn(self.warnings[-1], stacklevel=3)
                self._init()
            Store._checked.add(self.path)

    def _refuse_if_not_ours(self) -> None:
        """StoreError for a path that is not a Slimscope store: it is never modified."""
        if not self.path.exists():
            return
        if not stat.S_ISREG(self.path.stat().st_mode):
            raise StoreError(f"{self.path} is not a regular file: give the path of a file")
        with open(self.path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
        if head and head != SQLITE_MAGIC[: len(head)]:
            raise StoreError(
                f"{self.path} is not a SQLite database; it was left as it is. "
                "Give another file for the result store (--store, or SLIMSCOPE_DATA_HOME)."
            )
        try:
            mode = "mode=ro" if _writable(self.path) else "immutable=1"  # no -shm on a ro mount
            con = sqlite3.connect(f"{self.path.resolve().as_uri()}?{mode}", uri=True)
            try:
                rows = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                tables = {name for (name,) in rows}
                columns = [c[1] for c in con.execute("PRAGMA table_info(results)")]
            finally:
                con.close()
        except sqlite3.DatabaseError:
            return  # a damaged database: _init says so and moves it aside
        ours = [c[1] for c in _schema_columns()]
        if tables and "results" not in tables:
            what = "another application's database (it has no results table)"
        elif columns and columns != ours:
            what = "a database whose results table is not Slimscope's"
        else:
            return
        raise StoreError(
            f"{self.path} is {what}; it was left as it is. Give another file for the "
            "result store (--store, or SLIMSCOPE_DATA_HOME)."
        )

    def _init(self) -> None:
        con = self._connect()
        try:
            check = con.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check: {check}")
            con.execute("PRAGMA journal_mode=WAL")
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer Slimscope (schema {version}); "
                    "upgrade, or set SLIMSCOPE_DATA_HOME to another folder"
                )
            con.executescript(
                f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            )
        finally:
            con.close()

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        try:
            os.replace(self.path, target)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    os.replace(side, target.with_name(target.name + suffix))
        except OSError as e:
            raise StoreError(f"{self.path} is damaged and cannot be moved aside: {e}") from None
        return target

    def _connect(self) -> sqlite3.Connection:
        target, uri = self.path, False
        if self.read_only:  # nothing may change on a read-only mount: not even a -shm file
            target, uri = f"{self.path.resolve().as_uri()}?immutable=1", True
        try:
            con = sqlite3.connect(target, timeout=BUSY_TIMEOUT_S, isolation_level=None, uri=uri)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open {self.path}: {e}") from None
        con.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        con.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints, never corrupt
        return con

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction: all of it lands, or none of it (rolled back on any error)."""
        if self.read_only:
            raise StoreError(f"{self.path} is read-only: the result was not kept")
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlocks
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        except sqlite3.Error as e:
            self._forget_if_damaged(e)
            raise StoreError(f"could not write to {self.path}: {e}") from None
        finally:
            con.close()

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        con = self._connect()
        try:
            yield con
        except sqlite3.Error as e:
            self._forget_if_damaged(e)
            raise StoreError(f"could not read {self.path}: {e}") from None
        finally:
            con.close()

    def _forget_if_damaged(self, e: sqlite3.Error) -> None:
        """After a damaged-file error, the next Store() on this path checks it again."""
        if isinstance(e, sqlite3.DatabaseError) and not _is_locked(e):
            with Store._lock:
                Store._checked.discard(self.path)


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


@functools.cache
def _schema_columns() -> list[tuple]:
    """``PRAGMA table_info(results)`` of the table this version creates."""
    con = sqlite3.connect(":memory:")
    try:
        con.executescript(_SCHEMA)
        return con.execute("PRAGMA table_info(results)").fetchall()
    finally:
        con.close()


def _real(x: float) -> float | None:
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def _is_locked(e: sqlite3.Error) -> bool:
    return "locked" in str(e) or "busy" in str(e)


def _result(text: str) -> Result:
    d = json.loads(text)
    known = set(Result.__dataclass_fields__)
    return Result(**{k: v for k, v in d.items() if k in known})
