"""A fine-tuning sweep in this process against a 2-worker local Ray cluster on the same machine.

LeNet-5 on Fashion-MNIST, magnitude pruning at 6 rates, 1 epoch of masked retraining each
(``finetune_sweep``), every trained model evaluated on the 10,000 test images. Fairness:
each Ray worker runs torch with 1 thread, and so does the in-process run it is compared
with (``torch.set_num_threads(1)``): 2 workers then use 2 cores against 1. The in-process
run with 2 threads (all cores to one process, the dashboard's alternative) is timed too.
Fine-tuned models go to a fresh temporary cache, so nothing is loaded from an earlier run.
The script checks that Ray's results equal the in-process ones (exits 1 if not).

Per-task overhead: (Ray wall time x workers - the tasks' own time) / tasks, and the round
trip of a no-op task on the warm cluster.

Run: flock /tmp/bench.lock python bench/bench_ray.py [--quick]
     (--quick: digits, 2 rates; well under a minute)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from bench_deep_compression import machine  # noqa: E402

from compress_core import CompressionConfig  # noqa: E402
from compress_core.analysis import executors  # noqa: E402
from compress_core.train.baseline import get_baseline  # noqa: E402
from compress_core.train.finetune import FinetuneConfig, finetune_sweep  # noqa: E402

WORKERS = 2
RATES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
VOLATILE = ("seconds", "created")


def plain(results) -> list[dict]:
    return [{k: v for k, v in r.to_dict().items() if k not in VOLATILE} for r in results]


def timed_sweep(base, data, configs, ft, threads: int, executor=None):
    """(wall seconds, results) of a fine-tuning sweep with a fresh fine-tune cache."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ray-") as cache:
            started = time.perf_counter()
            results = finetune_sweep(base, data, configs, ft, cache_dir=cache, executor=executor)
            return time.perf_counter() - started, results
    finally:
        torch.set_num_threads(before)


def noop(x: int) -> int:
    return x


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="digits, 2 rates: a smoke run")
    args = ap.parse_args()
    dataset, rates = ("digits", (0.5, 0.9)) if args.quick else ("fashion-mnist", RATES)
    print(f"machine: {machine()}")
    base, data = get_baseline("lenet5", dataset)
    configs = [CompressionConfig(prune_rate=r) for r in rates]
    ft = FinetuneConfig(epochs=1)
    print(f"job: lenet5 on {dataset}, {len(configs)} rates x {ft.label()}\n")

    t_one, here = timed_sweep(base, data, configs, ft, threads=1)
    t_two, _ = timed_sweep(base, data, configs, ft, threads=WORKERS)
    started = time.perf_counter()
    with executors.make_executor(executors.ExecutorConfig("ray", workers=WORKERS)) as ex:
        t_start = time.perf_counter() - started
        t_ray, there = timed_sweep(base, data, configs, ft, threads=1, executor=ex)
        started = time.perf_counter()
        executors.run_grid(ex, noop, range(20))
        t_noop = (time.perf_counter() - started) / 20
        where = executors.describe(ex)
    same = plain(there) == plain(here)
    busy = sum(r.seconds for r in there)  # each task's own time, measured in the worker
    overhead = (t_ray * WORKERS - busy) / len(configs)
    print("| run | wall time | speed-up of Ray |\n|---|---|---|")
    print(f"| in-process, 1 torch thread | {t_one:.1f} s | {t_one / t_ray:.2f}x |")
    print(f"| in-process, {WORKERS} torch threads | {t_two:.1f} s | {t_two / t_ray:.2f}x |")
    print(f"| Ray, {WORKERS} workers x 1 thread ({where}) | {t_ray:.1f} s | - |")
    print(
        f"\ncluster start {t_start:.1f} s (not in the Ray time; "
        f"with it: {t_one / (t_ray + t_start):.2f}x against 1 thread)"
    )
    print(f"per-task overhead: {overhead:.2f} s of {busy / len(configs):.1f} s per task")
    print(f"no-op task round trip on the warm cluster: {1000 * t_noop:.1f} ms")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print(f"Ray's results equal the in-process ones (accuracy, bytes, every field): {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
