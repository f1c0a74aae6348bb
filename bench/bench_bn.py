"""BatchNorm re-estimation and bias correction after compression (issue 12, item 3).

For ResNet-18, MobileNetV3-Small and a small BN/residual/depthwise net of our own
(registered below, as a user would), on digits and Fashion-MNIST, at magnitude 50 % +
4-bit and at L1-channel 30 %: test accuracy plain, with BatchNorm re-estimation, with
bias correction, and with both. Both repairs use the first 1,024 training images.
Target: re-estimation recovers at least half of the lost accuracy in every row where
the loss exceeds 5 pp.

Run: python bench/bench_bn.py [--models resnet18 mobilenet_v3_small bnnet]
     [--data digits fashion-mnist] [--eval-subset N] [--epochs E] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from compress_core import CompressionConfig, run_on  # noqa: E402
from compress_core.eval.device import compute_device  # noqa: E402
from compress_core.io.models import MODELS, ModelEntry  # noqa: E402
from compress_core.train.baseline import get_baseline  # noqa: E402

SETTINGS = {
    "magnitude 50% + 4-bit": CompressionConfig(prune_rate=0.5, bits=4),
    "L1 channels 30%": CompressionConfig(prune_rate=0.3, prune_method="l1-structured"),
}
REPAIRS = {
    "plain": {},
    "BN re-est.": {"recalibrate_bn": True},
    "bias corr.": {"bias_correction": True},
    "both": {"recalibrate_bn": True, "bias_correction": True},
}


class BNNet(nn.Module):
    """Our own net: conv-BN stem, a residual block with a depthwise conv, a linear head."""

    def __init__(self, in_shape, num_classes):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_shape[0], 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU()
        )
        self.dw = nn.Sequential(
            nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False), nn.BatchNorm2d(32), nn.ReLU()
        )
        self.pw = nn.Sequential(nn.Conv2d(32, 32, 1, bias=False), nn.BatchNorm2d(32))
        self.down = nn.Sequential(
            nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU()
        )
        self.head = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.pw(self.dw(x)))  # the residual ties stem and pw channels
        x = self.down(torch.max_pool2d(x, 2))
        return self.head(x.mean(dim=(2, 3)))


if "bnnet" not in MODELS:
    MODELS.add("bnnet", ModelEntry(BNNet, 28, "bench: BN + residual + depthwise, 12K weights"))


def row(model_name: str, dataset: str, eval_subset, epochs) -> list[dict]:
    base, data = get_baseline(model_name, dataset, epochs=epochs)
    device = compute_device()
    base = base.to(device)  # compression math runs where the weights are
    rows = []
    for setting, config in SETTINGS.items():
        out = {"model": model_name, "data": dataset, "setting": setting}
        for label, extra in REPAIRS.items():
            started = time.perf_counter()
            r = run_on(base, data, dataclasses.replace(config, **extra), eval_subset)
            out[label] = 100 * r.accuracy
            out["baseline"] = 100 * r.baseline_accuracy
            out[f"{label} s"] = time.perf_counter() - started
        rows.append(out)
        print(out, flush=True)
    return rows


def table(rows: list[dict]) -> str:
    head = "| model | data | setting | baseline | plain | BN re-est. | bias corr. | both |"
    lines = [head + " recovered by BN re-est. | target |", "|" + "---|" * 10]
    for r in rows:
        lost = r["baseline"] - r["plain"]
        back = (r["BN re-est."] - r["plain"]) / lost if lost > 0 else float("nan")
        target = "n/a (loss ≤ 5 pp)" if lost <= 5 else ("met" if back >= 0.5 else "missed")
        cells = [r["model"], r["data"], r["setting"]]
        cells += [f"{r[k]:.2f}%" for k in ("baseline", "plain", "BN re-est.", "bias corr.", "both")]
        cells += ["—" if lost <= 0 else f"{100 * back:.0f}% of {lost:.1f} pp", target]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet18", "mobilenet_v3_small", "bnnet"])
    p.add_argument("--data", nargs="+", default=["digits", "fashion-mnist"])
    p.add_argument("--eval-subset", type=int, help="evaluate on a fixed subset of test images")
    p.add_argument("--epochs", type=int, help="baseline epochs (default: the engine's)")
    p.add_argument("--fashion-dir", help="folder with the Fashion-MNIST IDX files")
    p.add_argument("--quick", action="store_true", help="bnnet on digits, 2 epochs: a smoke run")
    a = p.parse_args(argv)
    if a.fashion_dir:
        os.environ["SLIMSCOPE_DATA"] = a.fashion_dir
    if a.quick:
        a.models, a.data, a.epochs = ["bnnet"], ["digits"], 2
    print(f"torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} threads, device {compute_device()}")  # fmt: skip
    rows, failed = [], 0
    for model_name in a.models:
        for dataset in a.data:
            started = time.perf_counter()
            try:
                rows += row(model_name, dataset, a.eval_subset, a.epochs)
            except Exception:  # report the others
                traceback.print_exc()
                failed += 1
            print(f"{model_name} on {dataset}: {time.perf_counter() - started:.1f} s", flush=True)
    print(table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
