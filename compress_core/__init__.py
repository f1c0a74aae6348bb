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
from .eval.evaluate import Metrics, evaluate

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
