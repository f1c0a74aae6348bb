"""The compressed artifact: the bytes a compressed model really takes, and reading them back.

Layout (integers little-endian; ``header.py``)::

    b"SLIM" | version: u8 | header length: varint | header: deflate(JSON) | payload

The header holds the model spec, the config, the structured plan, the
activation ranges and one entry per ``state_dict`` tensor, in order. Each
entry owns three payload segments, back to back in entry order: ``index``
(where the kept weights are), ``params`` (scales, zero points, codebook) and
``values`` (codes or raw values). ``entry["len"]`` gives their byte lengths;
offsets are their running sum, so they can never overlap or leave gaps. When
the header has ``solid`` ([method, length, inflated length]), the payload starts
with one shared block holding every compressed layer (entries ``dump``) in the
plain dump's layout (``plain.py``; a ``dump`` entry with positions ``zero`` holds
every weight's code instead of a mask and the kept codes); that block is used when
it is smaller than those layers coded one by one, and one of the blocks tried is
the plain lzma/zlib dump's own stream, so the compressed layers are never larger
than their dump (``_shared_block``).

A pruned affine weight whose kept weights include some coded as their zero point
is written with those counted as pruned (``_normalized``): the same weights, bit
for bit, read back with that smaller mask. So is a codebook weight coded as a +0.0
entry where every channel with pruned weights has one (k-means pins it).

A weight with a ``LayerRecord`` stores its kept positions the cheapest way:
``none`` (nothing pruned), ``bitmask`` (one bit per weight), ``relative`` (Deep
Compression: the gap before each kept weight in ``b`` bits, ``2**b - 1`` meaning
"skip that many, no weight here", ``b`` = 1..8 chosen per layer), or with no index
at all: ``zero`` (affine codes, pruned weights as the zero code; format 5: codebooks,
pruned weights as an entry that reads back +0.0) or ``code`` (pruned weights as the
extra code ``2**bits``). Codes and indexes take the smallest exact
coding of each stream: packed at exactly ``bits`` bits, canonical Huffman (code
lengths stored, 5 bits per symbol) or ANS (``entropy.py``); ``export(...,
coded=False)`` keeps them at fixed width (and never uses the shared block).
Scales and codebooks are float32, zero points the smallest integer type that
holds them; floats are stored raw or LZMA-compressed (``squeeze.py``), at their
own dtype (host byte order, little-endian in practice).

Example:
    >>> blob = export(compressed, "lenet5.slim")
    >>> artifact_size(compressed).artifact_bytes == len(blob)
    True
    >>> restored = load_compressed("lenet5.slim")  # same weights, same record
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from math import prod
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.config import CompressionConfig
from ..core.record import (
    RECORD_ATTR,
    SPEC_ATTR,
    CompressionRecord,
    LayerRecord,
    ModelSpec,
    QuantState,
    get_record,
    get_spec,
    materialize,
)
from ..io.paths import write_atomic
from . import entropy, plain
from . import header as header_codec
from .squeeze import squeeze, unsqueeze
from .streams import (
    Option,
    StreamError,
    cheapest,
    code_options,
    decode_positions,
    floors,
    label,
    position_options,
    pruned_code_options,
    read_stream,
)

MAGIC = header_codec.MAGIC
# 3 adds positions "zero" (pruned weights as the zero code, no index); 4 a varint header
# length and a deflated header against a preset dictionary, the shared block of compressed
# layers ("solid", entries "dump"), positions "code", and no kept counts ("n": derived).
# 5 adds positions "zero" for codebooks whose channels with pruned weights have a +0.0 entry
# (k-means pins one from PIN_ZERO_BITS up): the pruned weights are a code that reads back
# +0.0. Only a file that holds such a tensor is written as 5; every other one is format 4.
VERSION = 4
ZERO_CODEBOOK = 5  # the version of a file with a codebook weight at positions "zero"
READS = (1, 2, 3, 4, 5)  # format versions load_compressed reads; 1 to 4 are subsets of 5
_FLAGS = ("ch", "ca", "ih", "ia", "eg", "zq", "zv")  # coding flags, left out when 0
_SQUEEZED = ("raw", "lzma", "lzma planes")  # float segments, by squeeze method
_DTYPES = {
    str(t).removeprefix("torch."): t
    for t in (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64)
    + (torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool)
}
_LEGACY = ("huffman",)  # config fields that change no bytes, left out of the header
_ZP_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "int64")


class ArtifactError(ValueError):
    """An artifact that cannot be written or read back; the message says what is wrong."""


@dataclass
class Size:
    """A model's parameter counts and the exact bytes of its artifact.

    ``layers`` has one row per stored tensor (a pandas-ready list of dicts);
    ``artifact_bytes == header_bytes + sum(row["total_bytes"])``.
    """

    total_params: int  # numel of all parameters
    nonzero_params: int  # parameters that are not exactly zero
    dense_bytes: int  # total_params * 4: the model in fp32
    artifact_bytes: int  # len(export(model)), exactly
    header_bytes: int  # magic, version, length and the deflated JSON header
    layers: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class _Part:
    """One encoded tensor: header entry, payload segments and a row for the size table."""

    entry: dict[str, Any]
    segments: tuple[bytes, bytes, bytes]  # index, params, values
    encoding: str
    bits: int
    nonzero: int
    how: dict[str, str]  # segment -> how it is coded: {"index": "relative b=8 ans", ...}
    # Bytes of index, params and values where they are an attribution, not the segments:
    # a layer in the shared block (no segments of its own), positions "code" (see _code_share).
    shares: tuple[int, int, int] | None = None
    in_block: bool = False  # in the shared block
    written: LayerRecord | None = None  # the record the segments hold (see _normalized)
    # Every weight's code and the params to decode them, where positions "zero" can be.
    zero: QuantState | None = None

    def sizes(self) -> tuple[int, int, int]:
        """Bytes of index, params and values (attributed ones where ``shares`` says)."""
        return self.shares if self.shares is not None else tuple(len(s) for s in self.segments)

    def row(self) -> dict[str, Any]:
        index, params, values = self.sizes()
        return {
            "name": self.entry["name"],
            "numel": prod(self.entry["shape"]),
            "nonzero": self.nonzero,
            "bits": self.bits,
            "encoding": self.encoding,
            "index_encoding": self.how.get("index", ""),
            "param_encoding": self.how.get("params", ""),
            "value_encoding": self.how["values"],
            "index_bytes": index,
            "value_bytes": values,
            "param_bytes": params,
            "total_bytes": index + params + values,
        }


# --- public API ----------------------------------------------------------------


def export(model: nn.Module, path: str | os.PathLike | None = None, *, coded: bool = True) -> bytes:
    """The model's artifact; also written atomically to ``path`` when given.

    Every stream takes the smallest exact coding (fixed width, Huffman or ANS);
    ``coded=False`` packs codes and indexes at fixed width only, as Deep Compression
    stores them before its Huffman stage (for showing what entropy coding saves).

    Raises ``ArtifactError`` when a weight differs from what its record decodes
    to (e.g. it was trained after quantization): the artifact would lie.

    Example:
        >>> blob = export(compress(base, CompressionConfig(prune_rate=0.9, bits=4)))
        >>> blob[:4]
        b'SLIM'
    """
    blob = _encode(model, coded)[0]
    if path is not None:
        write_atomic(os.fspath(path), blob)
    return blob


def artifact_size(model: nn.Module, *, coded: bool = True) -> Size:
    """Parameter counts and the exact artifact size, with a per-tensor breakdown.

    ``coded`` as in ``export``.

    Example:
        >>> s = artifact_size(model)
        >>> s.artifact_bytes == len(export(model))
        True
        >>> pd.DataFrame(s.layers)  # name, numel, nonzero, bits, encoding, ..., total_bytes
    """
    blob, parts, header_bytes = _encode(model, coded)
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    return Size(
        total_params=total,
        nonzero_params=sum(_nonzero(p) for p in params),
        dense_bytes=4 * total,
        artifact_bytes=len(blob),
        header_bytes=header_bytes,
        layers=[p.row() for p in parts],
    )


COMPONENTS = ("header", "positions", "codes", "scales_codebooks", "floats")


def artifact_breakdown(model: nn.Module, *, coded: bool = True) -> dict[str, int]:
    """The artifact's bytes by what they store; the values sum to its exact length.

    ``header``: magic, version and the compressed JSON header; ``positions``: the
    indexes of kept weights; ``codes``: the quantized weights; ``scales_codebooks``:
    scales, zero points and codebooks; ``floats``: every float tensor stored as
    floats (layers left alone, biases, BatchNorm, pruned-but-float weights). ``coded`` as
    in ``export``.

    Example:
        >>> parts = artifact_breakdown(model)
        >>> sum(parts.values()) == len(export(model))
        True
    """
    blob, parts, header_bytes = _encode(model, coded)
    out = dict.fromkeys(COMPONENTS, 0)
    out["header"] = header_bytes
    for part in parts:
        index, params, values = part.sizes()
        quantized = part.entry.get("scheme") in ("affine", "codebook")
        out["positions"] += index
        out["scales_codebooks"] += params
        out["codes" if quantized else "floats"] += values
    assert sum(out.values()) == len(blob)
    return out


def load_compressed(
    src: bytes | bytearray | memoryview | str | os.PathLike, model: nn.Module | None = None
) -> nn.Module:
    """Rebuild a model from its artifact: same weights (bit for bit), record and hooks.

    The model is a copy of ``model`` (an instance of the architecture, for a
    model outside the registry; it is not changed), else comes from
    ``compress_core.io.models.build_model`` with the stored spec; its channel
    removals are replayed, then every tensor is filled; it is returned in
    eval mode. Anything malformed raises ``ArtifactError``.

    Example:
        >>> model = load_compressed("lenet5.slim")
        >>> export(model) == open("lenet5.slim", "rb").read()
        True
    """
    if isinstance(src, (bytes, bytearray, memoryview)):
        blob = bytes(src)
    else:
        with open(src, "rb") as f:
            blob = f.read()
    try:
        return _load(blob, model)
    except ArtifactError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError) as e:
        raise ArtifactError(f"corrupt artifact ({type(e).__name__}: {e})") from e


# --- writing -------------------------------------------------------------------


def _encode(model: nn.Module, coded: bool = True) -> tuple[bytes, list[_Part], int]:
    """The artifact bytes, its encoded tensors and the length of prefix + header."""
    record, spec = get_record(model), get_spec(model)
    state = model.state_dict()
    layers = _layer_keys(record, state)
    parts = [
        _encode_layer(k, t, layers[k], coded) if k in layers else _encode_raw(k, t)
        for k, t in state.items()
    ]
    header = {
        "spec": None if spec is None else _plain(dataclasses.asdict(spec)),
        "config": None if record is None else _changed(record.config),
        "structured": [] if record is None else _plain(record.structured),
        "activations": {} if record is None else _plain(record.activations),
    }
    block = _shared_block(parts, state, layers) if coded else None
    if block is not None:
        header["solid"] = [block.method, len(block.data), block.size]
    header["tensors"] = [_slim_entry(p.entry, spec is not None) for p in parts]
    version = ZERO_CODEBOOK if any(_zero_codebook(p.entry) for p in parts) else VERSION
    head = header_codec.pack(header, version)
    payload = [] if block is None else [block.data]
    payload += [s for p in parts if not p.in_block for s in p.segments]
    return b"".join([head, *payload]), parts, len(head)


@dataclass
class _Block:
    """The shared block: every compressed layer in the plain dump's layout, compressed."""

    method: int  # plain.METHODS
    data: bytes
    size: int  # inflated


