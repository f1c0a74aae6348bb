"""Bad input, one table: each case gets a clear message and leaves the app and history intact.

Every case runs through the same path a page takes (read -> check -> compress -> store), so
an input that slipped through would add a row to the history and fail the intact check.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import io
import os
import pickle
import re
import struct
import sys
import tempfile
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
import torch
from helpers import restored_registries, torch_bytes
from torch import nn

from compress_core import CompressionConfig, CompressionError, ConfigError, compress, run_on
from compress_core.core.pipeline import weights_hash
from compress_core.format.artifact import ArtifactError, export, load_compressed
from compress_core.io.data import load_dataset
from compress_core.io.imagefolder import ImageFolderError, register_image_folder
from compress_core.io.models import build_model
from compress_core.io.store import Store, StoreError
from compress_core.io.upload import UploadError, load_user_model, register_model_module
from compress_core.train.baseline import get_baseline

os.environ.setdefault("SLIMSCOPE_DATA_HOME", tempfile.mkdtemp(prefix="slimscope-test-data-"))

NETS = """
from torch import nn

class Raises(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        raise RuntimeError("this forward always fails")

def three(a, b, c):
    return nn.Linear(1, 1)
"""


class Unknown(nn.Module):
    """A class the server has never seen: pickling the whole module references it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)


