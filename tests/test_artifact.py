"""The artifact: bit-exact round trips, exact sizes, position encodings, corruption, layout."""

import os
import struct
from dataclasses import replace
from math import ceil

import numpy as np
import pytest
import torch
from torch import nn

from compress_core import CompressionConfig, compress
from compress_core.core.record import (
    RECORD_ATTR,
    CompressionRecord,
    LayerRecord,
    QuantState,
    get_record,
    materialize,
)
from compress_core.format import artifact as art
from compress_core.format import header as header_codec
from compress_core.format import streams
from compress_core.format.artifact import ArtifactError, artifact_size, export, load_compressed
from compress_core.io.models import build_model

# --- hand-made records ----------------------------------------------------------


def _mask(shape, sparsity: float, rng) -> torch.Tensor:
    n = int(np.prod(shape))
    keep = np.ones(n, dtype=bool)
    keep[rng.permutation(n)[: round(sparsity * n)]] = False
    return torch.from_numpy(keep).reshape(shape)


def _quant(shape, mask, bits: int, scheme: str, per_channel: bool, rng) -> QuantState:
    """Random codes and decode params for the kept weights, as a quantizer would give."""
    numel = int(np.prod(shape))
    kept = np.arange(numel) if mask is None else np.flatnonzero(mask.reshape(-1).numpy())
    n_groups = shape[0] if per_channel else 1
    groups = torch.from_numpy(kept // (numel // n_groups) if per_channel else kept * 0)
    codes = torch.from_numpy(rng.integers(0, 2**bits, len(kept)))
    if scheme == "affine":
        scale = torch.from_numpy(rng.uniform(1e-3, 1, n_groups).astype(np.float32))
        zero_point = torch.from_numpy(rng.integers(-(2**bits), 2**bits, n_groups))
        return QuantState("affine", bits, codes, groups, scale=scale, zero_point=zero_point)
    codebook = torch.from_numpy(rng.normal(size=(n_groups, 2**bits)).astype(np.float32))
    return QuantState("codebook", bits, codes, groups, codebook=codebook)


def _attach(model: nn.Module, layers: dict[str, LayerRecord], **config) -> nn.Module:
    """Set each recorded weight to what its record stands for, and attach the record."""
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, layer in layers.items():
            w = modules[name].weight
            w.copy_(materialize(w.shape, layer, w.detach().clone()))
    setattr(model, RECORD_ATTR, CompressionRecord(CompressionConfig(**config), layers))
    return model


def _hand_model(bits, scheme, per_channel, sparsity, huffman=False, seed=0) -> nn.Module:
    """LeNet-300-100 on 8x8 inputs (50K weights), fc1 and fc2 coded, fc3 left float."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model("mlp", (1, 8, 8), 10)
    layers = {}
    for name in ("fc1", "fc2"):
        shape = tuple(getattr(model, name).weight.shape)
        mask = None if sparsity is None else _mask(shape, sparsity, rng)
        quant = None if scheme is None else _quant(shape, mask, bits, scheme, per_channel, rng)
        layers[name] = LayerRecord(mask, quant)
    return _attach(model, layers, huffman=huffman)


def _assert_same_model(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype, k
        assert torch.equal(sa[k], sb[k]), k


def _assert_same_record(a: nn.Module, b: nn.Module) -> None:
    ra, rb = get_record(a), get_record(b)
    legacy = dict(huffman=False)  # not stored: it changes no bytes
    assert replace(ra.config, **legacy) == replace(rb.config, **legacy)
    assert list(ra.layers) == list(rb.layers)
    assert ra.structured == rb.structured and ra.activations == rb.activations
    for name, la in ra.layers.items():
        lb = rb.layers[name]
        if lb.mask is not None and la.mask is not None and not torch.equal(la.mask, lb.mask):
            la = _as_zero_level(la)  # read back as "kept and not the zero code"
        if la.mask is None or la.mask.all():  # an all-kept mask is stored as "none"
            assert lb.mask is None
        else:
            assert torch.equal(la.mask, lb.mask)
        if la.quant is None:
            assert lb.quant is None
            continue
        qa, qb = la.quant, lb.quant
        assert (qa.scheme, qa.bits) == (qb.scheme, qb.bits)
        assert torch.equal(qa.codes, qb.codes) and torch.equal(qa.groups, qb.groups)
        live = torch.unique(qa.groups)  # groups without a kept weight store nothing
        for field in ("scale", "zero_point"):
            va, vb = getattr(qa, field), getattr(qb, field)
            assert (va is None and vb is None) or torch.equal(va[live], vb[live])


def _as_zero_level(layer: LayerRecord) -> LayerRecord:
    """What a zero-level entry reads back as: kept weights coded as their zero point are
    pruned too (the same weight values)."""
    q = layer.quant
    nonzero = q.codes != q.zero_point[q.groups]
    mask = layer.mask.clone()
    mask.view(-1)[mask.view(-1).clone()] = nonzero
    return LayerRecord(mask, replace(q, codes=q.codes[nonzero], groups=q.groups[nonzero]))


HAND_CASES = [
    # bits, scheme, per_channel, sparsity, coded (False: fixed width only)
    (1, "codebook", True, 0.5, False),
    (2, "affine", False, 0.9, True),
    (3, "codebook", False, None, False),
    (4, "affine", True, 0.9, False),
    (4, "affine", True, 0.9, True),
    (5, "codebook", True, 0.99, True),
    (7, "affine", False, 0.0, True),
    (8, "codebook", True, 0.5, True),
    (9, "affine", True, 1.0, False),
    (12, "codebook", False, 0.7, False),
    (13, "affine", False, 0.3, True),
    (16, "affine", True, 0.9, False),
    (16, "codebook", False, 0.95, True),
    (32, None, False, 0.8, False),  # pruned but float
    (32, None, False, 0.99, True),
]


@pytest.mark.parametrize("bits, scheme, per_channel, sparsity, coded", HAND_CASES)
def test_round_trip_is_bit_exact_and_sizes_are_exact(bits, scheme, per_channel, sparsity, coded):
    model = _hand_model(bits, scheme, per_channel, sparsity)
    blob = export(model, coded=coded)
    loaded = load_compressed(blob)
    _assert_same_model(model, loaded)
    _assert_same_record(model, loaded)
    assert export(loaded, coded=coded) == blob
    size = artifact_size(model, coded=coded)
    assert size.artifact_bytes == len(blob)
    assert size.artifact_bytes == size.header_bytes + sum(r["total_bytes"] for r in size.layers)


COMPRESS_CONFIGS = [
    dict(),
    dict(prune_rate=0.9, bits=4, huffman=True),
    dict(prune_rate=0.5, bits=3, quant="kmeans", granularity="per_tensor"),
    dict(prune_rate=0.8, bits=2, quant="symmetric", scope="global", skip_first_last=False),
    dict(prune_rate=0.7),
    dict(prune_rate=0.5, prune_method="l2-structured", bits=8, act_bits=8, huffman=True),
    dict(bits=1, skip_first_last=False),
]


@pytest.mark.parametrize("kwargs", [dict(prune_rate=0.9, bits=4), dict(bits=3, quant="kmeans")])
def test_the_legacy_huffman_switch_changes_no_bytes_and_coding_never_grows_a_file(kwargs):
    torch.manual_seed(0)
    base = build_model("lenet5", (1, 28, 28), 10).eval()
    on, off = (compress(base, CompressionConfig(**kwargs, huffman=h)) for h in (True, False))
    assert export(on) == export(off)
    coded, fixed = artifact_size(off), artifact_size(off, coded=False)
    assert fixed.artifact_bytes == len(export(off, coded=False))
    # Per tensor the payload is never larger (the header's coding fields may cost a byte or two).
    for a, b in zip(coded.layers, fixed.layers, strict=True):
        assert a["total_bytes"] <= b["total_bytes"], a["name"]
    assert sum(r["total_bytes"] for r in coded.layers) < sum(r["total_bytes"] for r in fixed.layers)


@pytest.mark.parametrize("kwargs", COMPRESS_CONFIGS, ids=lambda k: CompressionConfig(**k).label())
def test_compressed_lenet_round_trips_through_the_engine(kwargs):
    torch.manual_seed(0)
    base = build_model("lenet5", (1, 28, 28), 10).eval()
    config = CompressionConfig(**kwargs)
    small = compress(base, config, [torch.randn(16, 1, 28, 28)])
    blob = export(small)
    loaded = load_compressed(blob)
    _assert_same_model(small, loaded)
    _assert_same_record(small, loaded)
    assert export(loaded) == blob
    assert artifact_size(small).artifact_bytes == len(blob)
    x = torch.randn(4, 1, 28, 28)  # same outputs: activation hooks are back too
    with torch.no_grad():
        assert torch.equal(small(x), loaded(x))


def test_ninety_percent_pruned_4bit_model_is_under_an_eighth_of_fp32():
    base = build_model("mlp", (1, 28, 28), 10)  # LeNet-300-100, 266K weights
    config = CompressionConfig(prune_rate=0.9, bits=4, skip_first_last=False)
    size = artifact_size(compress(base, config))
    assert size.dense_bytes == 4 * size.total_params
    assert size.artifact_bytes < size.dense_bytes / 8


def test_baseline_without_record_is_stored_raw():
    model = build_model("lenet5", (1, 28, 28), 10)
    size = artifact_size(model)
    state = model.state_dict()
    assert [r["encoding"] for r in size.layers] == ["raw"] * len(state)
    for row, t in zip(size.layers, state.values(), strict=True):  # lzma only when it wins
        assert row["total_bytes"] <= t.numel() * t.element_size()
        assert (row["value_encoding"] == "raw") == (row["total_bytes"] == t.numel() * 4)
    assert size.artifact_bytes == size.header_bytes + sum(r["total_bytes"] for r in size.layers)
    assert size.total_params == size.nonzero_params == sum(p.numel() for p in model.parameters())
    loaded = load_compressed(export(model))
    _assert_same_model(model, loaded)
    assert get_record(loaded) is None


def test_size_counts_parameters_and_nonzeros():
    model = _hand_model(4, "affine", True, 0.9)
    size = artifact_size(model)
    params = list(model.parameters())
    assert size.total_params == sum(p.numel() for p in params)
    assert size.nonzero_params == sum(int(torch.count_nonzero(p)) for p in params)
    rows = {r["name"]: r for r in size.layers}
    assert rows["fc1.weight"]["nonzero"] == int(torch.count_nonzero(model.fc1.weight))
    assert rows["fc1.weight"]["bits"] == 4 and rows["fc3.weight"]["bits"] == 32
    assert size.to_dict()["layers"] == size.layers


def test_file_round_trip_is_atomic(tmp_path):
    model = _hand_model(4, "codebook", False, 0.9, huffman=True)
    path = tmp_path / "model.slim"
    path.write_bytes(b"old contents")
    blob = export(model, path)
    assert path.read_bytes() == blob
    assert os.listdir(tmp_path) == ["model.slim"]  # no temporary file left behind
    for src in (path, str(path)):
        _assert_same_model(model, load_compressed(src))


# --- position encodings and code packing ------------------------------------------


SPARSITIES = [0.0, 0.01, 0.5, 0.99, 1.0]


@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_every_position_encoding_decodes_to_the_mask(sparsity):
    rng = np.random.default_rng(7)
    for numel in (1, 13, 5_000):
        mask = _mask((numel,), sparsity, rng).numpy()
        kept = np.flatnonzero(mask)
        options = streams.position_options(mask, kept)
        # bitmask (plain, ANS), then relative b=1..8 (plain, Huffman, ANS; none when empty)
        assert len(options) >= (1 if mask.all() else 2 + 8 * (3 if len(kept) else 1))
        for option in options:
            data = option.make()
            assert len(data) == option.nbytes, option.fields
            decoded = streams.decode_positions(option.fields, data, numel, "t")
            if decoded is None:
                assert mask.all()
            else:
                np.testing.assert_array_equal(decoded, mask)


@pytest.mark.parametrize("sparsity", SPARSITIES + [0.9, 0.999])
def test_chosen_encoding_is_the_smallest_and_never_larger_than_a_bitmask(sparsity):
    rng = np.random.default_rng(8)
    mask = _mask((20_000,), sparsity, rng).numpy()
    options = streams.position_options(mask, np.flatnonzero(mask))
    chosen = streams.cheapest(options)
    assert chosen.nbytes == min(o.nbytes for o in options)
    assert chosen.nbytes <= ceil(mask.size / 8)
    if sparsity == 1.0:  # all pruned: no index at all
        assert chosen.nbytes == 0 and chosen.fields["pos"] == "relative"


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 6, 7, 8, 11, 16])
def test_packed_codes_take_ceil_n_times_k_over_8_bytes(bits):
    model = _hand_model(bits, "affine", False, 0.37)
    rows = {r["name"]: r for r in artifact_size(model, coded=False).layers}
    back = get_record(load_compressed(export(model, coded=False)))
    for name in ("fc1", "fc2"):
        row, mask = rows[f"{name}.weight"], back.layers[name].mask
        # codes of the kept weights; with positions "zero" (no index) of every weight
        n = mask.numel() if row["index_encoding"] == "zero level" else int(mask.sum())
        assert row["value_bytes"] == ceil(n * bits / 8)


RELATIVE_FIXED = tuple(f"relative b={b} fixed" for b in range(1, 9))


def test_entropy_coding_is_used_only_when_smaller():
    model = _hand_model(4, "affine", True, 0.9, seed=3)
    rows = {r["name"]: r for r in artifact_size(model).layers}
    plain = {r["name"]: r for r in artifact_size(model, coded=False).layers}
    back = get_record(load_compressed(export(model)))  # kept and not coded as the zero point
    for name in ("fc1", "fc2"):
        row, mask = rows[f"{name}.weight"], back.layers[name].mask
        # Uniformly random codes: no entropy coder wins, so they stay packed at 4 bits.
        assert row["value_encoding"] == "fixed"
        assert row["value_bytes"] == ceil(int(mask.sum()) * 4 / 8)
        # 10 % kept at random: h(0.1) = 0.47 bits a weight, under half a bitmask.
        assert row["index_bytes"] < 0.5 * ceil(mask.numel() / 8)
        assert row["index_encoding"] != "bitmask"
        # coded=False: fixed widths only, as in format 1.
        assert row["index_bytes"] < plain[f"{name}.weight"]["index_bytes"]
        assert plain[f"{name}.weight"]["encoding"].startswith(("bitmask ·", "relative b="))
        assert plain[f"{name}.weight"]["index_encoding"] in ("bitmask", *RELATIVE_FIXED)


def test_codebook_with_unused_entries_stores_only_the_used_ones():
    rng = np.random.default_rng(9)
    model = build_model("mlp", (1, 8, 8), 10)
    shape = tuple(model.fc2.weight.shape)
    q = _quant(shape, None, 12, "codebook", True, rng)
    q.codes = q.codes % 5  # 5 of 4096 entries per channel
    _attach(model, {"fc2": LayerRecord(None, q)})
    row = next(r for r in artifact_size(model).layers if r["name"] == "fc2.weight")
    assert row["param_bytes"] < 4 * shape[0] * 4096 / 100  # under 1 % of the full table
    loaded = load_compressed(export(model))
    _assert_same_model(model, loaded)


@pytest.mark.parametrize(
    "values, dtype",
    [([0, 255], "uint8"), ([-1, 127], "int8"), ([0, 256], "uint16"), ([-129, 5], "int16")]
    + [([0, 2**16], "uint32"), ([-(2**15) - 1, 0], "int32"), ([-1, 2**31], "int64")],
)
def test_zero_points_take_the_smallest_integer_type(values, dtype):
    assert art._int_dtype(np.array(values)) == dtype


# --- refusing bad input -----------------------------------------------------------


def test_export_refuses_weights_that_differ_from_their_record():
    model = _hand_model(4, "affine", True, 0.5)
    with torch.no_grad():
        model.fc1.weight[0, 0] += 1.0  # e.g. fine-tuned after quantization
    with pytest.raises(ArtifactError, match="fc1"):
        export(model)
    floating = _hand_model(32, None, False, 0.5)
    with torch.no_grad():
        floating.fc2.weight[~get_record(floating).layers["fc2"].mask] = 1.0
    with pytest.raises(ArtifactError, match="pruned weights are not zero"):
        export(floating)


@pytest.fixture(scope="module")
def blob() -> bytes:
    return export(_hand_model(4, "affine", True, 0.9, huffman=True))


def _split(blob: bytes) -> tuple[dict, int]:
    """The artifact's header JSON and where its payload starts."""
    _, header, end = header_codec.unpack(blob, art.READS)
    return header, end


def _rewrite(blob: bytes, edit) -> bytes:
    """The artifact with its header JSON edited by ``edit`` (payload unchanged)."""
    header, end = _split(blob)
    edit(header)
    return header_codec.pack(header, blob[4]) + blob[end:]


def _set(path, value):
    def edit(header):
        node = header
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


BAD_HEADERS = {
    "unknown model": _set(["spec", "name"], "nope"),
    "no spec": _set(["spec"], None),
    "wrong shape": _set(["tensors", 0, "shape"], [3, 3]),
    "negative length": _set(["tensors", 0, "len"], [-1, 0, 0]),
    "bad dtype": _set(["tensors", 1, "dtype"], "complex64"),
    "unknown position code": _set(["tensors", 0, "pos"], "zigzag"),
    "index bits": _set(["tensors", 0, "b"], 9),
    "kept count": _set(["tensors", 0, "n"], 10**9),
    "bits": _set(["tensors", 0, "bits"], 40),
    "groups": _set(["tensors", 0, "ng"], 7),
    "zero-point dtype": _set(["tensors", 0, "zp"], "float32"),
    "scheme": _set(["tensors", 0, "scheme"], "magic"),
    "missing key": lambda h: h["tensors"][0].pop("bits"),
    "unknown float packing": _set(["tensors", 1, "zv"], 7),
    "extra tensor": lambda h: h["tensors"].append({"enc": "raw", "len": [0, 0, 0]}),
    "config": _set(["config", "bits"], 99),
    "tensors": _set(["tensors"], {}),
    "extra key": _set(["extra"], 1),
    "not a dict": lambda h: h.clear(),
}


@pytest.mark.parametrize("edit", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_malformed_headers_raise_artifact_error(blob, edit):
    with pytest.raises(ArtifactError):
        load_compressed(_rewrite(blob, edit))


def test_truncated_empty_and_foreign_bytes_raise_artifact_error(blob):
    header_end = _split(blob)[1]
    cuts = {0, 1, 4, 5, 8, 9, header_end - 1, header_end, header_end + 1, len(blob) - 1}
    cuts |= set(range(0, len(blob), 97))
    bad = [blob[:n] for n in sorted(cuts)]
    bad += [blob + b"\x00", b"PK\x03\x04" + blob[4:]]
    bad += [blob[:4] + bytes([max(art.READS) + 1]) + blob[5:]]
    bad += [b"SLIM\x01" + b"\xff" * 40, os.urandom(300), b"SLIM\x01\x00\x00\x00\x00"]
    for data in bad:
        with pytest.raises(ArtifactError):
            load_compressed(data)


def test_flipped_bytes_raise_artifact_error_or_load(blob):
    rng = np.random.default_rng(11)
    for pos in rng.choice(len(blob), 150, replace=False):
        data = bytearray(blob)
        data[pos] ^= 1 << int(rng.integers(8))
        try:
            loaded = load_compressed(bytes(data))
        except ArtifactError:
            continue
        assert export(loaded) is not None  # a flip in stored values still makes a valid model


# --- the format, pinned -----------------------------------------------------------


def test_tiny_artifact_layout_is_pinned():
    layer = nn.Linear(16, 2)
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([1.0, -2.0]))
    mask = torch.zeros(32, dtype=torch.bool)
    mask[[0, 3, 4, 31]] = True
    codes = torch.tensor([1, 7, 0, 5])
    q = QuantState(
        "affine", 3, codes, torch.zeros(4, dtype=torch.int64),
        scale=torch.tensor([0.5]), zero_point=torch.tensor([2]),
    )  # fmt: skip
    record = LayerRecord(mask.reshape(2, 16), q)
    with torch.no_grad():
        layer.weight.copy_(materialize(layer.weight.shape, record, None))
    config = CompressionConfig(prune_rate=0.875, bits=3)
    setattr(layer, RECORD_ATTR, CompressionRecord(config, {"": record}))
    blob = export(layer)

    # Gaps 0, 2, 0, 26: bitmask 4 bytes; relative b=4 (escape 15) is 0,2,0,15,11 = 20 bits.
    index = bytes([0b0000_0010, 0b0000_1111, 0b1011_0000])
    params = struct.pack("<f", 0.5) + bytes([2])  # scale float32, zero point uint8
    values = bytes([0b001_111_00, 0b0_101_0000])  # codes 1, 7, 0, 5 at 3 bits
    bias = struct.pack("<2f", 1.0, -2.0)
    payload = index + params + values + bias

    assert (blob[:4], blob[4]) == (b"SLIM", 4)
    header, end = _split(blob)
    length, start = header_codec.read_varint(blob, 5)
    assert start == 6 and end == 6 + length  # a one-byte varint length
    assert blob[end:] == payload
    assert len(blob) == end + 18
    # Too small for lzma or ANS to win: stored as is, and flags that are 0 are left out; the
    # kept count (4) is not stored: the index says it.
    weight = {"name": "weight", "shape": [2, 16], "dtype": "float32", "enc": "layer"}
    weight |= {"pos": "relative", "b": 4, "ni": 5, "len": [3, 5, 2]}
    weight |= {"scheme": "affine", "ng": 1, "zp": "uint8", "bits": 3}
    raw = {"name": "bias", "shape": [2], "dtype": "float32", "enc": "raw", "len": [0, 0, 8]}
    assert header == {
        "spec": None,
        "config": {"bits": 3, "prune_rate": 0.875},  # only what differs from the defaults
        "structured": [],
        "activations": {},
        "tensors": [weight, raw],
    }
    rows = artifact_size(layer).layers
    assert [r["total_bytes"] for r in rows] == [10, 8]
    assert rows[0]["encoding"] == "relative b=4 fixed · 3-bit affine fixed"
    with pytest.raises(ArtifactError, match="no model spec"):
        load_compressed(blob)


def _zero_level_layer() -> nn.Linear:
    """A 2x16 layer, 3-bit affine (zero point 2), one weight of 32 pruned, the rest code 7."""
    layer = nn.Linear(16, 2, bias=False)
    mask = torch.ones(32, dtype=torch.bool)
    mask[5] = False
    q = QuantState(
        "affine", 3, torch.full((31,), 7), torch.zeros(31, dtype=torch.int64),
        scale=torch.tensor([0.5]), zero_point=torch.tensor([2]),
    )  # fmt: skip
    record = LayerRecord(mask.reshape(2, 16), q)
    with torch.no_grad():
        layer.weight.copy_(materialize(layer.weight.shape, record, None))
    setattr(layer, RECORD_ATTR, CompressionRecord(CompressionConfig(bits=3), {"": record}))
    return layer


def test_tiny_zero_level_layout_is_pinned():
    """One weight of 32 pruned: the dense 3-bit codes, the pruned one as the zero point 2, are
    smaller than any index plus the 31 kept codes, and the mask is read back from them."""
    layer = _zero_level_layer()
    record = get_record(layer).layers[""]
    blob = export(layer, coded=False)

    values = int("111" * 5 + "010" + "111" * 26, 2).to_bytes(12, "big")  # no index at all
    params = struct.pack("<f", 0.5) + bytes([2])
    header, end = _split(blob)
    assert blob[end:] == params + values
    weight = {"name": "weight", "shape": [2, 16], "dtype": "float32", "enc": "layer"}
    weight |= {"pos": "zero", "len": [0, 5, 12]}
    weight |= {"scheme": "affine", "ng": 1, "zp": "uint8", "bits": 3}
    assert header["tensors"] == [weight]
    back = load_compressed(blob, model=nn.Linear(16, 2, bias=False))
    assert torch.equal(back.weight.view(torch.int32), layer.weight.view(torch.int32))
    assert torch.equal(get_record(back).layers[""].mask, record.mask)
    assert export(back, coded=False) == blob


@pytest.mark.parametrize(
    "path, value",
    [(("tensors", 0, "n"), 30), (("tensors", 0, "n"), 32), (("tensors", 0, "eg"), 1)]
    + [(("tensors", 0, "scheme"), "codebook"), (("tensors", 0, "ng"), 2)]
    + [(("tensors", 0, "bits"), 2), (("tensors", 0, "len"), [1, 5, 11])],
)
def test_a_zero_level_entry_that_disagrees_with_its_data_is_refused(path, value):
    blob = export(_zero_level_layer(), coded=False)
    bad = _rewrite(blob, _set(path, value))
    with pytest.raises(ArtifactError):
        load_compressed(bad, model=nn.Linear(16, 2, bias=False))
