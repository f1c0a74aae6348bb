"""GPU against CPU for the engine, in one self-contained run (issue 12, item 4).

1. Prints the device and versions.
2. Trains (or loads) the LeNet-5 Fashion-MNIST baseline on the GPU when there is one.
3. Times the 77-point sweep (rates 0-0.95 x bits 2,3,4,5,6,8,32), each point compressed,
   sized by its exact artifact and evaluated on all test images, once with evaluation on
   the CPU and once on CUDA (``SLIMSCOPE_DEVICE``). Target on a GPU host: <= 0.5 s.
4. Checks that artifacts are bit-identical when the weights live on the CPU or on CUDA
   (compression then runs on the GPU copy), and that sweep sizes agree.
5. Prints a markdown table. Every step catches and prints its own failure.

Run (GPU host): python bench/bench_gpu.py --fashion-dir /path/to/fashion-mnist
Smoke (no GPU): python bench/bench_gpu.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

ROWS: list[tuple[str, str, str]] = []


def step(name: str, fn):
    """Run one step; print and record a failure instead of dying."""
    started = time.perf_counter()
    try:
        value = fn()
    except Exception as e:  # a bench on a borrowed host must report, not crash
        traceback.print_exc()
        ROWS.append((name, f"FAILED: {type(e).__name__}: {e}"[:200], ""))
        return None
    print(f"[{time.perf_counter() - started:7.2f} s] {name}", flush=True)
    return value


def args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="both", choices=["both", "cpu", "cuda"])
    p.add_argument("--fashion-dir", default=os.environ.get("SLIMSCOPE_DATA"))
    p.add_argument("--quick", action="store_true", help="digits, a 3x3 grid: a smoke run")
    p.add_argument("--epochs", type=int, help="baseline epochs (default: the engine's)")
    p.add_argument("--cache", help="baseline cache folder (default: a fresh temporary one)")
    return p


def sweep_seconds(base, data, configs, device: str):
    """Wall time of the sweep with evaluation on ``device``; returns (seconds, results)."""
    from compress_core.analysis.sweep import sweep
    from compress_core.eval.memo import MEMO

    os.environ["SLIMSCOPE_DEVICE"] = device
    MEMO.clear()
    sweep(base, data, configs[:2])  # warm up: CUDA context, kernels, baseline metrics
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    results = sweep(base, data, configs)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started, results


def artifacts_identical(base, configs) -> str:
    """Compress the same configs from CPU weights and from a CUDA copy; compare the bytes."""
    from compress_core import compress
    from compress_core.format.artifact import export

    gpu = copy.deepcopy(base).to("cuda")
    same = 0
    for config in configs:
        a, b = export(compress(base, config)), export(compress(gpu, config))
        same += a == b
        if a != b:
            print(f"  differs: {config.label()} ({len(a)} vs {len(b)} bytes)")
    return f"{same}/{len(configs)} identical"


def main(argv=None) -> int:
    a = args_parser().parse_args(argv)
    if a.fashion_dir:
        os.environ["SLIMSCOPE_DATA"] = a.fashion_dir
    os.environ["SLIMSCOPE_OFFLINE"] = "1"
    os.environ.setdefault("SLIMSCOPE_CACHE", a.cache or tempfile.mkdtemp(prefix="bench-gpu-"))
    cuda = torch.cuda.is_available()
    name = torch.cuda.get_device_name(0) if cuda else "none"
    print(f"torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, GPU: {name}")
    devices = {"both": ["cpu", "cuda"], "cpu": ["cpu"], "cuda": ["cuda"]}[a.device]
    if not cuda and "cuda" in devices:
        print("no CUDA device here: timing the CPU only")
        devices = ["cpu"]

    from compress_core.analysis.sweep import GRID_BITS, GRID_RATES, grid
    from compress_core.train.baseline import get_baseline

    dataset = "digits" if a.quick else "fashion-mnist"
    os.environ["SLIMSCOPE_DEVICE"] = "cuda" if cuda and "cuda" in devices else "cpu"
    got = step(
        f"baseline lenet5 {dataset} (trained on {os.environ['SLIMSCOPE_DEVICE']})",
        lambda: get_baseline("lenet5", dataset, epochs=1 if a.quick else a.epochs),
    )
    if got is None:
        return report(dataset)
    base, data = got
    configs = grid((0.0, 0.5, 0.9), (4, 8, 32)) if a.quick else grid(GRID_RATES, GRID_BITS)
    timed = {}
    for device in devices:
        out = step(f"sweep {len(configs)} configs, eval on {device}", lambda d=device: (
            sweep_seconds(base, data, configs, d)
        ))  # fmt: skip
        if out is not None:
            timed[device] = out
            seconds, results = out
            ms = 1000 * seconds / len(configs)
            ROWS.append((f"{len(configs)}-point sweep, evaluation on {device}", f"{seconds:.3f} s",
                         f"{ms:.1f} ms a config"))  # fmt: skip
    if len(timed) == 2:
        cpu, gpu = timed["cpu"][1], timed["cuda"][1]
        sizes = sum(r.artifact_bytes == s.artifact_bytes for r, s in zip(cpu, gpu, strict=True))
        agree = sum(
            abs(r.accuracy - s.accuracy) * r.eval_images <= 2 for r, s in zip(cpu, gpu, strict=True)
        )
        ROWS.append(("sweep artifact bytes cpu = cuda", f"{sizes}/{len(cpu)}", ""))
        ROWS.append(("sweep accuracy within 2 images", f"{agree}/{len(cpu)}", ""))
        ROWS.append(("speed-up of the sweep", f"{timed['cpu'][0] / timed['cuda'][0]:.1f}x", ""))
    if cuda and "cuda" in devices:
        picked = configs[:: max(1, len(configs) // 12)]
        same = step("artifacts from CPU vs CUDA weights", lambda: artifacts_identical(base, picked))
        if same is not None:
            ROWS.append(("artifacts, weights on CPU vs on CUDA", same, "compress on each device"))
    return report(dataset)


def report(dataset: str) -> int:
    print(f"\n| what (LeNet-5, {dataset}) | result | note |\n|---|---|---|")
    for row in ROWS:
        print("| " + " | ".join(row) + " |")
    return 1 if any(r[1].startswith("FAILED") for r in ROWS) else 0


if __name__ == "__main__":
    sys.exit(main())
