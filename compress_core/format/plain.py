"""The compressed layers as one general-purpose stream: the plain dump, inside the artifact.

``reference.plain_dump_bytes`` measures the artifact against what a user would write
instead: each compressed layer as byte-aligned arrays (keep-mask packed 8 a byte, codes
as uint8 or uint16, scales, zero points and codebooks as the record holds them), all
concatenated and compressed with ``lzma`` preset 9e or ``zlib`` level 9, whichever is
smaller. This module writes exactly those bytes (``layer_bytes``, tested equal to the
dump's) and compresses them the same two ways without the containers (``solid``): raw
LZMA2 with the same filter, which gives the very LZMA2 stream ``xz`` wraps (54-63 bytes
of container less), and raw deflate, the stream ``zlib`` wraps (6 bytes less). The
artifact offers that stream as one candidate for all its compressed layers together,
so their bytes are never more than the dump's, by construction.

Layout of one layer (little-endian)::

    [mask: ceil(numel / 8) bytes, numpy packbits order, when the record has a mask]
    affine:   codes (u1 for bits <= 8, else u2) | scales f4[ng] | zero points i8[ng]
    codebook: codes (u1 / u2) | codebook f4[ng, 2**bits]
    float:    the kept weights f4[n]

or, for a pruned affine layer whose pruned weights' groups have a zero code and whose kept
weights are none of them coded as it (positions ``zero``, as in the artifact's per-tensor
coding): no mask, every weight's code (the pruned ones as their group's zero point), then
the scales and zero points; for a codebook (format 5, k-means with a pinned 0.0), every
weight's code, the pruned ones as an entry that is +0.0, then the codebook. The dump has
no such layout; it serves the artifact when it is smaller, and reads back with "kept =
code != zero point" (codebook: "kept = the code's entry is not +0.0").

Example:
    >>> method, block = solid(b"".join(layer_bytes(w, layer) for w, layer in pairs))
    >>> unsolid(method, block, size) == b"".join(...)
    True
"""

from __future__ import annotations

import lzma
import zlib
from math import prod

import numpy as np
import torch

from ..core.record import LayerRecord, QuantState

METHODS = {1: "lzma", 2: "deflate"}


def _lzma_filters(size: int) -> list[dict]:
    # xz's preset 9e; a dictionary that covers the data gives the same stream as xz's 64 MiB
    # one (tested) and is much quicker to set up.
    dict_size = max(4096, 1 << max(size - 1, 1).bit_length())
    return [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": dict_size}]


def solid(data: bytes, deflate: bool = True) -> tuple[int, bytes]:
    """``data`` as raw LZMA2 (method 1) or raw deflate (method 2), whichever is smaller
    (``deflate=False``: LZMA2 only)."""
    xz = lzma.compress(data, lzma.FORMAT_RAW, filters=_lzma_filters(len(data)))
    if not deflate:
        return 1, xz
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    flat = deflate.compress(data) + deflate.flush()
    return (1, xz) if len(xz) <= len(flat) else (2, flat)


def unsolid(method: int, data: bytes, size: int) -> bytes:
    """Inverse of ``solid``; raises ValueError unless it inflates to exactly ``size`` bytes."""
    if method == 1:
        inflate = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=_lzma_filters(size))
        errors: tuple[type[Exception], ...] = (lzma.LZMAError,)
    elif method == 2:
        inflate = zlib.decompressobj(-15)
        errors = (zlib.error,)
    else:
        raise ValueError(f"unknown block compression {method!r}")
    try:
        out = inflate.decompress(data, size)
    except errors as e:
        raise ValueError(f"the shared block is corrupt: {e}") from e
    ended = inflate.eof and not inflate.unused_data
    if method == 2:
        ended = ended and not inflate.unconsumed_tail
    if not ended or len(out) != size:
        raise ValueError("the shared block is truncated or has trailing bytes")
    return out


def layer_bytes(weight: np.ndarray, layer: LayerRecord, dense: np.ndarray | None = None) -> bytes:
    """One compressed layer in the plain dump's layout (``reference._layer_dump``), or
    with ``dense`` (every weight's code, the pruned ones as the zero level) in the
    zero-level layout."""
    parts = []
    q = layer.quant
    if layer.mask is not None and dense is None:
        parts.append(np.packbits(layer.mask.reshape(-1).numpy()).tobytes())
    if q is None:
        keep = slice(None) if layer.mask is None else layer.mask.reshape(-1).numpy()
        return b"".join(parts) + weight.reshape(-1)[keep].astype("<f4").tobytes()
    codes = q.codes.numpy() if dense is None else dense
    parts.append(codes.astype("u1" if q.bits <= 8 else "<u2").tobytes())
    if q.scheme == "affine":
        parts.append(q.scale.numpy().astype("<f4").tobytes())
        parts.append(q.zero_point.numpy().astype("<i8").tobytes())
    else:
        parts.append(q.codebook.numpy().astype("<f4").tobytes())
    return b"".join(parts)


def entry_fields(layer: LayerRecord, zero: bool = False) -> dict:
    """What the reader needs besides the model to parse ``layer_bytes``."""
    pos = "zero" if zero else "none" if layer.mask is None else "bitmask"
    fields = {"enc": "dump", "pos": pos}
    q = layer.quant
    if q is None:
        return {**fields, "scheme": "float"}
    n_groups = len(q.scale) if q.scheme == "affine" else len(q.codebook)
    return {**fields, "scheme": q.scheme, "bits": q.bits, "ng": n_groups}


