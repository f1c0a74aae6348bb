"""Format 2: ANS streams, compressed floats, format-1 files, the byte breakdown, and the
artifact against a plain lzma/zlib dump and the order-0 entropy bound."""

import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from test_artifact import (
    _as_zero_level,
    _assert_same_model,
    _assert_same_record,
    _attach,
    _hand_model,
)

from compress_core import CompressionConfig, compress
from compress_core.core.quantize import dequantize, quantize_tensor
from compress_core.core.record import get_record
from compress_core.format import artifact as art
from compress_core.format import entropy, squeeze, streams
from compress_core.format.artifact import (
    COMPONENTS,
    artifact_breakdown,
    artifact_size,
    export,
    load_compressed,
)
from compress_core.format.reference import entropy_bound_bytes, plain_dump_bytes

DATA = Path(__file__).parent / "data"

# --- ANS streams ----------------------------------------------------------------------


def _symbols(n: int, alphabet: int, spread: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.round(rng.normal(alphabet / 2, spread, n)), 0, alphabet - 1).astype(int)


@pytest.mark.parametrize(
    "n, alphabet, spread",
    [(1, 2, 1), (3, 2, 1), (17, 4, 0.1), (1000, 4, 1), (5000, 2, 0.3), (20_000, 256, 20)]
    + [(20_000, 2**16, 3000), (20_000, 2**16 + 1, 2)],
)
def test_ans_round_trips_and_comes_within_a_table_of_the_entropy(n, alphabet, spread):
    symbols = _symbols(n, alphabet, spread)
    data = entropy.encode(symbols, alphabet)
    np.testing.assert_array_equal(entropy.decode(data, alphabet, n), symbols)
    used = len(np.unique(symbols))
    table = (34 + used * (2 * max(alphabet, 2).bit_length()) + 7) // 8
    assert len(data) <= entropy.entropy_bits(symbols) / 8 + table + 12
    estimate = entropy.estimate(np.bincount(symbols, minlength=alphabet))[1]
    assert len(data) >= estimate - streams.SLACK  # what cheapest() relies on


@pytest.mark.parametrize("shift", [0, 1, 3, 8])
def test_every_table_precision_round_trips(shift):
    symbols = _symbols(3000, 64, 6, seed=shift)
    data = entropy.encode(symbols, 64, shift)
    np.testing.assert_array_equal(entropy.decode(data, 64, len(symbols)), symbols)


def test_corrupt_ans_streams_raise_value_error_or_decode_to_in_range_symbols():
    symbols = _symbols(2000, 16, 2)
    data = entropy.encode(symbols, 16)
    for bad in (data[:-4], data + b"\0\0\0\0", data[:3], b""):
        with pytest.raises(ValueError):
            entropy.decode(bad, 16, len(symbols))
    rng = np.random.default_rng(1)
    for pos in rng.choice(len(data), 60, replace=False):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(8))
        try:
            out = entropy.decode(bytes(flipped), 16, len(symbols))
        except ValueError:
            continue
        assert len(out) == len(symbols) and 0 <= out.min() and out.max() < 16


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 16])
def test_every_code_option_decodes_to_the_codes(bits):
    codes = _symbols(4000, 2**bits, 2 ** (bits - 1) / 4 + 0.5)
    options = streams.code_options(codes, bits)
    assert {"fixed", "ans"} <= {streams.label(o.fields, "ch ca") for o in options}
    for o in options:
        data = o.make()
        assert len(data) == o.nbytes
        decoded = streams.read_stream(data, o.fields, "ch ca", bits, len(codes))
        np.testing.assert_array_equal(decoded, codes)


# --- compressed floats ------------------------------------------------------------------


@pytest.mark.parametrize("method", [1, 2])
@pytest.mark.parametrize("itemsize", [1, 4, 8])
def test_every_float_method_round_trips(method, itemsize):
    data = (
        torch.randn(3000, dtype=torch.float64).to(torch.float32).numpy().tobytes()[: itemsize * 700]
    )
    packed = squeeze._compress(data, itemsize, method)
    assert squeeze.unsqueeze(method, packed, len(data), itemsize) == data
    with pytest.raises(ValueError):
        squeeze.unsqueeze(method, packed[:-3], len(data), itemsize)
    with pytest.raises(ValueError):
        squeeze.unsqueeze(method, packed, len(data) - itemsize, itemsize)


