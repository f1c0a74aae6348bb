"""Baselines: train a registered model on a data set once, then load it from a disk cache.

Example:
    >>> model, data = get_baseline("lenet5", "digits")  # trains a few seconds the first time
    >>> model, data = get_baseline("lenet5", "digits")  # then loads in milliseconds
    >>> baseline_info(model)["test_accuracy"]
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core import repair
from ..core.record import get_spec
from ..eval.device import compute_device
from ..io import diskcache
from ..io.data import Dataset, load_dataset
from ..io.models import MODELS, build_model, input_size_for
from .loop import TrainingCancelled, TrainProgress, fit

FORMAT_VERSION = 1  # bump when a change to training or models makes old checkpoints wrong
META_ATTR = "slimscope_baseline_meta"
EVAL_BATCH = 1000
LEARNING_RATES = {"resnet18": 1e-3, "mobilenet_v3_small": 2e-3}  # Adam; others use DEFAULT_LR
DEFAULT_LR = 1e-3
# Epochs for a good baseline on 2 CPU cores: seconds on digits (ResNet-18: minutes), 10 s
# (mlp) to 3 min (cnn) on Fashion-MNIST. ResNet-18 is a GPU model: ~30 min per epoch there.
EPOCHS = {"digits": 20, "mnist": 5, "fashion-mnist": 5, "cifar10": 15}
EPOCHS_FOR = {  # slower models train fewer epochs
    ("cnn", "mnist"): 3,
    ("cnn", "fashion-mnist"): 3,
    ("cnn", "cifar10"): 10,
    ("mobilenet_v3_small", "digits"): 15,
    ("mobilenet_v3_small", "mnist"): 3,
    ("mobilenet_v3_small", "fashion-mnist"): 3,
    ("resnet18", "digits"): 5,
    ("resnet18", "mnist"): 1,
    ("resnet18", "fashion-mnist"): 1,
    ("resnet18", "cifar10"): 5,
}
BN_CALIBRATION_IMAGES = 1024
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def default_epochs(model_name: str, dataset_name: str) -> int:
    """Epochs for ``model_name``'s baseline on ``dataset_name``.

    Example:
        >>> default_epochs("mlp", "digits")
        20
    """
    MODELS[model_name]  # an unknown name fails here, listing the known ones
    return EPOCHS_FOR.get((model_name, dataset_name), EPOCHS.get(dataset_name, 5))


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` in eval mode on (x, y); the model's mode is restored."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.inference_mode():
        hits = sum(
            int((model(xb.to(device)).argmax(1).cpu() == yb).sum())
            for xb, yb in zip(x.split(EVAL_BATCH), y.split(EVAL_BATCH), strict=True)
        )
    model.train(was_training)
    return hits / max(len(y), 1)


def train(
    model: nn.Module,
    data: Dataset,
    epochs: int,
    seed: int = 0,
    lr: float | None = None,
    batch_size: int = 128,
    progress: Callable[[TrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> nn.Module:
    """Train ``model`` in place on ``data``'s train split with Adam and cross-entropy.

    Deterministic for a given seed on a given device; the global RNG is left as it
    was. Runs on ``compute_device()`` and returns the model on the CPU.

    Example:
        >>> train(model, load_dataset("digits"), epochs=5, progress=print)
    """
    if lr is None:
        spec = get_spec(model)
        lr = LEARNING_RATES.get(spec.name if spec else "", DEFAULT_LR)
    model.to(compute_device())
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def after_epoch(p: TrainProgress) -> None:
        if progress is not None or p.epoch == p.epochs:
            recalibrate_bn_(model, data.train_x)
        if progress is not None:
            progress(dataclasses.replace(p, val_accuracy=accuracy(model, data.val_x, data.val_y)))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            fit(
                model,
                data,
                epochs=epochs,
                optimizer=opt,
                generator=torch.Generator().manual_seed(seed),
                batch_size=batch_size,
                progress=progress,
                after_epoch=after_epoch,
                should_stop=should_stop,
            )
        except TrainingCancelled:
            model.cpu()
            raise
    model.cpu().eval()
    return model


def recalibrate_bn_(model: nn.Module, x: torch.Tensor) -> None:
    """Recompute BatchNorm running statistics from the current weights, in place.

    MobileNetV3's momentum of 0.01 suits long ImageNet runs; after our few hundred
    steps its running statistics still lag the weights and eval-mode accuracy is
    at chance. The statistics are re-estimated on a fixed sample of ``x``.
    """
    sample = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    repair.recalibrate_bn_(model, list(x[sample[:BN_CALIBRATION_IMAGES]].split(256)))


def get_baseline(
    model_name: str,
    dataset_name: str,
    epochs: int | None = None,
    seed: int = 0,
    cache_dir: str | None = None,
    data_dir: str | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[nn.Module, Dataset]:
    """The trained baseline (in eval mode) and the data set it was trained on.

    Loads the checkpoint from ``cache_dir``/baselines (default ``$SLIMSCOPE_CACHE``
    or ``~/.cache/slimscope``) when a healthy one exists; otherwise trains and
    saves it. A bad checkpoint is retrained; an unwritable cache only warns.

    Example:
        >>> model, data = get_baseline("mlp", "digits", cache_dir="/tmp/slim")
    """
    MODELS[model_name]  # fail on a bad name before loading any data
    native = load_dataset(dataset_name, data_dir=data_dir)
    size = input_size_for(model_name, native.in_shape[1])
    data = load_dataset(dataset_name, size, data_dir)
    epochs = default_epochs(model_name, dataset_name) if epochs is None else int(epochs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(model_name, data.in_shape, data.num_classes)
    key = {
        "model": model_name,
        "dataset": dataset_name,
        "input_size": size,
        "epochs": epochs,
        "seed": seed,
        "format_version": FORMAT_VERSION,
    }
    path = checkpoint_path(key, cache_dir)
    meta = _load_checkpoint(path, model, key)
    if meta is None:
        started = time.perf_counter()
        train(model, data, epochs, seed, progress=progress, should_stop=should_stop)
        meta = dict(
            key,
            train_seconds=time.perf_counter() - started,
            val_accuracy=accuracy(model, data.val_x, data.val_y),
            test_accuracy=accuracy(model, data.test_x, data.test_y),
        )
        if _finite_problem(model.state_dict()):
            warnings.warn(f"{model_name} diverged on {dataset_name}: not caching it", stacklevel=2)
        else:
            _save_checkpoint(path, model.state_dict(), meta)
    model.eval()
    setattr(model, META_ATTR, meta)
    return model, data


def checkpoint_path(key: dict[str, Any], cache_dir: str | None = None) -> Path:
    """Where the baseline ``key`` (model, dataset, input_size, seed, epochs) is cached."""
    k = key
    name = f"{k['model']}-{k['dataset']}-{k['input_size']}px-seed{k['seed']}-e{k['epochs']}"
    return diskcache.entry("baselines", f"{name}-v{FORMAT_VERSION}.pt", cache_dir)


def baseline_info(model: nn.Module) -> dict[str, Any] | None:
    """The baseline's meta: model, dataset, epochs, seed, test_accuracy, train_seconds, ..."""
    return getattr(model, META_ATTR, None)


