"""Engine speed, measured side by side in one run (issue: compress_core speed targets).

1. One config (prune + quantize + evaluate + size) against one plain forward pass of
   the dense model over the same cached test tensors. Target: at most 1.3x.
2. The 77-config grid (rates 0,.1,...,.9,.95 x bits 2,3,4,5,6,8,32) with Slimscope
   against the straightforward way: torch.nn.utils.prune plus a DataLoader of
   ToTensor images at batch 64, evaluated per config. Target: at least 4x faster.

Run: python bench/bench_engine.py [--model lenet5] [--data fashion-mnist] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import gzip
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.utils.prune as tprune

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compress_core import CompressionConfig, run_on  # noqa: E402
from compress_core.analysis.sweep import GRID_BITS, GRID_RATES, grid, sweep  # noqa: E402
from compress_core.core.layers import select_layers, weight_layers  # noqa: E402
from compress_core.eval.evaluate import EVAL_BATCH  # noqa: E402
from compress_core.train.baseline import get_baseline  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist")


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain_forward(model, x, batch):
    with torch.inference_mode():
        for xb in x.split(batch):
            model(xb)


def naive_loader(data, batch_size=64):
    """torchvision's FashionMNIST with ToTensor + Normalize, read through PIL per image."""
    import torchvision
    from torchvision import transforms

    root = Path(tempfile.mkdtemp(prefix="bench-fmnist-"))
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in FASHION.glob("*.gz"):
        with gzip.open(f) as src, open(raw / f.stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    mean, std = data.mean, data.std  # the same normalisation the engine uses
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    test = torchvision.datasets.FashionMNIST(root, train=False, transform=tf)
    return torch.utils.data.DataLoader(test, batch_size=batch_size, shuffle=False)


def naive_config(base, loader, config):
    """The straightforward way: copy, torch prune per layer, fake-quantize, loop a DataLoader."""
    model = copy.deepcopy(base)
    names, _ = select_layers(model, config)
    layers = weight_layers(model)
    for n in names:
        if config.prune_rate > 0:
            tprune.l1_unstructured(layers[n], "weight", amount=config.prune_rate)
            tprune.remove(layers[n], "weight")
        if config.bits != 32:
            with torch.no_grad():
                w = layers[n].weight
                lo = w.amin(dim=tuple(range(1, w.dim())), keepdim=True)
                hi = w.amax(dim=tuple(range(1, w.dim())), keepdim=True)
                scale = ((hi - lo) / (2**config.bits - 1)).clamp_min(1e-12)
                q = torch.round((w - lo) / scale) * scale + lo
                w.copy_(torch.where(w == 0, w, q))
    correct = total = 0
    model.eval()
    with torch.no_grad():
        for xb, yb in loader:
            correct += (model(xb).argmax(1) == yb).sum().item()
            total += len(yb)
    return correct / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--quick", action="store_true", help="fewer repeats and a 12-config naive grid")
    args = ap.parse_args()
    torch.manual_seed(0)
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"threads, torch {torch.__version__}, python {platform.python_version()}"
    )
    base, data = get_baseline(args.model, args.data)
    x = data.test_x
    print(f"{args.model} on {args.data}: {len(x):,} test images, baseline cached\n")

    repeats = 3 if args.quick else 7
    config = CompressionConfig(prune_rate=0.5, bits=4)
    run_on(base, data, config)  # warm-up, and the one-off cache of the unchanged first block
    # The reference is the faster of two sensible batch sizes, so the ratio is conservative.
    t_forward = min(
        median_time(lambda b=b: plain_forward(base, x, b), repeats) for b in (EVAL_BATCH, 1000)
    )
    t_config = median_time(lambda: run_on(base, data, config), repeats)
    ratio1 = t_config / t_forward
    print("1) one config vs one plain forward pass")
    print(f"   plain forward (dense, best batch size):    {t_forward * 1000:8.1f} ms")
    print(f"   prune + quantize + evaluate + size:       {t_config * 1000:8.1f} ms")
    print(f"   ratio: {ratio1:.2f}x  (target <= 1.3x) -> {'PASS' if ratio1 <= 1.3 else 'FAIL'}\n")

    configs = grid()
    start = time.perf_counter()
    sweep(base, data, configs)
    t_ours = time.perf_counter() - start
    naive = configs if not args.quick else configs[:: len(configs) // 12][:12]
    loader = naive_loader(data)
    start = time.perf_counter()
    for c in naive:
        naive_config(base, loader, c)
    t_naive = (time.perf_counter() - start) * len(configs) / len(naive)
    ratio2 = t_naive / t_ours
    note = "" if len(naive) == len(configs) else f" (extrapolated from {len(naive)} configs)"
    print(f"2) {len(configs)}-config grid ({len(GRID_RATES)} rates x bits {GRID_BITS})")
    print(f"   Slimscope sweep:                          {t_ours:8.1f} s")
    print(f"   torch.nn.utils.prune + DataLoader(64):    {t_naive:8.1f} s{note}")
    print(f"   speed-up: {ratio2:.1f}x  (target >= 4x) -> {'PASS' if ratio2 >= 4 else 'FAIL'}")


if __name__ == "__main__":
    main()
