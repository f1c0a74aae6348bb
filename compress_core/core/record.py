"""Plain records shared by the engine: what a model is, and what was done to it.

A compressed model is an ordinary ``nn.Module`` whose weights already hold the
pruned and dequantized values (so it runs and evaluates at normal speed), plus
a ``CompressionRecord`` attached as ``model.slimscope_record`` that says how
each weight is stored: its mask and its integer codes. The artifact writer
packs exactly that record, and ``dequantize`` below is the single function
that turns codes back into floats, so the model and the artifact read back
from disk hold bit-identical weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .config import CompressionConfig

SPEC_ATTR = "slimscope_spec"
RECORD_ATTR = "slimscope_record"


@dataclass(frozen=True)
class ModelSpec:
    """How to rebuild a model from the registry: its name and input/output shape."""

    name: str  # key in compress_core.io.models.MODELS
    in_shape: tuple[int, int, int]  # (channels, height, width) of one input
    num_classes: int


@dataclass
class QuantState:
    """Integer codes for the kept weights of one tensor, and how to decode them.

    ``codes`` holds one code per kept weight, in row-major order of the kept
    positions. Decoding is ``(codes - zero_point) * scale`` ("affine") or
    ``codebook[codes]`` ("codebook"), per group: one group for per-tensor, one
    per output channel (dim 0) for per-channel.
    """

    scheme: str  # "affine" | "codebook"
    bits: int  # every code is in [0, 2**bits)
    codes: torch.Tensor  # int64, shape [n_kept]
    groups: torch.Tensor  # int64, shape [n_kept]: the group (output channel or 0) of each code
    scale: torch.Tensor | None = None  # float32 [n_groups], affine only
    zero_point: torch.Tensor | None = None  # int64 [n_groups], affine only
    codebook: torch.Tensor | None = None  # float32 [n_groups, 2**bits], codebook only


@dataclass
class LayerRecord:
    """How one module's weight is stored. mask None = dense; quant None = float32."""

    mask: torch.Tensor | None = None  # bool, same shape as the weight
    quant: QuantState | None = None


@dataclass
class CompressionRecord:
    """Everything done to a model, enough to write and re-read its artifact."""

    config: CompressionConfig
    layers: dict[str, LayerRecord] = field(default_factory=dict)  # module name -> record
    # Channel removals in the order they were applied, replayable on a fresh
    # model: {"module": name, "dim": "out", "idxs": [..]}.
    structured: list[dict] = field(default_factory=list)
    # Activation fake-quant on the inputs of modules: name -> {"bits", "scale", "zero_point"}.
    activations: dict[str, dict] = field(default_factory=dict)
    # Things the user should know: "fc1 pruned to 100 %: its output is constant", ...
    warnings: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # module name -> why it was not touched


def dequantize(q: QuantState) -> torch.Tensor:
    """The float32 value of each kept weight. The one decoder; artifact and model share it."""
    if q.scheme == "affine":
        assert q.scale is not None and q.zero_point is not None
        return ((q.codes - q.zero_point[q.groups]).to(torch.float32) * q.scale[q.groups]).to(
            torch.float32
        )
    if q.scheme == "codebook":
        assert q.codebook is not None
        return q.codebook[q.groups, q.codes]
    raise ValueError(f"unknown quantization scheme {q.scheme!r}")


def materialize(shape: torch.Size, layer: LayerRecord, dense: torch.Tensor | None) -> torch.Tensor:
    """The full weight tensor a layer record stands for.

    ``dense`` supplies the kept float values when the layer is not quantized.
    """
    if layer.quant is not None:
        values = dequantize(layer.quant)
    else:
        assert dense is not None
        values = dense.reshape(-1)[layer.mask.reshape(-1)] if layer.mask is not None else dense
    if layer.mask is None:
        return values.reshape(shape).clone()
    out = torch.zeros(shape, dtype=torch.float32)
    out.view(-1)[layer.mask.reshape(-1)] = values
    return out


def get_record(model: torch.nn.Module) -> CompressionRecord | None:
    return getattr(model, RECORD_ATTR, None)


def get_spec(model: torch.nn.Module) -> ModelSpec | None:
    return getattr(model, SPEC_ATTR, None)