def test_floats_are_compressed_only_when_smaller():
    noise = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    assert squeeze.squeeze(noise, 4) == (0, noise)  # incompressible: stored as is
    weights = (torch.randn(20_000) * 0.05).numpy().tobytes()
    method, packed = squeeze.squeeze(weights, 4)
    assert method in (1, 2) and len(packed) < 0.95 * len(weights)
    with pytest.raises(ValueError):
        squeeze.unsqueeze(9, packed, len(weights), 4)


# --- format 1 files, empty channels, the breakdown ---------------------------------------

V1_FILES = {
    "v1-mlp8-4bit-affine-huffman.slim": (4, "affine", True, 0.9, True),
    "v1-mlp8-3bit-codebook.slim": (3, "codebook", False, 0.5, False),
}


@pytest.mark.parametrize("name", V1_FILES)
def test_format_1_files_still_load_bit_exactly_and_rewrite_smaller(name):
    blob = (DATA / name).read_bytes()
    assert blob[4] == 1
    model = _hand_model(*V1_FILES[name])  # what the file was written from (seeded)
    loaded = load_compressed(blob)
    _assert_same_model(model, loaded)
    again = export(loaded)
    assert again[4] == art.VERSION and len(again) < len(blob)
    _assert_same_model(model, load_compressed(again))


# Written by format 2 (commit a42e46c) from the same seeded hand-made models.
V2_FILES = {
    "v2-mlp8-4bit-affine-huffman.slim": (4, "affine", True, 0.9, True),
    "v2-mlp8-3bit-codebook.slim": (3, "codebook", False, 0.5, False),
    "v2-mlp8-5bit-affine-light.slim": (5, "affine", False, 0.05, False),
}


@pytest.mark.parametrize("name", V2_FILES)
def test_format_2_files_still_load_bit_exactly_and_rewrite_no_larger(name):
    blob = (DATA / name).read_bytes()
    assert blob[4] == 2
    model = _hand_model(*V2_FILES[name])
    loaded = load_compressed(blob)
    _assert_same_model(model, loaded)
    _assert_same_record(model, loaded)
    again = export(loaded)
    assert again[4] == art.VERSION and len(again) <= len(blob)
    _assert_same_model(model, load_compressed(again))


# Written by format 3 (commit 34091a5) from the same seeded hand-made models: zero level
# (5-bit affine, light) and a lightly pruned per-channel k-means layer.
V3_FILES = {
    "v3-mlp8-4bit-affine-huffman.slim": (4, "affine", True, 0.9, True),
    "v3-mlp8-3bit-codebook.slim": (3, "codebook", False, 0.5, False),
    "v3-mlp8-5bit-affine-light.slim": (5, "affine", False, 0.05, False),
    "v3-mlp8-3bit-codebook-light.slim": (3, "codebook", True, 0.05, False),
}


@pytest.mark.parametrize("name", V3_FILES)
def test_format_3_files_still_load_bit_exactly_and_rewrite_no_larger(name):
    blob = (DATA / name).read_bytes()
    assert blob[4] == 3
    model = _hand_model(*V3_FILES[name])
    loaded = load_compressed(blob)
    _assert_same_model(model, loaded)
    _assert_same_record(model, loaded)
    again = export(loaded)
    assert again[4] == art.VERSION and len(again) <= len(blob)
    _assert_same_model(model, load_compressed(again))


def _zero_level_codebook_model(bits=3, per_channel=True, sparsity=0.05, seed=0):
    """``_hand_model``'s codebook layers with entry 0 of every codebook +0.0 and no kept
    weight coded 0, as k-means with a pinned zero leaves them (format 5's zero level)."""
    model = _hand_model(bits, "codebook", per_channel, sparsity, seed=seed)
    layers = get_record(model).layers
    for layer in layers.values():
        q = layer.quant
        q.codebook[:, 0] = 0.0
        q.codes = q.codes % (2**bits - 1) + 1
    return _attach(model, layers, bits=bits, prune_rate=sparsity, quant="kmeans")


