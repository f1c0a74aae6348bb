"""Soft weight-sharing (Ullrich, Meeds & Welling, ICLR 2017): train under a mixture prior,
then snap every weight to its component.

The prior is a Gaussian mixture over all weights of the Conv2d/Linear layers: one
component pinned at 0 with a fixed large share (``zero_mix``), and ``components``
others whose means, variances and shares are learned with the network. The loss is
cross-entropy plus ``tau`` times the prior's negative log-likelihood per training
example, which pulls the weights into tight clusters and most of them to zero.
Afterwards each weight takes the mean of its most responsible component: weights
of the zero component are pruned, the others are coded as indexes into one shared
codebook of the component means, so the result is an ordinary compressed model
(record, exact artifact) like any other.

``get_soft_sharing`` remembers finished runs in the disk cache (``io/diskcache.py``),
so the dashboard and the CLI train each (base weights, data set, settings) once.

Started from a pruned model (``prune_phase``'s float copy with its masks in the
record), it holds those masks: pruned weights stay zero and out of the prior, and
only the kept weights are clustered (prune, then share; the zero component may
prune more).

Example:
    >>> small = soft_weight_sharing(base, data, SoftSharingConfig(epochs=4))
    >>> artifact_size(small).artifact_bytes
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..core.config import CompressionConfig, ConfigError
from ..core.layers import weight_layers
from ..core.pipeline import Result, base_hash, evaluate_compressed
from ..core.prune import apply_masks_
from ..core.quantize import round_mantissa
from ..core.record import (
    RECORD_ATTR,
    CompressionRecord,
    LayerRecord,
    QuantState,
    get_record,
    materialize,
)
from ..format.artifact import export, load_compressed
from ..io import diskcache
from .finetune import _Masked, _parametrized, _reapply
from .loop import TrainProgress, fit

CACHE_VERSION = 1  # bump when a change to the method makes cached runs wrong


@dataclass(frozen=True)
class SoftSharingConfig:
    """How to train under the mixture prior and snap to it."""

    epochs: int = 4  # training epochs under the prior
    components: int = 15  # non-zero components; codes take ceil(log2(components)) bits
    tau: float = 3e-3  # weight of the prior's negative log-likelihood per training example
    zero_mix: float = 0.95  # prior share of the zero component (fixed)
    lr: float = 5e-4  # Adam learning rate of the weights
    prior_lr: float = 1e-3  # Adam learning rate of the mixture's parameters
    batch_size: int = 128  # training batch size
    seed: int = 0  # batch order
    bias_mantissa: int = 23  # mantissa bits kept in the layers' biases (7: bfloat16's)

    def __post_init__(self) -> None:
        if not (isinstance(self.epochs, int) and 0 <= self.epochs <= 1000):
            raise ConfigError(f"epochs must be a whole number 0..1000; got {self.epochs!r}")
        if not (isinstance(self.components, int) and 1 <= self.components <= 255):
            raise ConfigError(f"components must be 1..255; got {self.components!r}")
        if not (0.0 < self.zero_mix < 1.0 and self.tau >= 0 and self.lr > 0):
            raise ConfigError("zero_mix must be in (0, 1), tau >= 0 and lr > 0")
        m = self.bias_mantissa
        if isinstance(m, bool) or not isinstance(m, int) or not 0 <= m <= 23:
            raise ConfigError(f"bias_mantissa must be a whole number from 0 to 23; got {m!r}")

    @property
    def code_bits(self) -> int:
        """Bits of a kept weight's code: ceil(log2(components)), at least 1."""
        return max(1, math.ceil(math.log2(self.components)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SoftSharingConfig:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown soft weight-sharing settings {sorted(unknown)}")
        return cls(**d)

    def key(self) -> str:
        """The settings as canonical JSON: the cache key of a run."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def label(self) -> str:
        """e.g. 'soft weight-sharing · 4 ep · 15 components · tau 0.003'."""
        return (
            f"soft weight-sharing · {self.epochs} ep · {self.components} components "
            f"· tau {self.tau:g}"
        )


class _Prior(nn.Module):
    """The mixture: component 0 at zero with share ``zero_mix``, the rest learned."""

    def __init__(self, weights: torch.Tensor, components: int, zero_mix: float):
        super().__init__()
        spread = float(weights.abs().max())
        self.means = nn.Parameter(torch.linspace(-spread, spread, components))
        width = torch.full((components + 1,), 2 * math.log(2 * spread / components))
        width[0] -= 2 * math.log(10)  # a narrow zero component: only weights near 0 join it
        self.log_var = nn.Parameter(width)
        self.logits = nn.Parameter(torch.zeros(components))
        self.zero_mix = zero_mix

    def log_joint(self, w: torch.Tensor) -> torch.Tensor:
        """log(share_j * N(w | mean_j, var_j)) for every weight and component: [n, J + 1]."""
        means = torch.cat([self.means.new_zeros(1), self.means])
        var = self.log_var.exp().clamp_min(1e-10)
        share = torch.cat(
            [
                self.means.new_tensor([math.log(self.zero_mix)]),
                math.log(1 - self.zero_mix) + F.log_softmax(self.logits, 0),
            ]
        )
        return share - 0.5 * torch.log(2 * math.pi * var) - (w[:, None] - means) ** 2 / (2 * var)

    def nll(self, w: torch.Tensor) -> torch.Tensor:
        return -torch.logsumexp(self.log_joint(w), dim=1).sum()


def soft_weight_sharing(
    base: nn.Module,
    data,
    cfg: SoftSharingConfig,
    progress: Callable[[TrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> nn.Module:
    """A compressed copy of ``base`` trained under the mixture prior, then snapped to it.

    ``base`` may be pruned (float weights with masks in its record): the masks are
    held and only kept weights join the prior. ``progress`` gets the running loss
    every few steps and at each epoch's end; ``should_stop()`` returning True raises
    ``TrainingCancelled`` at the next step.

    Example:
        >>> pruned = prune_phase(base, data, config, FinetuneConfig(epochs=4), tracker)
        >>> small = soft_weight_sharing(pruned, data, SoftSharingConfig(zero_mix=0.3))
    """
    model = copy.deepcopy(base)
    layers = weight_layers(model)
    masks = _masks_of(model)
    kept = {n: _kept(m.weight, masks.get(n)) for n, m in layers.items()}
    with _parametrized(model, {n: _Masked(m) for n, m in masks.items()}) as originals:

        def flat() -> torch.Tensor:  # the kept weights, as the forward sees them
            return torch.cat([m.weight.reshape(-1)[kept[n]] for n, m in layers.items()])

        prior = _Prior(flat().detach(), cfg.components, cfg.zero_mix)
        opt = torch.optim.Adam(
            [
                {"params": model.parameters(), "lr": cfg.lr},
                {"params": prior.parameters(), "lr": cfg.prior_lr},
            ]
        )
        n = len(data.train_y)

        def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(logits, y) + cfg.tau * prior.nll(flat()) / n

        fit(
            model,
            data,
            epochs=cfg.epochs,
            optimizer=opt,
            generator=torch.Generator().manual_seed(cfg.seed),
            loss_fn=loss_fn,
            batch_size=cfg.batch_size,
            after_step=lambda: _reapply(originals, masks),
            progress=progress,
            after_epoch=progress,
            should_stop=should_stop,
        )
    apply_masks_(model, masks)
    return _snap(model, layers, prior, cfg, masks)


def _masks_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """The pruning masks a float model's record holds; quantized layers are refused."""
    record = get_record(model)
    if record is None:
        return {}
    if record.structured or any(layer.quant is not None for layer in record.layers.values()):
        raise ConfigError(
            "soft weight-sharing starts from float weights, dense or pruned per weight; "
            "this model is already quantized or has channels removed"
        )
    return {n: layer.mask for n, layer in record.layers.items() if layer.mask is not None}


def _kept(weight: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Flat positions of the kept weights (all of them without a mask)."""
    if mask is None:
        return torch.arange(weight.numel())
    return mask.reshape(-1).nonzero().view(-1)


@torch.no_grad()
def _snap(
    model: nn.Module, layers: dict, prior: _Prior, cfg: SoftSharingConfig, masks=None
) -> nn.Module:
    """Each weight to its most responsible component: 0 is pruned, the rest share a codebook.

    A weight its mask pruned stays pruned."""
    bits = max(1, math.ceil(math.log2(cfg.components)))
    codebook = torch.zeros(1, 2**bits)
    codebook[0, : cfg.components] = prior.means.detach()
    record_layers, pruned, total = {}, 0, 0
    for name, module in layers.items():
        w = module.weight
        component = prior.log_joint(w.reshape(-1)).argmax(dim=1)
        mask = component > 0
        if masks and name in masks:
            mask &= masks[name].reshape(-1)
            component = torch.where(mask, component, 0)
        codes = component[mask] - 1
        quant = QuantState("codebook", bits, codes, torch.zeros_like(codes), codebook=codebook)
        layer = LayerRecord(mask.reshape(w.shape), quant)
        w.copy_(materialize(w.shape, layer, None))
        if module.bias is not None:
            module.bias.copy_(round_mantissa(module.bias, cfg.bias_mantissa))
        record_layers[name] = layer
        pruned, total = pruned + int((~mask).sum()), total + mask.numel()
    config = CompressionConfig(
        prune_rate=pruned / total, bits=bits, quant="kmeans", scope="global", skip_first_last=False
    )
    setattr(model, RECORD_ATTR, CompressionRecord(config, record_layers))
    return model


# --- a disk cache, written only when a run has finished -----------------------------------


def cache_path(base, data, cfg: SoftSharingConfig, cache_dir=None) -> Path:
    """Where the artifact for (base weights, data set, settings) is cached."""
    key = {"base": base_hash(base), "dataset": data.name, "sws": cfg.key()}
    key["version"] = CACHE_VERSION
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    name = f"{base.slimscope_spec.name}-{data.name}-{digest}.slim"
    return diskcache.entry("soft-sharing", name, cache_dir)


def get_soft_sharing(
    base: nn.Module,
    data,
    cfg: SoftSharingConfig,
    cache_dir: str | os.PathLike | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> nn.Module:
    """``soft_weight_sharing``, remembered on disk: a cached artifact is loaded, else trained.

    The artifact is written atomically once training has finished, so a stopped
    run leaves nothing under the final name.

    Example:
        >>> small = get_soft_sharing(base, data, SoftSharingConfig(epochs=2))
    """
    path = cache_path(base, data, cfg, cache_dir)
    cached = diskcache.read(path, load_compressed, "cached soft weight-sharing run", "retraining")
    if cached is not None:
        return cached
    model = soft_weight_sharing(base, data, cfg, progress, should_stop)
    diskcache.write(path, export(model), "the soft weight-sharing run")
    return model


def as_result(base: nn.Module, model: nn.Module, data, cfg: SoftSharingConfig, subset=None):
    """The snapped model as a ``Result`` (a row like any other, marked as trained)."""
    result: Result = evaluate_compressed(base, model, data, subset)
    result.finetune = {"soft_sharing": cfg.to_dict()}
    result.label = cfg.label()
    return result
