"""Data sets as preconverted, normalised float32 tensors, loaded once per process.

``digits`` ships with scikit-learn and is always there. Fashion-MNIST, MNIST
and CIFAR-10 are looked for in a folder the user names (``data_dir``, else
``$SLIMSCOPE_DATA``), then in the system folders where distributions install
them, then in our cache, and only then downloaded by torchvision. When none of
that works the error says how to get the data set.

Example:
    >>> data = load_dataset("digits", size=28)
    >>> data.train_x.shape, data.classes[:2]
    (torch.Size([1212, 1, 28, 28]), ['0', '1'])
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F

from ..core.registry import Registry

VAL_FRACTION = 0.1  # carved out of the training split, stratified
SPLIT_SEED = 0
PROBE_SECONDS = 5.0  # how long to wait for a download server before calling it offline
DOWNLOAD_SOCKET_SECONDS = 60.0  # a stalled download fails instead of hanging the app
IDX_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class DatasetUnavailable(RuntimeError):
    """A data set that cannot be found or read; the message says how to get it."""


@dataclass(frozen=True)
class RawSplits:
    """A data set as read from disk: uint8 images [N, C, H, W] and int64 labels."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    max_value: int  # the brightest pixel value: 255, or 16 for digits
    source: str  # where it was read from, for the UI


@dataclass(frozen=True)
class DatasetSource:
    """One registered data set: its names, and how to find and read it."""

    title: str  # human name, e.g. "Fashion-MNIST"
    classes: tuple[str, ...]  # human class names, in label order
    load: Callable[[str | None], RawSplits]  # data_dir -> raw splits; raises DatasetUnavailable
    find: Callable[[str | None], str | None]  # data_dir -> where it loads from offline, or None


DATASETS: Registry[DatasetSource] = Registry("data set")


@dataclass(eq=False)
class Dataset:
    """Train/val/test tensors, normalised with the training split's per-channel mean and std."""

    name: str
    classes: list[str]
    train_x: torch.Tensor  # float32 [N, C, H, W], normalised
    train_y: torch.Tensor  # int64 [N]
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...]  # per channel, of the [0, 1] pixels of train_x
    std: tuple[float, ...]
    source: str = ""

    @property
    def in_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return (int(c), int(h), int(w))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def image(self, split: str, i: int) -> np.ndarray:
        """Image ``i`` of ``split`` ("train", "val", "test") for display: uint8 HxW or HxWx3."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test; got {split!r}")
        x = getattr(self, f"{split}_x")[i]
        mean = torch.tensor(self.mean).view(-1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1)
        pixels = ((x * std + mean) * 255).round().clamp(0, 255).to(torch.uint8)
        out = pixels.permute(1, 2, 0).numpy()
        return out[:, :, 0] if out.shape[2] == 1 else out


def cache_root() -> Path:
    """Slimscope's cache folder: ``$SLIMSCOPE_CACHE`` or ``~/.cache/slimscope``."""
    return Path(os.environ.get("SLIMSCOPE_CACHE") or Path.home() / ".cache" / "slimscope")


def offline() -> bool:
    """True when ``$SLIMSCOPE_OFFLINE`` forbids downloads (any value but empty or 0)."""
    return os.environ.get("SLIMSCOPE_OFFLINE", "") not in ("", "0")


def load_dataset(name: str, size: int | None = None, data_dir: str | None = None) -> Dataset:
    """The data set ``name``, served at ``size`` x ``size`` pixels (native when None).

    Memoised per (name, size, folder): the tensors are shared, never modify them.

    Example:
        >>> data = load_dataset("fashion-mnist")
        >>> data.in_shape, data.num_classes
        ((1, 28, 28), 10)
    """
    DATASETS[name]  # an unknown name fails here, listing the known ones
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValueError(f"size must be a positive whole number of pixels; got {size!r}")
    data_dir = _user_dir(data_dir)
    if size is not None and size == _raw(name, data_dir).train_x.shape[-1]:
        size = None  # one cached copy per native size
    return _prepared(name, size, data_dir)


def available_datasets(data_dir: str | None = None) -> dict[str, bool | str]:
    """For each data set: True when it loads without a network, else how to get it.

    Cheap: it looks for files, it reads none.
    """
    out: dict[str, bool | str] = {}
    for name in DATASETS:
        try:
            out[name] = DATASETS[name].find(_user_dir(data_dir)) is not None or _how_to(name)
        except OSError as e:  # an unreadable folder must not break the UI
            out[name] = f"{_how_to(name)} ({e})"
    return out


@functools.lru_cache(maxsize=4)
def _raw(name: str, data_dir: str | None) -> RawSplits:
    return DATASETS[name].load(data_dir)


