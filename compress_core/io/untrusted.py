"""Untrusted model bytes, parsed in a child process that cannot hurt the server.

PyTorch's SECURITY.md: even ``weights_only`` unpickling can be made slow or huge (a
1 KB pickle whose dict key is a deeply nested tuple hashes for hours; a stride-0 view
declares a billion elements over one stored value). So the parsing runs in a fresh
Python (``python -I this_file``) with an address-space and CPU-time limit and a
wall-clock timeout. Only plain tensors come back, re-serialised as safetensors
after checking that each one's storage really holds its declared size.

This file also runs as that child: it then imports only torch, safetensors and the
standard library.

Example:
    >>> kind, state, notes = parse(open("w.pt", "rb").read(), "w.pt")
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from typing import Any

CPU_SECONDS = 10  # CPU time a parse may take; real 50 MiB state_dicts need well under 1 s
WALL_SECONDS = 30  # the child is killed after this, whatever it is doing
MEMORY_BYTES = 1 << 30  # address space the parse may add, plus 8x the file
MAX_NAME_CHARS = 200  # a tensor name longer than this is not a weight name
MAX_DIMS = 8
MAX_QUOTE = 120  # characters of user data quoted in a message
MAX_SAFETENSORS_HEADER = 8 << 20  # real headers are kilobytes; the format's own cap is 100 MB
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights", "params")
SAVE_WEIGHTS_HOWTO = (
    "Save the weights instead: torch.save(model.state_dict(), 'weights.pt'), or "
    "safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')"
)
HOWTO = SAVE_WEIGHTS_HOWTO + "."


class Refused(ValueError):
    """The file cannot be used; the message says what to do."""


def quote(value: Any, limit: int = MAX_QUOTE) -> str:
    """User data for a message: text only, printable, at most ``limit`` characters.

    Anything that is not a str (a nested tuple, say) is named by its type: calling
    ``str`` on it could itself cost hours and gigabytes.
    """
    if not isinstance(value, str):
        return f"<a {type(value).__name__}>"
    text = "".join(c if c.isprintable() else "?" for c in value[: limit + 1])
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the parent's side -------------------------------------------------------------------


def parse(blob: bytes, filename: str, ext: str, cpu_seconds: int = CPU_SECONDS):
    """(kind, state, notes) of an untrusted weights file, parsed in a bounded child process.

    ``kind`` is "state_dict" or "safetensors"; ``state`` maps names to plain contiguous
    tensors. Raises Refused with a message that says what to do.
    """
    from safetensors.torch import load

    # A fresh interpreter running this file (-I: no user paths, no cwd on sys.path), not
    # multiprocessing: its children re-import the caller's __main__, and inside Streamlit
    # __main__ is the page being run.
    request = json.dumps({"filename": filename, "ext": ext, "cpu": cpu_seconds}).encode()
    wall = WALL_SECONDS + 2 * cpu_seconds
    try:
        done = subprocess.run(
            [sys.executable, "-I", os.path.abspath(__file__)],
            input=struct.pack("<Q", len(request)) + request + blob,
            capture_output=True,
            timeout=wall,
        )
    except subprocess.TimeoutExpired:
        raise Refused(
            f"{filename} took more than {wall} s to read and was stopped: real weights "
            f"files read in about a second. {HOWTO}"
        ) from None
    out = done.stdout
    if done.returncode != 0 or len(out) < 8:
        raise Refused(_died(filename, done.returncode, cpu_seconds, len(blob)))
    (n,) = struct.unpack("<Q", out[:8])
    head = json.loads(out[8 : 8 + n])
    if "error" in head:
        raise Refused(head["error"])
    return head["kind"], load(out[8 + n :]), head["notes"]


def _died(filename: str, code, cpu_seconds: int, size: int) -> str:
    limit = (MEMORY_BYTES + 8 * size) >> 20
    code = f"signal {-code}" if isinstance(code, int) and code < 0 else code
    return (
        f"{filename} could not be read within the limits for one file ({cpu_seconds} s of "
        f"CPU, {limit:,} MiB of memory; the reader ended with {code}): it is built "
        f"to be slow or huge to parse. {SAVE_WEIGHTS_HOWTO}."
    )


# --- the child's side --------------------------------------------------------------------


def _limit_self(cpu_seconds: int, size: int) -> None:
    """Cap this process: its address space now plus a budget, and its CPU time."""
    import resource

    with open("/proc/self/statm") as f:
        now = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = now + MEMORY_BYTES + 8 * size
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))


def child_main() -> int:
    """Read a request and the file's bytes on stdin; write a header and safetensors on stdout."""
    import torch  # noqa: F401  (loaded before the limits: its own size is not the file's)
    from safetensors.torch import save

    raw = sys.stdin.buffer.read()
    (n,) = struct.unpack("<Q", raw[:8])
    request, blob = json.loads(raw[8 : 8 + n]), raw[8 + n :]
    filename, cpu = request["filename"], int(request["cpu"])
    _limit_self(cpu, len(blob))
    body = b""
    try:
        kind, state, notes = read(blob, filename, request["ext"])
        head = {"kind": kind, "notes": notes}
        body = save(state)
    except Refused as e:
        head = {"error": str(e)}
    except MemoryError:
        head = {"error": _died(filename, "MemoryError", cpu, len(blob))}
    text = json.dumps(head).encode()
    sys.stdout.buffer.write(struct.pack("<Q", len(text)) + text + body)
    return 0


