"""Measured latency: the timer against a known sleep, the child process, the CPU flags, the page."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from compress_core import CompressionConfig, compress
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
    assert fig.layout.xaxis.title.text == charts.AXES["latency_ms"]
    assert list(fig.data[0].x) == [0.05, 0.03] and " ms" in fig.data[0].hovertemplate


def test_explore_measures_latency_on_demand_and_keeps_it(digits_lenet):
    at = AppTest.from_file(APP, default_timeout=300).run()
    assert not at.exception
    assert not [m for m in at.metric if m.label.startswith("Latency")]  # sliders stay fast
    at.button(key="ship_measure_metric").click().run()
    assert not at.exception
    value = next(m.value for m in at.metric if m.label.startswith("Latency"))
    assert value.endswith("µs")
    at.run()  # a rerun shows the cached measurement, not a new one
    assert next(m.value for m in at.metric if m.label.startswith("Latency")) == value
    labels = [d.label for d in at.download_button]
    assert "Download ONNX (float32)" in labels
    assert ("Download ONNX (int8 QDQ)" in labels) == (at.select_slider(key="bits").value <= 8)
