"""Your own model: safe formats round-trip exactly, unsafe ones never load, shapes are checked."""

from __future__ import annotations

import io
import os
import sys
import tempfile
import textwrap

import numpy as np
import pytest
import torch
from helpers import restored_registries, torch_bytes
from safetensors.torch import save as safetensors_bytes

from compress_core import CompressionConfig, compress, run_on
from compress_core.__main__ import main as cli
from compress_core.core.config import PRUNE_METHODS
from compress_core.core.pipeline import weights_hash
from compress_core.io.data import load_dataset
from compress_core.io.imagefolder import ImageFolderError, register_image_folder
from compress_core.io.models import MODELS
from compress_core.io.store import Store
from compress_core.io.upload import (
    UploadError,
    load_user_model,
    read_weights,
    register_from_env,
    register_model_module,
    validate,
)
from compress_core.train.baseline import get_baseline

os.environ.setdefault("SLIMSCOPE_DATA_HOME", tempfile.mkdtemp(prefix="slimscope-test-data-"))

NETS = '''
"""Operator architectures for the tests: residual and depthwise blocks, and a broken one."""
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.pw = nn.Conv2d(c, c, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.pw(torch.relu(self.bn1(self.dw(x))))))


class ResDW(nn.Module):
    """A small residual net with depthwise-separable blocks."""

    min_size = 8

    def __init__(self, in_shape, num_classes):
        super().__init__()
        self.stem = nn.Conv2d(in_shape[0], 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.block1 = Block(16)
        self.down = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.block2 = Block(32)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(32, 32)
        self.head = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.block1(torch.relu(self.bn(self.stem(x))))
        x = self.block2(torch.relu(self.down(x)))
        return self.head(torch.relu(self.fc1(self.pool(x).flatten(1))))


class Raises(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        raise RuntimeError("this forward always fails")


def fixed():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def needs_three(a, b, c):
    return nn.Linear(1, 1)
'''


@pytest.fixture(scope="module")
def nets_module(tmp_path_factory):
    """An operator's module on sys.path; every registry is restored afterwards."""
    folder = tmp_path_factory.mktemp("operator")
    (folder / "slimscope_test_nets.py").write_text(textwrap.dedent(NETS))
    sys.path.insert(0, str(folder))
    with restored_registries():
        yield "slimscope_test_nets"
    sys.path.remove(str(folder))


def _formats(base):
    state = base.state_dict()
    return {
        "state_dict.pt": torch_bytes(state),
        "legacy.pth": torch_bytes(state, _use_new_zipfile_serialization=False),
        "checkpoint.pt": torch_bytes(
            {"epoch": 3, "model_state_dict": state, "optimizer": {"lr": 1e-3}}
        ),
        "dataparallel.pt": torch_bytes({f"module.{k}": v for k, v in state.items()}),
        "weights.safetensors": safetensors_bytes({k: v.contiguous() for k, v in state.items()}),
    }


@pytest.mark.parametrize(
    "filename",
    ["state_dict.pt", "legacy.pth", "checkpoint.pt", "dataparallel.pt", "weights.safetensors"],
)
def test_every_safe_format_loads_bit_identical_weights(digits_lenet, filename):
    base, data = digits_lenet
    blob = _formats(base)[filename]
    model, data2, report = load_user_model(blob, "lenet5", "digits", filename=filename)
    for name, t in base.state_dict().items():
        assert torch.equal(model.state_dict()[name], t), name
    assert weights_hash(model) == weights_hash(base)
    assert report.batch_images == 64 and not report.warnings
    with torch.inference_mode():
        assert torch.equal(model(data.test_x[:32]), base(data.test_x[:32]))


