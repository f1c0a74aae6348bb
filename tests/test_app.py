"""The Explore page, run in-process with Streamlit's AppTest on the real engine."""

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from compress_core import CompressionConfig, run_on
from compress_core.core.layers import compressed_share
from compress_core.core.quantize import PIN_ZERO_BITS
from ui import view
from ui.format import human_bytes

TIMEOUT = 300  # the first run may train the digits baseline
APP = str(Path(__file__).resolve().parent.parent / "app.py")


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _tried_points(at) -> int:
    """Number of tried points plotted in the accuracy-vs-bytes chart."""
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    fig = charts[1]  # params chart, then bytes chart
    return sum(len(_array(t["x"])) for t in fig["data"] if t.get("name", "").startswith("tried"))


def _array(values) -> np.ndarray:
    """Plotly's JSON holds numpy arrays as {dtype, bdata (base64)}."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values)


@pytest.fixture
def at(digits_lenet):
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    return app.run()


def test_page_loads_with_a_trained_model_and_a_first_result(at):
    assert not at.exception
    assert _metric(at, "Test accuracy").endswith("%")
    assert len(at.session_state.history) == 1
    assert _tried_points(at) == 1


def test_sliders_change_the_numbers_as_the_engine_says(at, digits_lenet):
    base, data = digits_lenet
    at.slider(key="prune_rate").set_value(90).run()
    at.select_slider(key="bits").set_value(2).run()
    assert not at.exception
    expected = run_on(base, data, CompressionConfig(prune_rate=0.9, bits=2))
    assert _metric(at, "Test accuracy") == f"{expected.accuracy:.2%}"
    assert _metric(at, "Compressed size") == human_bytes(expected.artifact_bytes)
    assert _metric(at, "Non-zero parameters") == f"{expected.nonzero_params:,}"


def test_history_and_plot_grow_with_each_new_setting(at):
    for i, rate in enumerate([0, 20, 70], start=2):
        at.slider(key="prune_rate").set_value(rate).run()
        assert len(at.session_state.history) == i
        assert _tried_points(at) == i
    at.slider(key="prune_rate").set_value(20).run()  # a setting already tried: no new point
    assert len(at.session_state.history) == 4


def test_every_method_choice_renders(at):
    for method in ["random", "l1-structured", "l2-structured", "magnitude"]:
        at.selectbox(key="prune_method").set_value(method).run()
        assert not at.exception, method
    at.selectbox(key="quant").set_value("kmeans").run()
    at.toggle(key="act_on").set_value(True).run()
    assert not at.exception
    assert "act 8-bit" in at.session_state.history[list(at.session_state.history)[-1]]["label"]


def test_a_bad_link_value_is_reported_and_only_that_key_falls_back(digits_lenet):
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.query_params.update({"prune_rate": "1.5", "bits": "3", "quant": "**bold**"})
    app.run()
    assert not app.exception
    texts = [w.value for w in app.warning]
    assert any(r"\*\*bold\*\*" in t for t in texts)  # shown literally, not as markdown
    texts = [t.replace("\\", "") for t in texts]
    assert any("prune_rate" in t and "a number from 0 to 1" in t for t in texts)
    assert app.slider(key="prune_rate").value == view.DEFAULTS["prune_rate"]
    assert app.selectbox(key="quant").value == view.DEFAULTS["quant"]
    assert app.select_slider(key="bits").value == 3  # the valid value is kept
    assert _metric(app, "Test accuracy").endswith("%")  # the defaults still show a result
    app.slider(key="prune_rate").set_value(30).run()  # and the page goes on normally
    assert not app.warning and not app.exception


def test_a_bare_url_means_the_documented_defaults_and_stays_bare(digits_lenet):
    app = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert app.slider(key="prune_rate").value == 50 and app.select_slider(key="bits").value == 4
    assert app.selectbox(key="pick_dataset").value == "digits"
    assert not dict(app.query_params)
    app.slider(key="prune_rate").set_value(0).run()
    app.select_slider(key="bits").set_value(32).run()
    query = {k: v[0] if isinstance(v, list) else v for k, v in app.query_params.items()}
    assert view.from_query(query) == ({**view.DEFAULTS, "prune_rate": 0, "bits": 32}, [])


def test_a_link_sets_data_set_model_and_subset_too(digits_lenet, digits_mlp):
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.query_params.update({"model": "mlp", "subset": "500", "huffman": "1"})  # legacy field
    app.run()
    assert not app.exception
    assert app.selectbox(key="pick_model").value == "mlp"
    assert app.selectbox(key="pick_subset").value == 500
    assert "huffman" not in [w.key for w in app.toggle]  # legacy: no control, no error
    base, _ = digits_mlp
    share, kept = compressed_share(base, CompressionConfig(prune_rate=0.5, bits=4, huffman=True))
    assert list(kept) == ["fc3"]  # fc1 holds most of the MLP's weights: compressed
    assert any(f"Compressing {share:.0%} of the weights: fc3 kept" in c.value for c in app.caption)


# One value other than the default for every field of the view (a new field needs one too).
SAMPLES = {
    "dataset": "fashion-mnist",
    "model": "mlp",
    "epochs": 7,
    "subset": 500,
    "prune_rate": 35,
    "bits": 32,
    "prune_method": "random",
    "scope": "global",
    "quant": "kmeans",
    "granularity": "per_tensor",
    "skip_first_last": False,
    "huffman": True,
    "recalibrate_bn": True,
    "bias_correction": True,
    "act_bits": 6,
    "act_calibration": "percentile",
    "include": ("conv*", "fc1"),
    "exclude": ("fc3",),
    "lang": "zh",
}


def test_the_view_round_trips_through_the_url_for_every_field():
    assert set(SAMPLES) == set(view.BY_NAME)
    assert view.to_query(view.DEFAULTS) == {}  # the defaults are a bare URL
    for name, value in SAMPLES.items():
        changed = {**view.DEFAULTS, name: value}
        query = view.to_query(changed)
        assert list(query) == [name]  # only what differs from the defaults
        assert view.from_query(query) == (changed, [])
    everything = {**view.DEFAULTS, **SAMPLES}
    assert view.from_query(view.to_query(everything)) == (everything, [])


@pytest.mark.parametrize(
    "rate, quant, bits", [(5, "kmeans", 2), (20, "kmeans", 2), (5, "kmeans", 4), (5, "uniform", 4)]
)
def test_a_little_pruning_is_explained_and_the_layer_table_shows_the_index(
    at, digits_lenet, rate, quant, bits
):
    base, data = digits_lenet
    at.session_state["explore_tab"] = "Layers"
    at.selectbox(key="quant").set_value(quant).run()
    at.select_slider(key="bits").set_value(bits).run()
    at.slider(key="prune_rate").set_value(rate).run()
    config = CompressionConfig(prune_rate=rate / 100, bits=bits, quant=quant)
    expected = run_on(base, data, config)
    notes = [c.value for c in at.caption if "A little pruning can make the file bigger" in c.value]
    table = next(d.value for d in at.dataframe if "encoding" in d.value.columns)
    assert table["encoding"].tolist() == [row["encoding"] for row in expected.layers]
    pruned = {e.split(" ")[0] for e in table[table["skipped"] == ""]["encoding"]}
    if bits < PIN_ZERO_BITS:  # k-means with no zero level: an index (or the positions as an
        # extra code, which carries the same information), and the note says why it costs bytes
        assert len(notes) == 1 and pruned <= {"bitmask", "relative", "pruned"}
    else:  # uniform codes and k-means with its pinned 0.0 store light pruning as the zero
        # code: no index, no note
        assert not notes and "zero" in pruned


def test_non_zeros_falling_with_bits_is_explained_when_it_happens(at, digits_lenet):
    base, data = digits_lenet
    at.slider(key="prune_rate").set_value(0).run()
    at.select_slider(key="bits").set_value(2).run()
    r = run_on(base, data, CompressionConfig(prune_rate=0, bits=2))
    assert r.nonzero_params < r.baseline_params  # the zero level swallows small weights
    assert any("Non-zero parameters can fall" in c.value for c in at.caption)
    at.select_slider(key="bits").set_value(32).run()
    assert not any("Non-zero parameters can fall" in c.value for c in at.caption)


def test_a_link_sets_the_controls_and_the_url_follows_them(digits_lenet):
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.query_params.update({"prune_rate": "0.8", "bits": "3", "quant": "kmeans"})
    app.run()
    assert app.slider(key="prune_rate").value == 80
    assert app.select_slider(key="bits").value == 3
    assert app.selectbox(key="quant").value == "kmeans"
    app.select_slider(key="bits").set_value(6).run()
    assert app.query_params["bits"] == ["6"] or app.query_params["bits"] == "6"


def test_full_pruning_is_a_warning_not_a_crash(at):
    at.toggle(key="skip_first_last").set_value(False).run()
    at.slider(key="prune_rate").set_value(100).run()
    assert not at.exception
    assert any("lost every weight" in w.value for w in at.warning)


def test_a_missing_data_set_shows_how_to_get_it(at, monkeypatch):
    monkeypatch.setenv("SLIMSCOPE_OFFLINE", "1")  # no download attempt from the test machine
    monkeypatch.setenv("SLIMSCOPE_DATA", "/nonexistent")
    at.selectbox(key="pick_dataset").set_value("cifar10").run()
    assert not at.exception
    assert any("cifar10" in w.value and "Showing digits" in w.value for w in at.warning)
    assert at.selectbox(key="pick_dataset").value == "digits"  # the previous one stays
    assert _metric(at, "Test accuracy").endswith("%")
    at.slider(key="prune_rate").set_value(30).run()  # and the page goes on normally
    assert not at.warning and not at.exception


def test_two_sessions_keep_their_own_history(digits_lenet):
    first = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    second = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    for rate in (10, 20, 30):
        first.slider(key="prune_rate").set_value(rate).run()
    second.select_slider(key="bits").set_value(8).run()
    assert len(first.session_state.history) == 4
    assert len(second.session_state.history) == 2
    assert _metric(second, "Test accuracy") != "" and not second.exception


def test_training_a_new_baseline_in_the_page_then_moving_a_slider(digits_lenet):
    app = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    app.selectbox(key="pick_model").set_value("mlp").run()
    app.number_input(key="pick_epochs").set_value(2).run()  # a baseline no test has trained
    assert not app.exception
    app.slider(key="prune_rate").set_value(80).run()  # the rerun hits the baseline cache
    assert not app.exception
    assert _metric(app, "Test accuracy").endswith("%")


def test_the_flip_gallery_splits_now_wrong_from_now_right_as_the_engine_says(at, digits_lenet):
    base, data = digits_lenet
    at.session_state["explore_tab"] = "What changed"
    at.slider(key="prune_rate").set_value(90).run()
    at.select_slider(key="bits").set_value(2).run()
    r = run_on(base, data, CompressionConfig(prune_rate=0.9, bits=2))
    true = [int(data.test_y[i]) for i in r.changed]
    wrong = sum(old == t for old, t in zip(r.changed_from, true, strict=True))
    right = sum(new == t for new, t in zip(r.changed_to, true, strict=True))
    assert wrong > 0  # 90 % at 2 bits breaks some predictions
    shown = {m.value.split("**")[1]: m.value for m in at.markdown if m.value.startswith("**")}
    assert f"**: {wrong} (" in shown["Now wrong — the baseline was right"]
    if right:
        assert f"**: {right} (" in shown["Now right — the baseline was wrong"]


def test_only_the_open_tab_is_drawn_and_each_tab_renders(at):
    charts = {"Trade-off": 2, "Layers": 1, "Weights": 1, "What changed": 0, "History & export": 0}
    for tab, count in [*list(charts.items())[1:], ("Trade-off", 2)]:
        at.session_state["explore_tab"] = tab
        at.run()
        assert not at.exception, tab
        assert len(at.get("plotly_chart")) == count, tab
        # CSV, the compressed model and the HTML report
        assert len(at.get("download_button")) == (3 if tab == "History & export" else 0)
