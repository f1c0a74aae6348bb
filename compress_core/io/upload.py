"""Your own model: weights read safely, checked against an architecture the server knows.

PyTorch's security policy: loading an untrusted model is running untrusted code.
So an uploaded file is only ever read as *weights*: a ``state_dict`` saved with
``torch.save`` (read with ``weights_only=True``) or a ``.safetensors`` file. The
architecture is always one the server already knows: the registry's, or one the
operator registered at start-up from their own Python module
(``register_model_module("mypkg.nets:MyNet")``), never code from a file.

TorchScript and ``torch.export`` (``.pt2``) archives carry code; they are read only
with ``trust=True`` (the CLI's ``--trust-model-file``, for files on your own
machine). Even then the weights are taken out of the file and loaded into the
named architecture, and the file's own forward is kept as a reference that the
architecture's outputs must match.

Example:
    >>> weights = read_weights("lenet5.pt")
    >>> data = user_data("digits", "lenet5")
    >>> model, report = validate(weights, "lenet5", data)
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import io
import json
import math
import os
import pickle
import re
import struct
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.record import SPEC_ATTR, ModelSpec
from .data import Dataset, load_dataset
from .models import MODELS, ModelEntry, build_model, input_size_for, prunable_layers

MAX_UPLOAD_BYTES = 50 << 20  # the dashboard's limit; .streamlit/config.toml's maxUploadSize
LOCAL_MAX_BYTES = 4 << 30  # the CLI reads the user's own files
MAX_SAFETENSORS_HEADER = 8 << 20  # real headers are kilobytes; the format's own cap is 100 MB
SAFE_EXTENSIONS = (".pt", ".pth", ".safetensors")
TRUSTED_EXTENSIONS = (".pt2", ".ts", ".torchscript", ".jit")  # code inside: trust=True only
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights", "params")
BATCH = 64  # images in the single-batch check
REFERENCE_TOLERANCE = 1e-4  # trusted files: |file's forward - architecture's| allowed
SAVE_WEIGHTS_HOWTO = (
    "Save the weights instead: torch.save(model.state_dict(), 'weights.pt'), or "
    "safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')"
)


class UploadError(ValueError):
    """A model file or architecture that cannot be used; the message says what to do."""


@dataclass
class Weights:
    """Tensors read from a model file, and what the file was."""

    state: dict[str, torch.Tensor]  # name -> tensor, as in a state_dict
    kind: str  # "state_dict" | "safetensors" | "torchscript" | "torch.export"
    filename: str
    nbytes: int
    sha256: str  # of the file's bytes
    program: nn.Module | None = None  # trusted formats only: the file's own forward
    notes: list[str] = field(default_factory=list)  # what was done to read it


@dataclass
class UploadReport:
    """What was checked about an uploaded model, in words, for the page and the store."""

    filename: str
    kind: str
    sha256: str
    nbytes: int
    architecture: str
    dataset: str
    in_shape: tuple[int, int, int]
    num_classes: int
    tensors: int
    params: int
    batch_images: int
    batch_accuracy: float
    checks: list[str] = field(default_factory=list)  # what passed
    warnings: list[str] = field(default_factory=list)  # what passed but looks wrong

    def identity(self) -> dict[str, Any]:
        """The model's identity as stored with every result computed from it."""
        return {
            "source": "upload",
            "filename": self.filename,
            "file_sha256": self.sha256,
            "kind": self.kind,
            "in_shape": list(self.in_shape),
        }


# --- reading a file ----------------------------------------------------------------------


