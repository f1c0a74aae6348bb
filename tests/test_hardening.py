"""Nothing a visitor sends can hang, exhaust or overwrite (issue #10).

Each test reproduces one failure of the adversarial pass and checks the invariant that
was broken: a bounded time, a bounded message, a refused file left unchanged.
"""

from __future__ import annotations

import io
import os
import re
import sqlite3
import stat
import struct
import threading
import time
import zipfile
from pathlib import Path
from urllib.parse import quote as quote_url

import pytest
import torch
from helpers import restored_registries, streamlit_server, torch_bytes
from torch import nn

from compress_core.io.models import build_model
from compress_core.io.store import Store, StoreError
from compress_core.io.upload import UploadError, load_user_model, read_weights
from compress_core.io.upload import register_model_module as register
from ui.safe import JOINER

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"


def key_bomb(depth: int) -> bytes:
    """A torch.save zip whose data.pkl is a dict keyed by a tuple nested ``depth`` deep,
    built from memo references: hashing (or printing) the key doubles in cost per level."""
    src = zipfile.ZipFile(io.BytesIO(torch_bytes({})))
    pkl = b"\x80\x02}" + b")" + b"q\x00h\x00\x86" * depth + b"K\x01s."
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name in src.namelist():
            z.writestr(name, pkl if name.endswith("data.pkl") else src.read(name))
    return out.getvalue()


def refused(blob: bytes, name: str = "weights.pt", **kw) -> tuple[str, float]:
    """The message and seconds it took to refuse ``blob``."""
    start = time.monotonic()
    with pytest.raises(UploadError) as e:
        read_weights(blob, name, **kw)
    return str(e.value), time.monotonic() - start


def test_a_key_bomb_is_stopped_by_the_parsers_limits_and_the_message_stays_short():
    message, seconds = refused(key_bomb(60))  # hashing it would take years
    assert re.search(r"within the limits.*signal|took more than", message) and seconds < 90
    message, _ = refused(key_bomb(24))  # parses, but str(key) would be 100 MB
    assert "<a tuple>" in message and len(message) < 1000


@pytest.mark.parametrize("numel", [10**9, 2**40])
def test_a_view_that_declares_more_than_it_stores_is_refused_before_touching_it(numel):
    blob = torch_bytes({"fc.weight": torch.zeros(1).expand(numel)})
    message, seconds = refused(blob)
    assert "declares" in message and "stores 4 bytes" in message and seconds < 20


def test_a_safetensors_header_nested_300000_deep_is_refused():
    header = b'{"a":' + b"[" * 300_000 + b"]" * 300_000 + b"}"
    blob = struct.pack("<Q", len(header)) + header
    message, _ = refused(blob, "w.safetensors")
    assert "safetensors" in message


def test_float8_weights_load_or_are_refused_in_words(digits_lenet):
    from safetensors.torch import save

    base, _ = digits_lenet
    state = {k: v.to(torch.float8_e4m3fn) for k, v in base.state_dict().items()}
    model, _, report = load_user_model(save(state), "lenet5", "digits", filename="w.safetensors")
    want = {k: v.to(torch.float32) for k, v in state.items()}
    assert all(torch.equal(model.state_dict()[k], v) for k, v in want.items())
    assert report.tensors == len(state)


def test_a_scalar_where_the_last_bias_belongs_is_reported_as_a_shape_mismatch(digits_lenet):
    base, _ = digits_lenet
    state = dict(base.state_dict())
    last = list(state)[-1]
    state[last] = torch.tensor(0.5)
    with pytest.raises(UploadError, match=rf"{last} is scalar"):
        load_user_model(torch_bytes(state), "lenet5", "digits", filename="w.pt")


@pytest.mark.parametrize("protocol", [4, 5])
def test_a_newer_pickle_protocol_is_called_unsupported_not_code_carrying(digits_lenet, protocol):
    blob = torch_bytes(digits_lenet[0].state_dict(), pickle_protocol=protocol)
    message, _ = refused(blob)
    assert f"protocol {protocol}" in message
    assert "unsupported by the weights-only reader" in message and "run code" not in message


class Legacy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)


def test_a_legacy_whole_model_pickle_names_what_it_needs():
    blob = torch_bytes(Legacy(), _use_new_zipfile_serialization=False)
    message, _ = refused(blob)
    assert "unknown objects" not in message
    assert "Legacy" in message and "torch.save(model.state_dict()" in message


def test_a_long_name_keeps_its_extension(digits_lenet):
    name = "a" * 120 + "_best_final_v2.pth"
    weights = read_weights(torch_bytes(digits_lenet[0].state_dict()), name)
    assert weights.filename.endswith(".pth") and len(weights.filename) <= 80


