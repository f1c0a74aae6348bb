"""Which layers a config touches: Linear and Conv1d/Conv2d weights, filtered by name."""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatch

from torch import nn

from .config import CompressionConfig

WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)
# filter_fn(module, name) -> True to compress the layer (torchao's quantize_ convention).
FilterFn = Callable[[nn.Module, str], bool]


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """All Linear/Conv1d/Conv2d modules by name, in definition order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)}


def select_layers(
    model: nn.Module, config: CompressionConfig, filter_fn: FilterFn | None = None
) -> tuple[list[str], dict[str, str]]:
    """The layer names a config compresses, and why each other one is left alone.

    Example:
        >>> names, skipped = select_layers(model, CompressionConfig(skip_first_last=True))
        >>> skipped  # {'conv1': 'first layer', 'fc3': 'last layer'}
    """
    layers = weight_layers(model)
    names = list(layers)
    chosen, skipped = [], {}
    for i, name in enumerate(names):
        if config.skip_first_last and i == 0 and len(names) > 1:
            skipped[name] = "first layer (skip first/last is on)"
        elif config.skip_first_last and i == len(names) - 1 and len(names) > 1:
            skipped[name] = "last layer (skip first/last is on)"
        elif config.include and not any(fnmatch(name, p) for p in config.include):
            skipped[name] = "not matched by include"
        elif any(fnmatch(name, p) for p in config.exclude):
            skipped[name] = "matched by exclude"
        elif filter_fn is not None and not filter_fn(layers[name], name):
            skipped[name] = "rejected by filter_fn"
        else:
            chosen.append(name)
    return chosen, skipped