def read_weights(
    src: str | os.PathLike | bytes | io.IOBase,
    filename: str | None = None,
    *,
    trust: bool = False,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> Weights:
    """The tensors of a model file, read without running any code from it.

    ``src`` is a path, bytes, or a file object (a Streamlit ``UploadedFile``):
    its size is checked before a byte is read, its extension on our side, and
    its contents by their first bytes, never by what the client says.
    ``trust=True`` also reads TorchScript and ``.pt2`` archives, which run code.

    Raises UploadError with a message that says what to do instead.

    Example:
        >>> read_weights(open("weights.pt", "rb")).state.keys()
    """
    filename = _display_name(filename or getattr(src, "name", None) or _path_name(src))
    size = _size_of(src)
    if size > max_bytes:
        raise UploadError(
            f"{filename} is {size / 2**20:.1f} MiB; the limit here is {max_bytes / 2**20:.0f} MiB. "
            "Compress a smaller model, or run the CLI on your own machine."
        )
    ext = Path(filename).suffix.lower()
    if ext not in SAFE_EXTENSIONS + TRUSTED_EXTENSIONS:
        raise UploadError(
            f"{filename}: a model file must end in {', '.join(SAFE_EXTENSIONS)} (weights) "
            f"or, with --trust-model-file on your own machine, {', '.join(TRUSTED_EXTENSIONS)}"
        )
    if ext in TRUSTED_EXTENSIONS and not trust:
        raise UploadError(_needs_trust(filename, "TorchScript or torch.export"))
    blob = _read_all(src)
    if not blob:
        raise UploadError(f"{filename} is empty (0 bytes): upload the saved weights file itself")
    kind = sniff(blob)
    digest = hashlib.sha256(blob).hexdigest()
    if kind in ("torchscript", "torch.export"):
        if not trust:
            raise UploadError(_needs_trust(filename, kind))
        state, program = _read_trusted(blob, kind, filename)
        return Weights(state, kind, filename, len(blob), digest, program)
    if ext in TRUSTED_EXTENSIONS:
        raise UploadError(f"{filename} ends in {ext} but is not a {ext} archive ({_what(kind)})")
    if kind == "safetensors":
        if ext != ".safetensors":
            raise UploadError(f"{filename} is a safetensors file: name it *.safetensors")
        return Weights(_read_safetensors(blob, filename), kind, filename, len(blob), digest)
    if kind in ("torch-zip", "pickle"):
        if ext == ".safetensors":
            raise UploadError(f"{filename} is a torch.save file, not safetensors: name it *.pt")
        state, notes = _read_torch(blob, filename)
        return Weights(state, "state_dict", filename, len(blob), digest, notes=notes)
    raise UploadError(
        f"{filename} is not a PyTorch or safetensors file ({_what(kind)}). {SAVE_WEIGHTS_HOWTO}."
    )


def sniff(blob: bytes) -> str:
    """What a file is by its first bytes: torchscript, torch.export, torch-zip, pickle,
    safetensors, zip (another zip), or unknown."""
    if blob[:4] == b"PK\x03\x04":
        try:
            names = zipfile.ZipFile(io.BytesIO(blob)).namelist()
        except (zipfile.BadZipFile, ValueError, OSError, EOFError):
            return "torch-zip"  # a damaged torch.save zip: let the loader say what is wrong
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("/archive_format") or "/models/" in n for n in names):
            return "torch.export"
        if any(n.endswith("data.pkl") for n in names):
            return "torch-zip"
        return "zip"
    if blob[:1] == b"\x80" and len(blob) > 1 and 2 <= blob[1] <= 5:
        return "pickle"
    if len(blob) >= 10 and blob[8:9] == b"{":  # u64 header length, then the JSON header
        return "safetensors"
    return "unknown"


def _what(kind: str) -> str:
    return {
        "zip": "a zip archive that torch.save did not write",
        "unknown": "its first bytes match no model format",
    }.get(kind, kind)


def _needs_trust(filename: str, kind: str) -> str:
    loader = "torch.jit.load" if kind == "torchscript" else "torch.export.load"
    kind = {"torchscript": "TorchScript", "torch.export": "torch.export (.pt2)"}.get(kind, kind)
    return (
        f"{filename} is a {kind} archive: it carries code, and {loader} has no safe mode, so "
        "it is never loaded from an upload. On your own machine the CLI reads it with "
        f"--trust-model-file. {SAVE_WEIGHTS_HOWTO}, and pick the architecture here."
    )