def _shared_block(parts: list[_Part], state: dict, layers: dict) -> _Block | None:
    """The compressed layers as one block (``plain.py``) when that is smaller than their
    parts coded one by one; their parts are then replaced by ``dump`` entries.

    Up to three blocks are tried, each only when its bytes differ from the ones before:
    the records as given, in the plain dump's layout, which is the dump's own compressed
    stream without its container, so the compressed layers are never larger than their
    plain lzma/zlib dump; the records as the parts wrote them (``_normalized``), which are a
    read-back model's given ones, so writing that model gives the same bytes; and those with
    every layer that can take positions ``zero`` in the zero-level layout (no mask), so
    light pruning costs a shared block no index either. The last is tried (LZMA only) where
    the block of the written records comes within ``ZERO_TRY`` of the parts: it differs from
    that block only by trading masks for zero codes.
    """
    at = [i for i, p in enumerate(parts) if p.entry["name"] in layers]
    if not at:
        return None
    names = [parts[i].entry["name"] for i in at]
    alone = sum(sum(parts[i].sizes()) for i in at)
    best, size = None, alone

    def attempt(records: list, deflate: bool = True) -> int:
        nonlocal best, size
        pairs = zip(names, records, strict=True)
        dump = b"".join(plain.layer_bytes(_numpy(state[k]), r, d) for k, (r, d) in pairs)
        method, data = plain.solid(dump, deflate)
        if len(data) < size:
            best, size = (records, _Block(method, data, len(dump))), len(data)
        return len(data)

    given = [(layers[k], None) for k in names]
    written = [(parts[i].written, None) for i in at]
    tried = attempt(given)
    if any(w is not g for (w, _), (g, _) in zip(written, given, strict=True)):
        tried = attempt(written)  # the same for a read-back model, whose given ones they are
    zero = [_zero_pair(parts[i]) for i in at]
    codebook = [d is not None and r.quant.scheme == "codebook" for r, d in zero]
    affine = [(r, None if c else d) for (r, d), c in zip(zero, codebook, strict=True)]
    if any(d is not None for _, d in affine) and tried <= alone * ZERO_TRY:
        attempt(affine, deflate=False)  # deflate-9 is slow on low-bit codes and not needed here
    if any(codebook) and tried <= alone * ZERO_TRY:
        attempt(zero, deflate=False)  # with the codebooks' zero level too (format 5)
    if best is None:
        return None
    records, block = best
    shares = _attribute(len(block.data), [parts[i].sizes() for i in at])
    for i, (record, dense), share in zip(at, records, shares, strict=True):
        parts[i] = _shared_part(parts[i], record, dense is not None, share, block.method)
    return block