class Evil:
    """A pickle that would run a shell command when loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@dataclass
class Env:
    base: nn.Module
    data: object
    tmp: Path
    store: Store
    good: bytes  # the base's state_dict, as a user would upload it
    marker: Path  # created only if a malicious pickle ever runs


@pytest.fixture(scope="module")
def env(digits_lenet, tmp_path_factory):
    base, data = digits_lenet
    tmp = tmp_path_factory.mktemp("bad")
    (tmp / "slimscope_bad_nets.py").write_text(textwrap.dedent(NETS))
    sys.path.insert(0, str(tmp))
    with restored_registries():
        register_model_module("slimscope_bad_nets:Raises")
        store = Store(tmp / "history.sqlite")
        store.save(run_on(base, data, CompressionConfig(prune_rate=0.5)), identity={"source": "x"})
        yield Env(base, data, tmp, store, torch_bytes(base.state_dict()), tmp / "PWNED")
    sys.path.remove(str(tmp))


def pipeline(
    env: Env, blob, filename: str, arch="lenet5", dataset="digits", shape=None, config=None
) -> str:
    """What the Your-model page does: read, check, compress, store. Returns 'stored' on success."""
    model, data, report = load_user_model(blob, arch, dataset, shape, filename=filename)
    r = run_on(model, data, config or CompressionConfig(prune_rate=0.5, bits=4))
    env.store.save(r, identity=report.identity())
    return "stored"


def raises(kind: type[Exception], fn: Callable[[], object]) -> str:
    with pytest.raises(kind) as info:
        fn()
    return str(info.value)


def warned(fn: Callable[[], object]) -> str:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return " | ".join(str(w.message) for w in caught)


def state_with(env: Env, **changes) -> dict:
    state = copy.deepcopy(env.base.state_dict())
    for name, fill in changes.items():
        state[name.replace("__", ".")][0].view(-1)[0] = fill
    return state


def upload(state_or_bytes, filename="weights.pt", **kw) -> Callable[[Env], str]:
    def run(env: Env) -> str:
        blob = state_or_bytes(env) if callable(state_or_bytes) else state_or_bytes
        return raises(UploadError, lambda: pipeline(env, blob, filename, **kw))

    return run


def config_case(**settings) -> Callable[[Env], str]:
    def run(env: Env) -> str:
        return raises(
            ConfigError,
            lambda: pipeline(env, env.good, "w.pt", config=CompressionConfig(**settings)),
        )

    return run


def malicious(raw: bool) -> Callable[[Env], str]:
    def run(env: Env) -> str:
        payload = (
            pickle.dumps(Evil(env.marker), protocol=2)
            if raw
            else torch_bytes({"w": Evil(env.marker)})
        )
        message = raises(UploadError, lambda: pipeline(env, payload, "model.pt"))
        assert not env.marker.exists(), "the malicious pickle ran"
        return message

    return run


def torchscript(env: Env) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(env.base, env.data.test_x[:1]), buf)
    return buf.getvalue()


def exported(env: Env) -> bytes:
    buf = io.BytesIO()
    torch.export.save(torch.export.export(env.base, (env.data.test_x[:1],)), buf)
    return buf.getvalue()


def png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    return buf.getvalue()


class Oversize(io.BytesIO):
    size, name = 60 << 20, "huge.pt"

    def read(self, *a):
        raise AssertionError("the upload was read before its size was checked")

    getvalue = read


def zero_range_layer(env: Env) -> str:
    zeroed = copy.deepcopy(env.base)
    with torch.no_grad():
        zeroed.conv2.weight.zero_()
    for quant in ("uniform", "symmetric", "kmeans"):
        config = CompressionConfig(bits=4, quant=quant, include=("conv2",))
        small = compress(zeroed, config)
        assert torch.count_nonzero(small.conv2.weight) == 0
        assert run_on(zeroed, env.data, config, subset=100).finite
    return "an all-zero layer quantizes to zeros; results finite"


def full_pruning(env: Env) -> str:
    r = run_on(env.base, env.data, CompressionConfig(prune_rate=1.0, skip_first_last=False))
    assert r.finite and r.nonzero_params < r.total_params
    return " | ".join(r.warnings)


def nan_base(env: Env) -> str:
    broken = copy.deepcopy(env.base)
    with torch.no_grad():
        broken.fc2.weight[0, 0] = float("nan")
    return raises(CompressionError, lambda: compress(broken, CompressionConfig(bits=4)))


def forward_raises(env: Env) -> str:
    state = build_model("Raises", (1, 8, 8), 10).state_dict()
    return raises(UploadError, lambda: pipeline(env, torch_bytes(state), "r.pt", arch="Raises"))


def image_folder(layout: dict[str, bytes], n: int = 3) -> Callable[[Env], str]:
    def run(env: Env) -> str:
        root = Path(tempfile.mkdtemp(dir=env.tmp, prefix="images-"))
        for cls, content in layout.items():
            (root / cls).mkdir()
            for i in range(n):
                (root / cls / f"{i}.png").write_bytes(content if i == 0 else png())

        def use():
            name = register_image_folder(root, size=8)
            load_dataset(name)

        return raises(ImageFolderError, use)

    return run


def cache_unwritable(env: Env) -> str:
    blocker = env.tmp / "not-a-folder"
    blocker.write_text("x")
    return warned(lambda: get_baseline("mlp", "digits", epochs=1, cache_dir=str(blocker / "c")))


def cache_full(env: Env) -> str:
    full = OSError(errno.ENOSPC, "No space left on device")
    with mock.patch("torch.save", side_effect=full):
        cache = tempfile.mkdtemp(dir=env.tmp)
        message = warned(lambda: get_baseline("mlp", "digits", epochs=1, cache_dir=cache))
    assert not list(Path(cache).rglob("*.pt")) and not list(Path(cache).rglob("*.tmp"))
    return message


def corrupt_checkpoint(env: Env) -> str:
    cache = tempfile.mkdtemp(dir=env.tmp)
    get_baseline("mlp", "digits", epochs=1, cache_dir=cache)
    [path] = Path(cache).rglob("*.pt")
    path.write_bytes(path.read_bytes()[:200])
    message = warned(lambda: get_baseline("mlp", "digits", epochs=1, cache_dir=cache))
    model, _ = get_baseline("mlp", "digits", epochs=1, cache_dir=cache)  # healthy again
    assert model is not None and path.stat().st_size > 200
    return message


def corrupt_sqlite(env: Env) -> str:
    path = env.tmp / "broken.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    message = warned(lambda: Store(path).count())
    assert [p.read_bytes()[:6] for p in env.tmp.glob("broken.sqlite.corrupt-*")] == [b"SQLite"]
    return message


def corrupt_artifact(env: Env) -> str:
    blob = bytearray(export(compress(env.base, CompressionConfig(prune_rate=0.5, bits=4))))
    return raises(ArtifactError, lambda: load_compressed(bytes(blob[: len(blob) // 2])))


def store_unwritable(env: Env) -> str:
    blocker = env.tmp / "store-blocker"
    blocker.write_text("x")
    return raises(StoreError, lambda: Store(blocker / "results.sqlite"))


def page_store_unwritable(env: Env) -> str:
    """The dashboard's store write warns and goes on when the data folder is unusable."""
    from ui import cache

    blocker = env.tmp / "page-blocker"
    blocker.write_text("x")
    r = run_on(env.base, env.data, CompressionConfig(prune_rate=0.3), subset=100)
    with mock.patch.dict(os.environ, {"SLIMSCOPE_DATA_HOME": str(blocker / "data")}):
        with contextlib.suppress(UserWarning), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cache.remember(r, 100, {"source": "dashboard"})  # must not raise
    return cache.STORE_PROBLEMS[-1]


