"""The one training loop: baselines, masked retraining, QAT, Deep Compression and soft
weight-sharing all train through ``fit``; what differs between them is passed in.

``fit`` shuffles the training split with its own generator, steps the optimiser (and a
scheduler), and around each step calls the hooks a method needs: ``before_step`` for
stop checks and pruning events, ``after_step`` to re-apply masks, ``progress`` every
few steps and ``after_epoch`` at the end of each epoch (BatchNorm re-estimation, the
validation score). It never touches the global RNG: callers seed it for dropout or
random initialisation.

Example:
    >>> opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    >>> fit(model, data, epochs=3, optimizer=opt, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

REPORTS_PER_EPOCH = 20  # progress is sent about this often within an epoch, and at its end


class TrainingCancelled(Exception):
    """``should_stop()`` returned True; the model is left part-trained and nothing is cached."""


@dataclass(frozen=True)
class TrainProgress:
    """Where training is; sent every few steps and at the end of each epoch (step == steps)."""

    epoch: int  # 1-based
    epochs: int
    step: int  # 1-based within the epoch
    steps: int  # steps per epoch
    loss: float  # mean training loss so far this epoch
    accuracy: float  # running training accuracy so far this epoch, 0..1
    val_accuracy: float | None = None  # filled at the end of each epoch by whoever scores it

    @property
    def index(self) -> int:
        """Optimiser steps taken before this one, over the whole run (0-based)."""
        return (self.epoch - 1) * self.steps + self.step - 1

    @property
    def total(self) -> int:
        """Optimiser steps in the whole run."""
        return self.epochs * self.steps


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator) -> tuple:
    """Index batches of one epoch in ``generator``'s order, without a last batch of one."""
    batches = torch.randperm(n, generator=generator).split(batch_size)
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches = batches[:-1]  # BatchNorm cannot train on a batch of one
    return batches


def steps_per_epoch(n: int, batch_size: int) -> int:
    """How many batches ``shuffled_batches`` gives for ``n`` examples."""
    return math.ceil(n / batch_size) - (n % batch_size == 1 and n > batch_size)


def fit(
    model: nn.Module,
    data,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    batch_size: int = 128,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    before_step: Callable[[TrainProgress], None] | None = None,
    after_step: Callable[[], None] | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
    after_epoch: Callable[[TrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> nn.Module:
    """Train ``model`` in place on ``data.train_x``/``train_y``; returns it in eval mode.

    Args:
        loss_fn: ``loss_fn(logits, y)``; a closure may add a penalty on the weights.
        before_step: gets the step about to run (``.index``, ``.total``; loss not yet
            known, so 0). It may raise ``TrainingCancelled`` to stop.
        after_step: runs after each optimiser (and scheduler) step, e.g. to re-apply masks.
        progress: gets the running loss and accuracy every few steps, but not at an
            epoch's last step: that one goes to ``after_epoch``.
        should_stop: polled before each step; True raises ``TrainingCancelled``, leaving
            the model part-trained (and in train mode).

    Batches go to the device of the model's first parameter.
    """
    device = next(model.parameters()).device
    n = len(data.train_y)
    for epoch in range(1, epochs + 1):
        batches = shuffled_batches(n, batch_size, generator)
        steps, every = len(batches), max(1, len(batches) // REPORTS_PER_EPOCH)
        model.train()
        loss_sum, hits, seen = 0.0, 0, 0
        for step, idx in enumerate(batches, start=1):
            if should_stop is not None and should_stop():
                raise TrainingCancelled(f"training stopped in epoch {epoch}, step {step}")
            if before_step is not None:
                before_step(TrainProgress(epoch, epochs, step, steps, 0.0, 0.0))
            x, y = data.train_x[idx].to(device), data.train_y[idx].to(device)
            logits = model(x)
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if after_step is not None:
                after_step()
            loss_sum += loss.item() * len(y)
            hits += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if progress is not None and step % every == 0 and step < steps:
                progress(TrainProgress(epoch, epochs, step, steps, loss_sum / seen, hits / seen))
        if after_epoch is not None:
            seen = max(seen, 1)  # an empty training split still ends its epochs
            after_epoch(TrainProgress(epoch, epochs, steps, steps, loss_sum / seen, hits / seen))
    return model.eval()
