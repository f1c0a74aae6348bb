"""Every exact way to store a symbol stream or a keep-mask, with its size known before writing.

A stream of symbols (weight codes, relative indexes, mask bits) is stored the
smallest of three ways, recorded in two header fields: packed at a fixed
width (``h`` = 0, ``a`` = 0), canonical Huffman with its code-length table
(``h`` = number of table entries), or ANS with its frequency table (``a`` = 1,
see ``entropy.py``). Positions of kept weights are ``none`` (nothing pruned),
``bitmask`` (one bit per weight, or those bits ANS-coded) or ``relative``
(Deep Compression's gaps in ``b`` bits, ``2**b - 1`` meaning "skip that many",
``b`` = 1..8, any of the three stream codings). The field names are the
format-1 ones (``ch``/``ih`` for Huffman) plus ``ca``/``ia`` for ANS, so
format-1 files read with the same code.

Example:
    >>> option = cheapest(position_options(mask, np.flatnonzero(mask)))
    >>> decode_positions(option.fields, option.make(), len(mask), "fc1").tolist() == mask.tolist()
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from . import entropy, huffman

MAX_INDEX_BITS = 8  # relative indexes use 1..8 bits per gap


class StreamError(ValueError):
    """A stream or index that cannot be decoded as its header says."""


@dataclass
class Option:
    """One way to store a stream: its header fields, exact size, and how to make its bytes."""

    fields: dict
    nbytes: int
    nbits: int  # before padding: breaks ties between equal byte counts
    make: Callable[[], bytes]


class LazyOption(Option):
    """An ANS option: its size is estimated at once and known exactly once encoded."""

    def __init__(self, fields: dict, estimate: float, encode: Callable[[], bytes]):
        self.fields, self.estimate, self._encode, self._data = fields, estimate, encode, None

    def make(self) -> bytes:
        if self._data is None:
            self._data = self._encode()
        return self._data

    @property
    def nbytes(self) -> int:
        return len(self.make())

    @property
    def nbits(self) -> int:
        return 8 * self.nbytes


SLACK = 2.0  # bytes: an ANS stream is never that much below its estimate (entropy.estimate)


def cheapest(options: list[Option]) -> Option:
    """The smallest option (then the first: the simplest), encoding only ANS streams that
    can win by their estimate."""
    exact = [o for o in options if not isinstance(o, LazyOption)]
    best = min(exact, key=lambda o: (o.nbytes, o.nbits)) if exact else None
    for o in sorted((o for o in options if isinstance(o, LazyOption)), key=lambda o: o.estimate):
        if best is not None and o.estimate - SLACK >= best.nbytes:
            break
        if best is None or (o.nbytes, o.nbits) < (best.nbytes, best.nbits):
            best = o
    return best


def stream_options(
    symbols: Callable[[], np.ndarray],
    freq: np.ndarray,
    bits: int,
    fields: dict,
    keys: str,
    coded: bool = True,
    beat: float | None = None,
) -> list[Option]:
    """Fixed width, then (``coded``) Huffman and ANS for one stream; ``keys`` names the
    stream's Huffman and ANS fields.

    ``beat``: the exact size of another option ``cheapest`` will weigh this stream's
    against; Huffman and ANS options that provably take more bytes (``floors``) are left
    out, which never changes ``cheapest``'s choice and skips building their trees and tables.
    """
    key_h, key_a = keys.split()
    count = int(freq.sum())
    plain = (count * bits + 7) // 8
    fixed = {**fields, key_h: 0, key_a: 0}
    options = [Option(fixed, plain, count * bits, lambda: huffman.pack_fixed(symbols(), bits))]
    if count and coded:
        floor_h, floor_a = floors(freq) if beat is not None else (0, 0)
        if beat is None or floor_h <= beat:
            options += _huffman_option(freq, plain, {**fields, key_a: 0}, key_h, symbols)
        if beat is None or floor_a <= beat:
            shift, size = entropy.estimate(freq)
            ans = {**fields, key_h: 0, key_a: 1}
            encode = lambda: entropy.encode(symbols(), len(freq), shift)  # noqa: E731
            options.append(LazyOption(ans, size, encode))
    return options


def floors(freq: np.ndarray) -> tuple[float, float]:
    """Sizes in bytes that the Huffman and the ANS option of a stream with these symbol
    counts can never go below.

    Huffman: its table plus ``n * H`` bits (Kraft: no prefix code beats the empirical
    entropy). ANS: the part of its table that does not depend on the precision, plus
    ``n * H`` bits (the stored model's cross-entropy is at least the entropy), plus the
    4-byte final state, less ``SLACK`` (an ANS stream is never that far below
    ``entropy.estimate``, which ``cheapest`` relies on too).
    """
    used = np.flatnonzero(freq)
    if not len(used):  # an empty stream: no coder but fixed width stores it
        return 0.0, 0.0
    counts = freq[used].astype(np.float64)
    info = float(-(counts * np.log2(counts / counts.sum())).sum()) if len(used) > 1 else 0.0
    info *= 1 - 1e-9  # float rounding must never lift a floor above the real size
    table_h = (int(used[-1] + 1) * huffman.LENGTH_BITS + 7) // 8
    gap = int(np.diff(used, prepend=-1).max()).bit_length()
    table_a = (entropy.HEAD_BITS + len(used) * gap + 7) // 8
    state = 4 if len(used) > 1 else 0
    return table_h + info / 8, table_a + info / 8 + state - SLACK


def _huffman_option(
    freq: np.ndarray, plain: int, fields: dict, key: str, symbols: Callable[[], np.ndarray]
) -> list[Option]:
    """The Huffman way to store a stream (code-length table + codes), unless it cannot win."""
    used = np.flatnonzero(freq)
    nsym = int(used[-1]) + 1  # the table stops at the last symbol that occurs
    table = (nsym * huffman.LENGTH_BITS + 7) // 8
    if len(used) > 256:  # building a big tree is slow: skip it when entropy says it loses
        p = freq[used] / freq.sum()
        bound = float(-(freq[used] * np.log2(p)).sum()) * (1 - 1e-9)
        if table + int(bound) // 8 >= plain:
            return []
    lengths = huffman.code_lengths(freq)
    size = table + (int(freq @ lengths.astype(np.int64)) + 7) // 8

    def make() -> bytes:
        stream, _ = huffman.encode(symbols(), len(freq), lengths)
        return huffman.pack_fixed(lengths[:nsym], huffman.LENGTH_BITS) + stream

    return [Option({**fields, key: nsym}, size, 8 * size, make)]


def read_stream(
    data: bytes, fields: dict, keys: str, bits: int, count: int, alphabet: int | None = None
) -> np.ndarray:
    """``count`` symbols of ``bits`` bits (``alphabet`` of them, 2**bits unless given),
    decoded as the header fields say. Fixed-width symbols are not checked against
    ``alphabet``."""
    key_h, key_a = keys.split()
    alphabet = 2**bits if alphabet is None else alphabet
    nsym, ans = fields.get(key_h, 0), fields.get(key_a, 0)
    if type(nsym) is not int or type(count) is not int or not 0 <= nsym <= alphabet:
        raise StreamError("bad stream header")
    if ans not in (0, 1) or (ans and nsym):
        raise StreamError("a stream is either Huffman or ANS coded")
    if count < 0 or (count > 8 * len(data) and not ans):
        raise StreamError(f"{len(data)} bytes cannot hold {count} symbols")
    if ans:
        return entropy.decode(data, alphabet, count)
    if nsym == 0:
        return huffman.unpack_fixed(data, bits, count)
    table = (nsym * huffman.LENGTH_BITS + 7) // 8
    lengths = np.zeros(alphabet, dtype=np.int64)
    lengths[:nsym] = huffman.unpack_fixed(data[:table], huffman.LENGTH_BITS, nsym)
    return huffman.decode(data[table:], lengths, count)


def code_options(
    codes: np.ndarray,
    bits: int,
    coded: bool = True,
    freq: np.ndarray | None = None,
    beat: float | None = None,
) -> list[Option]:
    """Every way to store the codes of the kept weights (fixed width only unless ``coded``);
    ``freq``: their counts, when already known; ``beat`` as in ``stream_options``."""
    freq = np.bincount(codes, minlength=2**bits) if freq is None else freq
    return stream_options(lambda: codes, freq, bits, {}, "ch ca", coded, beat)


def pruned_code_options(
    mask: np.ndarray, codes: np.ndarray, bits: int, beat: float | None = None
) -> list[Option]:
    """Every weight's code in one stream, a pruned weight as the extra code ``2**bits``:
    positions ``code``, no index. Entropy coded only (at fixed width it is ``bits + 1``
    bits a weight, never smaller than a bitmask and the codes). ``beat`` as in
    ``stream_options`` (then the list may be empty)."""
    dense = np.full(len(mask), 2**bits, dtype=np.int64)
    dense[mask] = codes
    freq = np.bincount(codes, minlength=2**bits + 1)
    freq[2**bits] = len(mask) - len(codes)
    options = stream_options(lambda: dense, freq, bits + 1, {}, "ch ca", beat=beat)
    return [o for o in options if label(o.fields, "ch ca") != "fixed"]


def position_options(
    mask: np.ndarray | None, kept: np.ndarray, coded: bool = True, prune: bool = False
) -> list[Option]:
    """Every way to store which weights are kept, with exact sizes (bytes made on demand).

    ``prune``: leave out the Huffman and ANS options that provably lose to a fixed-width
    or Huffman one (``stream_options``' ``beat``); ``cheapest`` picks the same option.
    """
    if mask is None or len(kept) == len(mask):
        return [Option({"pos": "none"}, 0, 0, lambda: b"")]
    numel, n = len(mask), len(kept)
    streams = [(lambda: mask.astype(np.int64), np.array([numel - n, n]), 1, {"pos": "bitmask"})]
    # Deep Compression's gaps, histogrammed once: each b's symbol counts follow from it.
    gaps = np.diff(kept, prepend=-1) - 1
    hist = np.bincount(gaps) if n else np.zeros(1, np.int64)
    values = np.arange(len(hist))
    for b in range(1, MAX_INDEX_BITS + 1):
        escape = 2**b - 1
        jumps = int(hist @ (values // escape))
        freq = np.bincount(values % escape, weights=hist, minlength=escape + 1).astype(np.int64)
        freq[escape] += jumps
        fields = {"pos": "relative", "b": b, "ni": n + jumps}
        streams.append((partial(_relative_symbols, gaps, b), freq, b, fields))
    if not prune or not coded:
        return [o for stream in streams for o in _index_options(*stream, coded)]
    # The stream whose coders may go lowest first, made exact: its size is then a bar that
    # most of the others provably cannot pass, so their tables and trees are never built.
    beat = min((int(f.sum()) * b + 7) // 8 for _, f, b, _ in streams)
    low = [min(floors(freq)) for _, freq, _, _ in streams]
    first = int(np.argmin(low))
    found = {first: _index_options(*streams[first], coded, beat)}
    beat = min(beat, cheapest(found[first]).nbytes)
    for i, stream in enumerate(streams):
        if i != first:
            found[i] = _index_options(*stream, coded, beat)
    return [o for i in range(len(streams)) for o in found[i]]


def _index_options(symbols, freq, bits, fields, coded, beat=None) -> list[Option]:
    options = stream_options(symbols, freq, bits, fields, "ih ia", coded, beat)
    if fields["pos"] == "bitmask":
        # Huffman over two symbols is a bitmask with a table; keep the plain and ANS ones.
        options = [o for o in options if not o.fields["ih"]]
    return options


def _relative_symbols(gaps: np.ndarray, b: int) -> np.ndarray:
    """Each gap g as g // E escapes (E = 2**b - 1) then g % E: Deep Compression's indexes."""
    escape = 2**b - 1
    jumps, rest = np.divmod(gaps, escape)
    ends = np.cumsum(jumps + 1)
    out = np.full(int(ends[-1]) if len(ends) else 0, escape, dtype=np.int64)
    out[ends - 1] = rest
    return out


def _relative_positions(symbols: np.ndarray, b: int) -> np.ndarray:
    """Inverse of ``_relative_symbols``: the kept positions."""
    escape = 2**b - 1
    ends = np.cumsum(np.where(symbols == escape, escape, symbols + 1))
    return ends[symbols != escape] - 1


def decode_positions(fields: dict, data: bytes, numel: int, name: str) -> np.ndarray | None:
    """The flat keep-mask (None: nothing pruned) from an index segment and its header fields."""
    pos = fields["pos"]
    if pos == "none":
        if data:
            raise StreamError(f"{name}: unpruned weights need no index")
        return None
    if pos == "bitmask":
        if fields.get("ia", 0):
            return read_stream(data, fields, "ih ia", 1, numel).astype(bool)
        if len(data) != (numel + 7) // 8:
            raise StreamError(f"{name}: a bitmask of {numel} bits is wrong-sized")
        return np.unpackbits(np.frombuffer(data, np.uint8), count=numel).astype(bool)
    if pos != "relative" or fields["b"] not in range(1, MAX_INDEX_BITS + 1):
        raise StreamError(f"{name}: unknown position encoding {pos!r}")
    b = fields["b"]
    symbols = read_stream(data, fields, "ih ia", b, fields["ni"])
    kept = _relative_positions(symbols, b)
    if len(kept) and kept[-1] >= numel:
        raise StreamError(f"{name}: a relative index points past the weight")
    mask = np.zeros(numel, dtype=bool)
    mask[kept] = True
    return mask


def label(fields: dict, keys: str) -> str:
    """'fixed', 'huffman' or 'ans': how a stream was coded, for the per-layer report."""
    key_h, key_a = keys.split()
    return "ans" if fields.get(key_a) else "huffman" if fields.get(key_h) else "fixed"
