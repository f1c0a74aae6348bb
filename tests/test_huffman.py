"""Bit packing and canonical Huffman: exact round trips, optimal lengths, edge cases."""

import heapq

import numpy as np
import pytest

from compress_core.format import huffman


def _symbols(dist: str, alphabet: int, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dist == "uniform":
        return rng.integers(0, alphabet, n)
    if dist == "skewed":  # geometric: what pruned-weight codes and index gaps look like
        return np.minimum(rng.geometric(0.5, n) - 1, alphabet - 1)
    normal = np.round(rng.normal(alphabet / 2, alphabet / 40, n))
    return np.clip(normal, 0, alphabet - 1).astype(np.int64)


def _reference_bits(freq: np.ndarray) -> int:
    """Textbook Huffman cost: the sum of every merged weight (independent of code lengths)."""
    heap = [int(f) for f in freq if f > 0]
    if len(heap) == 1:
        return heap[0]  # one symbol, one bit each
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        cost += merged
        heapq.heappush(heap, merged)
    return cost


def _packbits_reference(values: np.ndarray, bits: int) -> bytes:
    shifts = np.arange(bits - 1, -1, -1, dtype=np.int64)
    matrix = (values.astype(np.int64)[:, None] >> shifts) & 1
    return np.packbits(matrix.astype(np.uint8).reshape(-1)).tobytes()


CASES = [(2, "uniform"), (16, "skewed"), (16, "uniform"), (256, "skewed"), (65536, "normal")]


@pytest.mark.parametrize("alphabet, dist", CASES)
def test_round_trip_is_exact(alphabet, dist):
    symbols = _symbols(dist, alphabet, 20_000)
    data, lengths = huffman.encode(symbols, alphabet)
    assert len(lengths) == alphabet
    np.testing.assert_array_equal(huffman.decode(data, lengths, len(symbols)), symbols)


@pytest.mark.parametrize("alphabet, dist", CASES)
def test_bit_count_is_sum_of_freq_times_length_and_optimal(alphabet, dist):
    symbols = _symbols(dist, alphabet, 20_000, seed=1)
    freq = np.bincount(symbols, minlength=alphabet)
    data, lengths = huffman.encode(symbols, alphabet)
    bits = huffman.encoded_bits(symbols, alphabet)
    assert bits == int(freq @ lengths.astype(np.int64))
    assert len(data) == (bits + 7) // 8
    assert bits == _reference_bits(freq)  # no length limit was needed: optimal


@pytest.mark.parametrize("alphabet", [4, 16, 256])
def test_skewed_input_beats_fixed_length_packing(alphabet):
    symbols = _symbols("skewed", alphabet, 10_000, seed=2)
    fixed = len(huffman.pack_fixed(symbols, int(np.log2(alphabet))))
    assert huffman.encoded_bits(symbols, alphabet) <= 8 * fixed
    assert len(huffman.encode(symbols, alphabet)[0]) < fixed


@pytest.mark.parametrize("alphabet, dist", CASES)
def test_lengths_satisfy_kraft_and_codes_are_prefix_free(alphabet, dist):
    symbols = _symbols(dist, alphabet, 5_000, seed=3)
    lengths = huffman.code_lengths(np.bincount(symbols, minlength=alphabet)).astype(np.int64)
    used = np.flatnonzero(lengths)
    assert sum(2.0 ** -lengths[used]) <= 1.0
    codes = huffman.canonical_codes(lengths)
    words = sorted(format(int(codes[s]), f"0{lengths[s]}b") for s in used)
    assert len(set(words)) == len(words)
    # In sorted order a prefix would sit right before a word it starts.
    assert not any(b.startswith(a) for a, b in zip(words, words[1:], strict=False))


def test_one_symbol_alphabet_uses_one_bit_per_symbol():
    symbols = np.full(13, 5)
    data, lengths = huffman.encode(symbols, 8)
    assert lengths.tolist() == [0, 0, 0, 0, 0, 1, 0, 0]
    assert len(data) == 2 and huffman.encoded_bits(symbols, 8) == 13
    np.testing.assert_array_equal(huffman.decode(data, lengths, 13), symbols)
    data, lengths = huffman.encode(np.zeros(3, np.int64), 1)  # an alphabet of one
    np.testing.assert_array_equal(huffman.decode(data, lengths, 3), [0, 0, 0])


def test_empty_input_encodes_to_nothing():
    data, lengths = huffman.encode(np.zeros(0, np.int64), 16)
    assert data == b"" and not lengths.any()
    assert huffman.encoded_bits(np.zeros(0, np.int64), 16) == 0
    assert huffman.decode(b"", lengths, 0).tolist() == []
    assert huffman.pack_fixed(np.zeros(0, np.int64), 5) == b""


def test_deep_trees_are_limited_to_max_len_and_still_decode():
    # Fibonacci counts give a maximally deep tree: 24 symbols would need 23-bit codes.
    fib = [1, 1]
    while len(fib) < 24:
        fib.append(fib[-1] + fib[-2])
    symbols = np.repeat(np.arange(24), fib)
    data, lengths = huffman.encode(symbols, 24)
    assert lengths.max() <= huffman.MAX_LEN
    assert _reference_bits(np.array(fib)) <= 8 * len(data)
    np.testing.assert_array_equal(huffman.decode(data, lengths, len(symbols)), symbols)


def test_truncated_padded_or_garbage_streams_raise_value_error():
    symbols = _symbols("skewed", 16, 1_000, seed=4)
    data, lengths = huffman.encode(symbols, 16)
    for bad in (data[:-1], data + b"\x00", b""):
        with pytest.raises(ValueError):
            huffman.decode(bad, lengths, len(symbols))
    with pytest.raises(ValueError):  # Kraft violated: three 1-bit codes
        huffman.decode(b"\x00", np.array([1, 1, 1]), 1)
    rng = np.random.default_rng(5)
    for _ in range(200):  # random bytes either decode or raise ValueError, nothing else
        garbage = rng.integers(0, 256, int(rng.integers(1, 40)), dtype=np.uint8).tobytes()
        try:
            out = huffman.decode(garbage, lengths, int(rng.integers(1, 60)))
        except ValueError:
            continue
        assert out.min() >= 0 and out.max() < 16


@pytest.mark.parametrize("bits", list(range(1, 33)))
def test_pack_fixed_matches_packbits_and_takes_ceil_n_k_over_8_bytes(bits):
    rng = np.random.default_rng(bits)
    for n in (1, 7, 8, 9, 1_000):
        values = rng.integers(0, 2**bits, n)
        data = huffman.pack_fixed(values, bits)
        assert len(data) == (n * bits + 7) // 8
        assert data == _packbits_reference(values, bits)
        np.testing.assert_array_equal(huffman.unpack_fixed(data, bits, n), values)


def test_unpack_fixed_refuses_a_wrong_length():
    data = huffman.pack_fixed(np.arange(10), 4)
    with pytest.raises(ValueError):
        huffman.unpack_fixed(data + b"\x00", 4, 10)
    with pytest.raises(ValueError):
        huffman.unpack_fixed(data[:-1], 4, 10)
