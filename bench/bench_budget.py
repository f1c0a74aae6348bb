"""The accuracy budget against the best uniform setting (issue: analysis, Budget page).

For each model and allowed drop X, searches the smallest per-layer plan (rates and bits)
whose validation accuracy stays >= baseline - X pp, and prints its bytes next to the
smallest uniform grid setting that meets the same delta, with both test accuracies.
The search must never be larger than the uniform setting; the script exits 1 if it is.

Run: python bench/bench_budget.py [--models lenet5,mlp] [--data fashion-mnist]
     [--drops 0.5,1,2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_deep_compression import machine  # noqa: E402

from compress_core import CompressionConfig  # noqa: E402
from compress_core.analysis.budget import Budget, search  # noqa: E402
from compress_core.train.baseline import get_baseline  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="lenet5,mlp", help="comma-separated models")
    ap.add_argument("--data", default="fashion-mnist", help="the data set")
    ap.add_argument("--drops", default="0.5,1,2", help="allowed drops in pp, comma-separated")
    args = ap.parse_args()
    print(f"machine: {machine()}\n")
    common = CompressionConfig(
        quant="kmeans", granularity="per_tensor", huffman=True, skip_first_last=False
    )
    print(
        "| model | allowed drop | per-layer plan | bytes | best uniform | bytes | saved "
        "| test acc (plan / uniform / baseline) | search |\n|---|---|---|---|---|---|---|---|---|"
    )
    larger = False
    for model_name in args.models.split(","):
        base, data = get_baseline(model_name, args.data)
        for drop in (float(d) for d in args.drops.split(",")):
            r = search(base, data, Budget(max_drop_pp=drop), common)
            if not r.met:
                print(f"| {model_name} | {drop:g} pp | not met: closest {r.closest.label} |")
                continue
            c, u = r.best, r.best_uniform
            saved = 1 - c.artifact_bytes / u.artifact_bytes if u else float("nan")
            larger |= u is not None and c.artifact_bytes > u.artifact_bytes
            print(
                f"| {model_name} | {drop:g} pp | {c.label} | {c.artifact_bytes:,} "
                f"| {u.label if u else '-'} | {u.artifact_bytes if u else 0:,} | {saved:.0%} "
                f"| {r.test.accuracy:.2%} / {r.uniform_test.accuracy if u else 0:.2%} / "
                f"{r.test.baseline_accuracy:.2%} | {len(r.tried)} models, {r.seconds:.0f} s |",
                flush=True,
            )
    print("\nper-layer plan never larger than the best uniform: " + ("NO" if larger else "yes"))
    return 1 if larger else 0


if __name__ == "__main__":
    sys.exit(main())
