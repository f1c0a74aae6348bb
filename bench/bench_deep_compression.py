"""Deep Compression against the paper's Table 1 (issue 5: recovering accuracy).

Runs the preset (prune + retrain -> k-means + centroid fine-tuning -> Huffman) on
LeNet-300-100 (``mlp``) and Caffe's LeNet-5 (``lenet5-caffe``), on Fashion-MNIST and
on MNIST when its files are present, and prints for each: baseline accuracy, then the
accuracy, exact artifact bytes and ratio against the dense fp32 model after every
stage, beside Han, Mao & Dally (ICLR 2016): LeNet-300-100 1070 KB -> 27 KB (40x),
LeNet-5 1720 KB -> 44 KB (39x), on MNIST.

Target: an artifact at least 40x smaller with at most 0.5 pp accuracy loss, for both
models; the whole script within 15 minutes on 2 CPU cores.

Run: python bench/bench_deep_compression.py [--data fashion-mnist,mnist]
     [--models mlp,lenet5-caffe] [--prune-rate 0.92] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compress_core.format.artifact import export, load_compressed  # noqa: E402
from compress_core.io.data import available_datasets  # noqa: E402
from compress_core.train.baseline import baseline_info, get_baseline  # noqa: E402
from compress_core.train.deep_compression import (  # noqa: E402
    PAPER,
    deep_compression,
    format_report,
    preset,
)

TARGET_RATIO = 40.0
MAX_LOSS_PP = 0.5
BUDGET_S = 15 * 60


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} "
        f"threads), python {platform.python_version()}, load average {load:.2f} at start"
    )


def show_epoch(p) -> None:
    if p.step == p.steps:
        print(
            f"    {p.stage:<9} epoch {p.epoch}/{p.epochs}  loss {p.loss:.4f}  "
            f"val {p.val_accuracy:.2%}  sparsity {p.sparsity:.1%}",
            flush=True,
        )


def bench_one(model_name: str, dataset: str, quick: bool, prune_rate: float | None) -> dict:
    started = time.perf_counter()
    base, data = get_baseline(model_name, dataset)
    baseline_s = time.perf_counter() - started
    overrides = dict(prune_epochs=1, centroid_epochs=1, prune_steps=1) if quick else {}
    if prune_rate is not None:
        overrides["prune_rate"] = prune_rate
    dc = preset(model_name, **overrides)
    print(f"\n{model_name} on {dataset}: {dc.label()} (baseline ready in {baseline_s:.0f} s)")
    started = time.perf_counter()
    model, report = deep_compression(base, data, dc, progress=show_epoch)
    pipeline_s = time.perf_counter() - started
    blob = export(model)
    assert len(blob) == report.final.artifact_bytes, "artifact length differs from the report"
    assert export(load_compressed(blob)) == blob, "artifact does not round-trip"
    print(format_report(report))
    final, base_stage = report.final, report.baseline
    loss_pp = 100 * (base_stage.accuracy - final.accuracy)
    # The retraining is extra training: a dense model trained as many epochs in all is the
    # fairer reference, so it is reported (and held to the same target) too.
    epochs = baseline_info(base)["epochs"] + dc.prune_epochs + dc.centroid_epochs
    started = time.perf_counter()
    longer = baseline_info(get_baseline(model_name, dataset, epochs=epochs)[0])
    baseline_s += time.perf_counter() - started
    long_loss_pp = 100 * (longer["test_accuracy"] - final.accuracy)
    ok = final.ratio >= TARGET_RATIO and max(loss_pp, long_loss_pp) <= MAX_LOSS_PP
    print(
        f"  dense, trained {epochs} epochs like the compressed one: "
        f"{longer['test_accuracy']:.2%} ({-long_loss_pp:+.2f} pp for the compressed model)\n"
        f"  target >= {TARGET_RATIO:.0f}x and <= {MAX_LOSS_PP} pp loss against both: "
        f"{final.ratio:.1f}x, {-loss_pp:+.2f} / {-long_loss_pp:+.2f} pp -> "
        f"{'PASS' if ok else 'FAIL'}   ({pipeline_s:.0f} s)"
    )
    return {
        "report": report,
        "ok": ok,
        "seconds": pipeline_s,
        "baseline_s": baseline_s,
        "longer": (epochs, longer["test_accuracy"]),
    }


def markdown(rows: list[dict]) -> str:
    head = (
        "| model | data | baseline acc | dense, trained as long | compressed acc | fp32 bytes "
        "| pruned (ratio) | + k-means (ratio) | + Huffman (ratio) | paper |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for row in rows:
        r = row["report"]
        b, p, q, h = r.stages
        paper = PAPER.get(r.model)
        theirs = (
            f"{paper.network} MNIST: {paper.error_before} % -> {paper.error_after} % error, "
            + " / ".join(f"{paper.ratios[s]:.0f}x" for s in ("prune", "quantize", "huffman"))
            if paper
            else ""
        )
        lines.append(
            f"| {r.model} | {r.dataset} | {b.accuracy:.2%} "
            f"| {row['longer'][1]:.2%} ({row['longer'][0]} epochs) | {h.accuracy:.2%} "
            f"({100 * (h.accuracy - b.accuracy):+.2f} pp) | {b.dense_bytes:,} "
            f"| {p.artifact_bytes:,} ({p.ratio:.1f}x) | {q.artifact_bytes:,} ({q.ratio:.1f}x) "
            f"| {h.artifact_bytes:,} ({h.ratio:.1f}x) | {theirs} |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="fashion-mnist,mnist", help="comma-separated data sets")
    ap.add_argument("--models", default="mlp,lenet5-caffe", help="comma-separated models")
    ap.add_argument("--quick", action="store_true", help="1 epoch per stage: a smoke test")
    ap.add_argument("--prune-rate", type=float, help="share of weights removed (preset: 0.93)")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    started = time.perf_counter()
    status = available_datasets()
    rows = []
    for dataset in args.data.split(","):
        if status.get(dataset) is not True:
            print(f"\n{dataset}: not present, skipped ({status.get(dataset, 'unknown data set')})")
            continue
        for model_name in args.models.split(","):
            rows.append(bench_one(model_name, dataset, args.quick, args.prune_rate))
    total = time.perf_counter() - started
    training = sum(r["baseline_s"] for r in rows)
    print(f"\n{markdown(rows)}\n" if rows else "\nnothing was run")
    passed = all(r["ok"] for r in rows) and bool(rows)
    print(
        f"all targets: {'PASS' if passed else 'FAIL'}; total {total:.0f} s "
        f"(baselines {training:.0f} s, budget {BUDGET_S} s) -> "
        f"{'within' if total <= BUDGET_S else 'OVER'} budget"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
