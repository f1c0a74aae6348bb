"""The result store: what goes in comes out, once; restarts, crashes and writers lose nothing."""

from __future__ import annotations

import dataclasses
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest

from compress_core import CompressionConfig, run_on
from compress_core.core.pipeline import compress
from compress_core.format.artifact import export, load_compressed
from compress_core.io.store import Store, StoreError, default_path

os.environ.setdefault("SLIMSCOPE_DATA_HOME", tempfile.mkdtemp(prefix="slimscope-test-data-"))
ROOT = Path(__file__).resolve().parent.parent


def fresh(path) -> Store:
    """A Store as a restarted process sees it: the file is checked again."""
    Store._checked.discard(Path(path))
    return Store(path)


@pytest.fixture(scope="module")
def results(digits_lenet):
    base, data = digits_lenet
    configs = [CompressionConfig(prune_rate=r, bits=b) for r, b in [(0.5, 4), (0.9, 2), (0, 32)]]
    return [run_on(base, data, c, subset=200) for c in configs]


def test_a_stored_result_reads_back_as_the_same_row_and_result(tmp_path, results):
    store = Store(tmp_path / "r.sqlite")
    for r in results:
        store.save(r, subset=200, identity={"source": "test", "epochs": None})
    rows = store.rows()
    assert len(rows) == 3
    by_label = {row["label"]: row for row in rows}
    for r in results:
        row = by_label[r.label]
        for key, value in r.to_row().items():
            assert row[key] == value, key
        assert row["base_hash"] == r.base_hash and row["subset"] == 200
        assert store.result(row["id"]) == r


def test_saving_the_same_computation_twice_keeps_one_row(tmp_path, results):
    store = Store(tmp_path / "r.sqlite")
    r = results[0]
    keys = {store.save(r, subset=200) for _ in range(3)}
    assert len(keys) == 1 and store.count() == 1
    store.save(r, subset=None)  # another evaluation subset: another result
    store.save(dataclasses.replace(r, finetune={"epochs": 1, "lr": 1e-4}), subset=200)
    assert store.count() == 3


def test_filters_select_by_model_and_dataset(tmp_path, results):
    store = Store(tmp_path / "r.sqlite")
    store.save(results[0])
    store.save(dataclasses.replace(results[1], model="mlp"))
    assert [r["model"] for r in store.rows(model="mlp")] == ["mlp"]
    assert len(store.rows(dataset="digits")) == 2 and store.rows(dataset="mnist") == []


def test_everything_survives_a_restart(tmp_path, results):
    path = tmp_path / "r.sqlite"
    Store(path).save(results[0], artifact=b"SLIM-artifact")
    again = fresh(path)
    assert again.count() == 1 and again.artifact(again.rows()[0]["id"]) == b"SLIM-artifact"


def test_an_artifact_downloaded_again_is_bit_identical_and_loads(tmp_path, digits_lenet, results):
    base, _ = digits_lenet
    small = compress(base, CompressionConfig(prune_rate=0.5, bits=4))
    blob = export(small)
    store = Store(tmp_path / "r.sqlite")
    store.save(results[0], subset=200, artifact=blob)
    store.save(results[0], subset=None)  # the same model evaluated on all images
    ids = [row["id"] for row in store.rows()]
    assert all(store.artifact(i) == blob for i in ids)
    restored = load_compressed(store.artifact(ids[0]))
    for name, t in small.state_dict().items():
        assert restored.state_dict()[name].equal(t), name


def test_artifact_size_limits_are_kept(tmp_path, results):
    store = Store(tmp_path / "r.sqlite", max_artifact_bytes=100, max_total_bytes=250)
    assert store.save_artifact("h", "k0", {}, b"x" * 101) is False  # too big: not kept
    for i, r in enumerate(results):
        store.save(r, artifact=bytes([i]) * 100)
    kept = [row["has_artifact"] for row in sorted(store.rows(), key=lambda row: row["created"])]
    assert kept == [False, True, True]  # the oldest was dropped to stay under 250 bytes


def test_a_failed_write_leaves_nothing_half_written(tmp_path, results, monkeypatch):
    store = Store(tmp_path / "r.sqlite")
    store.save(results[0])

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(Store, "_put_artifact", fail)
    with pytest.raises(OSError):
        store.save(results[1], artifact=b"blob")  # the row is inserted, then the blob fails
    assert store.count() == 1  # ... and the row was rolled back with it


