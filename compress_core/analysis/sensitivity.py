"""Layer sensitivity: accuracy as one layer alone is pruned or quantized, the rest untouched.

This is Distiller's ``sensitivity_analysis`` (one layer pruned to each rate,
the network evaluated) and AIMET's per-layer eval scores, extended to
quantization: each layer is also quantized alone to each bit width. Layers
whose accuracy holds up to high rates and few bits can take the most
compression; the budget search (``budget.py``) reads these curves.

Each point is an ordinary ``compress`` with ``include=(layer,)``, so it uses
exactly the engine's pruning and quantization, and evaluation reuses the
base model's unchanged prefix (cheap for late layers).

Example:
    >>> points = sensitivity(base, data, rates=(0.0, 0.5, 0.9), bits=(2, 4, 32))
    >>> pd.DataFrame([p.to_row() for p in points])
    >>> rank_layers(points, tolerance_pp=1.0)[0]["layer"]  # the most compressible layer
"""

from __future__ import annotations

import dataclasses
import glob
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..core.config import FLOAT_BITS, CompressionConfig, ConfigError
from ..core.layers import select_layers
from ..core.pipeline import calibration_for, compress
from ..eval.evaluate import Metrics, evaluate
from ..eval.memo import MEMO, dataset_key
from ..format.artifact import artifact_size
from .executors import run_grid

SENS_RATES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
SENS_BITS = (1, 2, 3, 4, 5, 6, 8, FLOAT_BITS)
SPLITS = ("val", "test")  # val: for decisions (the budget search); test: for reporting
KINDS = ("prune", "quantize")
DEFAULT_CONFIG = CompressionConfig()  # frozen: safe as a shared default


@dataclass
class SensitivityPoint:
    """Accuracy with one layer alone pruned (at float) or quantized (unpruned)."""

    layer: str
    kind: str  # "prune": prune_rate varies, bits = 32 | "quantize": bits vary, prune_rate = 0
    prune_rate: float
    bits: int
    accuracy: float  # on ``split``, 0..1
    loss: float
    baseline_accuracy: float  # the untouched model on the same images
    split: str
    params: int  # weights in this layer before compression
    kept: int  # non-zero weights left in this layer
    artifact_bytes: int  # the whole model's exact artifact length with this layer compressed
    finite: bool = True

    @property
    def delta_pp(self) -> float:
        return 100 * (self.accuracy - self.baseline_accuracy)

    def to_row(self) -> dict[str, Any]:
        return dict(dataclasses.asdict(self), delta_pp=self.delta_pp)


