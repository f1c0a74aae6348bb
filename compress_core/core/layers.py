"""Which layers a config touches: Conv2d/Linear weights, filtered by name."""

from __future__ import annotations

from fnmatch import fnmatch

from torch import nn

from .config import CompressionConfig

WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """All Conv2d/Linear modules by name, in definition order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)}


def select_layers(model: nn.Module, config: CompressionConfig) -> tuple[list[str], dict[str, str]]:
    """The layer names a config compresses, and why each other one is left alone.

    Example:
        >>> names, skipped = select_layers(model, CompressionConfig(skip_first_last=True))
        >>> skipped  # {'conv1': 'first layer', 'fc3': 'last layer'}
    """
    names = list(weight_layers(model))
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
        else:
            chosen.append(name)
    return chosen, skipped
