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
import math
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.record import SPEC_ATTR, ModelSpec
from .data import Dataset, load_dataset
from .models import MODELS, ModelEntry, build_model, input_size_for, prunable_layers
from .untrusted import (
    CPU_SECONDS,
    SAVE_WEIGHTS_HOWTO,  # noqa: F401  (re-exported: pages quote it)
    Refused,
    find_state_dict,  # noqa: F401  (re-exported: part of this module's API)
    first_line,
    needs_trust,
    parse,
    quote,
    sniff,
)

MAX_UPLOAD_BYTES = 50 << 20  # the dashboard's limit; .streamlit/config.toml's maxUploadSize
LOCAL_MAX_BYTES = 4 << 30  # the CLI reads the user's own files
SAFE_EXTENSIONS = (".pt", ".pth", ".safetensors")
TRUSTED_EXTENSIONS = (".pt2", ".ts", ".torchscript", ".jit")  # code inside: trust=True only
BATCH = 64  # images in the single-batch check
MAX_INPUT_SIZE = 512  # pixels per side, whatever the data set
# One resized copy of a data set a visitor may ask for; data.py keeps at most 8 such copies.
MAX_RESIZED_BYTES = 256 << 20
REFERENCE_TOLERANCE = 1e-4  # trusted files: |file's forward - architecture's| allowed


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
    its contents by their first bytes, never by what the client says. The bytes
    are parsed in a bounded child process (``untrusted.parse``): memory, CPU
    time and wall-clock time are capped, and only checked plain tensors return.
    ``trust=True`` also reads TorchScript and ``.pt2`` archives, which run code.

    Raises UploadError with a message that says what to do instead.

    Example:
        >>> read_weights(open("weights.pt", "rb")).state.keys()
    """
    full = str(filename or getattr(src, "name", None) or _path_name(src))
    filename = _display_name(full)
    size = _size_of(src)
    if size > max_bytes:
        raise UploadError(
            f"{filename} is {size / 2**20:.1f} MiB; the limit here is {max_bytes / 2**20:.0f} MiB. "
            "Compress a smaller model, or run the CLI on your own machine."
        )
    ext = Path(re.split(r"[\\/]", full)[-1]).suffix.lower()
    if ext not in SAFE_EXTENSIONS + TRUSTED_EXTENSIONS:
        raise UploadError(
            f"{filename}: a model file must end in {', '.join(SAFE_EXTENSIONS)} (weights) "
            f"or, with --trust-model-file on your own machine, {', '.join(TRUSTED_EXTENSIONS)}"
        )
    if ext in TRUSTED_EXTENSIONS and not trust:
        raise UploadError(needs_trust(filename, "torch.export" if ext == ".pt2" else "torchscript"))
    blob = _read_all(src, max_bytes)
    if not blob:
        raise UploadError(f"{filename} is empty (0 bytes): upload the saved weights file itself")
    digest = hashlib.sha256(blob).hexdigest()
    if trust:  # the user's own file, by their choice: code-carrying archives load here
        kind = sniff(blob)
        if kind in ("torchscript", "torch.export"):
            state, program = _read_trusted(blob, kind, filename)
            return Weights(state, kind, filename, len(blob), digest, program)
        if ext in TRUSTED_EXTENSIONS:
            raise UploadError(f"{filename} ends in {ext} but is not a {ext} archive ({kind})")
    try:
        kind, state, notes = parse(blob, filename, ext, _cpu_seconds(len(blob)))
    except Refused as e:
        raise UploadError(str(e)) from None
    return Weights(state, kind, filename, len(blob), digest, notes=notes)


def _cpu_seconds(size: int) -> int:
    """CPU time for parsing a file: 10 s, and one more per 50 MiB (the CLI reads big files)."""
    return CPU_SECONDS + size // MAX_UPLOAD_BYTES


def _read_trusted(blob: bytes, kind: str, filename: str) -> tuple[dict, nn.Module]:
    """Load a TorchScript or torch.export archive (this runs its code: trusted files only)."""
    try:
        if kind == "torchscript":
            program = torch.jit.load(io.BytesIO(blob), map_location="cpu")
        else:
            program = torch.export.load(io.BytesIO(blob)).module()
    except Exception as e:
        raise UploadError(f"{filename}: {kind} could not load it ({first_line(e)})") from None
    state = {k: v.detach().clone() for k, v in program.state_dict().items()}
    return state, program


def _size_of(src: Any) -> int:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return len(src)
    if isinstance(src, (str, os.PathLike)):
        try:
            st = os.stat(src)
        except OSError as e:
            raise UploadError(f"cannot read {quote(os.fspath(src))}: {e.strerror or e}") from None
        if not stat.S_ISREG(st.st_mode):  # /dev/zero, a FIFO, a folder: no size to check
            raise UploadError(f"{quote(os.fspath(src))} is not a regular file: give a model file")
        return st.st_size
    size = getattr(src, "size", None)  # Streamlit's UploadedFile knows it without reading
    if isinstance(size, int):
        return size
    pos = src.tell()
    end = src.seek(0, io.SEEK_END)
    src.seek(pos)
    return end - pos


def _read_all(src: Any, max_bytes: int) -> bytes:
    """At most ``max_bytes`` of ``src``: a file that grows after its size was checked is
    refused, not read without end."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        blob = bytes(src)
    elif isinstance(src, (str, os.PathLike)):
        try:
            with open(src, "rb") as f:
                blob = f.read(max_bytes + 1)
        except OSError as e:
            raise UploadError(f"cannot read {quote(os.fspath(src))}: {e.strerror or e}") from None
    elif hasattr(src, "getvalue"):
        blob = src.getvalue()
    else:
        blob = src.read(max_bytes + 1)
    if len(blob) > max_bytes:
        raise UploadError(f"the file grew past the {max_bytes >> 20} MiB limit while being read")
    return blob