@functools.lru_cache(maxsize=8)
def _prepared(name: str, size: int | None, data_dir: str | None) -> Dataset:
    raw = _raw(name, data_dir)
    train_idx, val_idx = _split_val(raw.train_y)

    def floats(x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32) / raw.max_value
        if size is not None:
            x = F.interpolate(
                x, size=(size, size), mode="bilinear", antialias=False, align_corners=False
            )
        return x

    train_x, val_x = floats(raw.train_x[train_idx]), floats(raw.train_x[val_idx])
    test_x = floats(raw.test_x)
    std, mean = torch.std_mean(train_x, dim=(0, 2, 3))
    m, s = mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)
    return Dataset(
        name=name,
        classes=list(DATASETS[name].classes),
        train_x=(train_x - m) / s,
        train_y=raw.train_y[train_idx],
        val_x=(val_x - m) / s,
        val_y=raw.train_y[val_idx],
        test_x=(test_x - m) / s,
        test_y=raw.test_y,
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        source=raw.source,
    )


def _split_val(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed (train, val) indices into the training split: a seeded, stratified 10 %."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    try:
        train, val = train_test_split(
            idx, test_size=VAL_FRACTION, stratify=y.numpy(), random_state=SPLIT_SEED
        )
    except ValueError:  # a class too rare to stratify (tiny custom sets): plain random split
        train, val = train_test_split(idx, test_size=VAL_FRACTION, random_state=SPLIT_SEED)
    return torch.from_numpy(np.sort(train)), torch.from_numpy(np.sort(val))


def _user_dir(data_dir: str | None) -> str | None:
    return str(data_dir) if data_dir else os.environ.get("SLIMSCOPE_DATA") or None


def _how_to(name: str) -> str:
    template = _HOW_TO.get(name, "{title} not found.")
    return template.format(title=DATASETS[name].title, cache=cache_root() / "data")


# --- digits: bundled with scikit-learn -------------------------------------------------------


def _load_digits(data_dir: str | None) -> RawSplits:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.uint8)).unsqueeze(1)  # values 0..16
    y = torch.from_numpy(digits.target).long()
    train, test = train_test_split(
        np.arange(len(y)), test_size=0.25, stratify=digits.target, random_state=0
    )
    train, test = torch.from_numpy(train), torch.from_numpy(test)
    return RawSplits(x[train], y[train], x[test], y[test], 16, "scikit-learn (bundled)")


DATASETS.add(
    "digits",
    DatasetSource(
        "Digits (scikit-learn)",
        tuple(str(d) for d in range(10)),
        _load_digits,
        lambda _: "scikit-learn (bundled)",
    ),
)


# --- torchvision data sets: a user folder, a system folder, our cache, or a download ---------


@dataclass(frozen=True)
class _TorchvisionSet:
    """Where one torchvision data set may be found on disk, and what it is called there."""

    name: str  # our registry name
    tv_class: str  # the torchvision.datasets class
    layout: tuple[str, ...]  # files torchvision needs, relative to its root
    idx: bool  # MNIST-like: may also be four bare IDX files in a folder
    system_dir: str | None  # where a distribution package puts the bare IDX files


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not): big-endian magic, one int32 per dimension, uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zeros, dtype, ndim = data[0:2], data[2], data[3]
    if zeros != b"\x00\x00" or dtype != 0x08:
        raise ValueError(f"{path} is not an IDX file of uint8 (magic {data[:4].hex()})")
    dims = np.frombuffer(data, dtype=">i4", count=ndim, offset=4).tolist()
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _idx_files(folder: Path) -> list[Path] | None:
    """The four IDX files in ``folder`` (each .gz or not), in IDX_STEMS order, or None."""
    found = []
    for stem in IDX_STEMS:
        hits = [folder / n for n in (stem, stem + ".gz") if (folder / n).is_file()]
        if not hits:
            return None
        found.append(hits[0])
    return found


def _candidates(spec: _TorchvisionSet, data_dir: str | None) -> Iterator[tuple[str, Path]]:
    """(how to read, folder) in search order; the last one is where downloads go."""
    if data_dir:
        yield "torchvision", Path(data_dir)
        if spec.idx:
            yield "idx", Path(data_dir)
            yield "idx", Path(data_dir) / spec.name
    if spec.system_dir:
        yield "idx", Path(spec.system_dir)
    yield "torchvision", cache_root() / "data"


def _find(spec: _TorchvisionSet, data_dir: str | None) -> tuple[str, Path] | None:
    for kind, folder in _candidates(spec, data_dir):
        if kind == "idx" and _idx_files(folder) is not None:
            return kind, folder
        if kind == "torchvision" and all((folder / f).is_file() for f in spec.layout):
            return kind, folder
    return None