def test_an_uploaded_model_gives_the_same_result_as_the_registry_baseline(digits_lenet):
    base, data = digits_lenet
    model, data2, _ = load_user_model(
        torch_bytes(base.state_dict()), "lenet5", "digits", filename="w.pt"
    )
    config = CompressionConfig(prune_rate=0.7, bits=3, quant="kmeans")
    mine, ref = run_on(model, data2, config), run_on(base, data, config)
    assert (mine.accuracy, mine.artifact_bytes, mine.base_hash) == (
        ref.accuracy,
        ref.artifact_bytes,
        ref.base_hash,
    )


def test_the_file_size_is_checked_before_a_byte_is_read():
    class Huge(io.BytesIO):
        size = 51 << 20
        name = "big.pt"

        def read(self, *a):
            raise AssertionError("read before the size check")

        getvalue = read

    with pytest.raises(UploadError, match="limit"):
        read_weights(Huge())


def _traced(model, x):
    return torch.jit.trace(model, x)


@pytest.mark.parametrize("kind", ["torchscript", "torch.export"])
def test_code_carrying_files_load_only_when_trusted_and_must_match_the_architecture(
    digits_lenet, kind
):
    base, data = digits_lenet
    x = data.test_x[:2]
    buf = io.BytesIO()
    if kind == "torchscript":
        torch.jit.save(_traced(base, x), buf)
        name = "net.pt"  # TorchScript files are often named .pt: the contents decide
    else:
        torch.export.save(torch.export.export(base, (x[:1],)), buf)  # a fixed batch of one
        name = "net.pt2"
    blob = buf.getvalue()
    with pytest.raises(UploadError, match="--trust-model-file"):
        read_weights(blob, name)
    model, _, report = load_user_model(blob, "lenet5", "digits", filename=name, trust=True)
    assert weights_hash(model) == weights_hash(base)
    assert any("match the file's own forward" in c for c in report.checks)


def test_a_trusted_file_whose_forward_differs_from_the_architecture_is_refused(digits_lenet):
    base, data = digits_lenet

    class Doubled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for name, child in base.named_children():
                self.add_module(name, child)

        def forward(self, x):
            return 2 * base(x)

    buf = io.BytesIO()
    torch.jit.save(_traced(Doubled(), data.test_x[:2]), buf)
    with pytest.raises(UploadError, match="does not compute what the file computes"):
        load_user_model(buf.getvalue(), "lenet5", "digits", filename="d.pt", trust=True)


def _random_user_model(name: str):
    """A fresh operator model, saved and read back as an upload would be."""
    data = load_dataset("digits", 8)
    torch.manual_seed(0)
    state = MODELS[name].builder(data.in_shape, data.num_classes).state_dict()
    model, _ = validate(read_weights(torch_bytes(state), f"{name}.pt"), name, data)
    return model, data


def test_operator_architectures_register_once_and_compress_with_every_method(nets_module):
    name = register_model_module(f"{nets_module}:ResDW")
    assert register_model_module(f"{nets_module}:ResDW") == name == "ResDW"
    model, data = _random_user_model(name)
    before = weights_hash(model)
    for method in PRUNE_METHODS:
        r = run_on(model, data, CompressionConfig(prune_rate=0.5, bits=4, prune_method=method))
        assert r.finite and r.model == "ResDW", method
        for layer in r.layers:
            if method in ("magnitude", "random") and not layer["skipped"]:
                assert abs(layer["sparsity"] - 0.5) < 0.05, (method, layer)
    assert weights_hash(model) == before  # compression worked on copies


def test_structured_pruning_prunes_or_lists_every_selected_layer(nets_module):
    model, _ = _random_user_model(register_model_module(f"{nets_module}:ResDW"))
    small = compress(model, CompressionConfig(prune_rate=0.5, prune_method="l1-structured"))
    before = dict(model.named_modules())
    record = small.slimscope_record
    for n, m in small.named_modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            shrunk = m.weight.shape[0] < before[n].weight.shape[0]
            assert shrunk or n in record.skipped, f"{n} neither pruned nor listed"


