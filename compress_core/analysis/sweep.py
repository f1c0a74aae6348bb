"""Grids of configurations, run one after another on one cached baseline."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable
from concurrent.futures import Executor

from torch import nn

from ..core.config import CompressionConfig, ConfigError
from ..core.pipeline import CompressionError, Result, base_hash, baseline_metrics, run_on
from .executors import run_grid

GRID_RATES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
GRID_BITS = (2, 3, 4, 5, 6, 8, 32)


def grid(
    rates: Iterable[float] = GRID_RATES, bits: Iterable[int] = GRID_BITS, **common
) -> list[CompressionConfig]:
    """Every (rate, bits) pair with the other settings shared.

    Example:
        >>> len(grid())  # 11 rates x 7 bit widths
        77
    """
    return [
        CompressionConfig(prune_rate=r, bits=b, **common) for r, b in itertools.product(rates, bits)
    ]


def method_grid(
    rates: Iterable[float] = GRID_RATES,
    bits: Iterable[int] = GRID_BITS,
    prune_methods: Iterable[str] = ("magnitude",),
    quants: Iterable[str] = ("uniform",),
    **common,
) -> list[CompressionConfig]:
    """``grid`` for every pruning method x quantizer; settings that coincide appear once.

    A rate of 0 makes the pruning method irrelevant and float bits the quantizer,
    so those points are not repeated per method.

    Example:
        >>> len(method_grid((0.0, 0.5), (4, 32), ("magnitude", "random"), ("uniform",)))
        6
    """
    configs: dict[str, CompressionConfig] = {}
    rates, bits = list(rates), list(bits)
    for method, quant in itertools.product(prune_methods, quants):
        for c in grid(rates, bits, prune_method=method, quant=quant, **common):
            configs.setdefault(_canonical(c).key(), c)
    return list(configs.values())


def _canonical(c: CompressionConfig) -> CompressionConfig:
    """The same config with the settings that have no effect at this rate/bits reset."""
    changes = {}
    if c.prune_rate == 0:
        changes["prune_method"] = "magnitude"
    if not c.quantized:
        changes.update(quant="uniform", granularity="per_channel")
    return dataclasses.replace(c, **changes)


def sweep(
    base: nn.Module,
    data,
    configs: list[CompressionConfig],
    subset: int | None = None,
    on_result: Callable[[int, Result], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    executor: Executor | None = None,
) -> list[Result]:
    """Run each config; returns the finished results (all, or those done before a stop).

    ``executor`` (see ``executors.py``) runs the points elsewhere: a process pool
    or a Ray cluster, with the base model and data shipped once. ``on_result(i,
    result)`` is called as each point finishes; results come back in grid order.
    """
    baseline_metrics(base, data, subset)  # computed once here, shipped with the model
    base_hash(base)
    return run_grid(executor, _point, configs, (base, data, subset), on_result, should_stop)


def _point(base: nn.Module, data, subset: int | None, config: CompressionConfig) -> Result:
    return run_on(base, data, config, subset)


def point_or_error(
    base: nn.Module, data, subset: int | None, config: CompressionConfig
) -> Result | Exception:
    """``run_on``, with a setting that cannot be applied returned as its error, not raised:
    for grids that skip such points (the Sweep page) without stopping the others."""
    try:
        return run_on(base, data, config, subset)
    except (ConfigError, CompressionError) as e:
        return e