def _finite_problem(state: dict[str, torch.Tensor]) -> str | None:
    for name, t in state.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            return f"holding NaN/Inf in {name}"
    return None


def _checkpoint_problem(blob: Any, model: nn.Module, key: dict[str, Any]) -> str | None:
    """Why ``blob`` cannot be this model's baseline, or None when it can."""
    if not isinstance(blob, dict) or not {"state_dict", "meta"} <= set(blob):
        return "not a baseline checkpoint"
    meta, state = blob["meta"], blob["state_dict"]
    if not isinstance(meta, dict) or any(meta.get(k) != v for k, v in key.items()):
        return f"for another baseline ({meta!r:.200})"
    expected = model.state_dict()
    if not isinstance(state, dict) or set(state) != set(expected):
        return "for another architecture (its weight names differ)"
    for name, t in expected.items():
        if not isinstance(state[name], torch.Tensor) or state[name].shape != t.shape:
            return f"for another architecture ({name} has the wrong shape)"
    if not all(isinstance(meta.get(k), (int, float)) for k in ("test_accuracy", "train_seconds")):
        return "missing its accuracy"
    return _finite_problem(state)


def _load_checkpoint(path: Path, model: nn.Module, key: dict[str, Any]) -> dict[str, Any] | None:
    """Load a healthy checkpoint into ``model`` and return its meta; None (and a warning) if not."""

    def reader(p: Path) -> dict[str, Any]:
        blob = torch.load(p, map_location="cpu", weights_only=True)
        problem = _checkpoint_problem(blob, model, key)
        if problem is not None:
            raise diskcache.Unusable(problem)
        return blob

    blob = diskcache.read(path, reader, "baseline checkpoint", "retraining it")
    if blob is None:
        return None
    model.load_state_dict(blob["state_dict"])
    return dict(blob["meta"])


def _save_checkpoint(path: Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write atomically through the disk cache; warn (and keep the model in memory) on failure."""
    blob = {"state_dict": state, "meta": meta}
    diskcache.write(path, lambda f: torch.save(blob, f), "the baseline")
