"""Measured inference latency: ONNX Runtime (float32, int8) and PyTorch, in a child process.

The child process runs nothing else, so a busy dashboard or test does not
disturb the clock; each (runtime, batch, threads) gets warm-up runs, then at
least ``repeats`` timed runs, reported as median and interquartile range.
Whether int8 can be faster depends on the CPU: x86 needs VNNI (AVX-512 or
AVX) or AMX for fast int8 dot products, ARM the dot-product extension;
``cpu_info`` reads them from /proc/cpuinfo.

Example:
    >>> rows = measure_latency(compressed, calibration=batches, batches=(1, 256))
    >>> rows[0]  # {'runtime': 'onnx', 'batch': 1, 'threads': 1, 'median_ms': ..., ...}
"""

from __future__ import annotations

import copy
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

RUNTIMES = ("onnx", "onnx-int8", "torch")  # float ONNX, int8 QDQ ONNX, the PyTorch module
INT8_FLAGS = {  # /proc/cpuinfo flag -> what it is; any of them makes int8 dot products fast
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "amx_int8": "AMX int8",
    "asimddp": "ARM dot-product",
    "i8mm": "ARM int8 matrix multiply",
}


class LatencyError(RuntimeError):
    """The measurement could not run; the message says why."""


def all_cores() -> int:
    """The cores this process may use (its affinity mask, not the machine's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def cpu_info(cpuinfo: str | None = None) -> dict:
    """The CPU's model, core count and the instruction-set flags that decide int8 speed."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    int8 = [label for flag, label in INT8_FLAGS.items() if flag in flags]
    return {
        "model": fields.get("model name") or fields.get("cpu part") or platform.processor(),
        "arch": platform.machine(),
        "cores": all_cores(),
        "int8_flags": int8,
        "avx512": "avx512f" in flags,
    }


def measure_latency(
    model: nn.Module,
    *,
    calibration: list[torch.Tensor] | None = None,
    runtimes: tuple[str, ...] = RUNTIMES,
    batches: tuple[int, ...] = (1, 256),
    threads: tuple[int, ...] | None = None,
    warmup: int = 5,
    repeats: int = 30,
    min_seconds: float = 0.2,
    timeout: float = 300.0,
) -> list[dict]:
    """Time ``model`` in each runtime, batch size and thread count, in a child process.

    Args:
        calibration: training batches for the int8 file; without them "onnx-int8" is skipped.
        threads: thread counts (default: 1 and all cores).
        min_seconds: keep timing a setting until this long has passed (and ``repeats`` runs).

    Returns:
        One dict per setting: runtime, batch, threads, median_ms, q1_ms, q3_ms, iqr_ms, runs,
        and the measuring process's pid.
    """
    from ..format.onnx import float_onnx, int8_onnx

    threads = threads or tuple(sorted({1, all_cores()}))
    if calibration is None:
        runtimes = tuple(r for r in runtimes if r != "onnx-int8")
    unknown = set(runtimes) - set(RUNTIMES)
    if unknown:
        raise LatencyError(f"unknown runtimes {sorted(unknown)}; known: {', '.join(RUNTIMES)}")
    with tempfile.TemporaryDirectory(prefix="slimscope-latency-") as tmp:
        folder = Path(tmp)
        if "onnx" in runtimes:
            (folder / "onnx.onnx").write_bytes(float_onnx(model))
        if "onnx-int8" in runtimes:
            (folder / "onnx-int8.onnx").write_bytes(int8_onnx(model, calibration))
        if "torch" in runtimes:
            torch.save(_lean(model), folder / "torch.pt")  # our own model, read by our child
        job = dict(
            runtimes=list(runtimes),
            batches=list(batches),
            threads=list(threads),
            warmup=warmup,
            repeats=repeats,
            min_seconds=min_seconds,
            in_shape=list(model.slimscope_spec.in_shape),
        )
        (folder / "job.json").write_text(json.dumps(job))
        cmd = [sys.executable, "-m", "compress_core.eval.latency", str(folder)]
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            msg = f"the measurement took over {timeout:.0f} s; try fewer settings"
            raise LatencyError(msg) from None
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["no message"]
            raise LatencyError(f"the measuring process failed: {tail[0]}")
        return json.loads((folder / "result.json").read_text())


def _lean(model: nn.Module) -> nn.Module:
    """A shallow copy without the engine's memos (cached activations hold closures that do
    not pickle); the shared model itself is never touched."""
    lean = copy.copy(model)  # a new __dict__, the same submodules and tensors
    for key in [k for k in vars(lean) if k.startswith("_slimscope_")]:
        del lean.__dict__[key]
    return lean


def format_latency(rows: list[dict], cpu: dict | None = None) -> str:
    """A plain-text table of latency rows, headed by the CPU line."""
    cpu = cpu or cpu_info()
    flags = ", ".join(cpu["int8_flags"]) or "none (int8 is unlikely to be faster)"
    lines = [f"latency on {cpu['model']} ({cpu['arch']}, {cpu['cores']} cores; int8: {flags})"]
    lines.append(f"  {'runtime':<10} {'batch':>5} {'threads':>7} {'median':>11} {'IQR':>10}")
    for r in rows:
        lines.append(
            f"  {r['runtime']:<10} {r['batch']:>5} {r['threads']:>7} "
            f"{r['median_ms']:>8.3f} ms {r['iqr_ms']:>7.3f} ms"
        )
    return "\n".join(lines)


def _time_runs(call, x, warmup: int, repeats: int, min_seconds: float) -> dict:
    """Median and quartiles of ``call(x)``'s wall time, in milliseconds, after warm-up."""
    import numpy as np

    for _ in range(warmup):
        call(x)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - started < min_seconds:
        t0 = time.perf_counter_ns()
        call(x)
        times.append((time.perf_counter_ns() - t0) / 1e6)
        if len(times) >= 100 * repeats:
            break
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return dict(median_ms=median, q1_ms=q1, q3_ms=q3, iqr_ms=q3 - q1, runs=len(times))


def _runner(folder: Path, runtime: str, threads: int):
    """A function of one numpy batch for ``runtime`` at ``threads`` threads."""
    if runtime == "torch":
        model = torch.load(folder / "torch.pt", weights_only=False).eval()
        torch.set_num_threads(threads)

        def run_torch(x):
            with torch.inference_mode():
                return model(torch.from_numpy(x))

        return run_torch
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(
        str(folder / f"{runtime}.onnx"), options, providers=["CPUExecutionProvider"]
    )
    return lambda x: session.run(None, {"input": x})


def _child(folder: Path) -> None:
    """The measuring process: read job.json, time every setting, write result.json."""
    import numpy as np

    job = json.loads((folder / "job.json").read_text())
    rng = np.random.default_rng(0)
    rows = []
    for runtime in job["runtimes"]:
        for threads in job["threads"]:
            run = _runner(folder, runtime, threads)
            for batch in job["batches"]:
                x = rng.standard_normal((batch, *job["in_shape"]), dtype=np.float32)
                stats = _time_runs(run, x, job["warmup"], job["repeats"], job["min_seconds"])
                rows.append(
                    dict(runtime=runtime, batch=batch, threads=threads, pid=os.getpid(), **stats)
                )
    (folder / "result.json").write_text(json.dumps(rows))


if __name__ == "__main__":
    _child(Path(sys.argv[1]))