CRASH = """
import os, sys
sys.path.insert(0, {root!r})
from compress_core.io.store import Store
store = Store({path!r})
with store._write() as con:
    con.execute("UPDATE results SET label = 'half-written'")
    con.execute("DELETE FROM artifacts")
    os._exit(9)  # the process dies mid-transaction, as on a kill -9 or a power cut
"""


def test_a_process_killed_mid_write_leaves_the_last_committed_state(tmp_path, results):
    path = tmp_path / "r.sqlite"
    Store(path).save(results[0], artifact=b"kept")
    code = textwrap.dedent(CRASH.format(root=str(ROOT), path=str(path)))
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 9
    store = fresh(path)
    assert not store.warnings  # the file is healthy, not moved aside
    rows = store.rows()
    assert [r["label"] for r in rows] == [results[0].label] and store.artifact(rows[0]["id"])


WRITER = """
import sys, dataclasses
sys.path.insert(0, {root!r})
from compress_core.io.store import Store
from compress_core.core.pipeline import Result
import json
result = Result(**json.loads(sys.stdin.read()))
store = Store({path!r})
for i in range({n}):
    store.save(dataclasses.replace(result, base_hash="{tag}%d" % i), artifact=b"a" * 1000)
"""


def test_a_writer_process_and_many_writer_threads_all_land(tmp_path, results):
    import json

    path = tmp_path / "r.sqlite"
    Store(path)
    payload = json.dumps(results[0].to_dict())
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(WRITER.format(root=str(ROOT), path=str(path), n=25, tag=tag)),
            ],
            stdin=subprocess.PIPE,
            text=True,
        )
        for tag in ("p",)
    ]
    for p in procs:
        p.stdin.write(payload)
        p.stdin.close()

    def write(t: int) -> None:
        store = Store(path)
        for i in range(10):
            store.save(dataclasses.replace(results[1], base_hash=f"t{t}-{i}"))

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.wait(timeout=120) for p in procs] == [0]
    store = fresh(path)
    assert store.count() == 25 + 40
    assert len({row["base_hash"] for row in store.rows()}) == 65


def test_a_corrupt_file_is_moved_aside_never_deleted(tmp_path, results):
    path = tmp_path / "r.sqlite"
    garbage = b"SQLite format 3\x00" + b"this is not a database " * 100
    path.write_bytes(garbage)
    with pytest.warns(UserWarning, match="moved to"):
        store = fresh(path)
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and aside[0].read_bytes() == garbage
    store.save(results[0])
    assert fresh(path).count() == 1


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "r.sqlite"
    text = b"someone's notes, not a database " * 100
    path.write_bytes(text)
    with pytest.raises(StoreError, match="not a SQLite database"):
        fresh(path)
    assert path.read_bytes() == text and sorted(tmp_path.iterdir()) == [path]


def test_a_non_finite_result_is_kept_flagged_with_no_accuracy(tmp_path, results):
    store = Store(tmp_path / "r.sqlite")
    bad = dataclasses.replace(results[0], accuracy=float("nan"), finite=False)
    store.save(bad)
    row = store.rows()[0]
    assert row["finite"] is False and math.isnan(row["accuracy"])
    con = sqlite3.connect(store.path)
    assert con.execute("SELECT accuracy, finite FROM results").fetchone() == (None, 0)
    con.close()


def test_an_unusable_folder_raises_a_store_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(StoreError, match="cannot create"):
        Store(blocker / "sub" / "r.sqlite")


def test_the_default_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SLIMSCOPE_DATA_HOME", str(tmp_path / "a"))
    assert default_path() == tmp_path / "a" / "results.sqlite"
    monkeypatch.delenv("SLIMSCOPE_DATA_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "x"))
    assert default_path() == tmp_path / "x" / "slimscope" / "results.sqlite"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_path() == Path.home() / ".local" / "share" / "slimscope" / "results.sqlite"


def test_a_row_this_version_cannot_read_is_left_out_with_a_warning(tmp_path, results):
    store = Store(tmp_path / "r.sqlite")
    store.save(results[0])
    store.save(results[1])
    con = sqlite3.connect(store.path)
    con.execute('UPDATE results SET result = \'{"config": {"gone": 1}}\' WHERE id = 1')
    con.commit()
    con.close()
    assert [r["label"] for r in store.rows()] == [results[1].label]
    assert "1 stored result(s) could not be read" in store.warnings[-1]
