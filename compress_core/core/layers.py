"""Which layers a config touches: Linear and Conv1d/Conv2d weights, filtered by name."""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatch

from torch import nn

from .config import SKIP_MAX_SHARE, CompressionConfig

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
        >>> skipped  # LeNet-5: {'conv1': 'first layer, small ...', 'fc3': 'last layer, small ...'}
    """
    layers = weight_layers(model)
    names = list(layers)
    edges = _small_edges(layers) if config.skip_first_last else {}
    chosen, skipped = [], {}
    for name in names:
        if name in edges:
            skipped[name] = f"{edges[name]} layer, small (skip first/last is on)"
        elif config.include and not any(fnmatch(name, p) for p in config.include):
            skipped[name] = "not matched by include"
        elif any(fnmatch(name, p) for p in config.exclude):
            skipped[name] = "matched by exclude"
        elif filter_fn is not None and not filter_fn(layers[name], name):
            skipped[name] = "rejected by filter_fn"
        else:
            chosen.append(name)
    return chosen, skipped


def _small_edges(layers: dict[str, nn.Module]) -> dict[str, str]:
    """The first and last layer, each only if it holds at most SKIP_MAX_SHARE of the weights.

    Skipping a small input/output layer is the usual choice (it is sensitive and cheap to
    keep); skipping a big one (the MLP's fc1 holds 88 % of its weights) would leave most
    of the model untouched.
    """
    names = list(layers)
    if len(names) < 2:
        return {}
    total = sum(m.weight.numel() for m in layers.values())
    edges = {names[0]: "first", names[-1]: "last"}
    return {n: w for n, w in edges.items() if layers[n].weight.numel() <= SKIP_MAX_SHARE * total}


def compressed_share(model: nn.Module, config: CompressionConfig) -> tuple[float, dict[str, str]]:
    """(share of the Conv/Linear weights the config compresses, the kept layers and why).

    Example:
        >>> compressed_share(lenet5, CompressionConfig())  # (0.984, {'conv1': ..., 'fc3': ...})
    """
    layers = weight_layers(model)
    chosen, skipped = select_layers(model, config)
    total = sum(m.weight.numel() for m in layers.values())
    return sum(layers[n].weight.numel() for n in chosen) / max(total, 1), skipped