def read(blob: bytes, filename: str, ext: str) -> tuple[str, dict, list[str]]:
    """(kind, checked plain tensors, notes) of a torch.save or safetensors file named
    ``*ext``; any other kind of file is refused with what to do instead."""
    kind = sniff(blob)
    if kind in ("torchscript", "torch.export"):
        raise Refused(needs_trust(filename, kind))
    if kind == "safetensors":
        if ext != ".safetensors":
            raise Refused(f"{filename} is a safetensors file: name it *.safetensors")
        return kind, checked(_read_safetensors(blob, filename), filename, len(blob)), []
    if kind not in ("torch-zip", "pickle"):
        what = {
            "zip": "a zip archive that torch.save did not write",
            "unknown": "its first bytes match no model format",
        }[kind]
        raise Refused(f"{filename} is not a PyTorch or safetensors file ({what}). {HOWTO}")
    if ext == ".safetensors":
        raise Refused(f"{filename} is a torch.save file, not safetensors: name it *.pt")
    state, notes = find_state_dict(_read_torch(blob, filename), filename)
    return "state_dict", checked(state, filename, len(blob)), notes


def needs_trust(filename: str, kind: str) -> str:
    """Why a code-carrying archive is not read from an upload, naming its own loader."""
    loader = "torch.jit.load" if kind == "torchscript" else "torch.export.load"
    kind = {"torchscript": "TorchScript", "torch.export": "torch.export (.pt2)"}[kind]
    return (
        f"{filename} is a {kind} archive: it carries code, and {loader} has no safe mode, so "
        "it is never loaded from an upload. On your own machine the CLI reads it with "
        f"--trust-model-file. {SAVE_WEIGHTS_HOWTO}, and pick the architecture here."
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


def checked(state: dict, filename: str, file_bytes: int) -> dict:
    """Plain contiguous copies of ``state``'s tensors, after checking that each one is a
    dense tensor of a supported dtype whose storage really holds its declared size (a
    stride-0 view declares far more elements than it stores), and that all of them
    together are not much larger than the file."""
    import torch

    out, total = {}, 0
    for name, t in state.items():
        where = f"{filename}: tensor {quote(name)}"
        if t.layout != torch.strided or t.is_quantized or t.is_complex():
            raise Refused(f"{where} is a {t.layout}/{t.dtype} tensor; only dense real weights")
        if t.ndim > MAX_DIMS or min(t.shape, default=1) < 0:
            raise Refused(f"{where} has {t.ndim} dimensions; weights have at most {MAX_DIMS}")
        declared = t.numel() * t.element_size()
        stored = t.untyped_storage().nbytes() - t.storage_offset() * t.element_size()
        if declared > stored:
            raise Refused(
                f"{where} declares {t.numel():,} elements ({declared:,} bytes) but stores "
                f"{max(stored, 0):,} bytes: a view built to look bigger than it is, not weights"
            )
        total += declared
        if total > 4 * file_bytes + (1 << 20):
            raise Refused(f"{filename} declares far more tensor bytes than the file holds")
        out[name] = t.detach().contiguous().clone()
    return out


def find_state_dict(obj: Any, filename: str = "the file") -> tuple[dict, list[str]]:
    """The name -> tensor mapping inside what ``torch.load`` returned, with notes on how.

    Accepts a plain state_dict, a training checkpoint holding one under a usual key
    (``state_dict``, ``model_state_dict``, ...), and DataParallel's ``module.`` prefix.
    Names must be short text: a non-text key is refused by its type, never printed.
    """
    notes = []
    if isinstance(obj, Mapping) and not _is_tensor_map(obj):
        for key in CHECKPOINT_KEYS:
            if _is_tensor_map(obj.get(key)):
                notes.append(f"took the {key!r} entry of a training checkpoint")
                obj = obj[key]
                break
    if not _is_tensor_map(obj):
        got = f"a {type(obj).__name__}"
        if isinstance(obj, Mapping):
            bad = [quote(k, 40) for k, v in obj.items() if not _is_weight(k, v)][:5]
            got = f"a dict whose entries {', '.join(bad)} are not tensors under text names"
        raise Refused(
            f"{filename} holds {got}, not a state_dict (a dict of weight name -> tensor). "
            f"{SAVE_WEIGHTS_HOWTO}."
        )
    state = dict(obj.items())
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
        notes.append("removed DataParallel's 'module.' prefix from every name")
    return state, notes


def _is_weight(key: Any, value: Any) -> bool:
    import torch

    ok_key = type(key) is str and 0 < len(key) <= MAX_NAME_CHARS
    return ok_key and isinstance(value, torch.Tensor)


def _is_tensor_map(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping) and len(obj) > 0 and all(_is_weight(k, v) for k, v in obj.items())
    )


