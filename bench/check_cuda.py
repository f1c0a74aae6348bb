"""Check the CUDA path: train a baseline on the GPU, then compress and evaluate it on the CPU.

Run on a machine with a GPU: SLIMSCOPE_DEVICE=cuda python bench/check_cuda.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compress_core import CompressionConfig, run_on  # noqa: E402
from compress_core.core.pipeline import compress  # noqa: E402
from compress_core.eval.device import compute_device  # noqa: E402
from compress_core.format.artifact import export, load_compressed  # noqa: E402
from compress_core.train.baseline import get_baseline  # noqa: E402


def main() -> None:
    device = compute_device()
    print(f"torch {torch.__version__}, training device: {device}")
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}")
    cache = tempfile.mkdtemp()
    for model, data in (
        ("lenet5", "digits"),
        ("resnet18", "digits"),
        ("mobilenet_v3_small", "digits"),
    ):
        start = time.perf_counter()
        base, ds = get_baseline(model, data, cache_dir=cache)
        seconds = time.perf_counter() - start
        on = {p.device.type for p in base.parameters()}
        meta = base.slimscope_baseline_meta
        print(
            f"{model:<20} trained in {seconds:6.1f} s, params on {on}, "
            f"test accuracy {meta['test_accuracy']:.2%}"
        )
        assert on == {"cpu"}, "a baseline must come back on the CPU"
        for config in (
            CompressionConfig(prune_rate=0.5, bits=4),
            CompressionConfig(prune_rate=0.3, prune_method="l1-structured", bits=8),
        ):
            r = run_on(base, ds, config)
            small = compress(base, config)
            blob = export(small)
            same = all(
                torch.equal(a, b)
                for a, b in zip(
                    small.state_dict().values(),
                    load_compressed(blob).state_dict().values(),
                    strict=True,
                )
            )
            print(
                f"   {config.label():<32} acc {r.accuracy:.2%}  {r.artifact_bytes:>10,} B  "
                f"round trip exact: {same}"
            )
            assert same and r.finite


if __name__ == "__main__":
    main()