@dataclass(frozen=True)
class Case:
    id: str
    run: Callable[[Env], str]
    expect: str  # a regular expression the message must match


def _state(fn: Callable[[Env], dict]) -> Callable[[Env], bytes]:
    return lambda env: torch_bytes(fn(env))


CASES = [
    Case(
        "nan-weights",
        upload(_state(lambda e: state_with(e, fc1__weight=float("nan")))),
        r"fc1\.weight holds 1 NaN/Inf",
    ),
    Case(
        "inf-weights",
        upload(_state(lambda e: state_with(e, conv2__weight=float("inf")))),
        r"conv2\.weight holds 1 NaN/Inf",
    ),
    Case("nan-base-model", nan_base, r"NaN/Inf values in fc2\.weight"),
    Case("zero-range-layer", zero_range_layer, r"quantizes to zeros; results finite"),
    Case("bits-0", config_case(bits=0), r"bits must be a whole number from 1 to 16"),
    Case("bits-33", config_case(bits=33), r"bits must be a whole number from 1 to 16, or 32"),
    Case("bits-non-integer", config_case(bits=4.5), r"bits must be a whole number"),
    Case(
        "bits-text-in-link",
        lambda e: raises(ConfigError, lambda: CompressionConfig.from_strings({"bits": "four"})),
        r"bits must be a whole number; got 'four'",
    ),
    Case(
        "prune-rate-negative",
        config_case(prune_rate=-0.1),
        r"prune_rate must be a number from 0 to 1",
    ),
    Case(
        "prune-rate-above-1",
        config_case(prune_rate=1.5),
        r"prune_rate must be a number from 0 to 1",
    ),
    Case("prune-100-percent-every-layer", full_pruning, r"lost every weight"),
    Case("empty-upload", upload(b""), r"is empty"),
    Case("truncated-upload", upload(lambda e: e.good[: len(e.good) // 2]), r"truncated or corrupt"),
    Case("malicious-reduce-in-zip", malicious(raw=False), r"would run code.*posix\.system"),
    Case("malicious-reduce-raw-pickle", malicious(raw=True), r"would run code.*posix\.system"),
    Case(
        "whole-pickled-module",
        upload(lambda e: torch_bytes(Unknown())),
        r"whole pickled model.*Unknown.*state_dict",
    ),
    Case(
        "torchscript-upload",
        upload(torchscript, "net.pt"),
        r"TorchScript archive.*--trust-model-file",
    ),
    Case("pt2-upload", upload(exported, "net.pt2"), r"carries code.*--trust-model-file"),
    Case(
        "huge-header-safetensors",
        upload(struct.pack("<Q", 1 << 40) + b'{"a": 1}', "w.safetensors"),
        r"header claims 1,099,511,627,776 bytes",
    ),
    Case(
        "garbage-safetensors-header",
        upload(struct.pack("<Q", 5) + b"{oops", "w.safetensors"),
        r"not a valid safetensors file",
    ),
    Case("renamed-image", upload(png(), "weights.pt"), r"not a PyTorch or safetensors file"),
    Case(
        "unknown-extension",
        upload(lambda e: e.good, "weights.pkl"),
        r"must end in \.pt, \.pth, \.safetensors",
    ),
    Case("oversize-upload", upload(lambda e: Oversize()), r"60\.0 MiB; the limit here is 50 MiB"),
    Case(
        "missing-and-extra-keys",
        upload(
            _state(
                lambda e: {
                    **{k: v for k, v in e.base.state_dict().items() if k != "fc3.bias"},
                    "extra.weight": torch.zeros(1),
                }
            )
        ),
        r"missing 1 tensor\(s\): fc3\.bias; 1 unexpected tensor\(s\): extra\.weight",
    ),
    Case(
        "another-architecture",
        upload(_state(lambda e: build_model("mlp", (1, 28, 28), 10).state_dict())),
        r"look made for another architecture than lenet5",
    ),
    Case(
        "wrong-input-channels",
        upload(_state(lambda e: build_model("lenet5", (3, 28, 28), 10).state_dict())),
        r"conv1\.weight is 6x3x5x5.*3 input channel",
    ),
    Case(
        "wrong-class-count",
        upload(_state(lambda e: build_model("lenet5", (1, 28, 28), 5).state_dict())),
        r"weights have 5 classes; digits has 10",
    ),
    Case(
        "declared-channels-mismatch",
        upload(lambda e: e.good, shape=(3, 28, 28)),
        r"3 channel\(s\) but digits images have 1",
    ),
    Case("non-square-input", upload(lambda e: e.good, shape=(1, 28, 32)), r"served square"),
    Case(
        "not-a-state-dict",
        upload(_state(lambda e: {"conv1.weight": "hello", "fc": 3})),
        r"not tensors.*torch\.save\(model\.state_dict\(\)",
    ),
    Case("forward-raises", forward_raises, r"forward raised RuntimeError.*always fails"),
    Case(
        "unknown-model-module",
        lambda e: raises(UploadError, lambda: register_model_module("nowhere.nets:Net")),
        r"cannot import nowhere\.nets",
    ),
    Case(
        "model-module-bad-signature",
        lambda e: raises(UploadError, lambda: register_model_module("slimscope_bad_nets:three")),
        r"must take \(in_shape, num_classes\)",
    ),
    Case("image-folder-one-class", image_folder({"cats": png()}), r"at least two class folders"),
    Case(
        "image-folder-unreadable-image",
        image_folder({"cats": b"not an image", "dogs": png()}),
        r"1 image\(s\) in .* cannot be read: cats/0\.png \(UnidentifiedImageError\)",
    ),
    Case(
        "image-folder-not-a-folder",
        lambda e: raises(ImageFolderError, lambda: register_image_folder(e.tmp / "nowhere")),
        r"is not a folder",
    ),
    Case(
        "cache-dir-unwritable",
        cache_unwritable,
        r"could not cache the baseline.*kept in memory only",
    ),
    Case("cache-dir-full", cache_full, r"No space left on device.*kept in memory only"),
    Case("corrupt-cached-checkpoint", corrupt_checkpoint, r"unreadable.*retraining it"),
    Case("corrupt-sqlite-file", corrupt_sqlite, r"was damaged.*moved to .*nothing deleted"),
    Case("corrupt-artifact", corrupt_artifact, r"artifact is truncated|corrupt artifact"),
    Case("store-folder-unusable", store_unwritable, r"cannot create"),
    Case("page-store-write-fails", page_store_unwritable, r"cannot create"),
]


def _history(store: Store) -> list[tuple]:
    return [(r["id"], r["label"], r["accuracy"], r["base_hash"]) for r in store.rows()]


def test_the_table_has_at_least_25_distinct_bad_inputs():
    assert len(CASES) >= 25 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_gets_a_clear_message_and_leaves_everything_intact(env, case):
    history, weights = _history(env.store), weights_hash(env.base)
    message = case.run(env)
    assert re.search(case.expect, message, re.S), message
    assert "Traceback" not in message and len(message) < 1200
    # intact: the stored history, the shared base model, and the good path still works
    assert _history(env.store) == history
    assert weights_hash(env.base) == weights
    model, _, _ = load_user_model(env.good, "lenet5", "digits", filename="good.pt")
    assert weights_hash(model) == weights
    assert not env.marker.exists()
