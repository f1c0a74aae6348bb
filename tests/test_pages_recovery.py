"""The Recovery page, run in-process with Streamlit's AppTest on the real engine."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from compress_core.core.config import CompressionConfig
from compress_core.eval.evaluate import evaluate
from compress_core.format.artifact import export
from compress_core.train import finetune as finetune_module
from compress_core.train import soft_sharing as sws_module
from compress_core.train.baseline import TrainingCancelled
from compress_core.train.deep_compression import get_deep_compression, preset, smaller_preset
from compress_core.train.finetune import FinetuneConfig, finetuned_path, run_finetuned
from compress_core.train.papers import published
from compress_core.train.soft_sharing import SoftSharingConfig, cache_path, get_soft_sharing
from ui.format import human_bytes

TIMEOUT = 300
PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "4_Recovery.py")


def _metrics(at, label: str) -> list[str]:
    return [m.value for m in at.metric if m.label == label]


def _figures(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


@pytest.fixture
def at(digits_lenet):
    return AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()


def test_page_opens_on_the_one_shot_result_with_nothing_trained(at):
    assert not at.exception
    assert len(_metrics(at, "Test accuracy")) == 1  # one-shot only
    assert any("Not fine-tuned yet" in i.value for i in at.info)
    assert any("Run Deep Compression" in i.value for i in at.info)


def test_fine_tune_shows_the_engines_result_beside_one_shot(at, digits_lenet):
    base, data = digits_lenet
    at.slider(key="prune_rate").set_value(90).run()
    at.slider(key="rec_epochs").set_value(1).run()
    at.button(key="rec_run").click().run()
    assert not at.exception
    config = CompressionConfig(prune_rate=0.9, bits=4)
    ft = FinetuneConfig(epochs=1)
    assert finetuned_path(base, data, config, ft).is_file()
    expected = run_finetuned(base, data, config, ft)  # loads what the page trained
    one_shot, tuned = _metrics(at, "Test accuracy")
    assert tuned == f"{expected.accuracy:.2%}"
    assert _metrics(at, "Compressed size")[1] == human_bytes(expected.artifact_bytes)
    table = at.dataframe[0].value
    assert sorted(table["finetuned"]) == [False, False, True]  # 50 %, 90 % one-shot; 90 % tuned
    names = [t.get("name") for f in _figures(at) for t in f["data"]]
    assert "fine-tuned" in names and "tried (fine-tuned)" in names


def test_a_stopped_run_keeps_nothing_and_the_page_stays_usable(at, digits_lenet, monkeypatch):
    base, data = digits_lenet
    at.slider(key="prune_rate").set_value(70).run()
    at.slider(key="rec_epochs").set_value(3).run()

    def stop(self, where):
        raise TrainingCancelled(f"fine-tuning stopped {where}; nothing was kept")

    monkeypatch.setattr(finetune_module.Tracker, "check", stop)
    at.button(key="rec_run").click().run()
    assert not at.exception
    assert any(s.label.startswith("Stopped") for s in at.get("status"))
    assert not [b for b in at.button if "Stop" in b.label]  # nothing runs: no Stop button
    config, ft = CompressionConfig(prune_rate=0.7, bits=4), FinetuneConfig(epochs=3)
    path = finetuned_path(base, data, config, ft)
    assert not path.exists() and not list(path.parent.glob(".slim-*"))  # nor a temp file
    monkeypatch.undo()
    at.button(key="rec_run").click().run()
    assert not at.exception
    assert len(_metrics(at, "Test accuracy")) == 2
    assert finetuned_path(base, data, config, ft).is_file()


def test_iterative_channel_pruning_is_refused_with_a_message(at):
    at.selectbox(key="prune_method").set_value("l1-structured").run()
    at.slider(key="rec_steps").set_value(3).run()
    assert not at.exception
    assert any("iterative pruning" in e.value for e in at.error)


def test_replay_steps_through_the_stages_as_the_engine_reports_them(at, digits_mlp):
    base, data = digits_mlp
    at.sidebar.selectbox(key="pick_model").set_value("mlp").run()
    at.slider(key="dc_epochs").set_value(1).run()
    at.slider(key="dc_centroid_epochs").set_value(1).run()
    at.button(key="dc_run").click().run()
    assert not at.exception
    dc = preset("mlp", prune_epochs=1, centroid_epochs=1)
    _, report = get_deep_compression(base, data, dc)  # the page's run, from the disk cache
    for i, stage in enumerate(report.stages):
        at.select_slider(key="dc_stage").set_value(i).run()
        assert _metrics(at, "Artifact") == [human_bytes(stage.artifact_bytes)]
        assert _metrics(at, "Ratio vs fp32") == [f"{stage.ratio:.1f}×"]
    replay = _figures(at)[-1]
    paper = next(t for t in replay["data"] if t.get("name") == "paper (MNIST)")
    assert len(paper["x"]) == 2  # the paper's dense and final points
    others = [p for p in published("mlp", exclude=("Deep Compression",)) if p.accuracy]
    shown = next(t for t in replay["data"] if t.get("name") == "published (MNIST)")
    assert shown["text"] == [p.label for p in others]  # SWS and EPR, beside the paper
    assert any("Diamonds" in c.value for c in at.caption)
    assert at.dataframe[-1].value["paper_ratio"].tolist() == [1, 12, 32, 40]


def test_replay_with_the_tuned_settings_shows_their_per_layer_rates_and_runs_them(at, digits_mlp):
    base, data = digits_mlp
    assert "dc_preset" not in [r.key for r in at.radio]  # lenet5 has no tuned preset
    at.sidebar.selectbox(key="pick_model").set_value("mlp").run()
    assert at.radio(key="dc_preset").value == "paper"
    at.radio(key="dc_preset").set_value("smaller").run()
    assert at.slider(key="dc_fc_bits").value == 3  # the sliders start from the tuned preset
    assert at.slider(key="dc_keep").disabled
    at.slider(key="dc_epochs").set_value(1).run()
    at.slider(key="dc_steps").set_value(1).run()
    at.slider(key="dc_centroid_epochs").set_value(1).run()
    dc = smaller_preset("mlp", prune_epochs=1, prune_steps=1, centroid_epochs=1)
    label = next(c.value for c in at.caption if c.value.startswith("Prune → retrain"))
    assert dc.label() in label and "keep fc1 2.5%, fc2 6.0%, fc3 40.0%" in label
    at.button(key="dc_run").click().run()
    assert not at.exception
    _, report = get_deep_compression(base, data, dc)  # the page's run, from the disk cache
    assert report.settings["layer_rates"] == [list(p) for p in dc.layer_rates]
    assert _metrics(at, "Artifact") == [human_bytes(report.final.artifact_bytes)]


def test_a_missing_data_set_is_a_message_and_the_previous_one_stays(at):
    at.sidebar.selectbox(key="pick_dataset").set_value("mnist").run()
    assert not at.exception
    assert any("mnist" in w.value and "digits" in w.value for w in at.warning)
    assert at.sidebar.selectbox(key="pick_dataset").value == "digits"


# --- soft weight-sharing ---------------------------------------------------------------------


def _numbers(field) -> list:
    """A plotly trace's x or y as a list (plotly sends numpy arrays as base64 typed arrays)."""
    if isinstance(field, dict):
        return np.frombuffer(base64.b64decode(field["bdata"]), field["dtype"]).tolist()
    return list(field)