def _read_torch(blob: bytes, filename: str) -> Any:
    import torch

    try:
        return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise Refused(_unsafe_message(blob, filename)) from None
    except MemoryError:
        raise
    except Exception as e:  # RuntimeError (bad zip), EOFError, struct/ValueError, ...
        if "weights_only" in str(e):
            raise Refused(_unsafe_message(blob, filename)) from None
        raise Refused(
            f"{filename} could not be read as a torch.save file: it looks truncated or corrupt "
            f"({type(e).__name__}: {first_line(e)}). Upload it again, or save it again."
        ) from None


def _unsafe_message(blob: bytes, filename: str) -> str:
    """Why the weights-only reader refused a file, and what to do about it."""
    import torch

    legacy = blob[:4] != b"PK\x03\x04"
    try:
        needs = torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(blob))
    except Exception:  # a legacy (non-zip) file: the static scan only reads zips
        needs = _pickle_globals(blob)
    needs = [quote(n, 80) for n in needs]
    if not needs:
        protocol = _protocol(blob)
        if protocol > 2:
            return (
                f"{filename} was saved with pickle protocol {protocol}, which is unsupported by "
                "the weights-only reader (it reads protocol 2, torch.save's default). Nothing in "
                "it was run. Save it again without pickle_protocol: "
                "torch.save(model.state_dict(), 'weights.pt')."
            )
        what = "the legacy (pre-1.6, non-zip) torch.save format" if legacy else "a pickle"
        return (
            f"{filename} is {what} that the weights-only reader cannot parse, so it was not "
            "loaded. On a machine where you trust the file, load it and save the weights in "
            f"today's format: torch.save(model.state_dict(), 'weights.pt'). {SAVE_WEIGHTS_HOWTO}."
        )
    what = ", ".join(needs[:8]) + (" …" if len(needs) > 8 else "")
    whole = any(n.startswith("torch.nn.modules.") for n in needs)
    start = "is a whole pickled model, not weights" if whole else "is not a weights-only file"
    return (
        f"{filename} {start}: loading it would run code, because it needs these Python "
        f"objects: {what} (listed by torch.serialization.get_unsafe_globals_in_checkpoint). "
        f"It was not loaded. {SAVE_WEIGHTS_HOWTO}."
    )


def _protocol(blob: bytes) -> int:
    """The pickle protocol of a raw pickle or of a torch.save zip's data.pkl (0 if unknown)."""
    try:
        if blob[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(blob)) as z:
                name = next(n for n in z.namelist() if n.endswith("data.pkl"))
                blob = z.open(name).read(2)
    except Exception:
        return 0
    return blob[1] if blob[:1] == b"\x80" and len(blob) > 1 else 0


def _pickle_globals(blob: bytes) -> list[str]:
    """The GLOBAL names a raw pickle refers to, by reading its opcodes (never running it)."""
    import pickletools

    found, strings, stream = [], [], io.BytesIO(blob)
    try:  # a legacy torch.save file is several pickles in a row: the object is the 4th
        for _ in range(8):
            for op, arg, _ in pickletools.genops(stream):
                if op.name == "GLOBAL":
                    found.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str):
                    strings.append(arg)
    except Exception:  # a broken pickle or the raw storages after them: stop there
        pass
    return list(dict.fromkeys(found))


def _read_safetensors(blob: bytes, filename: str) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load

    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_SAFETENSORS_HEADER or 8 + n > len(blob):
        raise Refused(
            f"{filename}: its safetensors header claims {n:,} bytes (the file has {len(blob):,}; "
            f"we accept headers up to {MAX_SAFETENSORS_HEADER:,}): it is corrupt or hostile"
        )
    try:
        header = json.loads(blob[8 : 8 + n])
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        state = load(blob)
    except RecursionError:
        raise Refused(f"{filename}: its safetensors header is nested too deeply") from None
    except (SafetensorError, ValueError, UnicodeDecodeError) as e:
        raise Refused(
            f"{filename} is not a valid safetensors file ({first_line(e)}); save it again"
        ) from None
    if not state:
        raise Refused(f"{filename} holds no tensors")
    return state


def first_line(e: BaseException) -> str:
    """The first sentence of an exception's message: loaders append paragraphs of advice."""
    lines = str(e).strip().splitlines()
    first = lines[0].split(". ")[0] if lines else type(e).__name__
    return first[:300]


if __name__ == "__main__":
    sys.exit(child_main())
