"""Slimscope's engine: prune and quantize a copy of a PyTorch model, evaluate it, measure it.

Example:
    >>> from compress_core import CompressionConfig, run
    >>> r = run("lenet5", "digits", CompressionConfig(prune_rate=0.5, bits=4))
    >>> r.accuracy, r.artifact_bytes
"""

from .core.config import CompressionConfig, ConfigError
from .core.pipeline import (
    CompressionError,
    Result,
    compress,
    evaluate_compressed,
    measure,
    run,
    run_on,
)
from .core.registry import load_entry_points
from .eval.evaluate import Metrics, evaluate

# Packages add pruning methods and quantizers through this entry point group; every module
# of the engine is loaded by now, so a plugin can import what it registers into.
METHOD_ENTRY_POINTS = "slimscope.methods"
load_entry_points(METHOD_ENTRY_POINTS)

__all__ = [
    "CompressionConfig",
    "CompressionError",
    "ConfigError",
    "Metrics",
    "Result",
    "compress",
    "evaluate",
    "evaluate_compressed",
    "measure",
    "run",
    "run_on",
]