def _read_torch(blob: bytes, filename: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    try:
        obj = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UploadError(_unsafe_message(blob, filename, e)) from None
    except Exception as e:  # RuntimeError (bad zip), EOFError, struct/ValueError, ...
        if "weights_only" in str(e):
            raise UploadError(_unsafe_message(blob, filename, e)) from None
        raise UploadError(
            f"{filename} could not be read as a torch.save file: it looks truncated or corrupt "
            f"({type(e).__name__}: {_first_line(e)}). Upload it again, or save it again."
        ) from None
    return find_state_dict(obj, filename)


def _unsafe_message(blob: bytes, filename: str, error: Exception) -> str:
    try:
        needs = torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(blob))
    except Exception:  # a legacy (non-zip) file: the static scan only reads zips
        needs = _pickle_globals(blob)
    what = ", ".join(needs[:8]) + (" …" if len(needs) > 8 else "") if needs else "unknown objects"
    whole = any(n.startswith("torch.nn.modules.") for n in needs)
    start = "is a whole pickled model, not weights" if whole else "is not a weights-only file"
    return (
        f"{filename} {start}: loading it would run code, because it needs these Python "
        f"objects: {what} (listed by torch.serialization.get_unsafe_globals_in_checkpoint). "
        f"It was not loaded. {SAVE_WEIGHTS_HOWTO}."
    )


def _pickle_globals(blob: bytes) -> list[str]:
    """The GLOBAL names a raw pickle refers to, by reading its opcodes (never running it)."""
    import pickletools

    found, strings = [], []
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(blob)):
            if op.name == "GLOBAL":
                found.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:  # a broken pickle: report what was found before the break
        pass
    return list(dict.fromkeys(found))


def find_state_dict(obj: Any, filename: str = "the file") -> tuple[dict[str, torch.Tensor], list]:
    """The name -> tensor mapping inside what ``torch.load`` returned, with notes on how.

    Accepts a plain state_dict, a training checkpoint holding one under a usual key
    (``state_dict``, ``model_state_dict``, ...), and DataParallel's ``module.`` prefix.
    """
    notes = []
    if isinstance(obj, Mapping) and not _is_tensor_map(obj):
        for key in CHECKPOINT_KEYS:
            if isinstance(obj.get(key), Mapping) and _is_tensor_map(obj[key]):
                notes.append(f"took the {key!r} entry of a training checkpoint")
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not _is_tensor_map(obj):
        got = type(obj).__name__
        if isinstance(obj, Mapping):
            bad = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)][:5]
            got = f"a dict whose entries {', '.join(bad)} are not tensors"
        raise UploadError(
            f"{filename} holds {got}, not a state_dict (a dict of weight name -> tensor). "
            f"{SAVE_WEIGHTS_HOWTO}."
        )
    state = {str(k): v for k, v in obj.items()}
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
        notes.append("removed DataParallel's 'module.' prefix from every name")
    return state, notes


def _is_tensor_map(obj: Mapping) -> bool:
    return len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def _read_safetensors(blob: bytes, filename: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_SAFETENSORS_HEADER or 8 + n > len(blob):
        raise UploadError(
            f"{filename}: its safetensors header claims {n:,} bytes (the file has {len(blob):,}; "
            f"we accept headers up to {MAX_SAFETENSORS_HEADER:,}): it is corrupt or hostile"
        )
    try:
        header = json.loads(blob[8 : 8 + n])
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        state = load(blob)
    except (SafetensorError, ValueError, UnicodeDecodeError) as e:
        raise UploadError(
            f"{filename} is not a valid safetensors file ({_first_line(e)}); save it again"
        ) from None
    if not state:
        raise UploadError(f"{filename} holds no tensors")
    return state


def _read_trusted(blob: bytes, kind: str, filename: str) -> tuple[dict, nn.Module]:
    """Load a TorchScript or torch.export archive (this runs its code: trusted files only)."""
    try:
        if kind == "torchscript":
            program = torch.jit.load(io.BytesIO(blob), map_location="cpu")
        else:
            program = torch.export.load(io.BytesIO(blob)).module()
    except Exception as e:
        raise UploadError(f"{filename}: {kind} could not load it ({_first_line(e)})") from None
    state = {k: v.detach().clone() for k, v in program.state_dict().items()}
    return state, program


def _size_of(src: Any) -> int:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return len(src)
    if isinstance(src, (str, os.PathLike)):
        try:
            return os.stat(src).st_size
        except OSError as e:
            raise UploadError(f"cannot read {src}: {e.strerror or e}") from None
    size = getattr(src, "size", None)  # Streamlit's UploadedFile knows it without reading
    if isinstance(size, int):
        return size
    pos = src.tell()
    end = src.seek(0, io.SEEK_END)
    src.seek(pos)
    return end - pos


def _read_all(src: Any) -> bytes:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src)
    if isinstance(src, (str, os.PathLike)):
        try:
            return Path(src).read_bytes()
        except OSError as e:
            raise UploadError(f"cannot read {src}: {e.strerror or e}") from None
    if hasattr(src, "getvalue"):
        return src.getvalue()
    return src.read()


