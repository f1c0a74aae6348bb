"""Lossless compression of float bytes (raw tensors, biases, scales, codebooks), when it wins.

Each segment is stored the smallest of three ways: as is (method 0); LZMA2 raw
stream tuned for 4-byte items (``lp=2, pb=2, lc=0``: literals keyed by the byte's
place in a float; method 1); or LZMA2 over the bytes transposed into planes
(all first bytes, then all second bytes, ...: the sign/exponent bytes of
trained weights are highly repetitive; method 2). Raw LZMA streams carry no
container header, which matters for a 40-byte bias. The decoder knows the
uncompressed size from the tensor's shape, so it never inflates past it.

Compressing a 1 MB layer at preset 9e takes a few hundred milliseconds, and a
sweep stores the same uncompressed layers again and again, so results are
memoised by content.

Example:
    >>> method, data = squeeze(weights.numpy().tobytes(), itemsize=4)
    >>> unsqueeze(method, data, size=weights.numel() * 4, itemsize=4) == weights.numpy().tobytes()
    True
"""

from __future__ import annotations

import hashlib
import lzma
from collections import OrderedDict

import numpy as np

METHODS = (0, 1, 2)  # as is, lzma, lzma over byte planes
_CACHE: OrderedDict[bytes, tuple[int, bytes]] = OrderedDict()
_CACHE_ITEMS = 256


def _filters(size: int, itemsize: int, planes: bool) -> list[dict]:
    # The dictionary only needs to cover the data; a small one is much faster to set up.
    dict_size = max(4096, 1 << max(size - 1, 1).bit_length())
    f = {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": dict_size}
    if itemsize == 4 and not planes:
        f.update(lc=0, lp=2, pb=2)
    return [f]


def _planes(data: bytes, itemsize: int) -> bytes:
    return np.frombuffer(data, np.uint8).reshape(-1, itemsize).T.tobytes()


def _unplanes(data: bytes, itemsize: int) -> bytes:
    return np.frombuffer(data, np.uint8).reshape(itemsize, -1).T.tobytes()


def _compress(data: bytes, itemsize: int, method: int) -> bytes:
    planes = method == 2
    source = _planes(data, itemsize) if planes else data
    return lzma.compress(source, lzma.FORMAT_RAW, filters=_filters(len(data), itemsize, planes))


def squeeze(data: bytes, itemsize: int) -> tuple[int, bytes]:
    """The smallest of (method, stored bytes) over METHODS; ties keep the simpler method."""
    if len(data) < 16 or len(data) % itemsize:
        return 0, data
    key = hashlib.blake2b(data, digest_size=16, person=bytes([itemsize])).digest()
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    best = (0, data)
    for method in (1, 2) if itemsize > 1 else (1,):
        packed = _compress(data, itemsize, method)
        if len(packed) < len(best[1]):
            best = (method, packed)
    _CACHE[key] = best
    if len(_CACHE) > _CACHE_ITEMS:
        _CACHE.popitem(last=False)
    return best


def unsqueeze(method: int, data: bytes, size: int, itemsize: int) -> bytes:
    """Inverse of ``squeeze``; raises ValueError unless the result is exactly ``size`` bytes."""
    if method == 0:
        out = data
    elif method in (1, 2):
        planes = method == 2
        inflate = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=_filters(size, itemsize, planes))
        try:
            out = inflate.decompress(data, max_length=size)
        except lzma.LZMAError as e:
            raise ValueError(f"compressed floats are corrupt: {e}") from e
        if not inflate.eof or inflate.unused_data:
            raise ValueError("compressed floats are truncated or have trailing bytes")
        if planes and len(out) == size and size % itemsize == 0:
            out = _unplanes(out, itemsize)
    else:
        raise ValueError(f"unknown float compression method {method!r}")
    if len(out) != size:
        raise ValueError(f"expected {size} bytes of floats, got {len(out)}")
    return out
