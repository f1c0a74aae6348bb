"""The compress steps every path shares: prune, quantize, repair, calibrate.

``compress``, the budget's per-layer plans, the fine-tuning phases and the
Deep Compression preset all call these, so a method, a quantizer or a repair
added here reaches every page at once. Each step mutates the model copy it is
given (hence the trailing ``_``) and writes what it did into the record.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fnmatch import fnmatch
from typing import Any

import torch
from torch import nn

from .config import FLOAT_BITS, CompressionConfig, ConfigError
from .prune import apply_masks_, structured_prune_, unstructured_masks
from .quantize import calibrate_activations, install_activation_quant, quantize_tensor
from .record import CompressionRecord, LayerRecord, materialize

OVERRIDABLE = ("prune_rate", "bits")


class CompressionError(ValueError):
    """The model cannot be compressed as asked; the message says what to do."""


@dataclass(frozen=True)
class LayerSetting:
    """What to do to one layer: prune to ``prune_rate``, then quantize to ``bits``."""

    prune_rate: float = 0.0  # fraction of this layer's weights removed, 0..1
    bits: int = FLOAT_BITS  # 1..16, or 32 = leave float

    def __post_init__(self) -> None:
        CompressionConfig(prune_rate=self.prune_rate, bits=self.bits)  # same ranges, same messages
        object.__setattr__(self, "prune_rate", float(self.prune_rate))

    def label(self) -> str:
        bits = "float" if self.bits == FLOAT_BITS else f"{self.bits}-bit"
        return f"{self.prune_rate:.0%} · {bits}"


def layer_settings(
    names: list[str], config: CompressionConfig, overrides: dict[str, dict[str, Any]] | None
) -> dict[str, LayerSetting]:
    """Each selected layer's rate and bits: the config's, then the overrides by name glob.

    Later patterns win over earlier ones. A pattern that matches no selected
    layer, or sets anything but ``prune_rate``/``bits``, raises ConfigError.

    Example:
        >>> layer_settings(["conv1", "fc1"], config, {"fc1": {"bits": 2}})
    """
    settings = {n: LayerSetting(config.prune_rate, config.bits) for n in names}
    for pattern, values in (overrides or {}).items():
        unknown = set(values) - set(OVERRIDABLE)
        if unknown:
            raise ConfigError(f"override {pattern!r}: only {OVERRIDABLE} can be set per layer")
        matched = [n for n in names if fnmatch(n, pattern)]
        if not matched:
            raise ConfigError(
                f"override {pattern!r} matches no layer being compressed; those are: "
                f"{', '.join(names) or 'none'} (skip_first_last, include, exclude and "
                "filter_fn decide)"
            )
        if "prune_rate" in values and config.scope == "global":
            raise ConfigError("per-layer prune_rate overrides need scope='layer'")
        for n in matched:
            settings[n] = dataclasses.replace(settings[n], **values)
    return settings


def prune_step_(
    model: nn.Module,
    record: CompressionRecord,
    settings: dict[str, LayerSetting],
    config: CompressionConfig,
    example: torch.Tensor | None = None,
) -> None:
    """Prune each layer to its rate: a mask per layer, or channels removed (structured)."""
    rates = {n: s.prune_rate for n, s in settings.items() if s.prune_rate > 0}
    if not rates:
        return
    if config.structured:
        plan, warnings, skipped = structured_prune_(model, config, rates, example)
        record.structured = plan
        record.warnings.extend(warnings)
        record.skipped.update(skipped)
        return
    modules = dict(model.named_modules())
    weights = {n: modules[n].weight for n in rates}
    rate = config.prune_rate if config.scope == "global" else rates
    masks = unstructured_masks(weights, rate, config.prune_method, config.scope, config.seed)
    apply_masks_(model, masks)
    for n, m in masks.items():
        record.layers.setdefault(n, LayerRecord()).mask = m
    empty = [n for n, m in masks.items() if not m.any()]
    if empty:
        record.warnings.append(
            f"{', '.join(empty)} lost every weight: its output no longer depends on "
            "its input (only the bias is left)"
        )


def quantize_step_(
    model: nn.Module,
    record: CompressionRecord,
    bits: dict[str, int],
    method: str,
    per_channel: bool,
    pin_zero: bool = True,
) -> None:
    """Quantize each named layer's kept weights to its bit width; weights := decoded codes.

    ``pin_zero`` as in ``quantize_tensor``.
    """
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, b in bits.items():
            if b == FLOAT_BITS:
                continue
            layer = record.layers.setdefault(name, LayerRecord())
            w = modules[name].weight
            layer.quant = quantize_tensor(w, layer.mask, b, method, per_channel, pin_zero)
            w.copy_(materialize(w.shape, layer, None).to(w.device))


def calibrate_step_(
    model: nn.Module, record: CompressionRecord, names: list[str], config, calibration
) -> None:
    """Choose activation ranges on calibration batches and install the fake-quant hooks."""
    if config.act_bits == FLOAT_BITS or not names:
        return
    if calibration is None:
        raise CompressionError(
            "activation quantization needs a few calibration batches; pass calibration="
        )
    record.activations = calibrate_activations(
        model, names, calibration, config.act_bits, config.act_calibration
    )
    install_activation_quant(model, record.activations)


def repair_step_(
    model: nn.Module,
    base: nn.Module,
    record: CompressionRecord,
    names: list[str],
    config: CompressionConfig,
    batches: list[torch.Tensor] | None,
) -> None:
    """BatchNorm re-estimation, then bias correction, when the config asks for them."""
    from .repair import correct_bias_, recalibrate_bn_

    if not (config.recalibrate_bn or config.bias_correction):
        return
    if batches is None:
        raise CompressionError(
            "BatchNorm re-estimation and bias correction need a few training batches; "
            "pass calibration="
        )
    if config.recalibrate_bn and not recalibrate_bn_(model, batches):
        record.warnings.append("BatchNorm re-estimation is on, but the model has no BatchNorm")
    if config.bias_correction:
        correct_bias_(model, base, names, batches)
