"""Arithmetic (ANS) coding of a symbol stream, with its frequency table stored in front.

The coder is ``constriction``'s ANS (a maintained Rust library, pinned in
requirements.txt), driven by a *semi-static* order-0 model: the exact count of
every symbol is written before the stream, so the decoder rebuilds the same
model. That costs a small table but reaches the empirical order-0 entropy
``n * H`` within a few bytes, which an adaptive model cannot beat by much and
would need a Python loop per symbol to drive.

Stream layout (bits most significant first, as in ``huffman.pack_bits``)::

    used: 24 bits | gap width: 5 | count width: 5 | gaps | counts-1 | pad to a byte
    | ANS words (uint32, little-endian)

``gaps`` are the differences between successive used symbols (the first from
-1), ``counts`` how often each occurs, divided by ``2**s`` (rounded, at least 1):
a coarser table costs fewer bits than the slightly worse model it gives; the
encoder takes the shift ``s`` whose estimated total is smallest. The model's
probabilities are the stored counts over their sum. A stream of one distinct
symbol has no ANS words at all: the table says everything.

Example:
    >>> data = encode(np.array([0, 0, 0, 1, 2, 0]), alphabet_size=4)
    >>> decode(data, alphabet_size=4, count=6).tolist()
    [0, 0, 0, 1, 2, 0]
"""

from __future__ import annotations

import constriction
import numpy as np

from .huffman import pack_bits, read_bits

_HEAD = (24, 5, 5)  # bit widths of: used symbols, gap width, count width
_HEAD_BITS = sum(_HEAD)
HEAD_BITS = _HEAD_BITS  # the table's fixed part, for bounds (streams.floors)


def _width(values: np.ndarray) -> int:
    return int(values.max()).bit_length() if len(values) else 0


def _model(counts: np.ndarray):
    return constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)


def estimate(freq: np.ndarray) -> tuple[int, float]:
    """The table shift that looks smallest for these symbol counts, and its size in bytes.

    The size is the exact table plus the stream's ideal length under the stored
    model, plus 4 bytes for ANS's final state; ``encode`` comes within a few bytes.
    """
    counts = freq[freq > 0].astype(np.int64)
    best = (0, float("inf"))
    gap_bits = _HEAD_BITS + len(counts) * _width(_gaps(freq))  # the same for every shift
    for shift in range(max(_width(counts), 1)):
        kept = _scaled(counts, shift)
        table = (gap_bits + len(counts) * _width(kept - 1) + 7) // 8
        stream = -(counts * np.log2(kept / kept.sum())).sum() / 8 + 4 if len(counts) > 1 else 0
        if table + stream > best[1]:
            break
        best = (shift, table + stream)
    return best


def _scaled(counts: np.ndarray, shift: int) -> np.ndarray:
    return np.maximum((counts + (1 << shift >> 1)) >> shift, 1)


def _gaps(freq: np.ndarray) -> np.ndarray:
    return np.diff(np.flatnonzero(freq), prepend=-1)


def encode(symbols: np.ndarray, alphabet_size: int, shift: int | None = None) -> bytes:
    """The table and the ANS stream for ``symbols`` (ints in [0, alphabet_size)).

    ``shift`` (counts stored divided by ``2**shift``) defaults to ``estimate``'s choice.
    """
    symbols = np.asarray(symbols, dtype=np.int64).reshape(-1)
    if not len(symbols):
        return b""
    if symbols.min() < 0 or symbols.max() >= alphabet_size or alphabet_size > 2**24:
        raise ValueError(f"symbols must be in [0, {alphabet_size}) and the alphabet < 2**24")
    freq = np.bincount(symbols, minlength=alphabet_size)
    used = np.flatnonzero(freq)
    shift = estimate(freq)[0] if shift is None else shift
    kept, gaps = _scaled(freq[used], shift), _gaps(freq)
    wg, wc = _width(gaps), _width(kept - 1)
    table = pack_bits(
        np.concatenate([[len(used), wg, wc], gaps, kept - 1]),
        np.concatenate([_HEAD, np.full(len(used), wg), np.full(len(used), wc)]),
    )
    if len(used) == 1:
        return table
    rank = np.zeros(alphabet_size, dtype=np.int32)
    rank[used] = np.arange(len(used), dtype=np.int32)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(rank[symbols], _model(kept.astype(np.float64)))
    return table + coder.get_compressed().astype("<u4").tobytes()


def decode(data: bytes, alphabet_size: int, count: int) -> np.ndarray:
    """Inverse of ``encode``; raises ValueError unless ``data`` holds exactly ``count`` symbols."""
    if count == 0:
        if data:
            raise ValueError("an empty stream has bytes")
        return np.zeros(0, dtype=np.int64)
    if len(data) * 8 < _HEAD_BITS:
        raise ValueError("the stream is shorter than its table header")
    n_used = int(read_bits(data, np.array([0]), 24)[0])
    wg, wc = (int(w) for w in read_bits(data, np.array([24, 29]), 5))
    if not 1 <= n_used <= alphabet_size or n_used > count:
        raise ValueError(f"the table claims {n_used} symbols")
    table_bits = _HEAD_BITS + n_used * (wg + wc)
    table_bytes = (table_bits + 7) // 8
    if table_bytes > len(data) or (wg and wg > 25) or wc > 32:
        raise ValueError("the frequency table is truncated or malformed")
    offsets = _HEAD_BITS + np.arange(n_used, dtype=np.int64) * wg
    gaps = read_bits(data, offsets, wg) if wg else np.zeros(n_used, np.int64)
    offsets = _HEAD_BITS + n_used * wg + np.arange(n_used, dtype=np.int64) * wc
    kept = (read_bits(data, offsets, wc) if wc else np.zeros(n_used, np.int64)) + 1
    used = np.cumsum(gaps) - 1
    if (gaps[1:] < 1).any() or used[0] < 0 or used[-1] >= alphabet_size:
        raise ValueError("the frequency table does not fit the stream")
    words = data[table_bytes:]
    if n_used == 1:
        if words:
            raise ValueError("a one-symbol stream has trailing bytes")
        return np.full(count, used[0], dtype=np.int64)
    if not words or len(words) % 4:
        raise ValueError("the ANS stream is not whole 32-bit words")
    coder = constriction.stream.stack.AnsCoder(np.frombuffer(words, "<u4").astype(np.uint32))
    ranks = coder.decode(_model(kept.astype(np.float64)), count)
    if not coder.is_empty():
        raise ValueError("the ANS stream is corrupt or has trailing words")
    return used[ranks.astype(np.int64)]


def entropy_bits(symbols: np.ndarray) -> float:
    """Order-0 empirical entropy of the stream in bits: ``sum(-c * log2(c / n))``."""
    counts = np.bincount(np.asarray(symbols, dtype=np.int64).reshape(-1))
    counts = counts[counts > 0].astype(np.float64)
    return float(-(counts * np.log2(counts / counts.sum())).sum()) if len(counts) else 0.0
