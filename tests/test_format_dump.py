"""Format 4: never larger than the plain lzma/zlib dump (the shared block), pruning that never
grows a file for its index, positions "code", and the compact header."""

import hashlib
import itertools
import lzma
import zlib

import numpy as np
import pytest
import torch
from test_artifact import _as_zero_level, _assert_same_model, _assert_same_record, _attach

from compress_core import CompressionConfig, compress
from compress_core.core.record import LayerRecord, QuantState, get_record
from compress_core.format import artifact as art
from compress_core.format import header as header_codec
from compress_core.format import plain, streams
from compress_core.format.artifact import ArtifactError, artifact_size, export, load_compressed
from compress_core.format.reference import _layer_dump, plain_dump_bytes
from compress_core.io.models import build_model


def _record(shape, bits, scheme, rate, rng, codes=None) -> LayerRecord:
    """A record for a weight of ``shape``: ``rate`` pruned at random, per-channel params."""
    numel, rows = int(np.prod(shape)), shape[0]
    mask = None
    if rate:
        keep = np.ones(numel, bool)
        keep[rng.permutation(numel)[: round(rate * numel)]] = False
        mask = torch.from_numpy(keep).reshape(shape)
    kept = np.arange(numel) if mask is None else np.flatnonzero(mask.reshape(-1).numpy())
    if codes is None:
        codes = rng.integers(0, 2**bits, numel)
    codes, groups = torch.from_numpy(codes[kept]), torch.from_numpy(kept // (numel // rows))
    if scheme == "affine":
        scale = torch.from_numpy(rng.uniform(0.01, 1, rows).astype(np.float32))
        zero_point = torch.from_numpy(rng.integers(0, 2**bits, rows))
        zero_point[0] = 2**bits  # a channel without a zero code: no zero level for its pruned
        quant = QuantState("affine", bits, codes, groups, scale=scale, zero_point=zero_point)
    else:
        codebook = torch.from_numpy(rng.normal(size=(rows, 2**bits)).astype(np.float32))
        quant = QuantState("codebook", bits, codes, groups, codebook=codebook)
    return LayerRecord(mask, quant)


def _periodic_model(scheme="affine", bits=4, rate=0.0, seed=0):
    """LeNet-300-100 on 8x8 inputs whose fc1 codes repeat one random row: structure that an
    order-0 coder cannot see and lzma can (like fc1's columns for a blank image border)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model("mlp", (1, 8, 8), 10)
    shape = tuple(model.fc1.weight.shape)
    codes = np.tile(rng.integers(0, 2**bits, shape[1]), shape[0])
    layers = {"fc1": _record(shape, bits, scheme, rate, rng, codes)}
    layers["fc2"] = _record(tuple(model.fc2.weight.shape), bits, scheme, rate, rng)
    return _attach(model, layers, bits=bits, prune_rate=rate)


def _layers_bytes(model) -> int:
    return sum(r["total_bytes"] for r in artifact_size(model).layers if r["index_encoding"])


# --- the plain dump, inside the artifact -------------------------------------------------


@pytest.mark.parametrize("scheme", ["affine", "codebook", None])
@pytest.mark.parametrize("rate", [0.0, 0.3])
@pytest.mark.parametrize("bits", [3, 8, 12])
def test_layer_bytes_are_the_plain_dumps_bytes_and_read_back(scheme, rate, bits):
    rng = np.random.default_rng(bits)
    shape = (6, 40)
    layer = _record(shape, bits, scheme or "affine", rate, rng)
    if scheme is None:
        layer = LayerRecord(layer.mask, None)
    weight = torch.randn(shape)
    if layer.mask is not None:
        weight[~layer.mask] = 0
    w = weight.numpy()
    data = plain.layer_bytes(w, layer)
    assert data == _layer_dump(w, layer)  # the yardstick's own bytes
    entry = {"name": "w", "shape": list(shape), **plain.entry_fields(layer)}
    reader = plain.Reader(data)
    back_w, back = reader.layer(entry, art._groups)
    reader.done()
    assert (back.mask is None) == (layer.mask is None)
    if layer.mask is not None:
        assert torch.equal(back.mask, layer.mask)
    if scheme is None:
        assert torch.equal(back_w, weight)
    else:
        for field in ("codes", "groups", "scale", "zero_point", "codebook"):
            a, b = getattr(layer.quant, field), getattr(back.quant, field)
            assert (a is None and b is None) or torch.equal(a, b), field
    assert len(data) <= plain.max_bytes(entry)


@pytest.mark.parametrize("n", [0, 10, 5_000, 70_000])
def test_the_block_is_the_dumps_stream_without_its_container(n):
    data = np.random.default_rng(n).integers(0, 5, n).astype(np.uint8).tobytes() * 2
    method, block = plain.solid(data)
    xz = lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)
    flat = zlib.compress(data, 9)
    assert len(block) < min(len(xz), len(flat))
    inner = xz if method == 1 else flat
    assert block in inner  # the very stream the dump wraps
    assert plain.unsolid(method, block, len(data)) == data
    for bad in (block[:-1], block + b"\0"):
        with pytest.raises(ValueError):
            plain.unsolid(method, bad, len(data))
    with pytest.raises(ValueError):
        plain.unsolid(method, block, len(data) + 1)


def test_the_artifact_is_never_larger_than_the_dump_even_where_order_0_coding_loses():
    model = _periodic_model()
    dump = plain_dump_bytes(model)
    original = art._shared_block
    try:  # coded tensor by tensor only, as format 3 did: the property fails here
        art._shared_block = lambda *args: None
        assert _layers_bytes(model) > dump["layers"]
        assert len(export(model)) > dump["model"]
    finally:
        art._shared_block = original
    blob = export(model)
    assert _layers_bytes(model) <= dump["layers"] - 54  # the xz container is not paid
    assert len(blob) <= dump["model"]
    rows = {r["name"]: r for r in artifact_size(model).layers}
    assert "shared" in rows["fc1.weight"]["encoding"]
    back = load_compressed(blob)
    _assert_same_model(model, back)
    _assert_same_record(model, back)
    assert export(back) == blob


@pytest.mark.parametrize("scheme", ["affine", "codebook"])
@pytest.mark.parametrize("rate", [0.0, 0.05, 0.6])
@pytest.mark.parametrize("bits", [2, 8])
@pytest.mark.parametrize("seed", [0, 1])
def test_compressed_layers_are_never_larger_than_their_dump(scheme, rate, bits, seed):
    """On hand-made models, half with lzma-friendly structure: the property by construction."""
    if seed:
        model = _periodic_model(scheme, bits, rate, seed)
    else:
        model = build_model("mlp", (1, 8, 8), 10)
        rng = np.random.default_rng(bits)
        layers = {n: _record(tuple(getattr(model, n).weight.shape), bits, scheme, rate, rng)
                  for n in ("fc1", "fc2")}  # fmt: skip
        model = _attach(model, layers, bits=bits, prune_rate=rate)
    dump = plain_dump_bytes(model)
    size = artifact_size(model)
    assert _layers_bytes(model) <= dump["layers"]
    assert size.artifact_bytes <= dump["model"]
    blob = export(model)
    assert (
        len(blob)
        == size.artifact_bytes
        == size.header_bytes + sum(r["total_bytes"] for r in size.layers)
    )
    back = load_compressed(blob)
    _assert_same_model(model, back)
    _assert_same_record(model, back)
    assert export(back) == blob


@pytest.mark.parametrize(
    "config",
    [dict(prune_rate=r, bits=b, quant=q) for r in (0.0, 0.3) for b in (2, 8)
     for q in ("uniform", "kmeans")]
    + [dict(prune_rate=0.5, bits=32), dict(prune_rate=0.5, prune_method="l1-structured", bits=4)],
    ids=lambda c: CompressionConfig(**c).label(),
)  # fmt: skip
def test_a_trained_models_artifact_is_never_larger_than_its_dump(digits_mlp, config):
    base, _ = digits_mlp
    small = compress(base, CompressionConfig(**config))
    dump = plain_dump_bytes(small)
    assert _layers_bytes(small) <= dump["layers"]
    assert artifact_size(small).artifact_bytes <= dump["model"]


def test_a_read_back_model_is_written_to_the_same_bytes_whichever_block_wins(digits_lenet):
    """Kept weights coded as their zero point read back pruned (the same weights); the blocks
    of those records are tried as well, so writing the read-back model changes nothing."""
    base, _ = digits_lenet
    for rate, bits in ((0.05, 2), (0.5, 2), (0.05, 8), (0.9, 3)):
        small = compress(base, CompressionConfig(prune_rate=rate, bits=bits))
        blob = export(small)
        back = load_compressed(blob)
        _assert_same_model(small, back)
        assert export(back) == blob, (rate, bits)


# --- more pruning at the same bits, and positions "code" ----------------------------------


@pytest.mark.parametrize("quant", ["uniform", "symmetric"])
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_more_pruning_at_the_same_bits_never_grows_a_file_because_of_its_index(
    digits_mlp, quant, bits
):
    """Affine codes store light pruning as the zero code: no index. Where pruning leaves the
    weights bit-identical (they were coded zero anyway) the files differ only in the header,
    which states the prune rate (a few bytes), and in the entropy coder's rounding."""
    base, _ = digits_mlp
    sizes = []
    for rate in (0.0, 0.02, 0.05, 0.1, 0.3, 0.6, 0.9):
        config = CompressionConfig(prune_rate=rate, bits=bits, quant=quant)
        size = artifact_size(compress(base, config))
        index = sum(r["index_bytes"] for r in size.layers)
        sizes.append((rate, size.artifact_bytes, index))
    for (p, low, index_p), (q, high, index_q) in itertools.combinations(sizes, 2):
        if high > low:
            assert index_q - index_p < high - low <= 4, (p, q, sizes)
    assert sizes[-1][1] < 0.75 * sizes[0][1]  # and heavy pruning does pay


def test_light_kmeans_pruning_can_store_its_positions_as_an_extra_code():
    """A pruned k-means layer has no zero level; positions "code" put the pruned weights in the
    code stream as code 2**bits, read back exactly (mask and codes as they were)."""
    rng = np.random.default_rng(3)
    model = build_model("mlp", (1, 8, 8), 10)
    layers = {}
    for name in ("fc1", "fc2"):
        shape = tuple(getattr(model, name).weight.shape)
        codes = rng.choice(4, int(np.prod(shape)), p=[0.7, 0.2, 0.07, 0.03])  # skewed
        layers[name] = _record(shape, 2, "codebook", 0.05, rng, codes)
    model = _attach(model, layers, bits=2, quant="kmeans", prune_rate=0.05)
    rows = {r["name"]: r for r in artifact_size(model).layers}
    assert {rows[f"{n}.weight"]["index_encoding"] for n in layers} == {"pruned code"}
    for name in layers:  # the positions' share of the stream is counted as index
        assert 0 < rows[f"{name}.weight"]["index_bytes"] < rows[f"{name}.weight"]["value_bytes"]
    blob = export(model)
    back = load_compressed(blob)
    _assert_same_model(model, back)
    _assert_same_record(model, back)
    for name, layer in layers.items():
        assert torch.equal(get_record(back).layers[name].mask, layer.mask)  # exact, not merged
    assert export(back) == blob


def test_a_zero_level_read_back_is_kept_and_not_the_zero_code(digits_lenet):
    base, _ = digits_lenet
    small = compress(base, CompressionConfig(prune_rate=0.05, bits=2, quant="symmetric"))
    back = get_record(load_compressed(export(small)))
    for name, layer in get_record(small).layers.items():
        if layer.quant is not None:
            mask = back.layers[name].mask
            assert torch.equal(mask, layer.mask) or torch.equal(mask, _as_zero_level(layer).mask)


# --- the header ---------------------------------------------------------------------------


PRESET_SHA256 = "47df7b540c03a465f30964ff574e3a63bc00d34797f85bd536cba22b0688fe89"


def test_the_preset_dictionary_is_pinned():
    """Format 4 inflates every header against PRESET: changing it breaks every format-4 file."""
    digest = hashlib.sha256(header_codec.PRESET).hexdigest()
    assert digest == PRESET_SHA256, "PRESET changed: that needs a new format version"


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 2**14, 2**21 + 5, 2**34])
def test_varints_round_trip(n):
    data = b"x" + header_codec.varint(n) + b"y"
    assert header_codec.read_varint(data, 1) == (n, len(data) - 1)


