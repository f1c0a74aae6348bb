"""The Learn page's "where the bytes go" numbers, measured: torch.save against the artifact.

For each model, prunes by magnitude (per layer, first and last layer kept) and quantizes to 4
bits, then prints the bytes of torch.save of the dense model, of the pruned model and of the
model with torch.nn.utils.prune masks, against the Slimscope artifact at fixed width and
entropy coded (the real artifact); then the artifact's bytes by component and the per-layer
error table. Sizes are exact byte counts (no timing), so the numbers do not depend on the
machine's load.

Run: python bench/bench_learn.py [--models lenet5,mlp] [--data digits] [--rate 0.9] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_deep_compression import machine  # noqa: E402

from compress_core import CompressionConfig, compress  # noqa: E402
from compress_core.analysis.lessons import torch_save_sizes  # noqa: E402
from compress_core.eval.errors import calibration_batch, layer_errors  # noqa: E402
from compress_core.format.breakdown import bytes_by_component  # noqa: E402
from compress_core.train.baseline import get_baseline  # noqa: E402


def row(model: str, dataset: str, rate: float) -> tuple[str, str, str]:
    base, data = get_baseline(model, dataset)
    config = CompressionConfig(prune_rate=rate, bits=4)
    small = compress(base, config)
    s = torch_save_sizes(base, small)
    huffman = s["artifact"]  # the artifact: entropy-coded where that is smaller
    s["artifact"] = sum(bytes_by_component(small, coded=False).values())  # fixed width
    sizes = (
        f"| {model} | {dataset} | {config.label()} | {s['dense']:,} | {s['pruned']:,} "
        f"({s['pruned'] / s['dense']:.2f}x) | {s['prune_masks']:,} "
        f"({s['prune_masks'] / s['dense']:.2f}x) | {s['artifact']:,} "
        f"({s['artifact'] / s['dense']:.3f}x) | {huffman:,} ({huffman / s['dense']:.3f}x) |"
    )
    parts = bytes_by_component(small)
    split = f"{model}: " + ", ".join(f"{k} {v:,}" for k, v in parts.items())
    errors = layer_errors(base, small, calibration_batch(data))
    return sizes, split, errors.to_string(index=False, float_format="{:.4g}".format)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="lenet5,mlp", help="comma-separated models")
    ap.add_argument("--data", default="digits", help="the data set")
    ap.add_argument("--rate", type=float, default=0.9, help="magnitude pruning rate")
    ap.add_argument("--quick", action="store_true", help="LeNet-5 only (well under a minute)")
    args = ap.parse_args()
    models = ["lenet5"] if args.quick else args.models.split(",")
    print(f"machine: {machine()}\n")
    print(
        "| model | data | setting | torch.save dense | torch.save pruned | torch.save + prune "
        "masks | artifact | artifact + Huffman |\n|---|---|---|---|---|---|---|---|"
    )
    rows = [row(m, args.data, args.rate) for m in models]
    for sizes, _, _ in rows:
        print(sizes)
    print("\nbytes by component (no Huffman):")
    for _, split, _ in rows:
        print(f"  {split}")
    for m, (_, _, errors) in zip(models, rows, strict=True):
        print(f"\nper-layer error, {m}:\n{errors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