# Written by format 5 (this branch) from _zero_level_codebook_model(3, True, 0.05): both
# layers per-channel codebooks at positions "zero", the pruned weights coded as entry 0.
V5_FILES = {"v5-mlp8-3bit-codebook-zero.slim": (3, True, 0.05)}


@pytest.mark.parametrize("name", V5_FILES)
def test_format_5_files_load_bit_exactly_and_rewrite_to_the_same_bytes(name):
    blob = (DATA / name).read_bytes()
    assert blob[4] == art.ZERO_CODEBOOK == 5
    model = _zero_level_codebook_model(*V5_FILES[name])
    loaded = load_compressed(blob)
    _assert_same_model(model, loaded)
    _assert_same_record(model, loaded)
    for layer in get_record(loaded).layers.values():  # the pruned weights are entry 0's 0.0
        assert (layer.quant.codebook[:, 0].view(torch.int32) == 0).all()
    rows = artifact_size(model).layers
    assert {r["index_encoding"] for r in rows if r["param_encoding"]} == {"zero level"}
    assert sum(r["index_bytes"] for r in rows) == 0  # no positions
    assert export(model) == export(loaded) == blob
    assert artifact_size(loaded).artifact_bytes == len(blob)


def test_a_codebook_zero_level_in_a_file_that_says_format_4_is_refused():
    blob = (DATA / "v5-mlp8-3bit-codebook-zero.slim").read_bytes()
    with pytest.raises(art.ArtifactError, match="needs format 5"):
        load_compressed(blob[:4] + bytes([4]) + blob[5:])


