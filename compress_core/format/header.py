"""The artifact's prefix and header: magic, format version, and the JSON header, packed small.

Format 4::

    b"SLIM" | version: u8 | header length: LEB128 varint | raw deflate of the JSON header

The JSON is deflated (level 9, no zlib wrapper) against ``PRESET``, a fixed preset
dictionary of the strings every header repeats (keys, encodings, the registry's model
specs), so a typical header takes 60-200 bytes instead of 240-380 with plain zlib.
``PRESET`` is part of format 4: changing one byte of it makes every format-4 file
unreadable, so a test pins its hash. Formats 1-3 (``<4sBI`` prefix, zlib-wrapped JSON)
are read with the same call.

Example:
    >>> blob = pack({"spec": None, "config": None, "structured": [], "activations": {},
    ...              "tensors": []}, version=4) + payload
    >>> version, header, offset = unpack(blob)
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

MAGIC = b"SLIM"
MAX_HEADER = 64 << 20  # refuse headers that inflate beyond this (a zip bomb)
_OLD_PREFIX = struct.Struct("<4sBI")  # formats 1-3: magic, version, header length


class HeaderError(ValueError):
    """A prefix or header that cannot be read; the message says what is wrong."""


# Fragments of typical format-4 headers (keys sorted, as json.dumps writes them). The last
# ones are the most common: deflate codes near matches a little more cheaply.
PRESET = "".join(
    [
        '"act_bits":8,"act_calibration":"percentile","bias_correction":true,"exclude":["',
        '"include":["conv*"],"prune_method":"l1-structured","recalibrate_bn":true,',
        '"scope":"global","seed":1,"skip_first_last":false,"granularity":"per_tensor",',
        '"structured":[{"dim":"out","idxs":[0,1,2,3],"module":"conv1"}],',
        '"activations":{"fc1":{"bits":8,"scale":0.01,"zero_point":0}},',
        '{"in_shape":[3,32,32],"name":"resnet18","num_classes":10}',
        '{"in_shape":[1,28,28],"name":"lenet5-caffe","num_classes":10}',
        '{"in_shape":[1,8,8],"name":"mlp","num_classes":10}',
        '"cb":"full","cb":"used","cbi":{"ia":1,"ih":0,"len":42,"pos":"bitmask"},"ch":12,',
        '"eg":1,"ih":8,"ia":1,"pos":"none","pos":"code","zp":"int8","zp":"uint16",',
        '{"b":3,"bits":2,"cb":"used","cbi":{"b":4,"ia":1,"ih":0,"len":40,"ni":381,',
        '"pos":"relative"},"enc":"layer","ih":8,"len":[601,873,252],"ng":84,"ni":1954,',
        '"pos":"relative","scheme":"codebook","zq":2},',
        '{"enc":"layer","ia":1,"len":[99,0,9120],"pos":"bitmask","scheme":"float","zv":1},',
        '{"bits":8,"ca":1,"enc":"layer","ia":1,"len":[1731,533,43521],"ng":120,',
        '"pos":"bitmask","scheme":"affine","zp":"uint8","zq":2},',
        '{"bits":4,"enc":"dump","ng":120,"pos":"bitmask","scheme":"codebook"},',
        '{"bits":4,"enc":"dump","ng":16,"pos":"none","scheme":"affine"},',
        '{"bits":2,"ca":1,"enc":"layer","len":[0,80,506],"ng":16,"pos":"zero",',
        '"scheme":"affine","zp":"uint8","zq":1},{"enc":"raw","len":[0,0,2899],"zv":1},',
        '{"activations":{},"config":{"bits":4,"prune_rate":0.5,"quant":"kmeans"},',
        '"solid":[1,23106,40440],',
        '"spec":{"in_shape":[1,28,28],"name":"lenet5","num_classes":10},"structured":[],',
        '"tensors":[{"enc":"raw","len":[0,0,559],"zv":1},{"enc":"raw","len":[0,0,24]},',
    ]
).encode()


def varint(n: int) -> bytes:
    """``n`` >= 0 as LEB128: 7 bits a byte, low bits first, high bit set on all but the last."""
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def read_varint(blob: bytes, offset: int) -> tuple[int, int]:
    """The varint at ``offset`` and the offset after it; at most 5 bytes (< 2**35)."""
    n = 0
    for i in range(5):
        if offset + i >= len(blob):
            raise HeaderError("artifact is truncated inside the header length")
        byte = blob[offset + i]
        n |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return n, offset + i + 1
    raise HeaderError("the header length is not a valid varint")


def pack(header: dict[str, Any], version: int) -> bytes:
    """Prefix and header of a format-4 artifact (``version`` >= 4)."""
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zdict=PRESET)
    packed = deflate.compress(text) + deflate.flush()
    return MAGIC + bytes([version]) + varint(len(packed)) + packed


def unpack(blob: bytes, versions: tuple[int, ...]) -> tuple[int, Any, int]:
    """The format version, the parsed JSON header and where the payload starts.

    Raises ``HeaderError`` for anything that is not a readable Slimscope header of one of
    ``versions``.
    """
    if len(blob) < 6:
        raise HeaderError(
            f"not a Slimscope artifact: {len(blob)} bytes, shorter than the smallest prefix"
        )
    if blob[:4] != MAGIC:
        raise HeaderError(f"not a Slimscope artifact: starts with {blob[:4]!r}, not {MAGIC!r}")
    version = blob[4]
    if version not in versions:
        raise HeaderError(
            f"artifact format version {version} is not supported (this version reads {versions})"
        )
    if version < 4:
        if len(blob) < _OLD_PREFIX.size:
            raise HeaderError("artifact is truncated inside its prefix")
        start, length = _OLD_PREFIX.size, _OLD_PREFIX.unpack_from(blob)[2]
        inflate = zlib.decompressobj()
    else:
        length, start = read_varint(blob, 5)
        inflate = zlib.decompressobj(-15, zdict=PRESET)
    end = start + length
    if end > len(blob):
        raise HeaderError(f"artifact is truncated: the header needs {end} bytes, has {len(blob)}")
    try:
        text = inflate.decompress(blob[start:end], MAX_HEADER)
        if not inflate.eof or inflate.unconsumed_tail or inflate.unused_data:
            raise ValueError("the compressed header is incomplete or has trailing bytes")
        return version, json.loads(text), end
    except (zlib.error, ValueError) as e:
        raise HeaderError(f"artifact header is corrupt: {e}") from e
