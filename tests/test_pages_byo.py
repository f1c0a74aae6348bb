"""The Your-model and Compare pages, run with AppTest on the real engine and a real store."""

from __future__ import annotations

import io
import os
import pickle
import tempfile
import warnings
from pathlib import Path

import pytest
import torch
from helpers import restored_registries, torch_bytes
from streamlit.testing.v1 import AppTest

from compress_core import CompressionConfig, run_on
from compress_core.format.artifact import export, load_compressed
from compress_core.io.store import Store
from compress_core.train.baseline import get_baseline
from ui.format import human_bytes

os.environ.setdefault("SLIMSCOPE_DATA_HOME", tempfile.mkdtemp(prefix="slimscope-test-data-"))
PAGES = Path(__file__).resolve().parent.parent / "pages"
YOURS, COMPARE = str(PAGES / "6_Your_model.py"), str(PAGES / "5_Compare.py")
TIMEOUT = 300


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh, empty result store for the pages."""
    monkeypatch.setenv("SLIMSCOPE_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data" / "results.sqlite"


def _upload(at: AppTest, name: str, blob: bytes) -> AppTest:
    return (
        at.file_uploader(key="byo_file").set_value((name, blob, "application/octet-stream")).run()
    )


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_without_an_upload_the_page_explains_what_to_upload(home):
    at = AppTest.from_file(YOURS, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("torch.save(model.state_dict()" in i.value for i in at.info)
    assert at.selectbox(key="byo_arch").value == "lenet5"


def test_uploaded_weights_show_single_session_numbers_and_are_stored(home, digits_lenet):
    base, data = digits_lenet
    at = _upload(
        AppTest.from_file(YOURS, default_timeout=TIMEOUT).run(),
        "mine.pt",
        torch_bytes(base.state_dict()),
    )
    assert not at.exception and not at.error
    assert "mine.pt" in at.success[0].value
    at.slider(key="prune_rate").set_value(80).run()
    at.select_slider(key="bits").set_value(3).run()
    expected = run_on(base, data, CompressionConfig(prune_rate=0.8, bits=3))
    assert _metric(at, "Test accuracy") == f"{expected.accuracy:.2%}"
    assert _metric(at, "Compressed size") == human_bytes(expected.artifact_bytes)
    assert _metric(at, "Non-zero parameters") == f"{expected.nonzero_params:,}"
    rows = Store(home).rows()
    mine = [r for r in rows if r["key"] == CompressionConfig(prune_rate=0.8, bits=3).key()]
    assert len(mine) == 1 and mine[0]["source"] == "upload" and mine[0]["has_artifact"]
    assert '"filename": "mine.pt"' in mine[0]["identity"]
    assert mine[0]["accuracy"] == expected.accuracy


class Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_bad_uploads_are_refused_in_words_and_the_session_goes_on(home, digits_lenet, tmp_path):
    base, data = digits_lenet
    marker = tmp_path / "PWNED"
    script = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(base, data.test_x[:1]), script)
    nan_state = {k: v.clone() for k, v in base.state_dict().items()}
    nan_state["fc2.weight"][0, 0] = float("nan")
    bad = [
        ("empty.pt", b"", "is empty"),
        ("evil.pt", torch_bytes({"w": Evil(marker)}), "would run code"),
        ("raw.pt", pickle.dumps(Evil(marker)), "would run code"),
        ("script.pt", script.getvalue(), "TorchScript archive"),
        ("net.pt2", b"PK\x03\x04anything", "--trust-model-file"),
        ("photo.pt", b"\x89PNG\r\n\x1a\n" + bytes(64), "not a PyTorch or safetensors file"),
        ("notes.txt", b"hello", "must end in"),
        ("nan.pt", torch_bytes(nan_state), "NaN/Inf"),
        (
            "mlp.pt",
            torch_bytes(get_baseline("mlp", "digits")[0].state_dict()),
            "another architecture",
        ),
    ]
    at = AppTest.from_file(YOURS, default_timeout=TIMEOUT).run()
    for name, blob, message in bad:
        _upload(at, name, blob)
        assert not at.exception, name
        assert len(at.error) == 1 and message in at.error[0].value, (name, at.error)
        assert not at.metric, name  # nothing computed from a refused file
    assert not marker.exists()
    _upload(at, "good.pt", torch_bytes(base.state_dict()))
    assert not at.exception and not at.error and _metric(at, "Test accuracy").endswith("%")
    assert {r["source"] for r in Store(home).rows()} == {"upload"}


def test_structured_pruning_lists_the_layers_it_left_alone(home, digits_lenet):
    base, _ = digits_lenet
    at = _upload(
        AppTest.from_file(YOURS, default_timeout=TIMEOUT).run(),
        "w.pt",
        torch_bytes(base.state_dict()),
    )
    at.selectbox(key="prune_method").set_value("l1-structured").run()
    assert not at.exception
    left = " ".join(i.value for i in at.info)
    assert "conv1 (first layer" in left and "fc3 (last layer" in left


def test_a_broken_store_never_breaks_the_page(tmp_path, monkeypatch, digits_lenet):
    base, _ = digits_lenet
    blocker = tmp_path / "file"
    blocker.write_text("a file where the data folder should be")
    monkeypatch.setenv("SLIMSCOPE_DATA_HOME", str(blocker / "data"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        at = _upload(
            AppTest.from_file(YOURS, default_timeout=TIMEOUT).run(),
            "w.pt",
            torch_bytes(base.state_dict()),
        )
        at.slider(key="prune_rate").set_value(35).run()  # a config no earlier test computed
    assert not at.exception and not at.error
    assert _metric(at, "Test accuracy").endswith("%")
    assert any("History not saved" in c.value for c in at.caption)
    compare = AppTest.from_file(COMPARE, default_timeout=TIMEOUT).run()
    assert not compare.exception
    assert any("cannot be read" in e.value for e in compare.error)


def test_an_image_folder_data_set_can_be_picked_and_used(tmp_path, monkeypatch, home):
    from test_upload import make_image_folder

    root = tmp_path / "allowed"
    make_image_folder(root / "greyshades", per_class=15)
    monkeypatch.setenv("SLIMSCOPE_IMAGE_FOLDERS", str(root))
    with restored_registries():
        at = AppTest.from_file(YOURS, default_timeout=TIMEOUT).run()
        at.selectbox(key="byo_arch").set_value("mlp")
        at.radio(key="byo_kind").set_value("an image folder on this server").run()
        name = "folder:greyshades"
        model, _ = get_baseline("mlp", name, epochs=3, cache_dir=str(tmp_path / "cache"))
        _upload(at, "shades.pt", torch_bytes(model.state_dict()))
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert "fits **mlp** for folder:greyshades" in at.success[0].value
        assert _metric(at, "Test accuracy").endswith("%")


@pytest.fixture
def history(home, digits_lenet, digits_mlp):
    """A store holding results of two models, one with its artifact."""
    store = Store(home)
    for (base, data), rates in ((digits_lenet, (0.3, 0.6, 0.9)), (digits_mlp, (0.5,))):
        for rate in rates:
            config = CompressionConfig(prune_rate=rate, bits=4)
            r = run_on(base, data, config, subset=300)
            from compress_core import compress

            blob = export(compress(base, config)) if rate == 0.6 else None
            store.save(r, subset=300, identity={"source": "cli"}, artifact=blob)
    return store


def test_compare_lists_filters_plots_and_exports_the_history(history):
    at = AppTest.from_file(COMPARE, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    assert any("4 of 4 stored results" in c.value for c in at.caption)
    at.multiselect(key="cmp_models").set_value(["lenet5"]).run()
    assert any("3 of 4 stored results" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 2
    csv = next(d for d in at.get("download_button") if "CSV" in d.proto.label)
    assert csv.proto.label.startswith("Download these 3 results")
    (blob_button,) = [
        d for d in at.get("download_button") if d.proto.label.startswith("Download #")
    ]
    run_id = at.selectbox(key="cmp_run").value
    restored = load_compressed(history.artifact(run_id))
    assert restored.slimscope_record.config.prune_rate == 0.6
    assert human_bytes(len(history.artifact(run_id))) in blob_button.proto.label


def test_compare_survives_a_restart_and_a_corrupt_file(home, history):
    Store._checked.clear()  # as after a restart
    at = AppTest.from_file(COMPARE, default_timeout=TIMEOUT).run()
    assert any("4 of 4 stored results" in c.value for c in at.caption)
    home.write_bytes(b"SQLite format 3\x00" + b"garbage, not a database" * 50)  # damaged
    Store._checked.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        at = AppTest.from_file(COMPARE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("moved to" in w.value for w in at.warning)
    assert any("No results yet" in i.value for i in at.info)
    assert [p for p in home.parent.iterdir() if ".corrupt-" in p.name]