def test_a_device_symlinked_as_pt_is_refused_without_reading_it(tmp_path):
    link = tmp_path / "zero.pt"
    link.symlink_to("/dev/zero")
    start = time.monotonic()
    with pytest.raises(UploadError, match="not a regular file"):
        read_weights(link, max_bytes=4 << 30)
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("name", ["net.ts", "net.torchscript", "net.jit"])
def test_refusing_torchscript_names_the_torchscript_loader(name):
    message, _ = refused(b"PK\x03\x04", name)
    assert "TorchScript" in message and "torch.jit.load" in message
    assert "torch.export" not in message


NETS = """
from torch import nn

class Fixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))
"""


def test_an_operator_architecture_without_arguments_builds(tmp_path, monkeypatch):
    (tmp_path / "hard_nets.py").write_text(NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    with restored_registries():
        name = register("hard_nets:Fixed")
        model = build_model(name, (1, 8, 8), 10)
        assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


# --- the key bomb against a real server ----------------------------------------------------


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    with streamlit_server(tmp_path_factory.mktemp("server") / "streamlit.log") as (url, _):
        yield url


def _health_while(url: str, stop: threading.Event, slow: list[float]) -> None:
    import urllib.request

    while not stop.is_set():
        start = time.monotonic()
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=5).read()
        except OSError:
            pass
        slow.append(time.monotonic() - start)
        time.sleep(0.2)


def test_a_key_bomb_upload_is_refused_while_the_server_keeps_answering(live_server, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium not found: apt-get install -y chromium (CI installs it)")
    from playwright.sync_api import sync_playwright

    bomb = tmp_path / "bomb.pt"
    bomb.write_bytes(key_bomb(60))
    stop, times = threading.Event(), []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"{live_server}/Your_model", timeout=120_000)
        page.locator("input[type=file]").set_input_files(str(bomb), timeout=120_000)
        watcher = threading.Thread(target=_health_while, args=(live_server, stop, times))
        watcher.start()
        try:
            stopped = re.compile(r"within the limits.*signal|took more than")  # not a crash
            page.get_by_text(stopped).wait_for(timeout=120_000)
        finally:
            stop.set()
            watcher.join()
            browser.close()
    assert len(times) >= 10  # it was watched for the whole parse (at least 10 s of CPU)
    assert max(times) < 1.0, f"the health endpoint took up to {max(times):.2f} s"


# --- the result store: only ours is written -----------------------------------------------


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _fresh_store(path: Path) -> Store:
    Store._checked.discard(path)
    return Store(path)


@pytest.mark.parametrize(
    "schema",
    [
        "PRAGMA user_version = 7; CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);",
        "CREATE TABLE results (id INTEGER PRIMARY KEY, score REAL);",
    ],
    ids=["another-apps-db", "other-results-table"],
)
def test_a_database_that_is_not_ours_is_refused_and_left_byte_identical(tmp_path, schema):
    path = tmp_path / "app.sqlite"
    con = sqlite3.connect(path)
    con.executescript(schema)
    con.close()
    before = _snapshot(tmp_path)
    with pytest.raises(StoreError, match="left as it is"):
        _fresh_store(path)
    assert _snapshot(tmp_path) == before


def test_a_read_only_store_is_read_not_damaged(tmp_path, monkeypatch, digits_lenet):
    from compress_core import CompressionConfig, run_on

    path = tmp_path / "r.sqlite"
    result = run_on(*digits_lenet, CompressionConfig(prune_rate=0.5), subset=50)
    _fresh_store(path).save(result, 50)
    Store._checked.discard(path)
    before = _snapshot(tmp_path)
    real = os.access  # root ignores permission bits: act as a read-only mount would
    monkeypatch.setattr(os, "access", lambda p, m: m != os.W_OK and real(p, m))
    store = _fresh_store(path)
    assert [r["accuracy"] for r in store.rows()] == [result.accuracy]
    assert "read-only" in store.warnings[0]
    with pytest.raises(StoreError, match="read-only"):
        store.save(result, 50)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("flags", [["--export", "{store}"], ["--export", "{weights}"]])
def test_the_cli_never_overwrites_its_own_inputs(tmp_path, digits_lenet, flags, capsys):
    from compress_core.__main__ import main

    store, weights = tmp_path / "r.sqlite", tmp_path / "w.pt"
    weights.write_bytes(torch_bytes(digits_lenet[0].state_dict()))
    Store(store)
    before = _snapshot(tmp_path)
    args = ["run", "--model-file", str(weights), "--store", str(store), "--subset", "20"]
    args += [f.format(store=store, weights=weights) for f in flags]
    assert main(args) == 2
    assert "same file" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before