def test_operator_specs_that_cannot_work_say_why(nets_module, monkeypatch):
    with pytest.raises(UploadError, match="cannot import"):
        register_model_module("no_such_package.nets:Net")
    with pytest.raises(UploadError, match="has no 'Nope'"):
        register_model_module(f"{nets_module}:Nope")
    with pytest.raises(UploadError, match="package.module:Attr"):
        register_model_module("justaname")
    with pytest.raises(UploadError, match="must take"):
        register_model_module(f"{nets_module}:needs_three")
    assert register_model_module(f"fixed-net={nets_module}:fixed") == "fixed-net"
    monkeypatch.setenv("SLIMSCOPE_MODEL_MODULES", f"{nets_module}:Raises, nowhere.x:Y")
    problems = register_from_env()
    assert "Raises" in MODELS and len(problems) == 1 and "nowhere" in problems[0]


def _image(value: int, channels: int, seed: int):
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.normal(value, 20, (12, 12, channels)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels)


def make_image_folder(root, classes=("dark", "bright"), per_class=15, channels=1, split=False):
    for label, cls in enumerate(classes):
        for i in range(per_class):
            part = ("test" if i % 5 == 0 else "train") if split else ""
            folder = root / part / cls
            folder.mkdir(parents=True, exist_ok=True)
            _image(40 + 170 * label, channels, i).save(folder / f"{i}.png")
    return root


@pytest.mark.parametrize("split", [False, True], ids=["held-out-20%", "train-test-folders"])
def test_an_image_folder_becomes_a_data_set_that_trains(nets_module, tmp_path, split):
    root = make_image_folder(tmp_path / f"shades-{split}", channels=3, split=split)
    name = register_image_folder(root, size=16)
    assert register_image_folder(root, size=16) == name
    data = load_dataset(name)
    assert data.classes == ["bright", "dark"] and data.in_shape == (3, 16, 16)
    n_test = 6  # 20 % of 30 images, or every 5th image of each class
    assert len(data.test_y) == n_test
    assert len(data.train_y) + len(data.val_y) == 30 - n_test
    model, _ = get_baseline("mlp", name, epochs=3, cache_dir=str(tmp_path / "cache"))
    with torch.inference_mode():
        accuracy = float((model(data.test_x).argmax(1) == data.test_y).double().mean())
    assert accuracy == 1.0  # dark vs bright is trivially separable


def test_image_folder_with_one_class_is_refused(tmp_path):
    root = make_image_folder(tmp_path / "lonely", classes=("cats",))
    with pytest.raises(ImageFolderError, match="at least two class folders"):
        register_image_folder(root)


def test_the_cli_compresses_a_weights_file_and_keeps_the_result(digits_lenet, tmp_path, capsys):
    base, _ = digits_lenet
    path = tmp_path / "mine.safetensors"
    path.write_bytes(safetensors_bytes(base.state_dict()))
    store = tmp_path / "h.sqlite"
    argv = ["run", "--model-file", str(path), "--prune", "0.5", "--bits", "4", "--store"]
    assert cli([*argv, str(store)]) == 0
    rows = Store(store).rows()
    assert len(rows) == 1 and rows[0]["has_artifact"] and rows[0]["source"] == "cli"
    assert '"filename": "mine.safetensors"' in rows[0]["identity"]
    assert "fits" not in capsys.readouterr().err  # checks are printed as "ok: ..."


def test_the_cli_refuses_torchscript_unless_trusted(digits_lenet, tmp_path, capsys):
    base, data = digits_lenet
    path = tmp_path / "net.pt"
    torch.jit.save(_traced(base, data.test_x[:2]), str(path))
    assert cli(["run", "--model-file", str(path), "--no-store"]) == 2
    assert "--trust-model-file" in capsys.readouterr().err
    assert cli(["run", "--model-file", str(path), "--trust-model-file", "--no-store"]) == 0
    assert "match the file's own forward" in capsys.readouterr().err