def _path_name(src: Any) -> str:
    return os.fspath(src) if isinstance(src, (str, os.PathLike)) else "the upload"


def _display_name(name: str) -> str:
    """A file name safe to show: its last part, printable, at most 80 characters."""
    base = re.split(r"[\\/]", str(name))[-1]
    base = "".join(c if c.isprintable() else "?" for c in base)
    return base[:80] or "the upload"


def _first_line(e: BaseException) -> str:
    """The first sentence of an exception's message: loaders append paragraphs of advice."""
    lines = str(e).strip().splitlines()
    first = lines[0].split(". ")[0] if lines else type(e).__name__
    return first[:300]


# --- the data set and the architecture -----------------------------------------------------


def user_data(
    dataset: str,
    architecture: str,
    in_shape: tuple[int, int, int] | None = None,
    data_dir: str | None = None,
) -> Dataset:
    """``dataset`` served at the input shape the user named (the architecture's default if None).

    Raises UploadError when the shape cannot be served: not square, too small for the
    architecture, or a channel count the data set does not have.
    """
    MODELS[architecture]
    native = load_dataset(dataset, data_dir=data_dir)
    channels = native.in_shape[0]
    if in_shape is None:
        size = input_size_for(architecture, native.in_shape[1])
        return load_dataset(dataset, size, data_dir)
    c, h, w = (int(d) for d in in_shape)
    if c != channels:
        raise UploadError(
            f"the input shape says {c} channel(s) but {dataset} images have {channels}: "
            "pick the data set the model was trained on, or fix the channels"
        )
    if h != w:
        raise UploadError(f"inputs are served square; got {h}x{w}: use one size for both")
    if h < MODELS[architecture].min_size:
        raise UploadError(
            f"{architecture} needs inputs of at least {MODELS[architecture].min_size} pixels; "
            f"got {h}"
        )
    return load_dataset(dataset, h, data_dir)


def validate(weights: Weights, architecture: str, data: Dataset) -> tuple[nn.Module, UploadReport]:
    """Load ``weights`` into ``architecture`` for ``data`` and check it on one batch.

    Every mismatch is reported in words: missing or extra names, wrong shapes
    (with what they suggest: other input channels, another class count), NaN/Inf
    values, a forward that raises, outputs of the wrong shape or not finite.
    Returns the model (eval mode, tagged with its ModelSpec) and the report.
    """
    name = weights.filename
    _check_finite(weights.state, name)
    try:
        model = build_model(architecture, data.in_shape, data.num_classes)
    except UploadError:
        raise
    except Exception as e:
        raise UploadError(f"{architecture} cannot be built for {data.in_shape}: {e}") from None
    problems = _mismatches(model, weights.state, architecture, data)
    if problems:
        raise UploadError(
            f"{name} does not fit {architecture} for {_shape(data.in_shape)} inputs and "
            f"{data.num_classes} classes: " + "; ".join(problems)
        )
    model.load_state_dict(
        {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in weights.state.items()}
    )
    model.eval()
    setattr(model, SPEC_ATTR, ModelSpec(architecture, data.in_shape, data.num_classes))
    report = UploadReport(
        filename=name,
        kind=weights.kind,
        sha256=weights.sha256,
        nbytes=weights.nbytes,
        architecture=architecture,
        dataset=data.name,
        in_shape=data.in_shape,
        num_classes=data.num_classes,
        tensors=len(weights.state),
        params=sum(p.numel() for p in model.parameters()),
        batch_images=0,
        batch_accuracy=float("nan"),
        checks=[
            f"read as {weights.kind} without running code from it"
            if weights.program is None
            else f"read as {weights.kind} (trusted: its code ran)",
            *weights.notes,
        ],
    )
    report.checks.append(
        f"all {len(weights.state)} tensors match {architecture}'s names and shapes"
    )
    _check_batch(model, weights, data, report)
    return model, report


def _check_finite(state: dict[str, torch.Tensor], name: str) -> None:
    for key, t in state.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            bad = int((~torch.isfinite(t)).sum())
            raise UploadError(
                f"{name}: {key} holds {bad:,} NaN/Inf value(s) of {t.numel():,}; such a model "
                "cannot be compressed or trusted. Retrain it or save a healthy checkpoint."
            )