def split_xy(data, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The (images, labels) of ``split``: "val" or "test"."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    return getattr(data, f"{split}_x"), getattr(data, f"{split}_y")


def split_metrics(model: nn.Module, data, split: str, subset=None, base=None) -> Metrics:
    """Metrics on a split, reusing ``base``'s unchanged prefix when given."""
    x, y = split_xy(data, split)
    return evaluate(model, x, y, subset, base=base)


def baseline_split_metrics(base: nn.Module, data, split: str, subset=None) -> Metrics:
    """The base model's metrics on a split, computed once per (data set, split, subset)."""
    key = ("eval", dataset_key(data, split), subset)
    return MEMO.get_or(base, key, lambda: split_metrics(base, data, split, subset))


def one_layer_config(
    layer: str, common: CompressionConfig, prune_rate: float = 0.0, bits: int = FLOAT_BITS
) -> CompressionConfig:
    """``common``'s methods applied to ``layer`` only, at the given rate and bit width."""
    return dataclasses.replace(
        common,
        prune_rate=prune_rate,
        bits=bits,
        include=(glob.escape(layer),),  # a name with [ or * must match only itself
        exclude=(),
        skip_first_last=False,
    )


def sensitivity_configs(
    base: nn.Module,
    layers: Iterable[str] | None = None,
    rates: Iterable[float] = SENS_RATES,
    bits: Iterable[int] = SENS_BITS,
    common: CompressionConfig = DEFAULT_CONFIG,
) -> list[tuple[str, str, CompressionConfig]]:
    """Every (layer, kind, config) of the analysis, layer by layer.

    ``layers`` defaults to every layer ``common`` would compress (so first and
    last are left out when ``common.skip_first_last``).
    """
    all_layers, _ = select_layers(base, dataclasses.replace(common, skip_first_last=False))
    if layers is None:
        layers = select_layers(base, common)[0]
    layers = list(layers)
    unknown = [n for n in layers if n not in all_layers]
    if unknown:
        raise ConfigError(f"no prunable layer named {unknown}; choose from {all_layers}")
    out = []
    for layer in layers:
        out += [(layer, "prune", one_layer_config(layer, common, r, FLOAT_BITS)) for r in rates]
        out += [(layer, "quantize", one_layer_config(layer, common, 0.0, b)) for b in bits]
    return out


def sensitivity_point(
    base: nn.Module,
    data,
    layer: str,
    kind: str,
    config: CompressionConfig,
    split: str = "val",
    subset: int | None = None,
) -> SensitivityPoint:
    """Compress ``layer`` alone with ``config``, evaluate the whole model on ``split``."""
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    calibration = calibration_for(data, config)
    small = compress(base, config, calibration)
    ref = baseline_split_metrics(base, data, split, subset)
    metrics = split_metrics(small, data, split, subset, base=base)
    module = dict(small.named_modules())[layer]
    params = dict(base.named_modules())[layer].weight.numel()
    return SensitivityPoint(
        layer=layer,
        kind=kind,
        prune_rate=config.prune_rate,
        bits=config.bits,
        accuracy=metrics.accuracy,
        loss=metrics.loss,
        baseline_accuracy=ref.accuracy,
        split=split,
        params=params,
        kept=int(torch.count_nonzero(module.weight)),
        artifact_bytes=artifact_size(small).artifact_bytes,
        finite=metrics.finite,
    )


def sensitivity(
    base: nn.Module,
    data,
    layers: Iterable[str] | None = None,
    rates: Iterable[float] = SENS_RATES,
    bits: Iterable[int] = SENS_BITS,
    common: CompressionConfig = DEFAULT_CONFIG,
    split: str = "val",
    subset: int | None = None,
    on_point: Callable[[int, int, SensitivityPoint], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    executor: Executor | None = None,
) -> list[SensitivityPoint]:
    """Each layer pruned alone to every rate, and quantized alone to every bit width.

    ``common`` supplies the methods (pruning method, quantizer, granularity).
    ``on_point(i, total, point)`` is called as each point lands; ``should_stop``
    is polled between points, and the finished points are returned. ``executor``
    runs the points elsewhere (``executors.py``); points come back in order.

    Example:
        >>> points = sensitivity(base, data, layers=["fc1"], rates=(0, 0.9), bits=(4, 32))
        >>> [round(p.delta_pp, 1) for p in points]
    """
    split_xy(data, split)  # a bad split fails before any work
    todo = sensitivity_configs(base, layers, rates, bits, common)
    baseline_split_metrics(base, data, split, subset)  # once here, shipped with the model
    report = None if on_point is None else (lambda i, point: on_point(i, len(todo), point))
    return run_grid(executor, _point, todo, (base, data, split, subset), report, should_stop)


def _point(base, data, split, subset, todo: tuple[str, str, CompressionConfig]):
    layer, kind, config = todo
    return sensitivity_point(base, data, layer, kind, config, split, subset)


def _reach(curve: list[tuple[float, float]], tolerance_pp: float, default: float) -> float:
    """The furthest setting along ``curve`` (ordered mild to harsh) before the first drop > tol."""
    reach = default
    for setting, delta in curve:
        if delta < -tolerance_pp:
            break
        reach = setting
    return reach


def _prunable(points: list[SensitivityPoint]) -> bool:
    """False when no tested rate removed anything (channel pruning never cuts the classes)."""
    tried = [p for p in points if p.kind == "prune" and p.prune_rate > 0]
    return not tried or any(p.kept < p.params for p in tried)


def rank_layers(
    points: Iterable[SensitivityPoint], tolerance_pp: float = 1.0
) -> list[dict[str, Any]]:
    """Per layer: how far it can be pruned and how few bits it takes within ``tolerance_pp``.

    ``max_rate`` is the highest rate reached before accuracy first falls more
    than the tolerance below the baseline (rates in increasing order);
    ``min_bits`` likewise the fewest bits (widths in decreasing order).
    ``mean_drop_pp`` averages the drop over every tested setting (robustness).
    ``max_rate`` is None for a layer the method cannot prune at all (channel
    pruning leaves the last layer's outputs, the classes, in place).
    Rows are sorted most compressible first: highest ``max_rate``, then
    fewest ``min_bits``, then smallest mean drop.
    """
    by_layer: dict[str, list[SensitivityPoint]] = {}
    for p in points:
        by_layer.setdefault(p.layer, []).append(p)
    rows = []
    for layer, pts in by_layer.items():
        prune = sorted((p.prune_rate, p.delta_pp) for p in pts if p.kind == "prune")
        quant = sorted(((p.bits, p.delta_pp) for p in pts if p.kind == "quantize"), reverse=True)
        drops = [-p.delta_pp for p in pts]
        rows.append(
            {
                "layer": layer,
                "params": pts[0].params,
                "max_rate": _reach(prune, tolerance_pp, 0.0) if _prunable(pts) else None,
                "min_bits": int(_reach(quant, tolerance_pp, FLOAT_BITS)),
                "worst_prune_pp": min((d for _, d in prune), default=0.0),
                "worst_quant_pp": min((d for _, d in quant), default=0.0),
                "mean_drop_pp": sum(drops) / len(drops),
            }
        )
    rows.sort(key=lambda r: (-(r["max_rate"] or -1.0), r["min_bits"], r["mean_drop_pp"]))
    total = sum(r["params"] for r in rows) or 1
    return [
        {"rank": rank, **r, "share_of_weights": r["params"] / total}
        for rank, r in enumerate(rows, 1)
    ]