def test_the_header_is_smaller_than_zlib_json_and_corrupt_ones_are_refused(digits_lenet):
    import json

    base, _ = digits_lenet
    blob = export(compress(base, CompressionConfig(prune_rate=0.5, bits=4, quant="kmeans")))
    version, header, end = header_codec.unpack(blob, art.READS)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    assert version == 4 and end < 0.6 * (9 + len(zlib.compress(text, 9)))
    for bad in (blob[:5] + b"\xff" * 6 + blob[11:], blob[:6] + b"\0" + blob[7:]):
        with pytest.raises(ArtifactError):
            load_compressed(bad)


def test_a_damaged_shared_block_raises_artifact_error_or_loads():
    blob = export(_periodic_model(rate=0.3))
    header = header_codec.unpack(blob, art.READS)[1]
    assert "solid" in header
    end = header_codec.unpack(blob, art.READS)[2]
    rng = np.random.default_rng(5)
    for pos in rng.choice(np.arange(end, end + header["solid"][1]), 60, replace=False):
        data = bytearray(blob)
        data[pos] ^= 1 << int(rng.integers(8))
        try:
            load_compressed(bytes(data))
        except ArtifactError:
            continue
    for cut in (end + 1, end + header["solid"][1] - 1, len(blob) - 1):
        with pytest.raises(ArtifactError):
            load_compressed(blob[:cut])