def _path_name(src: Any) -> str:
    return os.fspath(src) if isinstance(src, (str, os.PathLike)) else "the upload"


def _display_name(name: str) -> str:
    """A file name safe to show: its last part, printable, at most 80 characters, keeping
    the extension (the extension is checked on the full name, never this one)."""
    base = re.split(r"[\\/]", str(name))[-1]
    if len(base) > 80:
        stem, ext = os.path.splitext(base)
        base = stem[: 79 - len(ext[:20])] + "…" + ext[:20]
    return quote(base, 80) or "the upload"


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
    cap = max_input_size(dataset, architecture, data_dir)
    if in_shape is not None and int(in_shape[1]) > cap:
        raise UploadError(
            f"{int(in_shape[1])} px inputs are over this server's cap for {dataset}: at most "
            f"{cap} px, so that one resized copy of it stays under "
            f"{MAX_RESIZED_BYTES >> 20} MiB. Pick a smaller input size."
        )
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


def max_input_size(dataset: str, architecture: str, data_dir: str | None = None) -> int:
    """The largest square input side ``dataset`` may be resized to for ``architecture``: every
    image at that size in float32 fits ``MAX_RESIZED_BYTES``. The native size and the
    architecture's own default are always allowed."""
    native = load_dataset(dataset, data_dir=data_dir)
    images = len(native.train_x) + len(native.val_x) + len(native.test_x)
    side = math.isqrt(MAX_RESIZED_BYTES // (4 * native.in_shape[0] * images))
    usual = max(native.in_shape[1], input_size_for(architecture, native.in_shape[1]))
    return max(usual, min(side, MAX_INPUT_SIZE))


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
        if not t.is_floating_point():
            continue
        t = t.to(torch.float32)  # float8 types have no isfinite of their own
        if not torch.isfinite(t).all():
            bad = int((~torch.isfinite(t)).sum())
            raise UploadError(
                f"{name}: {quote(key)} holds {bad:,} NaN/Inf value(s) of {t.numel():,}; such a "
                "model cannot be compressed or trusted. Retrain it or save a healthy checkpoint."
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
        if got.ndim == 0 or t.ndim == 0:
            pass  # a scalar where a vector belongs (or the reverse): no hint to give
        elif key == f"{first}.weight" and got.ndim == t.ndim and got.shape[0] == t.shape[0]:
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
            f"{_shape(x.shape)}: {first_line(e)}"
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
            report.warnings.append(f"the file's own forward did not run: {first_line(e)}")
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
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(quote(name, 60) for name in names[:n]) + more


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
    except (TypeError, ValueError):  # a builtin without a signature: call it as documented
        params = None
    required = [
        p
        for p in params.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if params is None:
        call = obj
    elif {"in_shape", "num_classes"} <= set(params):
        call = lambda s, n: obj(in_shape=s, num_classes=n)  # noqa: E731
    elif "num_classes" in params and len(required) <= 1:
        call = lambda s, n: obj(num_classes=n)  # noqa: E731
    elif not required:
        call = lambda s, n: obj()  # noqa: E731  (a fixed architecture)
    elif len(required) == 2:
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
