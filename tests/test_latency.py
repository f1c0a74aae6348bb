"""Measured latency: the timer against a known sleep, the child process, the CPU flags, the page."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest
from test_app import _array

from compress_core import CompressionConfig, catalog, compress, evaluate, run_on
from compress_core.core.pipeline import calibration_batches
from compress_core.eval.latency import (
    LatencyError,
    _time_runs,
    cpu_info,
    format_latency,
    measure_latency,
)
from ui import charts

APP = str(Path(__file__).resolve().parent.parent / "app.py")
X86 = "model name\t: Intel(R) Xeon(R)\nflags\t\t: fpu sse avx2 avx512f avx512_vnni amx_int8\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes asimddp\nCPU part\t: 0xd0c\n"
OLD = "model name\t: Old CPU\nflags\t\t: fpu sse sse2 avx avx2\n"


def test_the_timer_reports_a_known_sleep():
    stats = _time_runs(lambda s: time.sleep(s), 0.002, warmup=1, repeats=10, min_seconds=0)
    assert stats["runs"] >= 10
    assert 2.0 <= stats["q1_ms"] <= stats["median_ms"] <= stats["q3_ms"]
    assert stats["median_ms"] < 50  # a sleep of 2 ms, even on a busy machine
    assert stats["iqr_ms"] == pytest.approx(stats["q3_ms"] - stats["q1_ms"])


@pytest.mark.parametrize(
    "text, flags",
    [(X86, ["AVX-512 VNNI", "AMX int8"]), (ARM, ["ARM dot-product"]), (OLD, [])],
    ids=["x86-vnni-amx", "arm-dotprod", "avx2-only"],
)
def test_cpu_info_names_the_flags_that_make_int8_fast(text, flags):
    assert cpu_info(text)["int8_flags"] == flags


def test_every_setting_is_timed_in_a_separate_process(digits_lenet):
    base, data = digits_lenet
    calib = calibration_batches(data)
    small = compress(base, CompressionConfig(bits=8, act_bits=8), calib)
    rows = measure_latency(
        small, calibration=calib, batches=(1, 64), threads=(1,), warmup=1, repeats=3, min_seconds=0
    )
    got = {(r["runtime"], r["batch"], r["threads"]) for r in rows}
    assert got == {(rt, b, 1) for rt in ("onnx", "onnx-int8", "torch") for b in (1, 64)}
    assert all(r["pid"] != os.getpid() for r in rows)
    for r in rows:
        assert r["runs"] >= 3 and 0 < r["q1_ms"] <= r["median_ms"] <= r["q3_ms"]
    by = {(r["runtime"], r["batch"]): r["median_ms"] for r in rows}
    for runtime in ("onnx", "onnx-int8", "torch"):
        assert by[(runtime, 64)] > by[(runtime, 1)]  # 64 images take longer than one
    text = format_latency(rows, cpu_info(X86))
    assert "AVX-512 VNNI" in text and len(text.splitlines()) == 2 + len(rows)


def test_bad_requests_raise_a_clear_error_and_int8_needs_calibration(digits_lenet):
    base, _ = digits_lenet
    with pytest.raises(LatencyError, match="unknown runtimes"):
        measure_latency(base, runtimes=("tensorrt",))
    rows = measure_latency(base, batches=(1,), threads=(1,), warmup=0, repeats=1, min_seconds=0)
    assert {r["runtime"] for r in rows} == {"onnx", "torch"}  # no calibration: no int8 file


def test_latency_is_an_axis_of_the_tradeoff_plot():
    frame = pd.DataFrame(
        {
            "key": ["a", "b"],
            "label": ["a", "b"],
            "prune_method": ["magnitude"] * 2,
            "prune_rate": [0.0, 0.5],
            "scope": ["layer"] * 2,
            "bits": [32, 8],
            "quant": ["uniform"] * 2,
            "granularity": ["per_channel"] * 2,
            "accuracy": [0.9, 0.89],
            "latency_ms": [0.05, 0.03],
            "finite": [True, True],
        }
    )
    fig = charts.tradeoff_figure(frame, "latency_ms")
    assert fig.layout.xaxis.title.text == catalog.text("en", "chart.axis_latency_ms")
    assert list(fig.data[0].x) == [0.05, 0.03] and " ms" in fig.data[0].hovertemplate


def test_explore_measures_latency_on_demand_and_keeps_it(digits_lenet):
    at = AppTest.from_file(APP, default_timeout=300).run()
    assert not at.exception
    assert not [m for m in at.metric if m.label.startswith("Latency")]  # sliders stay fast
    at.button(key="ship_measure_metric").click().run()
    assert not at.exception
    value = next(m.value for m in at.metric if m.label.startswith("Latency"))
    assert value.endswith("µs")
    at.session_state["explore_tab"] = catalog.text("en", "explore.tab_ship")  # the Ship tab
    at.run()  # a rerun shows the cached measurement, not a new one
    assert next(m.value for m in at.metric if m.label.startswith("Latency")) == value
    labels = [d.label for d in at.download_button]
    assert "Download ONNX (float32)" in labels
    assert ("Download ONNX (int8 QDQ)" in labels) == (at.session_state["view"]["bits"] <= 8)


def test_a_model_the_engine_has_seen_is_measured_and_left_unchanged(digits_lenet):
    base, data = digits_lenet
    run_on(base, data, CompressionConfig(prune_rate=0.5))  # fills the engine's model cache
    before = {k: v.clone() for k, v in base.state_dict().items()}
    rows = measure_latency(base, runtimes=("torch",), batches=(1,), threads=(1,), repeats=1)
    assert len(rows) == 1
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())


def test_the_latency_bench_quick_mode_runs_and_channel_pruning_shrinks_the_model(
    digits_mlp, monkeypatch
):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "bench"))
    import bench_latency

    rows = bench_latency.bench_model(
        "mlp", "digits", (1, 256), (1,), warmup=1, repeats=3, min_seconds=0
    )
    by = {r["variant"]: r for r in rows}
    assert list(by) == [v[0] for v in bench_latency.VARIANTS]
    assert by["50 % channels float32"]["params"] < by["dense float32"]["params"] / 2
    base, data = digits_mlp
    assert by["dense float32"]["accuracy"] == evaluate(base, data.test_x, data.test_y).accuracy
    assert abs(by["dense int8"]["accuracy"] - by["dense float32"]["accuracy"]) <= 0.01
    assert all(set(r["ms"]) == {(1, 1), (256, 1)} for r in rows)
    text = bench_latency.table(rows, (1, 256), (1,))
    assert text.count("\n") == 1 + len(rows) and "(1.00x)" in text


def test_sweep_plots_accuracy_against_latency_for_the_pareto_points_only(digits_lenet):
    at = AppTest.from_file(str(Path(APP).parent / "pages" / "1_Sweep.py"), default_timeout=300)
    at.run()
    at.multiselect(key="sweep_rates").set_value([0, 50, 90])
    at.multiselect(key="sweep_bits").set_value([4, 32])
    at.button(key="sweep_submit").click().run()
    front = int(next(d.value for d in at.dataframe)["front_bytes"].sum())
    assert at.button(key="sweep_latency_measure").label == f"Measure {front} Pareto points"
    at.button(key="sweep_latency_measure").click().run()
    assert not at.exception
    fig = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert fig["layout"]["xaxis"]["title"]["text"] == catalog.text("en", "chart.axis_latency_ms")
    tried = [t for t in fig["data"] if t.get("name", "").startswith("tried")]
    assert sum(len(_array(t["y"])) for t in tried) == front