def _mismatches(model: nn.Module, state: dict, architecture: str, data: Dataset) -> list[str]:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    out = []
    if missing:
        out.append(f"missing {len(missing)} tensor(s): {_few(missing)}")
    if extra:
        out.append(f"{len(extra)} unexpected tensor(s): {_few(extra)}")
    layers = prunable_layers(model)
    first, last = (layers[0], layers[-1]) if layers else (None, None)
    for key, t in expected.items():
        got = state.get(key)
        if got is None or got.shape == t.shape:
            continue
        hint = ""
        if key == f"{first}.weight" and got.ndim == t.ndim and got.shape[0] == t.shape[0]:
            hint = (
                f" (the weights expect other input: {got.shape[1]} input channel(s) or features "
                f"where {data.name} at {_shape(data.in_shape)} gives {t.shape[1]})"
            )
        elif key in (f"{last}.weight", f"{last}.bias") and got.shape[0] != t.shape[0]:
            hint = f" (the weights have {got.shape[0]} classes; {data.name} has {data.num_classes})"
        out.append(f"{key} is {_shape(got.shape)}, {architecture} needs {_shape(t.shape)}{hint}")
        if len(out) >= 8:
            break
    wrong = sum(1 for k, t in expected.items() if k in state and state[k].shape != t.shape)
    if missing + extra and len(missing) + len(extra) + wrong >= len(expected) / 2:
        out.insert(0, f"they look made for another architecture than {architecture}")
    for key, t in expected.items():
        got = state.get(key)
        if got is not None and got.is_floating_point() != t.is_floating_point():
            out.append(f"{key} is {got.dtype}, {architecture} needs {t.dtype}")
    return out


