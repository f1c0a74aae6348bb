"""Latency in ONNX Runtime: float vs int8 vs 50 % channel-pruned (+ int8), one run, one table.

For each model (default LeNet-300-100 and LeNet-5-Caffe on Fashion-MNIST) this
times four files at batch 1 and 256 with 1 and 2 threads, in a separate
process (``compress_core.eval.latency``), and reports the median, the speed-up
over the dense float model at the same batch and threads, and test accuracy
(float: the engine's evaluation, which ONNX Runtime matches exactly; int8:
ONNX Runtime's own predictions). Channel pruning removes the 50 % lowest-L1
output channels of every layer but the classifier, one-shot (no retraining).

Run: flock /tmp/bench.lock python bench/bench_latency.py [--models mlp,lenet5-caffe]
     [--data fashion-mnist] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import onnxruntime as ort  # noqa: E402
from bench_deep_compression import machine  # noqa: E402

from compress_core import CompressionConfig, compress, evaluate  # noqa: E402
from compress_core.core.pipeline import calibration_batches  # noqa: E402
from compress_core.eval.latency import cpu_info, measure_latency  # noqa: E402
from compress_core.format.onnx import int8_onnx  # noqa: E402
from compress_core.train.baseline import get_baseline  # noqa: E402

DENSE = CompressionConfig()
CHANNELS = CompressionConfig(prune_rate=0.5, prune_method="l1-structured", skip_first_last=False)
VARIANTS = (  # name, config, runtime
    ("dense float32", DENSE, "onnx"),
    ("dense int8", DENSE, "onnx-int8"),
    ("50 % channels float32", CHANNELS, "onnx"),
    ("50 % channels int8", CHANNELS, "onnx-int8"),
)


def int8_accuracy(model, data, calib) -> float:
    session = ort.InferenceSession(int8_onnx(model, calib), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": data.test_x.numpy()})[0]
    return float((logits.argmax(1) == data.test_y.numpy()).mean())


def bench_model(model_name: str, dataset: str, batches, threads, **timing) -> list[dict]:
    """One row per variant: name, params, accuracy, and {(batch, threads): median_ms}."""
    base, data = get_baseline(model_name, dataset)
    calib = calibration_batches(data)
    rows = []
    for config in (DENSE, CHANNELS):
        small = compress(base, config)
        times = measure_latency(
            small, calibration=calib, runtimes=("onnx", "onnx-int8"), batches=batches,
            threads=threads, **timing,
        )  # fmt: skip
        for name, cfg, runtime in VARIANTS:
            if cfg != config:
                continue
            acc = (
                evaluate(small, data.test_x, data.test_y).accuracy
                if runtime == "onnx"
                else int8_accuracy(small, data, calib)
            )
            medians = {
                (t["batch"], t["threads"]): t["median_ms"] for t in times if t["runtime"] == runtime
            }
            params = sum(p.numel() for p in small.parameters())
            rows.append(
                dict(model=model_name, variant=name, params=params, accuracy=acc, ms=medians)
            )
    return rows


def table(rows: list[dict], batches, threads) -> str:
    cols = [(b, t) for b in batches for t in threads]
    head = "| model | variant | params | test acc | " + " | ".join(
        f"batch {b}, {t} thr" for b, t in cols
    )
    lines = [head + " |", "|---" * (4 + len(cols)) + "|"]
    dense = {r["model"]: r["ms"] for r in rows if r["variant"] == VARIANTS[0][0]}
    for r in rows:
        cells = [f"{_ms(r['ms'][c])} ({dense[r['model']][c] / r['ms'][c]:.2f}x)" for c in cols]
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['params']:,} | {r['accuracy']:.2%} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def _ms(ms: float) -> str:
    return f"{1000 * ms:,.0f} µs" if ms < 1 else f"{ms:,.2f} ms"


def targets(rows: list[dict]) -> list[str]:
    """The issue's targets, checked on this run's numbers (batch 256, 1 thread)."""
    ms = {(r["model"], r["variant"]): r["ms"].get((256, 1)) for r in rows}
    out = []
    if ("lenet5-caffe", "dense int8") in ms:
        f32, i8 = ms[("lenet5-caffe", "dense float32")], ms[("lenet5-caffe", "dense int8")]
        out.append(f"LeNet-5-Caffe int8 vs float32, batch 256, 1 thread: {f32 / i8:.2f}x (>= 1.5x)")
    for model in sorted({r["model"] for r in rows}):
        dense, pruned = ms[(model, "dense float32")], ms[(model, "50 % channels float32")]
        if dense and pruned:
            out.append(
                f"{model} 50 % channels vs dense, batch 256, 1 thread: {dense / pruned:.2f}x"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mlp,lenet5-caffe", help="comma-separated models")
    ap.add_argument("--data", default="fashion-mnist", help="the data set")
    ap.add_argument("--quick", action="store_true", help="mlp on digits, 1 thread, few runs")
    args = ap.parse_args(argv)
    batches, threads = (1, 256), (1, 2)
    timing = dict(warmup=10, repeats=50, min_seconds=1.0)
    if args.quick:
        args.models, args.data, threads = "mlp", "digits", (1,)
        timing = dict(warmup=2, repeats=5, min_seconds=0.0)
    cpu = cpu_info()
    print(f"machine: {machine()}; int8 flags: {', '.join(cpu['int8_flags']) or 'none'}\n")
    rows = []
    for model_name in args.models.split(","):
        rows += bench_model(model_name, args.data, batches, threads, **timing)
    print(table(rows, batches, threads))
    print("\n" + "\n".join(targets(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
