"""Yardsticks for the artifact: what a plain general-purpose dump takes, and the entropy bound.

``plain_dump_bytes`` is the five-line dump a user would write instead of our
format: every compressed layer's codes as uint8 (uint16 above 8 bits), its
keep-mask packed 8 per byte, its scales, zero points and codebooks as stored
in the record, every other tensor as float32 bytes; all concatenated and
compressed with ``lzma`` (preset 9 | extreme) or ``zlib`` level 9, whichever is
smaller. ``entropy_bound_bytes`` is the order-0 bound of the quantized
layers' codes and keep-masks: ``n * H(codes) + numel * h(kept fraction)``.

Example:
    >>> plain_dump_bytes(small)["model"] >= artifact_size(small).artifact_bytes
    True
"""

from __future__ import annotations

import lzma
import zlib

import numpy as np
from torch import nn

from ..core.record import LayerRecord, get_record
from . import entropy


def _layer_dump(weight: np.ndarray, layer: LayerRecord) -> bytes:
    parts = []
    if layer.mask is not None:
        parts.append(np.packbits(layer.mask.reshape(-1).numpy()).tobytes())
    q = layer.quant
    if q is None:
        keep = slice(None) if layer.mask is None else layer.mask.reshape(-1).numpy()
        return b"".join(parts) + weight.reshape(-1)[keep].astype("<f4").tobytes()
    parts.append(q.codes.numpy().astype(np.uint8 if q.bits <= 8 else np.uint16).tobytes())
    for t in (q.scale, q.zero_point, q.codebook):
        if t is not None:
            parts.append(t.numpy().tobytes())
    return b"".join(parts)


def _smallest(data: bytes) -> int:
    xz = lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)
    return min(len(xz), len(zlib.compress(data, 9)))


def plain_dump_bytes(model: nn.Module) -> dict[str, int]:
    """Bytes of the plain dump: ``model`` (everything) and ``layers`` (compressed layers only)."""
    record = get_record(model)
    recorded = {} if record is None else record.layers
    layers, rest = [], []
    for key, t in model.state_dict().items():
        name = key.removesuffix(".weight") if key != "weight" else ""
        layer = recorded.get(name) if key.endswith("weight") else None
        if layer is not None and (layer.mask is not None or layer.quant is not None):
            layers.append(_layer_dump(t.detach().numpy(), layer))
        else:
            rest.append(t.detach().contiguous().numpy().tobytes())
    dump = b"".join(layers)
    return {"model": _smallest(dump + b"".join(rest)), "layers": _smallest(dump) if dump else 0}


def entropy_bound_bytes(model: nn.Module) -> float:
    """Order-0 entropy of the quantized layers' codes and keep-masks, in bytes."""
    record = get_record(model)
    bits = 0.0
    for layer in ({} if record is None else record.layers).values():
        if layer.quant is None:
            continue
        bits += entropy.entropy_bits(layer.quant.codes.numpy())
        mask = None if layer.mask is None else layer.mask.reshape(-1).numpy()
        if mask is not None and not mask.all():
            bits += entropy.entropy_bits(mask.astype(np.int64))
    return bits / 8