def test_export_over_a_file_keeps_its_mode_and_writes_it_whole(tmp_path, digits_lenet):
    from compress_core.__main__ import main
    from compress_core.format.artifact import load_compressed

    out = tmp_path / "small.slim"
    out.write_bytes(b"old")
    out.chmod(0o640)
    args = ["run", "--prune", "0.5", "--bits", "4", "--subset", "20", "--no-store"]
    assert main([*args, "--export", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert load_compressed(out) is not None
    assert [p.name for p in tmp_path.iterdir()] == ["small.slim"]  # no temp file left


@pytest.mark.parametrize(
    "flags",
    [
        ["run", "--subset", "0"],
        ["run", "--subset", "-1"],
        ["run", "--epochs", "0"],
        ["run", "--epochs", str(10**30)],
        ["run", "--seed", str(10**30)],
        ["run", "--input-size", "100000"],
        ["run", "--input-size", "0"],
        ["sweep", "--rates", ""],
        ["sensitivity", "--tolerance", "nan"],
        ["budget", "--max-drop", "1", "--max-evals", "-1"],
        ["run", "--export", "{tmp}/missing/x.slim"],
        ["run", "--export", "{tmp}"],
        ["run", "--export", "/dev/null"],
        ["run", "--export", "/proc/x.slim"],
    ],
)
def test_cli_values_that_cannot_work_exit_2_before_any_work(tmp_path, flags, capsys):
    from compress_core.__main__ import main

    try:
        code = main([*(f.format(tmp=tmp_path) for f in flags), "--no-store"])
    except SystemExit as e:  # argparse's own exit for a value of the wrong kind
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert re.search(r"expected|does not exist|is a folder|not a regular file|cannot write", err)
    assert sorted(tmp_path.iterdir()) == []


def test_class_folders_linked_outside_the_image_folder_are_not_walked(tmp_path):
    from test_upload import make_image_folder

    from compress_core.io.imagefolder import list_image_folders, scan

    root = tmp_path / "allowed"
    make_image_folder(root / "shapes", split=True)
    outside = tmp_path / "outside"
    make_image_folder(outside, classes=("secret", "other"))
    (root / "shapes" / "train" / "secret").symlink_to(outside / "secret")
    (root / "shapes" / "test" / "dark").rename(tmp_path / "moved")
    (root / "shapes" / "test" / "dark").symlink_to("/usr")
    (root / "linked").symlink_to(outside)
    splits, classes = scan(root / "shapes")
    files = [p for pairs in splits.values() for p, _ in pairs]
    assert classes == ["bright", "dark"]
    assert all(p.resolve().is_relative_to(root.resolve()) for p in files)
    assert [p.name for p in list_image_folders(root)] == ["shapes"]


def test_a_link_in_the_url_is_shown_as_text_in_the_browser(live_server):
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium not found: apt-get install -y chromium (CI installs it)")
    from playwright.sync_api import sync_playwright

    evil = "[Session expired - click here](https://evil.example/login)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"{live_server}/?bits={quote_url(evil)}", timeout=120_000)
        page.get_by_text("was not applied").wait_for(timeout=120_000)
        body = page.locator("[data-testid=stAlert]").first.inner_text()
        found = page.locator("a[href*='evil.example'], img[src*='evil.example']")
        links = found.count()
        browser.close()
    assert repr(evil[:40]) in body.replace(JOINER, "") and links == 0  # quoted, cut to 40


def test_a_url_value_reaches_the_error_box_escaped():
    from streamlit.testing.v1 import AppTest

    evil = "![x](https://evil.example/t.png) [y](https://evil.example) :red[z] $x$"
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["bits"] = evil
    at.run()
    shown = at.warning[0].value  # the view's message for a bad link value
    assert re.search(r"(?<!\\)[\[\]()!:$]", shown) is None  # every mark escaped
    assert repr(evil[:40]) in re.sub(r"\\(.)", r"\1", shown).replace(JOINER, "")  # what was sent


def test_input_size_is_capped_with_the_cap_in_the_message():
    from compress_core.io.data import load_dataset
    from compress_core.io.upload import MAX_RESIZED_BYTES, max_input_size, user_data

    cap = max_input_size("digits", "lenet5")
    d = load_dataset("digits")
    images = len(d.train_x) + len(d.val_x) + len(d.test_x)
    assert 4 * images * cap * cap <= MAX_RESIZED_BYTES < 4 * images * (cap + 1) ** 2
    with pytest.raises(UploadError, match=rf"at most {cap} px"):
        user_data("digits", "lenet5", (1, 512, 512))


def test_explore_downloads_do_not_rerun_the_page_while_the_file_is_served():
    """Issue #10: under 8 tabs, 2 of 32 artifact downloads failed with "source error 404".
    A click that reruns the script replaces the media file the browser is still fetching;
    ``on_click="ignore"`` keeps the page (and the file) as it is."""
    from streamlit.testing.v1 import AppTest

    from compress_core import catalog

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["explore_tab"] = catalog.text("en", "explore.tab_export")  # drawn when open
    at.run()
    buttons = at.get("download_button")
    assert len(buttons) >= 2 and all(b.proto.ignore_rerun for b in buttons)


def test_a_device_as_the_store_is_refused_and_stays_a_device():
    with pytest.raises(StoreError, match="not a regular file"):
        _fresh_store(Path("/dev/null"))
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
