"""The compression config: settings only, validated on creation."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SCOPES = ("layer", "global")
GRANULARITIES = ("per_tensor", "per_channel")
CALIBRATIONS = ("minmax", "percentile")
FLOAT_BITS = 32  # the bit width that means "leave as float32"
# skip_first_last keeps the first/last layer only when it holds at most this share of the
# Conv/Linear weights, so the default compresses the bulk of every model.
SKIP_MAX_SHARE = 0.10


class ConfigError(ValueError):
    """A setting that is out of range; the message says what is allowed."""


# Filled by the method registries (core.prune.PRUNERS, core.quantize.QUANTIZERS) as methods
# are registered: plain lists, so argparse and Streamlit take them as choices.
PRUNE_METHODS: list[str] = []  # magnitude, random, l1-structured, l2-structured, ...
QUANT_METHODS: list[str] = []  # uniform, symmetric, kmeans, ...


def _registered(field: str) -> list[str]:
    from . import prune, quantize  # noqa: F401  (lazily: both import this module)

    return {"prune_method": PRUNE_METHODS, "quant": QUANT_METHODS}[field]


@dataclass(frozen=True)
class CompressionConfig:
    """What to do to a model: prune, then quantize.

    Example:
        >>> CompressionConfig(prune_rate=0.5, bits=4, quant="kmeans")
    """

    prune_rate: float = 0.0  # fraction removed, 0..1: weights, or channels for *-structured
    prune_method: str = "magnitude"  # a registered pruning method (core.prune.PRUNERS)
    scope: str = "layer"  # layer: each layer to the rate; global: one ranking across layers
    bits: int = FLOAT_BITS  # weight bit width 1..16, or 32 = float (no quantization)
    quant: str = "uniform"  # a registered quantizer: uniform | symmetric | kmeans | ...
    granularity: str = (
        "per_channel"  # per_tensor | per_channel (one scale/codebook per output channel)
    )
    act_bits: int = FLOAT_BITS  # activation bit width 2..16, or 32 = float activations
    act_calibration: str = "minmax"  # minmax | percentile (99.99th, robust to outliers)
    skip_first_last: bool = True  # keep the first/last layer intact where <= SKIP_MAX_SHARE
    include: tuple[str, ...] = ()  # fnmatch patterns of layer names to touch; empty = all
    exclude: tuple[str, ...] = ()  # fnmatch patterns of layer names never to touch
    # Legacy, changes no bytes: the artifact always takes each stream's smallest exact coding
    # (fixed width, Huffman or ANS). Still accepted in configs, links and stored rows.
    huffman: bool = False
    seed: int = 0  # for random pruning and k-means initialisation
    recalibrate_bn: bool = False  # re-estimate BatchNorm statistics on a few training batches
    bias_correction: bool = False  # shift biases so each layer's mean output matches the base's

    def __post_init__(self) -> None:
        def one_of(field: str, allowed: Sequence[str]) -> None:
            value = getattr(self, field)
            if value not in allowed:
                raise ConfigError(f"{field} must be one of {', '.join(allowed)}; got {value!r}")

        rate = self.prune_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise ConfigError(f"prune_rate must be a number from 0 to 1 (0.5 = 50 %); got {rate!r}")
        for field, low in (("bits", 1), ("act_bits", 2)):
            value = getattr(self, field)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not (low <= value <= 16 or value == FLOAT_BITS)
            ):
                allowed = f"a whole number from {low} to 16, or 32 for float"
                raise ConfigError(f"{field} must be {allowed}; got {value!r}")
        one_of("prune_method", _registered("prune_method"))
        one_of("scope", SCOPES)
        one_of("quant", _registered("quant"))
        one_of("granularity", GRANULARITIES)
        one_of("act_calibration", CALIBRATIONS)
        for field in ("recalibrate_bn", "bias_correction"):
            if not isinstance(getattr(self, field), bool):
                raise ConfigError(f"{field} must be True or False; got {getattr(self, field)!r}")
        for field in ("include", "exclude"):
            value = getattr(self, field)
            if isinstance(value, str) or not all(isinstance(p, str) for p in value):
                raise ConfigError(f"{field} must be a tuple of name patterns, e.g. ('conv*',)")
            object.__setattr__(self, field, tuple(value))
        object.__setattr__(self, "prune_rate", float(rate))

    @property
    def structured(self) -> bool:
        """True when the pruning method removes whole channels (a registry attribute)."""
        from .prune import PRUNERS

        return PRUNERS[self.prune_method].structured

    @property
    def quantized(self) -> bool:
        return self.bits != FLOAT_BITS

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["include"], d["exclude"] = list(self.include), list(self.exclude)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CompressionConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown config keys {sorted(unknown)}; known: {sorted(known)}")
        d = dict(d)
        for field in ("include", "exclude"):
            if field in d:
                d[field] = tuple(d[field])
        return cls(**d)

    @classmethod
    def from_strings(cls, values: dict[str, str]) -> CompressionConfig:
        """A config from text values, e.g. a URL's query: {"prune_rate": "0.5", "bits": "4"}."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for name, text in values.items():
            if name not in fields:
                raise ConfigError(f"unknown setting {name!r}; known: {', '.join(fields)}")
            default = fields[name].default
            try:
                if isinstance(default, bool):
                    if text.lower() not in ("true", "false", "1", "0"):
                        raise ValueError
                    kwargs[name] = text.lower() in ("true", "1")
                elif isinstance(default, tuple):
                    kwargs[name] = tuple(p for p in text.split(",") if p)
                elif isinstance(default, (int, float)):
                    number = float(text)
                    is_whole = isinstance(default, int) and number.is_integer()
                    kwargs[name] = int(number) if is_whole else number
                else:
                    kwargs[name] = text
            except ValueError:
                kind = {bool: "true or false", int: "a whole number", float: "a number"}
                expected = kind.get(type(default), "text")
                raise ConfigError(f"{name} must be {expected}; got {text!r}") from None
        return cls(**kwargs)

    def to_strings(self) -> dict[str, str]:
        """The settings that differ from the defaults, as text (inverse of from_strings)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                out[f.name] = ",".join(value) if isinstance(value, tuple) else str(value)
        return out

    def key(self) -> str:
        """A stable string identifying these settings (a cache and history key)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def label(self) -> str:
        """A short human label, e.g. 'magnitude 50% · 4-bit kmeans'."""
        parts = []
        if self.prune_rate > 0:
            parts.append(f"{self.prune_method} {self.prune_rate:.0%}")
        if self.quantized:
            parts.append(f"{self.bits}-bit {self.quant}")
        if self.act_bits != FLOAT_BITS:
            parts.append(f"act {self.act_bits}-bit")
        if self.recalibrate_bn:
            parts.append("BN re-estimated")
        if self.bias_correction:
            parts.append("bias corrected")
        return " · ".join(parts) or "float baseline"