# --- sizing shortcuts change no byte -------------------------------------------------------


@pytest.mark.parametrize("sparsity", [0.0, 0.01, 0.05, 0.3, 0.5, 0.9, 0.99, 1.0])
@pytest.mark.parametrize("numel", [1, 40, 5_000, 60_000])
def test_pruned_position_options_pick_what_all_of_them_pick(sparsity, numel):
    rng = np.random.default_rng(numel)
    mask = np.ones(numel, bool)
    mask[rng.permutation(numel)[: round(sparsity * numel)]] = False
    if numel > 100:  # runs, as magnitude pruning of a structured layer gives
        mask[: numel // 10] = False
    kept = np.flatnonzero(mask)
    for coded in (True, False):
        slow = streams.cheapest(streams.position_options(mask, kept, coded))
        fast = streams.cheapest(streams.position_options(mask, kept, coded, prune=True))
        assert fast.fields == slow.fields and fast.make() == slow.make()


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 12])
@pytest.mark.parametrize("spread", [0.05, 1.0, 100.0])
def test_floors_are_never_above_a_coders_real_size(bits, spread):
    rng = np.random.default_rng(bits)
    codes = np.clip(np.round(rng.normal(2 ** (bits - 1), spread, 3000)), 0, 2**bits - 1)
    codes = codes.astype(np.int64)
    freq = np.bincount(codes, minlength=2**bits)
    floor_h, floor_a = streams.floors(freq)
    options = streams.code_options(codes, bits)
    for o in options:
        kind = streams.label(o.fields, "ch ca")
        if kind != "fixed":
            assert len(o.make()) >= (floor_h if kind == "huffman" else floor_a), kind


