"""Engine speed, measured side by side in one run (issue: compress_core speed targets).

1. One config (prune + quantize + evaluate + size) against one plain forward pass of
   the dense model over the same cached test tensors. Target: at most 1.3x.
2. The 77-config grid (rates 0,.1,...,.9,.95 x bits 2,3,4,5,6,8,32) with Slimscope
   against the straightforward way: torch.nn.utils.prune plus a DataLoader of
   ToTensor images at batch 64, evaluated per config. Target: at least 4x faster.

Run: python bench/bench_engine.py [--model lenet5] [--data fashion-mnist] [--quick]

Before/after: ``--against REV`` times the engine of git revision REV (extracted with
``git archive REV | tar -x``) and of this working tree, each in its own subprocess,
alternating which goes first, for ``--rounds`` rounds; it prints the medians side by side
with their ratio (this tree / REV; below 1 is faster). Measured there: one config, the
77-config sweep, training LeNet-5 on digits for 5 epochs (the training loop), two epochs
of masked fine-tuning, and loading a cached baseline (the disk cache). Both trees read
the same baseline cache, so their baselines are the same weights.

    flock /tmp/bench.lock python bench/bench_engine.py --against main --rounds 3
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.utils.prune as tprune

HERE = Path(__file__).resolve().parent.parent  # this working tree
# The engine under test: this tree, or (in an --against child) the tree named by --tree.
_tree = sys.argv[sys.argv.index("--tree") + 1] if "--tree" in sys.argv[:-1] else str(HERE)
sys.path.insert(0, _tree)

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


def engine_times(args) -> dict[str, float]:
    """The engine's own timings (seconds), as --against compares them between two trees."""
    from compress_core.train.baseline import train
    from compress_core.train.finetune import FinetuneConfig, finetune

    repeats = 3 if args.quick else 7
    out = {}
    started = time.perf_counter()
    base, data = get_baseline(args.model, args.data)
    out["load cached baseline"] = time.perf_counter() - started
    config = CompressionConfig(prune_rate=0.5, bits=4)
    run_on(base, data, config)  # warm-up, and the one-off cache of the unchanged first block
    out["plain dense forward"] = min(
        median_time(lambda b=b: plain_forward(base, data.test_x, b), repeats)
        for b in (EVAL_BATCH, 1000)
    )
    out["one config (prune+quantize+eval+size)"] = median_time(
        lambda: run_on(base, data, config), repeats
    )
    started = time.perf_counter()
    sweep(base, data, grid())
    out["77-config sweep"] = time.perf_counter() - started
    small, digits = get_baseline("lenet5", "digits")
    fresh = copy.deepcopy(small)
    started = time.perf_counter()
    train(fresh, digits, epochs=5, seed=0)
    out["train lenet5/digits 5 epochs"] = time.perf_counter() - started
    started = time.perf_counter()
    finetune(small, digits, CompressionConfig(prune_rate=0.7, bits=4), FinetuneConfig(epochs=2))
    out["fine-tune lenet5/digits 2 epochs"] = time.perf_counter() - started
    return out


def against(args) -> None:
    """Time REV's engine and this tree's in alternating subprocesses; print both and the ratio."""
    with tempfile.TemporaryDirectory(prefix="bench-against-") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(HERE), "archive", args.against],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        rev = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", args.against],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        trees = {f"{args.against} ({rev})": tmp, "working tree": str(HERE)}
        get_baseline(args.model, args.data)  # train now what is missing, not inside a timing
        get_baseline("lenet5", "digits")
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for r in range(args.rounds):
            order = list(trees) if r % 2 == 0 else list(reversed(trees))
            for name in order:
                cmd = [sys.executable, __file__, "--child", "--tree", trees[name]]
                cmd += ["--model", args.model, "--data", args.data] + ["--quick"] * args.quick
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
                runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
                load = os.getloadavg()[0]
                print(f"round {r + 1}/{args.rounds}: {name} done (load {load:.2f})", flush=True)
            if r + 1 < args.rounds:  # a table per round: an interrupted run still says something
                print_table(runs, args, r + 1)
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print_table(runs, args, args.rounds)


def print_table(runs: dict[str, list[dict[str, float]]], args, rounds: int) -> None:
    """Medians per tree, side by side, and their ratio (second tree / first)."""
    (a, old), (b, new) = runs.items()
    metrics = [k for k in old[0] if k in new[0]]
    print(f"\nmedians of {rounds} round(s), {args.model} on {args.data} (seconds)")
    print(f"{'measurement':<40}{a[:22]:>22}{b:>14}{'ratio':>8}")
    for k in metrics:
        t_old = statistics.median(x[k] for x in old)
        t_new = statistics.median(x[k] for x in new)
        print(f"{k:<40}{t_old:>22.4f}{t_new:>14.4f}{t_new / t_old:>7.2f}x")
    print("ratio = working tree / revision: below 1.00x is faster, above is slower\n", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--quick", action="store_true", help="fewer repeats and a 12-config naive grid")
    ap.add_argument("--against", metavar="REV", help="compare with git revision REV (before/after)")
    ap.add_argument("--rounds", type=int, default=3, help="--against: runs of each tree")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tree", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.against:
        return against(args)
    if args.child:
        import compress_core

        assert Path(compress_core.__file__).resolve().is_relative_to(Path(_tree).resolve())
        print(json.dumps(engine_times(args)))
        return None
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