def _zero_pair(part: _Part) -> tuple[LayerRecord, np.ndarray | None]:
    """A part's record for the shared block and, where it can take positions ``zero``, every
    weight's code (with the params that decode the pruned weights' code to 0.0)."""
    if part.zero is None:
        return part.written, None
    return LayerRecord(part.written.mask, part.zero), part.zero.codes.numpy()


def _zero_codebook(entry: dict) -> bool:
    """A codebook weight at positions ``zero``: format 5."""
    return entry.get("pos") == "zero" and entry.get("scheme") == "codebook"


# The zero-level block is tried when the block of the written records is at most this much
# larger than the layers coded alone. Measured on LeNet-5 and LeNet-300-100 (Fashion-MNIST,
# 5-90 % pruned, 2-8 bits, uniform and symmetric: 105 configs), it won 11 times, always
# where that block was within 0.5 % of the parts, and saved at most 1.9 % on it.
ZERO_TRY = 1.03


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _attribute(total: int, weights: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """``total`` bytes split in proportion to ``weights`` (largest remainder, exact sum).

    The shared block's bytes go to each layer's index, params and values in proportion to
    what they take coded one by one: an attribution, not a measurement, but the layers'
    rows still sum to the block exactly.
    """
    flat = [w for ws in weights for w in ws]
    whole = sum(flat)
    share = [total * w // whole for w in flat]
    order = sorted(range(len(flat)), key=lambda k: -(total * flat[k] % whole))
    for k in order[: total - sum(share)]:
        share[k] += 1
    width = len(weights[0])
    return [tuple(share[j : j + width]) for j in range(0, len(share), width)]


def _shared_part(part: _Part, layer: LayerRecord, zero: bool, share: tuple, method: int) -> _Part:
    fields = plain.entry_fields(layer, zero)
    entry = {k: part.entry[k] for k in ("name", "shape", "dtype")} | fields
    method = plain.METHODS[method]
    index = {"none": "dense", "bitmask": "bitmask", "zero": "zero level"}[fields["pos"]]
    index = f"{index}, shared {method}"
    how = {"index": index, "values": f"shared {method}"}
    what = "float32" if layer.quant is None else f"{layer.quant.bits}-bit {layer.quant.scheme}"
    if layer.quant is not None:
        how["params"] = f"shared {method}"
    text = f"{index} · {what}"
    return _Part(entry, (b"", b"", b""), text, part.bits, part.nonzero, how, share, True)


def _slim_entry(entry: dict, has_spec: bool) -> dict:
    """The header entry without what the reader knows: zero flags, and with a model spec,
    the name, shape and dtype (the rebuilt model's ``state_dict`` gives them, in order)."""
    known = ("name", "shape", "dtype") if has_spec else ()
    return {k: v for k, v in entry.items() if k not in known and (k not in _FLAGS or v)}


def _changed(config: CompressionConfig) -> dict[str, Any]:
    """The settings that differ from the defaults (``from_dict`` fills in the rest).

    ``huffman`` is left out: a legacy switch that changes no bytes (entropy coding is
    always considered), so it does not change the header's either.
    """
    default = CompressionConfig().to_dict()
    return {k: v for k, v in config.to_dict().items() if v != default[k] and k not in _LEGACY}


def _layer_keys(record: CompressionRecord | None, state: dict) -> dict[str, LayerRecord]:
    """The state_dict key of each recorded weight that is pruned or quantized."""
    if record is None:
        return {}
    out = {}
    for name, layer in record.layers.items():
        key = f"{name}.weight" if name else "weight"
        if key not in state:
            raise ArtifactError(f"the record names layer {name!r} but the model has no {key}")
        if layer.mask is not None or layer.quant is not None:
            out[key] = layer
    return out


def _plain(obj: Any) -> Any:
    """JSON-ready copy: tensors and arrays to lists, tuples to lists."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (torch.Tensor, np.ndarray, np.generic)):
        return obj.tolist()
    return obj


def _nonzero(t: torch.Tensor) -> int:
    if t.dtype in (torch.bfloat16,):  # no numpy twin
        return int(torch.count_nonzero(t))
    return int(np.count_nonzero(t.detach().cpu().numpy()))


def _raw_bytes(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _encode_raw(name: str, t: torch.Tensor) -> _Part:
    dtype = str(t.dtype).removeprefix("torch.")
    if dtype not in _DTYPES:
        raise ArtifactError(f"{name}: dtype {dtype} cannot be stored")
    method, data = squeeze(_raw_bytes(t), t.element_size())
    entry = {"name": name, "shape": list(t.shape), "dtype": dtype, "enc": "raw", "zv": method}
    entry["len"] = [0, 0, len(data)]
    how = {"values": _SQUEEZED[method]}
    return _Part(entry, (b"", b"", data), "raw", t.element_size() * 8, _nonzero(t), how)


def _encode_layer(name: str, weight: torch.Tensor, layer: LayerRecord, coded: bool) -> _Part:
    """A pruned and/or quantized weight: positions, quant params and codes (or floats).

    ``coded`` (the default) adds the Huffman and ANS options for codes and indexes;
    without it they are packed at fixed width, as Deep Compression stores them before
    its Huffman stage.
    """
    w = weight.detach().cpu()  # a model compressed on a GPU writes the same bytes
    mask = None if layer.mask is None else layer.mask.reshape(-1).numpy()
    kept = np.arange(w.numel()) if mask is None else np.flatnonzero(mask)
    _check_layer(name, w, layer, kept)
    entry = {"name": name, "shape": list(w.shape), "dtype": "float32", "enc": "layer"}
    q = layer.quant
    written = layer
    if q is None:
        where = cheapest(position_options(mask, kept, coded, prune=PRUNE))
        method, values = squeeze(w.reshape(-1).numpy()[kept].tobytes(), 4)
        params, bits, what = b"", 32, "float32"
        entry.update(where.fields, scheme="float", zv=method)
        how = {"values": _SQUEEZED[method]}
    else:
        shape = tuple(w.shape)
        written = _normalized(w, mask, kept, q) or layer
        if written is not layer:
            mask = written.mask.reshape(-1).numpy()
            kept, q = np.flatnonzero(mask), written.quant
        choices = [_quant_choice(mask, kept, q, shape, coded)]
        zero = _zero_codes(mask, kept, q, shape)
        choices += _zero_level(zero, shape, coded, _choice_bytes(choices[0]))
        best = min(_choice_bytes(c) for c in choices)
        choices += _pruned_code(mask, kept, q, coded, choices[0][1:3], best)
        where, fields, params, codes = min(choices, key=_choice_bytes)  # the first smallest
        entry.update(where.fields, **fields, bits=q.bits, **codes.fields)
        values, bits = codes.make(), q.bits
        code_label = label(codes.fields, "ch ca")
        what = f"{q.bits}-bit {q.scheme} {code_label}"
        how = {"values": code_label, "params": _SQUEEZED[fields["zq"]]}
    index = where.make()
    how["index"] = _position_label(where.fields)
    entry["len"] = [len(index), len(params), len(values)]
    text = how["index"] + " · " + what
    part = _Part(entry, (index, params, values), text, bits, _nonzero(w), how)
    if where.fields["pos"] == "code":
        part.shares = _code_share(mask, q.codes.numpy(), len(values), len(params))
    part.written = written
    part.zero = None if q is None else zero
    return part


_Choice = tuple[Option, dict, bytes, Option]  # positions, param fields, params, codes


def _choice_bytes(choice: _Choice) -> int:
    where, _, params, codes = choice
    return where.nbytes + len(params) + codes.nbytes


def _quant_choice(
    mask: np.ndarray | None, kept: np.ndarray, q: QuantState, shape: tuple, coded: bool
) -> _Choice:
    """The kept positions (index), the quant params and the kept weights' codes."""
    where = cheapest(position_options(mask, kept, coded, prune=PRUNE))
    fields, params = _encode_params(q, kept, shape)
    codes = cheapest(_code_options(q.codes.numpy(), q.bits, coded))
    return where, fields, params, codes


# Sizing leaves out the coders that provably cannot win (streams.floors) and candidates whose
# least possible size is already beaten; the bytes are the same as without (tested).
PRUNE = True


def _code_options(codes: np.ndarray, bits: int, coded: bool) -> list[Option]:
    """``code_options``; pruned against the stream's own fixed width."""
    beat = (len(codes) * bits + 7) // 8 if PRUNE else None
    return code_options(codes, bits, coded, beat=beat)


_PRUNED_CODE = Option({"pos": "code"}, 0, 0, lambda: b"")


def _code_share(
    mask: np.ndarray, codes: np.ndarray, values: int, params: int
) -> tuple[int, int, int]:
    """Positions ``code`` keep the index inside the code stream; in the byte breakdown it
    gets the stream's share that the mask's information has: by the chain rule, the
    stream's order-0 information is H(mask) + H(codes of the kept weights)."""
    where = entropy.entropy_bits(mask.astype(np.int64))
    what = entropy.entropy_bits(codes)
    index = round(values * where / (where + what)) if where + what > 0 else 0
    return index, params, values - index


def _pruned_code(
    mask: np.ndarray | None,
    kept: np.ndarray,
    q: QuantState,
    coded: bool,
    quant_params: tuple[dict, bytes],
    best: int,
) -> list[_Choice]:
    """For a pruned quantized weight: positions ``code``, every weight's code in one
    entropy-coded stream with the pruned ones as the extra code ``2**bits``, no index.

    The mask and codes read back exactly as they are (unlike ``zero``), so it serves
    k-means codebooks, which have no exact zero level. Its order-0 cost equals that of
    an entropy-coded bitmask plus the codes (the chain rule); it saves one table and
    the index's coding overhead. ``quant_params``: the kept weights' params (the same as
    with an index); ``best``: the smallest choice so far, which its streams must beat.
    """
    if not coded or mask is None or len(kept) == len(mask):
        return []
    fields, params = quant_params
    beat = best - len(params) if PRUNE else None
    options = pruned_code_options(mask, q.codes.numpy(), q.bits, beat)
    return [(_PRUNED_CODE, fields, params, cheapest(options))] if options else []


def _position_label(fields: dict) -> str:
    if fields["pos"] == "none":
        return "dense"
    if fields["pos"] == "zero":
        return "zero level"
    if fields["pos"] == "code":
        return "pruned code"
    coder = label(fields, "ih ia")
    if fields["pos"] == "bitmask":
        return "bitmask" + ("" if coder == "fixed" else f" {coder}")
    return f"relative b={fields['b']} {coder}"


_NO_INDEX = Option({"pos": "zero"}, 0, 0, lambda: b"")


def _normalized(
    w: torch.Tensor, mask: np.ndarray | None, kept: np.ndarray, q: QuantState
) -> LayerRecord | None:
    """A pruned weight's record with the kept weights coded as a zero level pruned too:
    the same weights, bit for bit, with a smaller mask. None when nothing changes or it
    would not be exact (a kept zero-coded weight that is not +0.0, e.g. a negative or NaN
    scale). Affine: the zero point; codebook: entries that are +0.0, and only where every
    group with pruned weights has one (k-means pins it), so that positions ``zero`` can be.

    The writer stores pruned weights this way always: every candidate then codes the
    zero-coded weights once (as pruned) instead of as pruned-or-kept, which never costs
    more at order 0 (it merges two symbols), and a read-back model (whose mask is already
    this one) is written to the same bytes.
    """
    if mask is None or len(kept) == len(mask):
        return None
    codes, groups = q.codes.numpy(), q.groups.numpy()
    if q.scheme == "affine":
        zero_coded = codes == q.zero_point.numpy()[groups]
    elif _codebook_zeros(mask, q) is not None:
        zero_coded = _plus_zero(q.codebook.numpy())[groups, codes]
    else:
        return None
    if not zero_coded.any():
        return None
    if w.reshape(-1).numpy()[kept[zero_coded]].view(np.int32).any():
        return None
    keep = mask.copy()
    keep[kept[zero_coded]] = False
    nonzero = ~zero_coded
    codes, groups = codes[nonzero], groups[nonzero]
    kept_q = dataclasses.replace(q, codes=torch.from_numpy(codes), groups=torch.from_numpy(groups))
    return LayerRecord(torch.from_numpy(keep).reshape(w.shape), kept_q)


def _plus_zero(table: np.ndarray) -> np.ndarray:
    """Which float32 entries are exactly +0.0 (not -0.0: its bits are not those of a pruned
    weight)."""
    return table.view(np.int32) == 0


def _codebook_zeros(mask: np.ndarray, q: QuantState) -> np.ndarray | None:
    """The groups with pruned weights, when each has a +0.0 codebook entry; else None."""
    shape = (len(q.codebook), len(mask) // len(q.codebook))
    pruned = np.flatnonzero((~mask).reshape(shape).any(axis=1))
    return pruned if _plus_zero(q.codebook.numpy())[pruned].any(axis=1).all() else None


def _zero_codes(
    mask: np.ndarray | None, kept: np.ndarray, q: QuantState, shape: tuple
) -> QuantState | None:
    """Every weight's code, the pruned ones as their group's zero level, with the params
    that decode them, for a pruned weight that can be stored so (positions ``zero``); else
    None.

    The reader takes "decodes to something other than the zero level" as the mask, so no
    kept weight may be coded as it (``_normalized`` sees to that) and every pruned weight's
    group needs one: affine, its zero point in range; codebook, a +0.0 entry (k-means pins
    one, ``quantize_tensor``). A codebook group's zero is the lowest entry no kept weight
    uses (k-means puts its 0.0 first), set to +0.0, which changes no weight; a read-back
    model has the same kept codes, so it picks the same entry.
    """
    if mask is None or len(kept) == len(mask):
        return None
    group_of = _groups(np.arange(len(mask)), shape, _n_groups(q))
    if group_of is None:
        return None
    codes, groups = q.codes.numpy(), q.groups.numpy()
    if q.scheme == "affine":
        dense = q.zero_point.numpy()[group_of]
        pruned = dense[~mask]
        if pruned.min() < 0 or pruned.max() >= 2**q.bits:
            return None
        if (codes == dense[kept]).any():
            return None  # a kept weight coded zero would read back pruned
        table = {"scale": q.scale, "zero_point": q.zero_point}
    else:
        zeros = _codebook_zeros(mask, q)
        table = q.codebook.numpy().copy()
        if zeros is None or _plus_zero(table)[groups, codes].any():
            return None  # no zero level, or a kept weight coded +0.0 would read back pruned
        used = np.zeros(table.shape, dtype=bool)
        used[groups, codes] = True
        free = used.argmin(axis=1)  # a +0.0 entry no kept weight uses is one
        table[zeros, free[zeros]] = 0.0
        dense = free[group_of]
        table = {"codebook": torch.from_numpy(table)}
    dense[kept] = codes
    dense, group_of = torch.from_numpy(dense), torch.from_numpy(group_of)
    return QuantState(q.scheme, q.bits, dense, group_of, **table)


def _zero_params(zero: QuantState) -> tuple[QuantState, np.ndarray]:
    """What positions ``zero`` store params for: affine, every group (the reader needs the
    zero points before it knows which weights are kept); codebook, the kept weights' entries
    only, as with an index: the zero level is an entry that reads back +0.0, stored (a full
    table) or not (unstored entries read back as 0.0), so it costs no bytes of its own."""
    dense = zero.codes.numpy()
    if zero.scheme == "affine":
        return zero, np.arange(len(dense))
    group_of = zero.groups.numpy()
    keep = ~_plus_zero(zero.codebook.numpy())[group_of, dense]
    codes, groups = torch.from_numpy(dense[keep]), torch.from_numpy(group_of[keep])
    return dataclasses.replace(zero, codes=codes, groups=groups), np.flatnonzero(keep)


def _zero_level(zero: QuantState | None, shape: tuple, coded: bool, best: int) -> list:
    """Positions ``zero`` (see ``_zero_codes``): the dense codes in one stream, no index,
    and the params of ``_zero_params``. Nothing when even its codes alone cannot be smaller
    than ``best`` bytes (so it could not be chosen)."""
    if zero is None:
        return []
    dense = zero.codes.numpy()
    freq = np.bincount(dense, minlength=2**zero.bits)
    plain = (len(dense) * zero.bits + 7) // 8
    if PRUNE and (min(plain, *floors(freq)) if coded else plain) > best:
        return []
    fields, params = _encode_params(*_zero_params(zero), shape)
    beat = min(plain, best - len(params)) if PRUNE else None
    options = code_options(dense, zero.bits, coded, freq, beat)
    return [(_NO_INDEX, fields, params, cheapest(options))]


def _check_layer(name: str, w: torch.Tensor, layer: LayerRecord, kept: np.ndarray) -> None:
    """Refuse a record the artifact could not reproduce the weight from."""
    if w.dtype != torch.float32:
        raise ArtifactError(f"{name}: compressed weights must be float32, not {w.dtype}")
    mask = layer.mask
    if mask is not None and (mask.dtype != torch.bool or mask.shape != w.shape):
        raise ArtifactError(f"{name}: the mask must be a bool tensor shaped like the weight")
    q = layer.quant
    if q is None:
        if mask is not None and w.reshape(-1).numpy()[~mask.reshape(-1).numpy()].any():
            raise ArtifactError(f"{name}: pruned weights are not zero; re-apply the mask")
        return
    _check_quant(name, q, len(kept))
    groups = _groups(kept, tuple(w.shape), _n_groups(q))
    if groups is None or not np.array_equal(q.groups.numpy(), groups):
        raise ArtifactError(f"{name}: quant groups are neither per-tensor nor per output channel")
    # materialize(shape, layer) == w, in numpy: torch's threaded kernels are slow on small CPUs.
    flat = w.reshape(-1).numpy()
    zeros = mask is None or not flat[~layer.mask.reshape(-1).numpy()].any()
    if not (zeros and np.array_equal(flat[kept], _dequantized(q))):
        raise ArtifactError(
            f"{name}: the weights differ from what the record decodes to; "
            "was the model changed after compression?"
        )


def _dequantized(q: QuantState) -> np.ndarray:
    """``record.dequantize(q)`` in numpy, the same float32 operations (tested equal)."""
    groups = q.groups.numpy()
    if q.scheme == "affine":
        steps = (q.codes.numpy() - q.zero_point.numpy()[groups]).astype(np.float32)
        return steps * q.scale.numpy()[groups]
    return q.codebook.numpy()[groups, q.codes.numpy()]


def _check_quant(name: str, q: QuantState, n_kept: int) -> None:
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ArtifactError(f"{name}: {what}")

    need(isinstance(q.bits, int) and 1 <= q.bits <= 16, f"bits must be 1..16, not {q.bits}")
    need(q.codes.dtype == torch.int64 and q.codes.shape == (n_kept,), "one int64 code per kept")
    need(q.groups.dtype == torch.int64 and q.groups.shape == (n_kept,), "one group per code")
    codes = q.codes.numpy()
    need(n_kept == 0 or 0 <= codes.min() <= codes.max() < 2**q.bits, "codes out of range")
    if q.scheme == "affine":
        ok = q.scale is not None and q.zero_point is not None
        need(ok and q.scale.dtype == torch.float32 and q.scale.dim() == 1, "float32 scale")
        need(q.zero_point.dtype == torch.int64 and q.zero_point.shape == q.scale.shape, "zp")
    elif q.scheme == "codebook":
        cb = q.codebook
        need(cb is not None and cb.dtype == torch.float32, "the codebook must be float32")
        need(cb.dim() == 2 and cb.shape[1] == 2**q.bits, "codebook shape [n_groups, 2**bits]")
    else:
        need(False, f"unknown quantization scheme {q.scheme!r}")


def _n_groups(q: QuantState) -> int:
    return len(q.scale) if q.scheme == "affine" else len(q.codebook)


def _groups(kept: np.ndarray, shape: tuple, n_groups: int) -> np.ndarray | None:
    """The group of each kept weight: all 0 (per-tensor) or its output channel (per-channel)."""
    if n_groups == 1:
        return np.zeros(len(kept), dtype=np.int64)
    if len(shape) and n_groups == shape[0]:
        return (kept // (prod(shape) // n_groups)).astype(np.int64)
    return None


def _int_dtype(values: np.ndarray) -> str:
    """The smallest integer dtype that holds every value."""
    lo, hi = (int(values.min()), int(values.max())) if len(values) else (0, 0)
    for name in _ZP_DTYPES:
        info = np.iinfo(name)
        if info.min <= lo and hi <= info.max:
            return name
    raise ArtifactError(f"zero points {lo}..{hi} do not fit in int64")


def _squeezed(fields: dict, head: bytes, floats: bytes) -> tuple[dict, bytes]:
    """``head`` as is, then ``floats`` compressed (``zq``) when that is smaller."""
    method, data = squeeze(floats, 4 if len(floats) % 4 == 0 else 1)
    return {**fields, "zq": method}, head + data


def _unsqueezed(entry: dict, data: bytes, size: int) -> bytes:
    """Inverse of ``_squeezed`` for the float part (``size`` bytes when inflated)."""
    try:
        return unsqueeze(entry.get("zq", 0), data, size, 4 if size % 4 == 0 else 1)
    except ValueError as e:
        raise ArtifactError(f"{entry['name']}: quant params: {e}") from e


def _encode_params(q: QuantState, kept: np.ndarray, shape: tuple) -> tuple[dict, bytes]:
    """Affine: float32 scales then zero points; codebook: the full table or its used entries.

    Groups (output channels) with no kept weight store nothing (``eg``: 1); their
    scale and zero point read back as 1 and 0, which no code uses. A k-means
    codebook may have entries no weight uses (at high bits there are more
    centroids than weights). When it is smaller, only the used entries are
    stored, after their positions in the table (encoded like a keep-mask);
    unused entries read back as -0.0, which no code points at (at positions ``zero``,
    format 5, as +0.0: the pruned weights' code, which stands for 0.0).
    """
    n_groups = _n_groups(q)
    if q.scheme == "affine":
        live = _live_groups(kept, shape, n_groups)
        fields = {"scheme": "affine", "ng": n_groups, "eg": int(len(live) < n_groups)}
        zp = q.zero_point.numpy()[live]
        dtype = _int_dtype(zp)
        data = q.scale.numpy()[live].astype("<f4").tobytes() + zp.astype(np.dtype(dtype)).tobytes()
        return _squeezed({**fields, "zp": dtype}, b"", data)
    k = 2**q.bits
    table = q.codebook.numpy().astype("<f4").reshape(-1)
    used = np.zeros(n_groups * k, dtype=bool)
    used[q.groups.numpy() * k + q.codes.numpy()] = True
    slots = np.flatnonzero(used)
    where = cheapest(position_options(used, slots, prune=PRUNE))
    if where.nbytes + 4 * len(slots) >= table.nbytes:
        return _squeezed({"scheme": "codebook", "ng": n_groups, "cb": "full"}, b"", table.tobytes())
    index = where.make()
    fields = {"scheme": "codebook", "ng": n_groups, "cb": "used"}
    fields["cbi"] = {**where.fields, "len": len(index)}
    return _squeezed(fields, index, table[used].tobytes())


def _live_groups(kept: np.ndarray, shape: tuple, n_groups: int) -> np.ndarray:
    """The groups that hold at least one kept weight, in order."""
    return np.flatnonzero(np.bincount(_groups(kept, shape, n_groups), minlength=n_groups))


# --- reading -------------------------------------------------------------------


def _load(blob: bytes, architecture: nn.Module | None = None) -> nn.Module:
    header, payload = _parse(blob)
    model = _fresh_model(header, architecture)
    expected = model.state_dict()
    _fill_entries(header["tensors"], expected)
    name = header["spec"]["name"] if header["spec"] else type(model).__name__
    _match_tensors(header["tensors"], expected, name)
    shared, offset = _decode_block(header, payload)
    tensors, layers = {}, {}
    for entry in header["tensors"]:
        if entry["enc"] == "dump":
            tensors[entry["name"]], layer = shared[entry["name"]]
        else:
            segments = []
            for n in entry["len"]:
                segments.append(payload[offset : offset + n])
                offset += n
            tensors[entry["name"]], layer = _decode_entry(entry, segments)
        if layer is not None:
            layers[_module_name(entry["name"])] = layer
    model.load_state_dict(tensors)
    model.eval()  # an artifact is for inference: BatchNorm must not update its statistics
    if header["config"] is not None:
        config = CompressionConfig.from_dict(header["config"])
        record = CompressionRecord(config, layers, header["structured"], header["activations"])
        setattr(model, RECORD_ATTR, record)
    return model


def _decode_block(header: dict, payload: bytes) -> tuple[dict, int]:
    """The layers in the shared block (name -> (weight, record)) and where it ends."""
    if "solid" not in header:
        return {}, 0
    method, length, size = header["solid"]
    entries = [e for e in header["tensors"] if e["enc"] == "dump"]
    try:
        if size > sum(plain.max_bytes(e) for e in entries):
            raise ValueError(f"it claims {size} bytes, more than its layers can hold")
        reader = plain.Reader(plain.unsolid(method, payload[:length], size))
        out = {}
        for e in entries:
            weight, layer = reader.layer(e, _groups)
            if weight is None:
                weight = materialize(torch.Size(e["shape"]), layer, None)
            out[e["name"]] = weight, layer
        reader.done()
    except (ValueError, KeyError, TypeError) as e:
        raise ArtifactError(f"the shared block of compressed layers is corrupt: {e}") from e
    return out, length


def _parse(blob: bytes) -> tuple[dict, bytes]:
    """The checked header and the payload; raises ArtifactError on any malformation."""
    try:
        version, header, end = header_codec.unpack(blob, READS)
    except header_codec.HeaderError as e:
        raise ArtifactError(str(e)) from e
    payload = blob[end:]
    _check_header(header, len(payload), version)
    return header, payload


def _check_header(header: Any, payload_bytes: int, version: int) -> None:
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ArtifactError(f"artifact header is malformed: {what}")

    keys = {"spec", "config", "structured", "activations", "tensors"}
    solid = isinstance(header, dict) and "solid" in header and version >= 4
    need(isinstance(header, dict) and set(header) == keys | ({"solid"} if solid else set()),
         f"expected the keys {sorted(keys)}")  # fmt: skip
    need(isinstance(header["tensors"], list), "tensors must be a list")
    need(isinstance(header["structured"], list), "structured must be a list")
    need(isinstance(header["activations"], dict), "activations must be a dict")
    need(header["config"] is None or isinstance(header["config"], dict), "config must be a dict")
    total = 0
    if solid:
        block = header["solid"]
        need(_ints(block) and len(block) == 3 and block[0] in plain.METHODS, "bad solid block")
        total += block[1]
    shared = 0
    for e in header["tensors"]:
        need(isinstance(e, dict), "a tensor entry is not a dict")
        name, lens = e.get("name", "?"), e.get("len")
        need(isinstance(name, str), "a tensor name is not text")
        early = version < ZERO_CODEBOOK and _zero_codebook(e)
        need(not early, f"{name}: a codebook at positions zero needs format {ZERO_CODEBOOK}")
        if solid and e.get("enc") == "dump":
            need("len" not in e, f"{name}: a layer in the shared block has no segments")
            shared += 1
            continue
        need(_ints(lens) and len(lens) == 3, f"{name}: bad len")
        need(e.get("enc") in ("raw", "layer"), f"{name}: bad encoding")
        total += sum(lens)
    need(not solid or shared > 0, "a shared block with no layer in it")
    if total != payload_bytes:
        how = "truncated" if total > payload_bytes else "followed by extra bytes"
        raise ArtifactError(f"artifact is {how}: tensors need {total} bytes, has {payload_bytes}")


def _ints(value: Any) -> bool:
    return isinstance(value, list) and all(type(v) is int and v >= 0 for v in value)


def _module_name(key: str) -> str:
    """'fc1.weight' -> 'fc1' (and 'weight' -> '' for a bare layer)."""
    if key == "weight":
        return ""
    if not key.endswith(".weight"):
        raise ArtifactError(f"{key}: only module weights can be compressed")
    return key.removesuffix(".weight")


def _fresh_model(header: dict, architecture: nn.Module | None = None) -> nn.Module:
    """A new model (the registry's, or a copy of ``architecture``), with the recorded
    channel removals and activation hooks."""
    spec = header["spec"]
    if architecture is None and not isinstance(spec, dict):
        raise ArtifactError(
            "the artifact has no model spec: pass the architecture, "
            "load_compressed(src, model=MyNet())"
        )
    if isinstance(spec, dict):
        spec = ModelSpec(spec["name"], tuple(spec["in_shape"]), spec["num_classes"])
    if architecture is not None:
        model = copy.deepcopy(architecture)
        model.__dict__.pop(RECORD_ATTR, None)  # the artifact's record replaces any copied one
    else:
        from ..io.models import MODELS, build_model

        if spec.name not in MODELS:
            raise ArtifactError(
                f"the artifact's model {spec.name!r} is not in the registry: pass the "
                "architecture, load_compressed(src, model=MyNet())"
            )
        model = build_model(spec.name, spec.in_shape, spec.num_classes)
    if spec is not None:
        setattr(model, SPEC_ATTR, spec)
    if header["structured"]:
        from ..core.prune import replay_structured

        model = _same_or(replay_structured(model, header["structured"]), model)
    if header["activations"]:
        from ..core.quantize import install_activation_quant

        model = _same_or(install_activation_quant(model, header["activations"]), model)
    return model


def _same_or(returned: Any, model: nn.Module) -> nn.Module:
    return returned if isinstance(returned, nn.Module) else model


def _fill_entries(entries: list[dict], expected: dict[str, torch.Tensor]) -> None:
    """Give entries written without name, shape and dtype those of the model's tensors."""
    if any("name" not in e for e in entries) and len(entries) != len(expected):
        raise ArtifactError(f"the artifact has {len(entries)} tensors, the model {len(expected)}")
    for e, (name, t) in zip(entries, expected.items(), strict=False):
        e.setdefault("name", name)
        e.setdefault("shape", list(t.shape))
        e.setdefault("dtype", str(t.dtype).removeprefix("torch."))
        if not (isinstance(e["name"], str) and _ints(e.get("shape")) and e.get("dtype") in _DTYPES):
            raise ArtifactError(f"artifact header is malformed: {e['name']}: bad shape or dtype")


def _match_tensors(entries: list[dict], expected: dict[str, torch.Tensor], model: str) -> None:
    names = [e["name"] for e in entries]
    if names != list(expected):
        missing = sorted(set(expected) - set(names))
        extra = sorted(set(names) - set(expected))
        raise ArtifactError(
            f"the artifact's tensors do not fit model {model!r}: missing {missing}, "
            f"unexpected {extra} (or a different order)"
        )
    for e in entries:
        t = expected[e["name"]]
        if tuple(e["shape"]) != tuple(t.shape) or _DTYPES[e["dtype"]] != t.dtype:
            raise ArtifactError(
                f"{e['name']}: the artifact has {e['dtype']}{e['shape']}, "
                f"model {model!r} expects {t.dtype}{list(t.shape)}"
            )


def _decode_entry(entry: dict, segments: list[bytes]) -> tuple[torch.Tensor, LayerRecord | None]:
    try:
        if entry["enc"] == "raw":
            return _decode_raw(entry, segments), None
        return _decode_layer(entry, segments)
    except ArtifactError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, StreamError) as e:
        raise ArtifactError(f"{entry['name']}: corrupt data ({e})") from e


def _from_bytes(data: bytes, dtype: torch.dtype, shape: list[int]) -> torch.Tensor:
    size = torch.empty(0, dtype=dtype).element_size()
    if len(data) != prod(shape) * size:
        raise ArtifactError(f"{prod(shape)} values of {dtype} need {prod(shape) * size} bytes")
    if not data:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(data), dtype=dtype).reshape(shape)


def _floats(entry: dict, data: bytes, dtype: torch.dtype, shape: list[int]) -> torch.Tensor:
    """Values stored by ``squeeze`` (method ``zv``; format 1 has none: as is)."""
    size = torch.empty(0, dtype=dtype).element_size()
    try:
        data = unsqueeze(entry.get("zv", 0), data, prod(shape) * size, size)
    except ValueError as e:
        raise ArtifactError(f"{entry['name']}: {e}") from e
    return _from_bytes(data, dtype, shape)


def _decode_raw(entry: dict, segments: list[bytes]) -> torch.Tensor:
    if segments[0] or segments[1]:
        raise ArtifactError(f"{entry['name']}: a raw tensor has only values")
    return _floats(entry, segments[2], _DTYPES[entry["dtype"]], entry["shape"])


def _decode_layer(entry: dict, segments: list[bytes]) -> tuple[torch.Tensor, LayerRecord]:
    index, params, values = segments
    shape, n = entry["shape"], entry.get("n")  # formats 1-3 store the kept count, 4 derives it
    numel = prod(shape)
    if entry["dtype"] != "float32" or not (n is None or type(n) is int and 0 <= n <= numel):
        raise ArtifactError(f"{entry['name']}: bad kept count or dtype")
    if entry["pos"] == "zero":
        return _decode_zero_level(entry, segments)
    if entry["pos"] == "code":
        return _decode_pruned_code(entry, segments)
    mask = decode_positions(entry, index, numel, entry["name"])
    kept = np.arange(numel) if mask is None else np.flatnonzero(mask)
    _check_count(entry, len(kept))
    mask_t = None if mask is None else torch.from_numpy(mask).reshape(shape)
    if entry["scheme"] == "float":
        weight = torch.zeros(numel, dtype=torch.float32)
        weight[torch.from_numpy(kept)] = _floats(entry, values, torch.float32, [len(kept)])
        if params:
            raise ArtifactError(f"{entry['name']}: a float layer has no quant params")
        return weight.reshape(shape), LayerRecord(mask_t, None)
    q = _decode_quant(entry, params, values, kept)
    layer = LayerRecord(mask_t, q)
    return materialize(torch.Size(shape), layer, None), layer


def _decode_zero_level(entry: dict, segments: list[bytes]) -> tuple[torch.Tensor, LayerRecord]:
    """Positions ``zero``: the dense code stream; kept = not coded as the group's zero level
    (affine: its zero point; codebook, format 5: an entry that is +0.0)."""
    index, params, values = segments
    shape, bits, n_groups, name = entry["shape"], entry["bits"], entry["ng"], entry["name"]
    numel = prod(shape)
    scheme = entry["scheme"]
    ok = scheme in ("affine", "codebook") and not entry.get("eg", 0) and not index
    if not ok or bits not in range(1, 17) or type(n_groups) is not int or n_groups < 1:
        raise ArtifactError(f"{name}: bad zero-level entry")
    group_of = _groups(np.arange(numel), tuple(shape), n_groups)
    if group_of is None:
        raise ArtifactError(f"{name}: {n_groups} groups are not per-tensor or -channel")
    dense = read_stream(values, entry, "ch ca", bits, numel)
    if scheme == "codebook":  # pruned: an entry that reads back +0.0 (stored or not)
        table = _decode_codebook(entry, params, n_groups, 2**bits)
        keep = ~_plus_zero(table.numpy())[group_of, dense]
        params = {"codebook": table}
    else:
        scale, zero_point = _decode_affine(entry, params, n_groups, np.arange(n_groups))
        keep = dense != zero_point.numpy()[group_of]
        params = {"scale": scale, "zero_point": zero_point}
    _check_count(entry, int(keep.sum()))
    codes, groups = torch.from_numpy(dense[keep]), torch.from_numpy(group_of[keep])
    q = QuantState(scheme, bits, codes, groups, **params)
    layer = LayerRecord(torch.from_numpy(keep).reshape(shape), q)
    return materialize(torch.Size(shape), layer, None), layer


def _check_count(entry: dict, n: int) -> None:
    if entry.get("n", n) != n:
        raise ArtifactError(f"{entry['name']}: {n} kept weights, header says {entry['n']}")


def _decode_pruned_code(entry: dict, segments: list[bytes]) -> tuple[torch.Tensor, LayerRecord]:
    """Positions ``code``: one stream of every weight's code, ``2**bits`` = pruned."""
    index, params, values = segments
    shape, bits, name = entry["shape"], entry["bits"], entry["name"]
    if index or bits not in range(1, 17):
        raise ArtifactError(f"{name}: bad pruned-code entry")
    pruned = 2**bits
    dense = read_stream(values, entry, "ch ca", bits + 1, prod(shape), pruned + 1)
    if len(dense) and dense.max() > pruned:
        raise ArtifactError(f"{name}: a code is out of range")
    keep = dense != pruned
    kept = np.flatnonzero(keep)
    _check_count(entry, len(kept))
    layer = LayerRecord(torch.from_numpy(keep).reshape(shape), None)
    layer.quant = _decode_quant(entry, params, values, kept, dense[keep])
    return materialize(torch.Size(shape), layer, None), layer


def _decode_quant(
    entry: dict, params: bytes, values: bytes, kept: np.ndarray, codes_of: np.ndarray | None = None
) -> QuantState:
    """The quant state of the kept weights; their codes from ``values`` unless given."""
    bits, scheme, n_groups = entry["bits"], entry["scheme"], entry["ng"]
    if bits not in range(1, 17) or type(n_groups) is not int or n_groups < 1:
        raise ArtifactError(f"{entry['name']}: bad bits or group count")
    group_of = _groups(kept, tuple(entry["shape"]), n_groups)
    if group_of is None:
        raise ArtifactError(f"{entry['name']}: {n_groups} groups are not per-tensor or -channel")
    if codes_of is None:
        codes_of = read_stream(values, entry, "ch ca", bits, len(kept))
    codes, groups = torch.from_numpy(codes_of), torch.from_numpy(group_of)
    if scheme == "affine":
        live = np.unique(group_of) if entry.get("eg", 0) else np.arange(n_groups)
        scale, zero_point = _decode_affine(entry, params, n_groups, live)
        return QuantState("affine", bits, codes, groups, scale=scale, zero_point=zero_point)
    if scheme != "codebook":
        raise ArtifactError(f"{entry['name']}: unknown scheme {scheme!r}")
    codebook = _decode_codebook(entry, params, n_groups, 2**bits, group_of * 2**bits + codes_of)
    return QuantState("codebook", bits, codes, groups, codebook=codebook)


def _decode_affine(
    entry: dict, params: bytes, n_groups: int, live: np.ndarray
) -> tuple[torch.Tensor, ...]:
    """Scales and zero points; groups not stored (no kept weight) read back as 1 and 0."""
    if entry["zp"] not in _ZP_DTYPES or entry.get("eg", 0) not in (0, 1):
        raise ArtifactError(f"{entry['name']}: bad zero-point dtype or group flag")
    zp, n = np.dtype(entry["zp"]), len(live)
    params = _unsqueezed(entry, params, n * (4 + zp.itemsize))
    scale, zero_point = np.ones(n_groups, np.float32), np.zeros(n_groups, np.int64)
    scale[live] = np.frombuffer(params, "<f4", n)
    zero_point[live] = np.frombuffer(params, zp, n, offset=4 * n)
    return torch.from_numpy(scale), torch.from_numpy(zero_point)


def _decode_codebook(
    entry: dict, params: bytes, n_groups: int, k: int, slots: np.ndarray | None = None
) -> torch.Tensor:
    """The codebook; ``slots`` (the codes' entries) must be stored, where given.

    Entries not stored read back as -0.0: +0.0 is a codebook's zero level (format 5), which
    a read-back model must not seem to have where it had none, or writing it again would
    give other bytes. At positions ``zero`` (no ``slots``) they read back as +0.0, the value
    the pruned weights' code stands for.
    """
    if entry["cb"] == "full":
        table = _unsqueezed(entry, params, n_groups * k * 4)
        return _from_bytes(table, torch.float32, [n_groups, k])
    where = entry["cbi"]
    if entry["cb"] != "used" or type(where["len"]) is not int or where["pos"] == "none":
        raise ArtifactError(f"{entry['name']}: bad codebook encoding")
    head = where["len"]
    used = decode_positions(where, params[:head], n_groups * k, entry["name"])
    if slots is not None and not used[slots].all():
        raise ArtifactError(f"{entry['name']}: a code points at a codebook entry not stored")
    table = np.full(n_groups * k, 0.0 if slots is None else -0.0, dtype=np.float32)
    n_used = int(used.sum())
    stored = _unsqueezed(entry, params[head:], 4 * n_used)
    table[used] = _from_bytes(stored, torch.float32, [n_used]).numpy()
    return torch.from_numpy(table).reshape(n_groups, k)