def max_bytes(entry: dict) -> int:
    """The most bytes ``layer_bytes`` can take for an entry (every weight kept)."""
    numel = prod(entry["shape"])
    mask = (numel + 7) // 8 if entry["pos"] == "bitmask" else 0  # "zero": codes of every weight
    if entry["scheme"] == "float":
        return mask + 4 * numel
    bits, n_groups = entry["bits"], entry["ng"]
    per_group = 12 if entry["scheme"] == "affine" else 4 * 2**bits
    return mask + numel * (1 if bits <= 8 else 2) + n_groups * per_group


class Reader:
    """Reads layers back from an inflated block, in order; ``done`` checks nothing is left."""

    def __init__(self, data: bytes):
        self.data, self.offset = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.offset + n > len(self.data):
            raise ValueError("the shared block ends inside a layer")
        self.offset += n
        return self.data[self.offset - n : self.offset]

    def done(self) -> None:
        if self.offset != len(self.data):
            raise ValueError("the shared block has bytes no layer reads")

    def layer(self, entry: dict, groups_of) -> tuple[torch.Tensor, LayerRecord]:
        """The weight and record of one ``dump`` entry; ``groups_of(kept, shape, n_groups)``
        gives each kept weight's group (the artifact's rule)."""
        shape, scheme = entry["shape"], entry["scheme"]
        numel = prod(shape)
        if entry["pos"] not in ("none", "bitmask") or scheme not in ("affine", "codebook", "float"):
            if not (entry["pos"] == "zero" and scheme in ("affine", "codebook")):
                raise ValueError(f"{entry['name']}: bad plain entry")
        if entry["pos"] == "zero":
            return self._zero_level(entry, groups_of)
        mask = None
        if entry["pos"] == "bitmask":
            bits = np.frombuffer(self.take((numel + 7) // 8), np.uint8)
            mask = np.unpackbits(bits, count=numel).astype(bool)
        kept = np.arange(numel) if mask is None else np.flatnonzero(mask)
        mask_t = None if mask is None else torch.from_numpy(mask).reshape(shape)
        if scheme == "float":
            values = np.frombuffer(self.take(4 * len(kept)), "<f4")
            weight = np.zeros(numel, np.float32)
            weight[kept] = values
            return torch.from_numpy(weight).reshape(shape), LayerRecord(mask_t, None)
        bits, n_groups = entry["bits"], entry["ng"]
        if bits not in range(1, 17) or type(n_groups) is not int or n_groups < 1:
            raise ValueError(f"{entry['name']}: bad bits or group count")
        wide = "u1" if bits <= 8 else "<u2"
        codes = np.frombuffer(self.take(len(kept) * (1 if bits <= 8 else 2)), wide)
        codes = codes.astype(np.int64)
        if len(codes) and codes.max() >= 2**bits:
            raise ValueError(f"{entry['name']}: a code is out of range")
        groups = groups_of(kept, tuple(shape), n_groups)
        if groups is None:
            raise ValueError(f"{entry['name']}: {n_groups} groups are not per-tensor or -channel")
        if scheme == "affine":
            scale = np.frombuffer(self.take(4 * n_groups), "<f4").copy()
            zero_point = np.frombuffer(self.take(8 * n_groups), "<i8").copy()
            q = QuantState(
                "affine", bits, torch.from_numpy(codes), torch.from_numpy(groups),
                scale=torch.from_numpy(scale), zero_point=torch.from_numpy(zero_point),
            )  # fmt: skip
        else:
            table = np.frombuffer(self.take(4 * n_groups * 2**bits), "<f4").copy()
            codebook = torch.from_numpy(table).reshape(n_groups, 2**bits)
            q = QuantState(
                "codebook", bits, torch.from_numpy(codes), torch.from_numpy(groups),
                codebook=codebook,
            )  # fmt: skip
        return None, LayerRecord(mask_t, q)

    def _zero_level(self, entry: dict, groups_of) -> tuple[None, LayerRecord]:
        shape, bits, n_groups = entry["shape"], entry["bits"], entry["ng"]
        numel = prod(shape)
        if bits not in range(1, 17) or type(n_groups) is not int or n_groups < 1:
            raise ValueError(f"{entry['name']}: bad bits or group count")
        wide = "u1" if bits <= 8 else "<u2"
        dense = np.frombuffer(self.take(numel * (1 if bits <= 8 else 2)), wide).astype(np.int64)
        if len(dense) and dense.max() >= 2**bits:
            raise ValueError(f"{entry['name']}: a code is out of range")
        group_of = groups_of(np.arange(numel), tuple(shape), n_groups)
        if group_of is None:
            raise ValueError(f"{entry['name']}: {n_groups} groups are not per-tensor or -channel")
        if entry["scheme"] == "codebook":  # format 5: the zero level is an entry that is +0.0
            table = np.frombuffer(self.take(4 * n_groups * 2**bits), "<f4").copy()
            keep = table.reshape(n_groups, -1).view(np.int32)[group_of, dense] != 0
            params = {"codebook": torch.from_numpy(table).reshape(n_groups, 2**bits)}
        else:
            scale = np.frombuffer(self.take(4 * n_groups), "<f4").copy()
            zero_point = np.frombuffer(self.take(8 * n_groups), "<i8").copy()
            keep = dense != zero_point[group_of]
            params = {"scale": torch.from_numpy(scale), "zero_point": torch.from_numpy(zero_point)}
        codes, groups = torch.from_numpy(dense[keep]), torch.from_numpy(group_of[keep])
        q = QuantState(entry["scheme"], bits, codes, groups, **params)
        return None, LayerRecord(torch.from_numpy(keep).reshape(shape), q)
