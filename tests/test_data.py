"""Data sets: splits, normalisation and resizing against references; every way of finding one."""

from __future__ import annotations

import gzip
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.datasets
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from compress_core.core.registry import UnknownName
from compress_core.io import data as data_mod
from compress_core.io.data import DatasetUnavailable, available_datasets, load_dataset

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"] + [
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file as the MNIST authors define it: 0, 0, type 0x08, ndim, big-endian dims, data."""
    blob = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
    blob += array.astype(np.uint8).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(blob)


def fake_mnist(folder: Path, gz: bool, seed: int = 0) -> dict[str, np.ndarray]:
    """Four tiny IDX files (100 train, 20 test images, 10 classes) written into ``folder``."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (100, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.repeat(np.arange(10, dtype=np.uint8), 10),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.tile(np.arange(10, dtype=np.uint8), 2),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        write_idx(folder / (stem + (".gz" if gz else "")), array)
    return arrays


def raw_pixels(data, split: str) -> np.ndarray:
    """Every image of a split back as uint8, through the display helper."""
    n = len(getattr(data, f"{split}_y"))
    return np.stack([data.image(split, i) for i in range(n)])


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No downloads, and an empty cache, so only the folders a test names can be found."""
    monkeypatch.setenv("SLIMSCOPE_OFFLINE", "1")
    monkeypatch.setenv("SLIMSCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SLIMSCOPE_DATA", raising=False)


def test_digits_splits_partition_sklearns_fixed_split():
    digits = load_digits()
    train_idx, test_idx = train_test_split(
        np.arange(1797), test_size=0.25, stratify=digits.target, random_state=0
    )
    data = load_dataset("digits")
    assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (1212, 135, 450)
    assert data.in_shape == (1, 8, 8) and data.classes == [str(d) for d in range(10)]
    # The test split is sklearn's, image for image; train + val is exactly sklearn's train split.
    expected = np.round(digits.images[test_idx] / 16 * 255).astype(np.uint8)
    np.testing.assert_array_equal(raw_pixels(data, "test"), expected)
    np.testing.assert_array_equal(data.test_y.numpy(), digits.target[test_idx])
    ours = np.concatenate([raw_pixels(data, "train"), raw_pixels(data, "val")]).reshape(-1, 64)
    ref = np.round(digits.images[train_idx] / 16 * 255).astype(np.uint8).reshape(-1, 64)
    assert sorted(map(bytes, ours)) == sorted(map(bytes, ref))


def test_val_split_is_stratified_ten_percent():
    data = load_dataset("digits")
    per_class = torch.bincount(torch.cat([data.train_y, data.val_y]), minlength=10)
    val = torch.bincount(data.val_y, minlength=10)
    assert (val.double() - 0.1 * per_class.double()).abs().max() <= 1


def test_loads_are_memoised_and_deterministic():
    first = load_dataset("digits", 28)
    assert load_dataset("digits", 28) is first
    assert load_dataset("digits", 8) is load_dataset("digits")  # native size: one copy
    data_mod._prepared.cache_clear()
    data_mod._raw.cache_clear()
    again = load_dataset("digits", 28)
    assert again is not first
    for field in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
        assert torch.equal(getattr(again, field), getattr(first, field)), field


@pytest.mark.parametrize("size", [None, 28])
def test_train_split_is_normalised_to_zero_mean_unit_std(size):
    data = load_dataset("digits", size)
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.int64
    assert abs(float(data.train_x.mean())) < 1e-4
    assert abs(float(data.train_x.std()) - 1) < 1e-4


def test_resize_is_bilinear_interpolate_of_the_native_images():
    digits = load_digits()
    _, test_idx = train_test_split(
        np.arange(1797), test_size=0.25, stratify=digits.target, random_state=0
    )
    big = load_dataset("digits", 28)
    pixels = torch.from_numpy(digits.images[test_idx]).float().unsqueeze(1) / 16
    ref = F.interpolate(
        pixels, size=(28, 28), mode="bilinear", antialias=False, align_corners=False
    )
    ref = (ref - big.mean[0]) / big.std[0]
    assert big.test_x.shape == (450, 1, 28, 28)
    torch.testing.assert_close(big.test_x, ref, atol=1e-5, rtol=0)


def test_fashion_mnist_loads_the_system_copy_exactly():
    data = load_dataset("fashion-mnist")
    assert data.source == str(FASHION_DIR)
    assert data.classes == FASHION_CLASSES and data.num_classes == 10
    assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (54000, 6000, 10000)
    assert data.train_x.shape[1:] == data.test_x.shape[1:] == (1, 28, 28)
    assert torch.bincount(data.val_y).tolist() == [600] * 10  # stratified exactly
    assert torch.bincount(data.test_y).tolist() == [1000] * 10
    assert data.mean[0] == pytest.approx(0.2860, abs=2e-3)  # the well-known constants
    assert data.std[0] == pytest.approx(0.3530, abs=2e-3)
    with gzip.open(FASHION_DIR / "t10k-images-idx3-ubyte.gz") as f:
        reference = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    for i in (0, 1, 9999):
        np.testing.assert_array_equal(data.image("test", i), reference[i])


def test_torchvision_layout_folder_is_read_via_torchvision(tmp_path, offline):
    arrays = fake_mnist(tmp_path / "FashionMNIST" / "raw", gz=False)
    data = load_dataset("fashion-mnist", data_dir=str(tmp_path))  # preferred to the system copy
    assert data.source == str(tmp_path)
    assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (90, 10, 20)
    assert torch.bincount(data.val_y).tolist() == [1] * 10
    np.testing.assert_array_equal(raw_pixels(data, "test"), arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(data.test_y.numpy(), arrays["t10k-labels-idx1-ubyte"])


def test_bare_gzipped_idx_folder_from_the_environment(tmp_path, offline, monkeypatch):
    arrays = fake_mnist(tmp_path / "mnist", gz=True)  # $SLIMSCOPE_DATA/<name>/*.gz
    monkeypatch.setenv("SLIMSCOPE_DATA", str(tmp_path))
    assert available_datasets()["mnist"] is True
    data = load_dataset("mnist", size=32)
    assert data.source == str(tmp_path / "mnist") and data.in_shape == (1, 32, 32)
    assert data.classes == [str(d) for d in range(10)]
    native = load_dataset("mnist")
    np.testing.assert_array_equal(raw_pixels(native, "test"), arrays["t10k-images-idx3-ubyte"])


def test_cifar10_folder_gives_colour_images(tmp_path, offline, monkeypatch):
    # torchvision checks the real files' md5 sums; fake files pass only with that check off.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = rng.integers(0, 256, (20, 3 * 32 * 32), dtype=np.uint8)
        labels = [i % 10 for i in range(20)]
        with open(root / name, "wb") as f:
            pickle.dump({"data": batches[name], "labels": labels}, f)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["x"] * 10}, f)
    data = load_dataset("cifar10", data_dir=str(tmp_path))
    assert data.in_shape == (3, 32, 32) and len(data.train_y) + len(data.val_y) == 100
    assert data.classes[:2] == ["airplane", "automobile"]
    first = batches["test_batch"][0].reshape(3, 32, 32).transpose(1, 2, 0)  # CHW rows -> HxWx3
    np.testing.assert_array_equal(data.image("test", 0), first)


@pytest.mark.parametrize("name, title", [("mnist", "MNIST"), ("cifar10", "CIFAR-10")])
def test_missing_dataset_says_how_to_get_it(name, title, tmp_path, offline):
    started = time.perf_counter()
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset(name, data_dir=str(tmp_path))
    assert time.perf_counter() - started < 2
    message = str(err.value)
    assert message.startswith(f"{title} not found.")
    assert "SLIMSCOPE_DATA" in message and "--data-dir" in message and "download" in message
    assert available_datasets(str(tmp_path))[name] == data_mod._how_to(name)


def test_unreachable_server_fails_fast(tmp_path, offline, monkeypatch):
    monkeypatch.delenv("SLIMSCOPE_OFFLINE")
    # Port 9 on this machine refuses at once: the same path as a laptop without network.
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    started = time.perf_counter()
    with pytest.raises(DatasetUnavailable, match="MNIST not found.*127.0.0.1 unreachable"):
        load_dataset("mnist", data_dir=str(tmp_path))
    assert time.perf_counter() - started < 2


def test_failed_download_is_one_clear_error(tmp_path, offline, monkeypatch):
    monkeypatch.delenv("SLIMSCOPE_OFFLINE")
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    monkeypatch.setattr(data_mod, "_reachable", lambda url: True)  # torchvision's own try
    with pytest.raises(DatasetUnavailable, match="MNIST not found.*download into .* failed"):
        load_dataset("mnist", data_dir=str(tmp_path))


def test_unreadable_files_are_a_dataset_error(tmp_path, offline):
    for stem in data_mod.IDX_STEMS:
        (tmp_path / (stem + ".gz")).write_bytes(b"not gzip at all")
    with pytest.raises(DatasetUnavailable, match="could not be read"):
        load_dataset("mnist", data_dir=str(tmp_path))


def test_available_datasets_reports_what_loads_offline(tmp_path, offline):
    status = available_datasets(str(tmp_path))
    assert list(status) == ["digits", "fashion-mnist", "mnist", "cifar10"]
    assert status["digits"] is True and status["fashion-mnist"] is True
    assert status["mnist"].startswith("MNIST not found.")
    fake_mnist(tmp_path, gz=True)
    assert available_datasets(str(tmp_path))["mnist"] is True


def test_bad_names_list_the_valid_ones():
    with pytest.raises(UnknownName, match="digits, fashion-mnist, mnist, cifar10"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="train, val or test"):
        load_dataset("digits").image("dev", 0)