def test_a_damaged_format_5_file_raises_artifact_error_or_loads():
    blob = (DATA / "v5-mlp8-3bit-codebook-zero.slim").read_bytes()
    rng = np.random.default_rng(5)
    for pos in rng.choice(len(blob), 80, replace=False):
        data = bytearray(blob)
        data[pos] ^= 1 << int(rng.integers(8))
        try:
            loaded = load_compressed(bytes(data))
        except art.ArtifactError:
            continue
        assert export(loaded) is not None  # a flip in stored values still makes a valid model
    for n in (5, 6, 40, len(blob) // 2, len(blob) - 1):
        with pytest.raises(art.ArtifactError):
            load_compressed(blob[:n])


@pytest.mark.parametrize("seed", [0, 1])
def test_a_codebook_zero_level_round_trips_in_the_shared_block(seed):
    """fc1's codes repeat a row (lzma sees it): the shared block wins, with both layers in
    the zero-level layout (every weight's code, the pruned ones as entry 0, then the table)."""
    from test_format_dump import _periodic_model

    model = _periodic_model("codebook", 3, 0.05, seed)
    layers = get_record(model).layers
    for layer in layers.values():
        layer.quant.codebook[:, 0] = 0.0
        layer.quant.codes = layer.quant.codes % 7 + 1
    model = _attach(model, layers, bits=3, prune_rate=0.05)
    blob = export(model)
    rows = [r for r in artifact_size(model).layers if r["index_encoding"]]
    assert {r["index_encoding"] for r in rows} == {"zero level, shared lzma"}
    assert blob[4] == 5 and len(blob) == artifact_size(model).artifact_bytes
    back = load_compressed(blob)
    _assert_same_model(model, back)
    _assert_same_record(model, back)
    assert export(back) == blob
    with pytest.raises(art.ArtifactError, match="needs format 5"):
        load_compressed(blob[:4] + bytes([4]) + blob[5:])


def test_empty_channels_store_no_scale():
    full, empty = (_hand_model(6, "affine", True, rate) for rate in (0.0, 1.0))
    rows = {r["name"]: r for r in artifact_size(empty).layers}
    assert rows["fc1.weight"]["total_bytes"] == rows["fc2.weight"]["total_bytes"] == 0
    assert artifact_size(full).layers[0]["param_bytes"] > 0
    _assert_same_model(empty, load_compressed(export(empty)))


@pytest.mark.parametrize("kwargs", [dict(), dict(prune_rate=0.8, bits=3, quant="kmeans")])
def test_breakdown_sums_to_the_artifact_and_names_each_segment(kwargs):
    torch.manual_seed(0)
    from compress_core.io.models import build_model

    model = compress(build_model("lenet5", (1, 28, 28), 10), CompressionConfig(**kwargs))
    parts = artifact_breakdown(model)
    size = artifact_size(model)
    assert list(parts) == list(COMPONENTS)
    assert sum(parts.values()) == len(export(model)) == size.artifact_bytes
    assert parts["header"] == size.header_bytes
    rows = size.layers
    assert parts["positions"] == sum(r["index_bytes"] for r in rows)
    assert parts["scales_codebooks"] == sum(r["param_bytes"] for r in rows)
    coded = sum(r["value_bytes"] for r in rows if r["param_encoding"])
    assert parts["codes"] == coded and parts["floats"] == sum(
        r["value_bytes"] for r in rows if not r["param_encoding"]
    )
    assert (parts["codes"] > 0) == CompressionConfig(**kwargs).quantized


# --- against the plain dump and the entropy bound (digits) --------------------------------

GRID = [
    CompressionConfig(prune_rate=rate, bits=bits, quant=quant, huffman=True)
    for rate in (0.0, 0.9)
    for bits in (2, 4)
    for quant in ("uniform", "kmeans")
] + [CompressionConfig(prune_rate=r, bits=b, huffman=True) for r, b in ((1.0, 4), (0.9, 32))]


@pytest.fixture(scope="module")
def grid_rows(digits_lenet):
    base, _ = digits_lenet
    rows = []
    for config in GRID:
        small = compress(base, config)
        blob = export(small)
        _assert_same_model(small, load_compressed(blob))
        size = artifact_size(small)
        layer_rows = [r for r in size.layers if r["index_encoding"]]
        rows.append(
            dict(
                config=config,
                bytes=len(blob),
                layers=sum(r["total_bytes"] for r in layer_rows),
                codes=sum(r["index_bytes"] + r["value_bytes"] for r in layer_rows),
                dump=plain_dump_bytes(small),
                bound=entropy_bound_bytes(small),
            )
        )
    return rows


def test_artifact_is_never_larger_than_the_plain_lzma_or_zlib_dump(grid_rows):
    for r in grid_rows:
        assert r["bytes"] <= r["dump"]["model"], r["config"].label()
        assert r["layers"] <= r["dump"]["layers"], r["config"].label()


def test_codes_and_indexes_are_within_5_percent_of_the_order_0_bound(grid_rows):
    ratios = [r["codes"] / r["bound"] for r in grid_rows if r["bound"] > 0]
    assert len(ratios) == 8  # all but the fully pruned model
    assert statistics.median(ratios) <= 1.05
    assert max(ratios) <= 1.15  # small layers pay a table and a 32-bit ANS state


def test_pruning_more_at_the_same_bits_never_grows_the_file(grid_rows):
    by = {(r["config"].prune_rate, r["config"].bits, r["config"].quant): r for r in grid_rows}
    for (rate, bits, quant), r in by.items():
        if rate == 0.9 and (0.0, bits, quant) in by:
            assert r["bytes"] < by[(0.0, bits, quant)]["bytes"]


@pytest.mark.parametrize("quant", ["uniform", "symmetric"])
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_light_pruning_with_a_zero_level_pays_for_no_index(digits_lenet, quant, bits):
    base, _ = digits_lenet
    dense, light = (
        compress(base, CompressionConfig(prune_rate=r, bits=bits, quant=quant)) for r in (0, 0.05)
    )

    def quantized(model, coded=True):
        rows = artifact_size(model, coded=coded).layers
        return {r["name"]: r for r in rows if r["param_encoding"]}

    # Per tensor (at fixed width, so no shared block): zero level, except at 2-bit symmetric,
    # where a third of the kept weights code zero and an index of the others is smaller.
    rows, dense_rows = quantized(light, False), quantized(dense, False)
    if (bits, quant) != (2, "symmetric"):
        assert "zero level" in {r["index_encoding"] for r in rows.values()}
    for name, row in rows.items():  # smallest-|w| pruning leaves the same codes, pruned ones 0
        assert row["total_bytes"] <= dense_rows[name]["total_bytes"], name
    # Coded, the layers may share a block (their rows are then attributed shares): compare sums.
    rows, dense_rows = quantized(light), quantized(dense)
    assert sum(r["total_bytes"] for r in rows.values()) <= sum(
        r["total_bytes"] for r in dense_rows.values()
    )
    blob = export(light)
    back = load_compressed(blob)
    _assert_same_model(light, back)
    for name, layer in get_record(light).layers.items():  # kept and not the zero code
        if layer.quant is not None and "shared" not in rows[f"{name}.weight"]["index_encoding"]:
            assert torch.equal(get_record(back).layers[name].mask, _as_zero_level(layer).mask)
    assert export(back) == blob


@pytest.mark.parametrize("model", ["lenet5", "mlp"])
@pytest.mark.parametrize("bits", [3, 4])
def test_light_pruning_at_3_bits_or_more_never_grows_a_k_means_file(model, bits, request):
    """Issue 14's last pairs: a k-means codebook had no exact zero, so 5 % pruning added a
    value and an index (LeNet-5, 4 bits: 44,030 -> 44,850 B). With 0.0 pinned as entry 0 the
    pruned weights are that code and the file holds no positions (format 5's zero level)."""
    base, _ = request.getfixturevalue(f"digits_{'lenet' if model == 'lenet5' else model}")
    dense, light = (
        compress(base, CompressionConfig(prune_rate=r, bits=bits, quant="kmeans"))
        for r in (0, 0.05)
    )
    blob = export(light)
    assert len(blob) <= len(export(dense))
    rows = [r for r in artifact_size(light).layers if r["param_encoding"]]
    assert {r["index_encoding"] for r in rows} == {"zero level"} and blob[4] == 5
    assert sum(r["index_bytes"] for r in rows) == 0
    back = load_compressed(blob)
    _assert_same_model(light, back)
    assert export(back) == blob and len(blob) == artifact_size(back).artifact_bytes


@pytest.mark.parametrize(
    "config",
    [dict(prune_rate=0.05, bits=2, quant="kmeans"), dict(prune_rate=0.05, bits=4)]
    + [dict(bits=4, quant="kmeans"), dict(prune_rate=0.05, bits=4, quant="symmetric")],
)
def test_a_file_without_a_codebook_zero_level_stays_format_4(digits_lenet, config):
    base, _ = digits_lenet
    blob = export(compress(base, CompressionConfig(**config)))
    assert blob[4] == art.VERSION == 4


# --- entropy-constrained quantization -------------------------------------------------------


@pytest.mark.parametrize("bits", [2, 3, 4, 6])
@pytest.mark.parametrize("per_channel", [False, True])
def test_ecq_codes_are_no_larger_than_symmetric_at_no_more_error(bits, per_channel):
    torch.manual_seed(bits)
    w = torch.distributions.Laplace(0.0, 0.05).sample((64, 200))  # trained weights look so
    sym, ecq = (quantize_tensor(w, None, bits, m, per_channel) for m in ("symmetric", "ecq"))
    flat = w.reshape(-1)
    err = {m: float(((dequantize(q) - flat) ** 2).sum()) for m, q in (("s", sym), ("e", ecq))}
    assert err["e"] <= err["s"]
    coded = {m: len(entropy.encode(q.codes.numpy(), 2**bits)) for m, q in (("s", sym), ("e", ecq))}
    assert coded["e"] <= coded["s"]
    assert ecq.codes.max() < 2**bits and ecq.scheme == "affine"
    if bits == 2:  # where rate matters most it does shrink (at 6 bits rounding is near optimal)
        assert coded["e"] < 0.95 * coded["s"]