SHORTCUT_CASES = [
    dict(prune_rate=r, bits=b, quant=q)
    for r, b, q in [(0.0, 4, "uniform"), (0.05, 2, "uniform"), (0.3, 3, "symmetric")]
    + [(0.05, 4, "kmeans"), (0.9, 2, "kmeans"), (0.5, 8, "uniform"), (0.95, 6, "ecq")]
] + [dict(prune_rate=0.6, bits=32), dict(prune_rate=0.5, bits=12, granularity="per_tensor")]


@pytest.mark.parametrize("config", SHORTCUT_CASES, ids=lambda c: CompressionConfig(**c).label())
def test_sizing_shortcuts_write_the_same_bytes_as_trying_everything(
    digits_lenet, monkeypatch, config
):
    base, _ = digits_lenet
    small = compress(base, CompressionConfig(**config))
    fast, fixed = export(small), export(small, coded=False)
    monkeypatch.setattr(art, "PRUNE", False)
    assert export(small) == fast
    assert export(small, coded=False) == fixed


def test_numpy_dequantize_is_torchs():
    from compress_core.core.record import dequantize

    rng = np.random.default_rng(0)
    for scheme in ("affine", "codebook"):
        layer = _record((16, 50), 5, scheme, 0.3, rng)
        q = layer.quant
        assert np.array_equal(
            art._dequantized(q).view(np.int32), dequantize(q).numpy().view(np.int32)
        )