def _read(spec: _TorchvisionSet, kind: str, folder: Path) -> RawSplits:
    if kind == "idx":
        train_x, train_y, test_x, test_y = (
            torch.from_numpy(_read_idx(p).copy()) for p in _idx_files(folder)
        )
    else:
        import torchvision.datasets

        cls = getattr(torchvision.datasets, spec.tv_class)
        train, test = cls(str(folder), train=True), cls(str(folder), train=False)
        train_x, test_x = torch.as_tensor(train.data), torch.as_tensor(test.data)
        train_y, test_y = torch.as_tensor(train.targets), torch.as_tensor(test.targets)
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise ValueError("the image and label files hold different numbers of items")
    train_x, test_x = (
        x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2) for x in (train_x, test_x)
    )
    return RawSplits(
        train_x.contiguous(),
        train_y.long(),
        test_x.contiguous(),
        test_y.long(),
        255,
        str(folder),
    )


def _load_torchvision(spec: _TorchvisionSet, data_dir: str | None) -> RawSplits:
    found = _find(spec, data_dir)
    if found is None:
        folder = cache_root() / "data"
        _download(spec, folder)
        found = ("torchvision", folder)
    try:
        return _read(spec, *found)
    except Exception as e:  # a truncated or foreign file: one clear error, not torchvision's
        raise DatasetUnavailable(
            f"{DATASETS[spec.name].title} in {found[1]} could not be read ({e}). "
            f"{_how_to(spec.name)}"
        ) from None


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    # torchvision's urlopen has no timeout; the process default is the only handle on it.
    # It is process-wide: other threads opening sockets meanwhile get it too (harmless here).
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _download(spec: _TorchvisionSet, folder: Path) -> None:
    """Let torchvision download into ``folder``; fail fast and clearly when offline."""
    import torchvision.datasets

    how_to = _how_to(spec.name)
    if offline():
        raise DatasetUnavailable(f"{how_to} (downloads are off: SLIMSCOPE_OFFLINE is set)")
    cls = getattr(torchvision.datasets, spec.tv_class)
    urls = list(getattr(cls, "mirrors", None) or [cls.url])
    if not any(_reachable(u) for u in urls):
        raise DatasetUnavailable(f"{how_to} (no network: {urlparse(urls[0]).hostname} unreachable)")
    try:
        with _socket_timeout(DOWNLOAD_SOCKET_SECONDS):
            cls(str(folder), train=True, download=True)
    except Exception as e:
        raise DatasetUnavailable(f"{how_to} (download into {folder} failed: {e})") from None


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=PROBE_SECONDS).close()
        return True
    except OSError:
        return False


def _register(title: str, classes: tuple[str, ...], spec: _TorchvisionSet) -> None:
    def find(data_dir: str | None) -> str | None:
        found = _find(spec, data_dir)
        return None if found is None else str(found[1])

    DATASETS.add(
        spec.name, DatasetSource(title, classes, functools.partial(_load_torchvision, spec), find)
    )


_MNIST_RAW = tuple(f"raw/{stem}" for stem in IDX_STEMS)
_FILES = "the four IDX files (train-images-idx3-ubyte.gz, ...)"
_USER = "pass --data-dir / set SLIMSCOPE_DATA"
_ONLINE = "or go online once so torchvision can download it into {cache}."
_HOW_TO = {  # formatted by _how_to with the title and the cache folder in force
    "fashion-mnist": f"{{title}} not found. Install Debian's package: apt-get install "
    f"dataset-fashion-mnist, or put {_FILES} in a folder and {_USER}, {_ONLINE}",
    "mnist": f"{{title}} not found. Put {_FILES} in /usr/share/datasets/mnist, or in a "
    f"folder and {_USER}, {_ONLINE}",
    "cifar10": "{title} not found. Extract cifar-10-python.tar.gz (it holds the folder "
    f"cifar-10-batches-py) into a folder and {_USER}, {_ONLINE}",
}

_register(
    "Fashion-MNIST",
    ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat")
    + ("Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    _TorchvisionSet(
        "fashion-mnist",
        "FashionMNIST",
        tuple(f"FashionMNIST/{f}" for f in _MNIST_RAW),
        idx=True,
        system_dir="/usr/share/datasets/fashion-mnist",
    ),
)
_register(
    "MNIST",
    tuple(str(d) for d in range(10)),
    _TorchvisionSet(
        "mnist",
        "MNIST",
        tuple(f"MNIST/{f}" for f in _MNIST_RAW),
        idx=True,
        system_dir="/usr/share/datasets/mnist",
    ),
)
_register(
    "CIFAR-10",
    ("airplane", "automobile", "bird", "cat", "deer") + ("dog", "frog", "horse", "ship", "truck"),
    _TorchvisionSet(
        "cifar10",
        "CIFAR10",
        tuple(
            f"cifar-10-batches-py/{f}"
            for f in ("batches.meta", "test_batch", *(f"data_batch_{i}" for i in range(1, 6)))
        ),
        idx=False,
        system_dir=None,
    ),
)
