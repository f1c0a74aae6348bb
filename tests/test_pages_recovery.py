"""The Recovery page, run in-process with Streamlit's AppTest on the real engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from compress_core.core.config import CompressionConfig
from compress_core.train import finetune as finetune_module
from compress_core.train.baseline import TrainingCancelled
from compress_core.train.deep_compression import get_deep_compression, preset
from compress_core.train.finetune import FinetuneConfig, finetuned_path, run_finetuned
from compress_core.train.papers import published
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


def test_a_missing_data_set_is_a_message_and_the_previous_one_stays(at):
    at.sidebar.selectbox(key="pick_dataset").set_value("mnist").run()
    assert not at.exception
    assert any("mnist" in w.value and "digits" in w.value for w in at.warning)
    assert at.sidebar.selectbox(key="pick_dataset").value == "digits"
