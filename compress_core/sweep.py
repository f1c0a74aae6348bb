"""Grids of configurations, run one after another on one cached baseline."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

from torch import nn

from .api import Result, run_on
from .config import CompressionConfig

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


def sweep(
    base: nn.Module,
    data,
    configs: list[CompressionConfig],
    subset: int | None = None,
    on_result: Callable[[int, Result], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Result]:
    """Run each config; returns the finished results (all, or those done before a stop)."""
    results = []
    for i, config in enumerate(configs):
        if should_stop is not None and should_stop():
            break
        result = run_on(base, data, config, subset)
        results.append(result)
        if on_result is not None:
            on_result(i, result)
    return results
