"""Repairs after pruning and quantization: BatchNorm re-estimation and bias correction.

Compression shifts the statistics of every activation downstream of a changed
weight, while BatchNorm keeps normalising with the base model's running mean
and variance. Re-estimating those statistics on a few training batches
(AIMET's "BN re-estimation", Nagel et al. 2019) recovers much of the loss
without training. Bias correction (AIMET's empirical bias correction) shifts
each compressed layer's bias so that its mean output per channel matches the
base model's on the same batches. Both touch only float tensors the artifact
stores as float32 (BatchNorm statistics, biases), never the coded weights.
"""

from __future__ import annotations

import torch
from torch import nn

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def run_batches(model: nn.Module, batches: list[torch.Tensor]) -> None:
    """Forward every batch (moved to the model's device), without gradients."""
    device = next(model.parameters()).device
    with torch.no_grad():
        for x in batches:
            model(x.to(device))


def recalibrate_bn_(model: nn.Module, batches: list[torch.Tensor]) -> int:
    """Re-estimate every BatchNorm's running mean and variance on ``batches``; returns how many.

    A cumulative average over all batches (momentum None) is exact for the
    weights as they are. Only the BatchNorm layers run in train mode (no
    dropout); the model's mode is restored afterwards.
    """
    norms = [m for m in model.modules() if isinstance(m, BN_TYPES) and m.track_running_stats]
    if not norms or not batches:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        run_batches(model, batches)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)
    return len(norms)


def _channel_means(model: nn.Module, names: list[str], batches) -> dict[str, torch.Tensor]:
    """Mean output of each named module per channel (dim 1), over all ``batches``."""
    modules = dict(model.named_modules())
    sums: dict[str, torch.Tensor] = {}

    def hook(name):
        def record(module, inputs, output):
            dims = [d for d in range(output.dim()) if d != 1]
            mean = output.detach().double().mean(dim=dims)
            sums[name] = sums.get(name, 0) + mean

        return record

    handles = [modules[n].register_forward_hook(hook(n)) for n in names]
    try:
        run_batches(model, batches)
    finally:
        for h in handles:
            h.remove()
    return {n: s / len(batches) for n, s in sums.items()}


def correct_bias_(
    model: nn.Module, base: nn.Module, names: list[str], batches: list[torch.Tensor]
) -> list[str]:
    """Shift the named layers' biases so their mean outputs match ``base``'s; returns those fixed.

    Layers without a bias, or whose output channels were removed, are left alone.
    All layers are measured in one pass of each model and corrected together
    (AIMET corrects them one at a time; that costs a pass per layer).
    """
    modules, base_modules = dict(model.named_modules()), dict(base.named_modules())
    usable = [
        n
        for n in names
        if getattr(modules[n], "bias", None) is not None
        and n in base_modules
        and base_modules[n].weight.shape[0] == modules[n].weight.shape[0]
    ]
    if not usable or not batches:
        return []
    model.eval()
    target = _channel_means(base, usable, batches)
    current = _channel_means(model, usable, batches)
    with torch.no_grad():
        for n in usable:
            bias = modules[n].bias
            bias.add_((target[n] - current[n]).to(bias.device, bias.dtype))
    return usable