def _check_batch(model: nn.Module, weights: Weights, data: Dataset, report: UploadReport) -> None:
    x, y = data.test_x[:BATCH], data.test_y[:BATCH]
    try:
        with torch.inference_mode():
            out = model(x)
    except Exception as e:
        raise UploadError(
            f"{report.architecture}'s forward raised {type(e).__name__} on a batch of "
            f"{_shape(x.shape)}: {_first_line(e)}"
        ) from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(x), data.num_classes):
        got = _shape(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UploadError(
            f"{report.architecture} returned {got} for a batch of {len(x)}; expected "
            f"{len(x)} x {data.num_classes} (one score per class of {data.name})"
        )
    if not torch.isfinite(out).all():
        raise UploadError(f"{report.architecture} outputs NaN/Inf on real {data.name} images")
    report.batch_images = len(x)
    report.batch_accuracy = float((out.argmax(1) == y).double().mean())
    report.checks.append(
        f"a batch of {len(x)} {data.name} test images runs: outputs {_shape(out.shape)}, finite, "
        f"{report.batch_accuracy:.0%} correct"
    )
    if weights.program is not None:
        _check_reference(out, weights.program, x, report)
    chance = 1 / max(data.num_classes, 1)
    if report.batch_accuracy <= 1.5 * chance:
        report.warnings.append(
            f"only {report.batch_accuracy:.0%} of the batch is right, about chance "
            f"({chance:.0%}): were these weights trained on {data.name}, with per-channel "
            "mean/std normalisation of the training split?"
        )


def _check_reference(out: torch.Tensor, program: nn.Module, x: torch.Tensor, report) -> None:
    try:
        with torch.inference_mode():
            ref = program(x)
    except Exception:  # exported with a fixed batch size: most often 1
        try:
            with torch.inference_mode():
                ref, out = program(x[:1]), out[:1]
        except Exception as e:
            report.warnings.append(f"the file's own forward did not run: {_first_line(e)}")
            return
    diff = float((ref - out).abs().max()) if ref.shape == out.shape else math.inf
    if not diff <= REFERENCE_TOLERANCE * max(1.0, float(ref.abs().max())):
        raise UploadError(
            f"{report.architecture} does not compute what the file computes (largest output "
            f"difference {diff:.3g}): the weights fit by name but the architecture differs"
        )
    report.checks.append(f"outputs match the file's own forward (largest difference {diff:.1e})")


def _shape(shape) -> str:
    return "x".join(str(int(d)) for d in shape) or "scalar"


def _few(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def load_user_model(
    src: Any,
    architecture: str,
    dataset: str,
    in_shape: tuple[int, int, int] | None = None,
    *,
    filename: str | None = None,
    trust: bool = False,
    max_bytes: int = MAX_UPLOAD_BYTES,
    data_dir: str | None = None,
) -> tuple[nn.Module, Dataset, UploadReport]:
    """Read, check and load a model file in one call: (model, data, report).

    Example:
        >>> model, data, report = load_user_model("w.safetensors", "lenet5", "digits")
        >>> report.checks
    """
    weights = read_weights(src, filename, trust=trust, max_bytes=max_bytes)
    data = user_data(dataset, architecture, in_shape, data_dir)
    model, report = validate(weights, architecture, data)
    return model, data, report


# --- architectures from the operator's own code --------------------------------------------


def register_model_module(spec: str) -> str:
    """Import ``[name=]package.module:Attr`` and register ``Attr`` as an architecture.

    ``Attr`` is an ``nn.Module`` class or a function returning one; it is called
    with ``(in_shape, num_classes)``, ``num_classes=`` or nothing, whichever its
    signature takes. An optional ``min_size`` attribute sets the smallest input.
    The registry name is ``name`` or ``Attr``. Registering the same object twice
    is a no-op. Only the operator calls this (CLI ``--model-module``, or
    ``$SLIMSCOPE_MODEL_MODULES`` read at the dashboard's start-up), never an upload.

    Example:
        >>> register_model_module("mypkg.nets:MyNet")
        'MyNet'
    """
    name, _, target = spec.strip().rpartition("=")
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise UploadError(
            f"--model-module wants package.module:Attr (e.g. mypkg.nets:MyNet); got {spec!r}"
        )
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except ImportError as e:
        raise UploadError(f"cannot import {module_name} for {spec!r}: {e}") from None
    except AttributeError:
        raise UploadError(f"{module_name} has no {attr!r} (from {spec!r})") from None
    if not callable(obj):
        raise UploadError(f"{spec} is a {type(obj).__name__}, not a model class or function")
    name = name or attr
    if name in MODELS:
        if getattr(MODELS[name].builder, "__wrapped__", None) is obj:
            return name
        raise UploadError(f"an architecture named {name!r} already exists; use name={target}")
    doc = (inspect.getdoc(obj) or f"{attr} from {module_name}").splitlines()[0]
    MODELS.add(name, ModelEntry(_as_builder(obj, spec), int(getattr(obj, "min_size", 1)), doc))
    return name


def register_from_env(var: str = "SLIMSCOPE_MODEL_MODULES") -> list[str]:
    """Register each comma-separated spec in ``$var`` and the ``slimscope.models`` entry points.

    Returns the problems in words (an empty list when all went well), so a page
    can show them instead of failing.
    """
    problems = []
    for spec in filter(None, (s.strip() for s in os.environ.get(var, "").split(","))):
        try:
            register_model_module(spec)
        except UploadError as e:
            problems.append(str(e))
    from importlib.metadata import entry_points

    for ep in entry_points(group="slimscope.models"):
        try:
            register_model_module(f"{ep.name}={ep.value}")
        except UploadError as e:
            problems.append(str(e))
    return problems


def _as_builder(obj: Callable, spec: str) -> Callable:
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        params = {}
    required = [
        p
        for p in params.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if {"in_shape", "num_classes"} <= set(params):
        call = lambda s, n: obj(in_shape=s, num_classes=n)  # noqa: E731
    elif "num_classes" in params and len(required) <= 1:
        call = lambda s, n: obj(num_classes=n)  # noqa: E731
    elif not required and params:
        call = lambda s, n: obj()  # noqa: E731  (a fixed architecture)
    elif len(required) == 2 or not params:
        call = obj
    else:
        raise UploadError(
            f"{spec} must take (in_shape, num_classes), num_classes=..., or no arguments; "
            f"its signature is {inspect.signature(obj)}"
        )

    def builder(in_shape, num_classes):
        model = call(in_shape, num_classes)
        if not isinstance(model, nn.Module):
            raise UploadError(f"{spec} returned a {type(model).__name__}, not an nn.Module")
        return model

    builder.__wrapped__ = obj
    return builder
