"""Smaller than Deep Compression (issue 14, part 3): ratio against accuracy, method by method.

For LeNet-300-100 (``mlp``) and LeNet-5-Caffe (``lenet5-caffe``) on Fashion-MNIST
(Debian's package), from the cached 5-epoch baselines, runs:

- ``dc-paper``: the Deep Compression preset (global magnitude pruning, k-means, Huffman);
- ``prune+kmeans``: ``smaller_preset``: a pruning rate per layer reached in steps with
  masked retraining, 3-bit k-means with the centroids fine-tuned, biases at bfloat16's
  precision, entropy-coded;
- ``prune+ecq``: the same pruned model (the prune stage is shared), entropy-constrained
  uniform codes trained with a straight-through estimator;
- ``prune+sws``: soft weight-sharing of the same pruned model's kept weights;
- ``sws`` (only with ``--methods``): soft weight-sharing from the dense model (Ullrich et
  al. 2017); left out by default: on the 2-core machine it took 11 minutes on LeNet-5-Caffe
  for 15x at 79.6 % (README), so it cannot help a target and would eat the time budget;

and, for the curve, ``prune+kmeans`` with every layer keeping ``--curve`` times its share.
Each gives the exact artifact's ratio (dense fp32 bytes / artifact bytes, biases,
codebooks, indexes and header included) and its test accuracy, beside a dense model
trained from scratch for as many epochs in all as the longest method (baseline epochs +
that method's own; cached baselines are used where they exist, others are trained once
and cached). After each model's methods, where each method's bytes go (``artifact_breakdown``:
positions, codes, codebooks/scales, biases and other float tensors, header); ``--json``
has them as each point's ``breakdown``, ``--out`` as ``bytes_<part>`` columns.

Targets, at most 0.5 pp below that dense model: mlp >= 80x, lenet5-caffe >= 150x; the
table's methods within 20 minutes on the 2-core machine with cached baselines (the curve's
points and the dense-as-long training are timed apart, and printed).

Run: python bench/bench_smaller.py [--models mlp,lenet5-caffe] [--data fashion-mnist]
     [--methods dc-paper,prune+kmeans,prune+ecq,prune+sws,sws] [--curve 0.7,1.4]
     [--json] [--out points.csv] [--quick]

``--quick`` runs every method for one epoch per stage on ``digits`` (a smoke test: no
targets are checked).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compress_core.eval.evaluate import evaluate  # noqa: E402
from compress_core.format.artifact import (  # noqa: E402
    COMPONENTS,
    artifact_breakdown,
    artifact_size,
    export,
    load_compressed,
)
from compress_core.io.data import available_datasets  # noqa: E402
from compress_core.train.baseline import baseline_info, get_baseline  # noqa: E402
from compress_core.train.deep_compression import (  # noqa: E402
    DeepCompressionConfig,
    deep_compression,
    preset,
    prune_stage,
    smaller_preset,
)
from compress_core.train.soft_sharing import SoftSharingConfig, soft_weight_sharing  # noqa: E402

TARGETS = {"mlp": 80.0, "lenet5-caffe": 150.0}
MAX_BELOW_PP = 0.5
BUDGET_S = 20 * 60
METHODS = ("dc-paper", "prune+kmeans", "prune+ecq", "prune+sws", "sws")
DEFAULT_METHODS = "dc-paper,prune+kmeans,prune+ecq,prune+sws"
QUICK = dict(prune_epochs=1, prune_steps=2, centroid_epochs=1)
SWS = SoftSharingConfig(epochs=4, bias_mantissa=7)  # from the dense model
SWS_PRUNED = SoftSharingConfig(epochs=2, components=15, zero_mix=0.3, bias_mantissa=7)


@dataclass
class Point:
    """One compressed model: a row of the table and a point of the curve."""

    model: str
    method: str
    settings: str
    epochs: int  # training epochs in all: the baseline's and the method's own
    artifact_bytes: int
    dense_bytes: int
    accuracy: float  # test top-1, 0..1
    seconds: float  # this method's own run (a shared prune stage counts where first run)
    curve_only: bool = False  # a point of the curve, not one of the table's methods
    breakdown: dict[str, int] = field(default_factory=dict)  # artifact_breakdown: bytes by part

    @property
    def ratio(self) -> float:
        return self.dense_bytes / self.artifact_bytes

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "ratio": self.ratio}


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
        f"threads), python {platform.python_version()}, load average {load:.2f}"
    )


def measured(model_name, method, settings, epochs, run: Callable, dense, data, curve_only=False):
    """Run ``run()`` -> compressed model; score the model read back from its artifact."""
    started = time.perf_counter()
    model = run()
    seconds = time.perf_counter() - started
    blob = export(model)
    back = load_compressed(blob)
    assert export(back) == blob, "artifact does not round-trip"
    assert artifact_size(model).artifact_bytes == len(blob)
    acc = evaluate(back, data.test_x, data.test_y).accuracy
    parts = artifact_breakdown(model)
    assert sum(parts.values()) == len(blob)
    point = Point(
        model_name, method, settings, epochs, len(blob), dense, acc, seconds, curve_only, parts
    )
    print(
        f"  {method:<14} {point.ratio:7.1f}x  {acc:.2%}  {len(blob):>9,} B  "
        f"{epochs:>2} epochs  {seconds:5.0f} s  {settings}",
        flush=True,
    )
    return point


def scaled(dc: DeepCompressionConfig, factor: float) -> DeepCompressionConfig:
    """``dc`` with every layer keeping ``factor`` times its share of weights."""
    rates = tuple((g, max(0.0, 1 - (1 - r) * factor)) for g, r in dc.layer_rates)
    return dataclasses.replace(dc, layer_rates=rates)


def bench_model(
    model_name: str, dataset: str, quick: bool, curve: list[float], methods: list[str]
) -> dict:
    started = time.perf_counter()
    base, data = get_baseline(model_name, dataset)
    base_epochs = baseline_info(base)["epochs"]
    dense = 4 * sum(p.numel() for p in base.parameters())
    print(f"\n{model_name} on {dataset}: baseline {base_epochs} epochs, {dense:,} B in fp32")
    extra = QUICK if quick else {}
    sws = dataclasses.replace(SWS, epochs=1) if quick else SWS
    sws_pruned = dataclasses.replace(SWS_PRUNED, epochs=1) if quick else SWS_PRUNED
    paper, smaller = preset(model_name, **extra), smaller_preset(model_name, **extra)
    ecq = dataclasses.replace(smaller, quant="ecq", conv_bits=4, fc_bits=4)
    dc_epochs = base_epochs + smaller.prune_epochs + smaller.centroid_epochs

    def dc_run(dc):
        return lambda: deep_compression(base, data, dc)[0]

    def pruned_sws():
        return soft_weight_sharing(prune_stage(base, data, smaller)[0], data, sws_pruned)

    runs = {  # method -> (settings, epochs in all, run)
        "dc-paper": (
            paper.label(),
            base_epochs + paper.prune_epochs + paper.centroid_epochs,
            dc_run(paper),
        ),
        "prune+kmeans": (smaller.label(), dc_epochs, dc_run(smaller)),
        "prune+ecq": (ecq.label(), dc_epochs, dc_run(ecq)),
        "prune+sws": (
            f"{smaller.label()} -> {sws_pruned.components} components, tau {sws_pruned.tau}, "
            f"zero share {sws_pruned.zero_mix}",
            base_epochs + smaller.prune_epochs + sws_pruned.epochs,
            pruned_sws,
        ),
        "sws": (
            f"{sws.components} components, tau {sws.tau}, zero share {sws.zero_mix}",
            base_epochs + sws.epochs,
            lambda: soft_weight_sharing(base, data, sws),
        ),
    }
    points = [measured(model_name, m, *runs[m], dense, data) for m in methods]
    for factor in [] if quick else curve:
        dc = scaled(smaller, factor)
        points.append(
            measured(
                model_name,
                f"prune+kmeans x{factor:g}",
                dc.label(),
                dc_epochs,
                dc_run(dc),
                dense,
                data,
                curve_only=True,
            )
        )
    print(breakdown_table(points))
    longest = max(p.epochs for p in points)
    was = time.perf_counter()
    long_model = get_baseline(model_name, dataset, epochs=longest)[0]
    long_acc = baseline_info(long_model)["test_accuracy"]
    baseline_s = time.perf_counter() - was
    print(f"  dense, trained {longest} epochs from scratch: {long_acc:.2%}")
    return {
        "model": model_name,
        "dataset": dataset,
        "baseline_accuracy": baseline_info(base)["test_accuracy"],
        "dense_bytes": dense,
        "dense_long_epochs": longest,
        "dense_long_accuracy": long_acc,
        "points": points,
        "seconds": time.perf_counter() - started,
        "dense_long_seconds": baseline_s,
    }


PART_TITLES = {
    "positions": "positions",
    "codes": "codes",
    "scales_codebooks": "codebooks/scales",
    "floats": "biases, other floats",
    "header": "header",
}


def breakdown_table(points: list[Point]) -> str:
    """Where each method's bytes go (its table point; the curve's points are left out)."""
    assert set(PART_TITLES) == set(COMPONENTS), "a new part of the artifact needs a title"
    lines = [f"  {'bytes by part':<14} " + " | ".join([*PART_TITLES.values(), "total"])]
    for p in points:
        if not p.curve_only:
            cells = [
                f"{p.breakdown[c]:,} ({p.breakdown[c] / p.artifact_bytes:.0%})" for c in PART_TITLES
            ]
            lines.append(f"  {p.method:<14} " + " | ".join([*cells, f"{p.artifact_bytes:,}"]))
    return "\n".join(lines)


def best(result: dict) -> Point | None:
    """The largest ratio among the methods within MAX_BELOW_PP of the dense-as-long model."""
    floor = result["dense_long_accuracy"] - MAX_BELOW_PP / 100
    ok = [p for p in result["points"] if not p.curve_only and p.accuracy >= floor]
    return max(ok, key=lambda p: p.ratio, default=None)


def markdown(results: list[dict]) -> str:
    lines = [
        "| model | method | epochs | bytes | ratio | test acc | dense as long | Δ pp | time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for p in r["points"]:
            if p.curve_only:
                continue
            delta = 100 * (p.accuracy - r["dense_long_accuracy"])
            lines.append(
                f"| {r['model']} | {p.method} | {p.epochs} | {p.artifact_bytes:,} "
                f"| {p.ratio:.1f}x | {p.accuracy:.2%} | {r['dense_long_accuracy']:.2%} "
                f"({r['dense_long_epochs']} ep) | {delta:+.2f} | {p.seconds:.0f} s |"
            )
    return "\n".join(lines)


def curve_table(results: list[dict]) -> str:
    lines = ["| model | point | ratio | test acc | settings |", "|---|---|---|---|---|"]
    for r in results:
        for p in sorted(r["points"], key=lambda p: p.ratio):
            lines.append(
                f"| {r['model']} | {p.method} | {p.ratio:.1f}x | {p.accuracy:.2%} | {p.settings} |"
            )
    return "\n".join(lines)


def verdicts(results: list[dict], quick: bool) -> list[str]:
    out = []
    for r in results:
        target = TARGETS.get(r["model"])
        chosen = best(r)
        reach = (
            f"{chosen.method} {chosen.ratio:.1f}x at {chosen.accuracy:.2%}"
            if chosen
            else f"no method within {MAX_BELOW_PP} pp"
        )
        met = bool(chosen and target and chosen.ratio >= target and not quick)
        label = "not checked (--quick)" if quick or target is None else "MET" if met else "MISSED"
        floor = r["dense_long_accuracy"] - MAX_BELOW_PP / 100
        out.append(
            f"{r['model']}: target >= {target or float('nan'):.0f}x at >= {floor:.2%} "
            f"(dense {r['dense_long_epochs']} epochs {r['dense_long_accuracy']:.2%} - "
            f"{MAX_BELOW_PP} pp): best {reach} -> {label}"
        )
    return out


def csv_row(p: Point, dataset: str) -> dict:
    """A point as a flat CSV row: the breakdown as one ``bytes_<part>`` column per part."""
    row = {k: v for k, v in p.to_dict().items() if k != "breakdown"}
    return {**row, **{f"bytes_{c}": n for c, n in p.breakdown.items()}, "dataset": dataset}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mlp,lenet5-caffe", help="comma-separated models")
    ap.add_argument("--data", default=None, help="data set (fashion-mnist; --quick: digits)")
    ap.add_argument(
        "--methods", default=DEFAULT_METHODS, help=f"comma-separated, of {', '.join(METHODS)}"
    )
    ap.add_argument("--curve", default="0.7,1.4", help="kept-share factors for extra points")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--quick", action="store_true", help="digits, 1 epoch per stage: a smoke test")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--out", help="write every point (table and curve) to this CSV file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset = args.data or ("digits" if args.quick else "fashion-mnist")
    curve = [float(f) for f in args.curve.split(",") if f]
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        ap.error(
            f"--methods: unknown {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(METHODS)}"
        )
    print(f"machine: {machine()} at start")
    status = available_datasets()
    if status.get(dataset) is not True:
        print(f"{dataset}: not present ({status.get(dataset, 'unknown data set')})")
        return 2
    started = time.perf_counter()
    results = [bench_model(m, dataset, args.quick, curve, methods) for m in args.models.split(",")]
    total = time.perf_counter() - started
    training = sum(r["dense_long_seconds"] for r in results)
    curve_s = sum(p.seconds for r in results for p in r["points"] if p.curve_only)
    table_s = total - training - curve_s
    if args.out:
        with open(args.out, "w", newline="") as f:
            rows = [csv_row(p, r["dataset"]) for r in results for p in r["points"]]
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    lines = verdicts(results, args.quick)
    timing = (
        f"total {total:.0f} s: the table's methods {table_s:.0f} s (budget {BUDGET_S} s -> "
        f"{'within' if table_s <= BUDGET_S else 'OVER'} budget with cached baselines), "
        f"the curve's points {curve_s:.0f} s, dense-as-long baselines {training:.0f} s; "
        f"machine: {machine()} at the end"
    )
    if args.json:
        payload = [
            {
                **{k: v for k, v in r.items() if k != "points"},
                "points": [p.to_dict() for p in r["points"]],
            }
            for r in results
        ]
        print(json.dumps({"results": payload, "verdicts": lines, "timing": timing}, indent=1))
    else:
        print(f"\n{markdown(results)}\n\nratio-accuracy curve:\n\n{curve_table(results)}\n")
        print("\n".join(lines))
        print(timing)
    if args.quick:
        return 0
    met = all(
        (b := best(r)) is not None and b.ratio >= TARGETS.get(r["model"], float("inf"))
        for r in results
    )
    return 0 if met and table_s <= BUDGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
