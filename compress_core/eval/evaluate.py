"""Evaluation on cached test tensors: accuracy, loss, per-class accuracy, predictions."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .device import compute_device, on_device
from .prefix import prefix_forward

EVAL_BATCH = 500  # big enough for fast matmuls, small enough for activations to stay in cache


@dataclass
class Metrics:
    """What a model scores on one split (or a fixed subset of it)."""

    accuracy: float  # top-1, 0..1
    loss: float  # mean cross-entropy
    per_class: list[float]  # accuracy of each class, 0..1 (nan for a class absent from the split)
    predictions: torch.Tensor  # int64 [n], the predicted class of each evaluated image
    indices: torch.Tensor  # int64 [n], which images of the split were evaluated
    finite: bool  # False when any output was NaN/Inf: the numbers above are then meaningless

    def changed(self, reference: Metrics) -> list[int]:
        """Indices (into the split) of images whose prediction differs from ``reference``'s."""
        if not torch.equal(self.indices, reference.indices):
            raise ValueError("compare metrics computed on the same images")
        return self.indices[self.predictions != reference.predictions].tolist()


def subset_indices(n_total: int, subset: int | None) -> torch.Tensor:
    """A fixed, seeded subset of the split for fast previews (all images when None)."""
    if subset is None or subset >= n_total:
        return torch.arange(n_total)
    return (
        torch.randperm(n_total, generator=torch.Generator().manual_seed(0))[:subset].sort().values
    )


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    subset: int | None = None,
    base: nn.Module | None = None,
    device: str | torch.device | None = None,
) -> Metrics:
    """Top-1 accuracy, loss and per-class accuracy of ``model`` on (x, y).

    When ``base`` is the model ``model`` was compressed from, the layers the
    compression left unchanged are not recomputed (see ``prefix.py``). On a
    GPU (``device``, default ``$SLIMSCOPE_DEVICE``) the test tensors are
    copied there once and a device copy of ``model`` runs instead.

    Example:
        >>> m = evaluate(model, data.test_x, data.test_y)
        >>> m.accuracy
    """
    device = compute_device() if device is None else torch.device(device)
    key = (x.data_ptr(), tuple(x.shape), subset)
    idx = subset_indices(len(y), subset)
    was_training = model.training
    model.eval()
    outputs = None
    if device.type == "cpu" and base is not None:
        x, y = x[idx], y[idx]
        outputs = prefix_forward(base, model, x, key, EVAL_BATCH)
    elif device.type != "cpu":
        x, y = on_device(x, device)[idx.to(device)], on_device(y, device)[idx.to(device)]
        model = model if _on(model, device) else copy.deepcopy(model).to(device)
    else:
        x, y = x[idx], y[idx]
    if outputs is None:
        with torch.inference_mode():
            outputs = [model(xb) for xb in x.split(EVAL_BATCH)]
    preds, loss_sum, finite = [], 0.0, True
    with torch.inference_mode():
        for logits, yb in zip(outputs, y.split(EVAL_BATCH), strict=True):
            finite = finite and bool(torch.isfinite(logits).all())
            loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
            preds.append(logits.argmax(dim=1))
    model.train(was_training)
    pred = torch.cat(preds).cpu() if preds else torch.zeros(0, dtype=torch.int64)
    y = y.cpu()
    correct = (pred == y).double()
    n_classes = outputs[0].shape[1] if outputs else 0
    counts = torch.bincount(y, minlength=n_classes).double()
    hits = torch.bincount(y, weights=correct, minlength=n_classes)
    per_class = (hits / counts).tolist()  # 0/0 -> nan for an absent class
    return Metrics(
        accuracy=float(correct.mean()) if len(y) else float("nan"),
        loss=loss_sum / max(len(y), 1),
        per_class=per_class,
        predictions=pred,
        indices=idx,
        finite=finite,
    )


def _on(model: nn.Module, device: torch.device) -> bool:
    p = next(model.parameters(), None)
    return p is None or (p.device.type == device.type and p.device.index == device.index)
