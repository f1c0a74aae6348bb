"""Your own data: a folder of class subfolders (torchvision's ``ImageFolder`` layout).

::

    flowers/                   or   flowers/train/daisy/*.jpg
        daisy/001.jpg                flowers/test/daisy/*.jpg   (or val/)
        tulip/002.png ...

``register_image_folder`` checks the layout, then registers the folder in
``compress_core.io.data.DATASETS`` so every verb (``load_dataset``, ``get_baseline``,
the pages) uses it like a built-in set. Images are read once, converted to grey
(when all are grey) or RGB, and resized to ``size`` x ``size``. Without
``train/`` and ``test/`` folders, a seeded, stratified 20 % is held out for testing.

Example:
    >>> name = register_image_folder("~/data/flowers", size=32)
    >>> load_dataset(name).classes
    ['daisy', 'tulip']
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from .data import DATASETS, DatasetSource, DatasetUnavailable, RawSplits

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
DEFAULT_SIZE = 32
MAX_IMAGES = 50_000  # ~150 MB of 32x32 RGB; a bigger set belongs in a real training pipeline
TEST_FRACTION = 0.2
SPLIT_SEED = 0
TEST_SPLITS = ("test", "val")
ROOT_VAR = "SLIMSCOPE_IMAGE_FOLDERS"  # the dashboard offers only folders under this root


class ImageFolderError(DatasetUnavailable):
    """A folder that is not a usable image data set; the message says what to fix."""


_REGISTERED: dict[str, tuple[Path, int]] = {}  # registry name -> (folder, size)


def register_image_folder(path: str | os.PathLike, size: int = DEFAULT_SIZE) -> str:
    """Check ``path``'s layout and register it as a data set; returns its registry name.

    The name is ``folder:<folder name>`` (with a short hash when another folder
    already took it). Registering the same folder and size again returns the same name.
    Raises ImageFolderError when the folder has fewer than two classes, no test
    images, too many images, or is not a folder.
    """
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= 512:
        raise ImageFolderError(f"image size must be a whole number of pixels, 8..512; got {size}")
    root = Path(path).expanduser().resolve()
    for name, registered in _REGISTERED.items():
        if registered == (root, size):
            return name
    splits, classes = scan(root)
    name = f"folder:{root.name}"
    if name in DATASETS:
        digest = hashlib.sha256(f"{root}:{size}".encode()).hexdigest()[:6]
        name = f"{name}-{digest}"
    DATASETS.add(
        name,
        DatasetSource(
            f"{root.name} (image folder, {sum(len(v) for v in splits.values()):,} images)",
            tuple(classes),
            functools.partial(_load, root, size),
            lambda _data_dir: str(root) if root.is_dir() else None,
        ),
    )
    _REGISTERED[name] = (root, size)
    return name


def scan(root: Path) -> tuple[dict[str, list[tuple[Path, int]]], list[str]]:
    """The (file, label) pairs of each split ("train", "test"; empty "test" = split later)."""
    if not root.is_dir():
        raise ImageFolderError(f"{root} is not a folder")
    try:
        subdirs = {p.name for p in root.iterdir() if p.is_dir()}
        test = next((s for s in TEST_SPLITS if s in subdirs), None)
        if "train" in subdirs and test is not None:
            classes = _classes(root / "train")
            splits = {
                "train": _files(root / "train", classes),
                "test": _files(root / test, classes),
            }
        else:
            classes = _classes(root)
            splits = {"train": _files(root, classes), "test": []}
    except OSError as e:
        raise ImageFolderError(f"{root} cannot be read: {e.strerror or e}") from None
    total = sum(len(v) for v in splits.values())
    if total > MAX_IMAGES:
        raise ImageFolderError(f"{root} holds {total:,} images; the limit is {MAX_IMAGES:,}")
    if splits["test"] == [] and len(splits["train"]) < 2 * len(classes):
        raise ImageFolderError(
            f"{root} has {len(splits['train'])} images for {len(classes)} classes: too few to "
            "hold some out for testing"
        )
    return splits, classes


def _classes(folder: Path) -> list[str]:
    classes = sorted(
        p.name
        for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith(".") and _inside(p, folder) and _has_images(p)
    )
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise ImageFolderError(
            f"{folder} needs at least two class folders holding images "
            f"({', '.join(IMAGE_EXTENSIONS[:3])}, ...); found {found}. A classifier "
            "needs two classes to tell apart."
        )
    return classes


def _has_images(folder: Path) -> bool:
    return any(_is_image(p) and _inside(p, folder) for p in folder.rglob("*"))


def _inside(p: Path, root: Path) -> bool:
    """True when ``p`` resolves inside ``root``: a symlink out of the operator's folder (to
    /usr, say) is not followed."""
    return p.resolve().is_relative_to(root.resolve())


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")


def _files(folder: Path, classes: list[str]) -> list[tuple[Path, int]]:
    out = []
    for label, cls in enumerate(classes):
        if (folder / cls).is_dir() and _inside(folder / cls, folder):
            found = sorted((folder / cls).rglob("*"))
            out += [(p, label) for p in found if _is_image(p) and _inside(p, folder)]
    return out


def _load(root: Path, size: int, _data_dir: str | None = None) -> RawSplits:
    splits, _ = scan(root)
    images, labels, bad, grey = {}, {}, [], True
    for split, items in splits.items():
        arrays = []
        for path, _label in items:
            try:
                array, is_grey = _read_image(path, size)
            except Exception as e:  # PIL raises OSError, ValueError, DecompressionBombError, ...
                bad.append(f"{path.relative_to(root)} ({type(e).__name__})")
                continue
            grey = grey and is_grey
            arrays.append(array)
        images[split] = arrays
        labels[split] = [label for (path, label) in items]
    if bad:
        raise ImageFolderError(
            f"{len(bad)} image(s) in {root} cannot be read: {', '.join(bad[:5])}"
            f"{' …' if len(bad) > 5 else ''}. Remove or replace them."
        )
    channels = 1 if grey else 3
    x = {s: _stack(a, channels, size) for s, a in images.items()}
    y = {s: torch.tensor(v, dtype=torch.int64) for s, v in labels.items()}
    if not len(y["test"]):
        train, test = _holdout(y["train"])
        x["test"], y["test"] = x["train"][test], y["train"][test]
        x["train"], y["train"] = x["train"][train], y["train"][train]
    return RawSplits(x["train"], y["train"], x["test"], y["test"], 255, str(root))


def _read_image(path: Path, size: int) -> tuple[np.ndarray, bool]:
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        is_grey = img.mode in GREY_MODES
        rgb = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8), is_grey


def _stack(arrays: list[np.ndarray], channels: int, size: int) -> torch.Tensor:
    if not arrays:
        return torch.zeros(0, channels, size, size, dtype=torch.uint8)
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # N, 3, H, W
    return (x[:, :1] if channels == 1 else x).contiguous()


def _holdout(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    try:
        train, test = train_test_split(
            idx, test_size=TEST_FRACTION, stratify=y.numpy(), random_state=SPLIT_SEED
        )
    except ValueError:  # a class with a single image cannot be stratified
        train, test = train_test_split(idx, test_size=TEST_FRACTION, random_state=SPLIT_SEED)
    return torch.from_numpy(np.sort(train)), torch.from_numpy(np.sort(test))


def image_folder_root() -> Path | None:
    """The folder under which the dashboard may offer image folders (``$SLIMSCOPE_IMAGE_FOLDERS``).

    None when the operator set none: the dashboard then offers no folders, so a
    visitor can never make the server read a path of their choosing.
    """
    root = os.environ.get(ROOT_VAR)
    return Path(root).expanduser().resolve() if root else None


def list_image_folders(root: Path | None = None) -> list[Path]:
    """The candidate data set folders directly under ``root`` (sorted; hidden ones left out)."""
    root = image_folder_root() if root is None else root
    if root is None or not root.is_dir():
        return []
    try:
        found = (p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        return sorted(p for p in found if _inside(p, root))
    except OSError:
        return []