def _sws_settings(at, epochs: int, components: int):
    at.slider(key="sws_epochs").set_value(epochs).run()
    return at.slider(key="sws_components").set_value(components).run()


def test_soft_sharing_shows_the_engines_ratio_bytes_and_accuracy(at, digits_lenet):
    base, data = digits_lenet
    cfg = SoftSharingConfig(epochs=1, components=7)
    assert not cache_path(base, data, cfg).exists()
    _sws_settings(at, 1, 7).button(key="sws_run").click().run()
    assert not at.exception
    assert any(s.label == "Soft weight-sharing of lenet5: done" for s in at.get("status"))
    assert cache_path(base, data, cfg).is_file()  # the page's run, kept on disk
    small = get_soft_sharing(base, data, cfg)  # loads what the page trained
    blob = export(small)
    dense = 4 * sum(p.numel() for p in base.parameters())
    assert _metrics(at, "Ratio vs fp32") == [f"{dense / len(blob):.1f}×"]
    assert _metrics(at, "Artifact") == [human_bytes(len(blob))]
    accuracy = evaluate(small, data.test_x, data.test_y).accuracy
    assert _metrics(at, "Test accuracy")[-1] == f"{accuracy:.2%}"  # after the one-shot one
    chart = next(f for f in _figures(at) if any(t.get("name") == "this run" for t in f["data"]))
    run = next(t for t in chart["data"] if t.get("name") == "this run")
    assert _numbers(run["x"]) == [len(blob)]
    baseline = next(t for t in chart["data"] if t.get("name") == "baseline (float32)")
    assert _numbers(baseline["x"]) == [dense]
    assert any("Ullrich et al. report" in i.value for i in at.info)  # lenet5 is not in the paper


def test_a_finished_run_is_shown_from_disk_beside_the_published_points(digits_mlp, monkeypatch):
    base, data = digits_mlp
    cfg = SoftSharingConfig(epochs=1, components=5)
    small = get_soft_sharing(base, data, cfg)  # trained once, here

    def boom(*args, **kwargs):
        raise AssertionError("retrained a run the disk cache holds")

    monkeypatch.setattr(sws_module, "soft_weight_sharing", boom)
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.sidebar.selectbox(key="pick_model").set_value("mlp").run()
    _sws_settings(at, 1, 5)
    assert not at.exception  # shown without pressing Train, and without training
    dense = 4 * sum(p.numel() for p in base.parameters())
    assert _metrics(at, "Ratio vs fp32") == [f"{dense / len(export(small)):.1f}×"]
    at.button(key="sws_run").click().run()  # pressing Train again finds it too
    assert not at.exception and len(_metrics(at, "Ratio vs fp32")) == 1
    ratio = next(m for m in at.metric if m.label == "Ratio vs fp32")
    assert ratio.proto.delta == "published: 64×"  # Ullrich et al.'s LeNet-300-100
    chart = next(f for f in _figures(at) if any(t.get("name") == "this run" for t in f["data"]))
    shown = next(t for t in chart["data"] if t.get("name") == "published (MNIST)")
    assert shown["text"] == [p.label for p in published("mlp") if p.accuracy is not None]
    assert "Soft weight-sharing 64×" in shown["text"]


def test_a_stopped_soft_sharing_run_keeps_nothing(at, digits_lenet, monkeypatch):
    base, data = digits_lenet
    cfg = SoftSharingConfig(epochs=2, components=3)

    def stop(*args, **kwargs):
        raise TrainingCancelled("training stopped in epoch 1, step 1")

    monkeypatch.setattr(sws_module, "fit", stop)
    _sws_settings(at, 2, 3).button(key="sws_run").click().run()
    assert not at.exception
    assert any(s.label.startswith("Stopped") for s in at.get("status"))
    assert not cache_path(base, data, cfg).exists()
    assert any("Train with soft weight-sharing" in i.value for i in at.info)
    assert not _metrics(at, "Ratio vs fp32")
