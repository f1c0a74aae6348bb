"""Bit streams for the artifact: fixed-width packing and canonical Huffman codes.

Bits are written most significant first, values back to back, and the last
byte is zero-padded (numpy's ``packbits`` order). A canonical Huffman code is
fully described by its code lengths, so that is all a decoder needs besides
the stream and the symbol count.

Example:
    >>> data, lengths = encode(np.array([0, 0, 0, 1, 2]), alphabet_size=4)
    >>> lengths.tolist(), len(data)  # 0 -> '0', 1 -> '10', 2 -> '11': 7 bits
    ([1, 2, 2, 0], 1)
    >>> decode(data, lengths, count=5).tolist()
    [0, 0, 0, 1, 2]
"""

from __future__ import annotations

import heapq

import numpy as np

# Longest code allowed. Keeps the decode table at <= 2**20 entries and lets a
# code length be stored in 5 bits; lengths are flattened when a tree is deeper.
MAX_LEN = 20
LENGTH_BITS = 5  # bits per stored code length


def pack_bits(values: np.ndarray, lengths: np.ndarray | int) -> bytes:
    """Write each value in ``lengths`` bits (one width, or one per value), back to back.

    Values must fit their width (< 2**length); widths are 0..32.

    Example:
        >>> pack_bits(np.array([1, 2, 3]), 2)  # 01 10 11 (00 padding)
        b'l'
    """
    values = np.asarray(values, dtype=np.uint64).reshape(-1)
    widths = np.broadcast_to(np.asarray(lengths, dtype=np.int64), values.shape)
    ends = np.cumsum(widths)
    total = int(ends[-1]) if len(ends) else 0
    if total == 0:
        return b""
    starts = ends - widths
    if widths.min() == 0:  # a zero-width value writes nothing (and would shift by 64)
        used = widths > 0
        values, widths, starts = values[used], widths[used], starts[used]
    # The stream as 32-bit chunks. Each value, placed in the 64-bit window of the
    # chunk it starts in and the next, is OR-ed into both; values come in stream
    # order, so those sharing a chunk are contiguous and reduceat combines them.
    chunk = starts >> 5
    word = values << (64 - (starts & 31) - widths).astype(np.uint64)
    head = np.flatnonzero(np.diff(chunk, prepend=-1))
    out = np.zeros((total + 31) // 32 + 1, dtype=np.uint64)
    out[chunk[head]] = np.bitwise_or.reduceat(word >> np.uint64(32), head)
    out[chunk[head] + 1] |= np.bitwise_or.reduceat(word & np.uint64(0xFFFFFFFF), head)
    return out.astype(">u4").tobytes()[: (total + 7) // 8]


def read_bits(data: bytes, offsets: np.ndarray, width: int) -> np.ndarray:
    """The ``width``-bit integer starting at each bit offset (bits past the end read as 0)."""
    if not 1 <= width <= 57:
        raise ValueError(f"width must be 1..57 bits, got {width}")
    offsets = np.asarray(offsets, dtype=np.int64)
    n_words = (7 + width + 7) // 8
    buf = np.concatenate([np.frombuffer(data, dtype=np.uint8), np.zeros(n_words, np.uint8)])
    first = offsets >> 3
    word = np.zeros(len(offsets), dtype=np.uint64)
    for j in range(n_words):
        word |= buf[first + j].astype(np.uint64) << np.uint64(56 - 8 * j)
    word <<= (offsets & 7).astype(np.uint64)
    return (word >> np.uint64(64 - width)).astype(np.int64)


def pack_fixed(values: np.ndarray, bits: int) -> bytes:
    """Pack values at exactly ``bits`` bits each: ceil(n * bits / 8) bytes."""
    if bits in (8, 16, 32):  # whole bytes: the same stream, without the bit shuffling
        return np.asarray(values).astype(f">u{bits // 8}").tobytes()
    return pack_bits(values, bits)


def unpack_fixed(data: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of ``pack_fixed``; ``data`` must be exactly ceil(count * bits / 8) bytes.

    Example:
        >>> unpack_fixed(pack_fixed(np.array([5, 0, 7]), 3), 3, 3).tolist()
        [5, 0, 7]
    """
    if len(data) != (count * bits + 7) // 8:
        raise ValueError(f"{count} values of {bits} bits need {(count * bits + 7) // 8} bytes")
    return read_bits(data, np.arange(count, dtype=np.int64) * bits, bits)


def _tree_depths(freq: list[int]) -> list[int]:
    """Depth of each leaf of a Huffman tree over ``freq`` (>= 2 symbols), ties broken by id."""
    n = len(freq)
    heap = [(f, i) for i, f in enumerate(freq)]
    heapq.heapify(heap)
    parent = [0] * (2 * n - 1)
    node = n
    while len(heap) > 1:
        fa, a = heapq.heappop(heap)
        fb, b = heapq.heappop(heap)
        parent[a] = parent[b] = node
        heapq.heappush(heap, (fa + fb, node))
        node += 1
    depth = [0] * (2 * n - 1)
    for i in range(2 * n - 3, -1, -1):  # parents have larger ids than their children
        depth[i] = depth[parent[i]] + 1
    return depth[:n]


def code_lengths(freq: np.ndarray, max_len: int = MAX_LEN) -> np.ndarray:
    """Huffman code length per symbol (0 for unused ones), at most ``max_len``.

    A lone symbol gets a 1-bit code. A tree deeper than ``max_len`` is rebuilt
    from flattened counts (bzip2's way), which stays close to optimal.
    """
    freq = np.asarray(freq, dtype=np.int64)
    lengths = np.zeros(len(freq), dtype=np.uint8)
    used = np.flatnonzero(freq)
    if len(used) == 1:
        lengths[used] = 1
    if len(used) <= 1:
        return lengths
    if len(used) > 2**max_len:
        raise ValueError(f"{len(used)} symbols cannot have codes of at most {max_len} bits")
    counts = freq[used]
    while True:
        depth = _tree_depths(counts.tolist())
        if max(depth) <= max_len:
            break
        counts = counts // 2 + 1
    lengths[used] = depth
    return lengths


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """The canonical code of each symbol: shorter codes first, then by symbol."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(len(lengths), dtype=np.uint64)
    order = np.argsort(lengths, kind="stable")
    order = order[lengths[order] > 0]
    if len(order) == 0:
        return codes
    ln = lengths[order]
    top = int(ln.max())
    # Kraft: a code is the sum of the code-space shares of every earlier code.
    share = np.left_shift(1, top - ln)
    start = np.concatenate([[0], np.cumsum(share)[:-1]])
    codes[order] = (start >> (top - ln)).astype(np.uint64)
    return codes


def encode(
    symbols: np.ndarray, alphabet_size: int, lengths: np.ndarray | None = None
) -> tuple[bytes, np.ndarray]:
    """Huffman-code ``symbols`` (ints in [0, alphabet_size)): the stream and its code lengths.

    ``lengths`` may be given (e.g. from ``code_lengths``) to skip building the tree.
    """
    symbols = np.asarray(symbols, dtype=np.int64).reshape(-1)
    if len(symbols) and (symbols.min() < 0 or symbols.max() >= alphabet_size):
        raise ValueError(f"symbols must be in [0, {alphabet_size})")
    if lengths is None:
        lengths = code_lengths(np.bincount(symbols, minlength=alphabet_size))
    codes = canonical_codes(lengths)
    return pack_bits(codes[symbols], lengths[symbols].astype(np.int64)), lengths


def encoded_bits(symbols: np.ndarray, alphabet_size: int) -> int:
    """Length in bits of the Huffman stream for ``symbols``: sum of freq * code length."""
    freq = np.bincount(np.asarray(symbols, dtype=np.int64).reshape(-1), minlength=alphabet_size)
    return int(freq @ code_lengths(freq).astype(np.int64))


def _decode_table(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """For every ``top``-bit window: the symbol whose code starts it, and that code's length."""
    if lengths.min(initial=0) < 0 or lengths.max(initial=0) > MAX_LEN:
        raise ValueError(f"code lengths must be 0..{MAX_LEN}")
    order = np.argsort(lengths, kind="stable")
    order = order[lengths[order] > 0]
    if len(order) == 0:
        raise ValueError("no symbol has a code")
    top = int(lengths.max())
    span = np.left_shift(1, top - lengths[order])
    if span.sum() > 2**top:
        raise ValueError("code lengths violate the Kraft inequality")
    pad = 2**top - int(span.sum())  # incomplete code: these windows are invalid (length 0)
    symbol = np.concatenate([np.repeat(order, span), np.zeros(pad, np.int64)])
    length = np.concatenate([np.repeat(lengths[order], span), np.zeros(pad, np.int64)])
    return symbol, length, top


def decode(data: bytes, code_lengths: np.ndarray, count: int) -> np.ndarray:
    """Decode ``count`` symbols; raise ValueError if the stream does not hold exactly them.

    Table-driven: the code at every bit position is looked up at once with
    numpy; only hopping from one code to the next is a Python loop.
    """
    if count == 0:
        if data:
            raise ValueError("Huffman stream has bytes but no symbols")
        return np.zeros(0, dtype=np.int64)
    if count > 8 * len(data):
        raise ValueError(f"{len(data)} bytes cannot hold {count} Huffman codes")
    symbol, length, top = _decode_table(np.asarray(code_lengths, dtype=np.int64))
    nbits = 8 * len(data)
    windows = read_bits(data, np.arange(nbits, dtype=np.int64), top)
    step = length[windows]
    sink = nbits + 1  # where an invalid code or a read past the end leads, for good
    nxt = np.minimum(np.arange(nbits) + np.where(step > 0, step, sink), sink).tolist()
    nxt += [sink, sink]
    starts = [0] * count
    pos = 0
    for i in range(count):
        starts[i] = pos
        pos = nxt[pos]
    if pos > nbits or (pos + 7) // 8 != len(data):
        raise ValueError("Huffman stream is truncated, corrupt or has trailing bytes")
    return symbol[windows[starts]]
