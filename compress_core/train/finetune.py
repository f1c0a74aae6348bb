"""Recovering accuracy: retrain after pruning, prune iteratively, and quantization-aware training.

One-shot compression shows how fragile a model is; deployments retrain. ``finetune``
is ``compress`` with training in between, and returns the same kind of model: a
copy whose weights hold the pruned and dequantized values, with a record that
describes them exactly (so ``export`` writes it and the artifact reads back bit
for bit). Three phases, each optional:

1. **Prune and retrain** (Han et al. 2015): ``epochs`` of training with the mask
   held (the forward masks the weight, so pruned weights get no gradient, and the
   mask is re-applied after every optimiser step, so Adam's momentum cannot revive
   them). With ``prune_steps > 1`` the sparsity rises along Zhu & Gupta's cubic
   schedule during the first ``ramp`` of the retraining, masks only ever growing.
2. **Quantize** the retrained weights with the engine's quantizer.
3. **Quantization-aware training** for ``qat_epochs``: uniform and symmetric train
   float shadow weights through a fake-quantized forward with a straight-through
   estimator, then quantize them for good; k-means keeps every weight's code and
   trains the shared centroids instead (the gradient of a centroid is the sum of
   its weights' gradients, as in Deep Compression). Activations, when quantized,
   are fake-quantized in the forward too, and recalibrated at the end.

Example:
    >>> small = finetune(base, data, CompressionConfig(prune_rate=0.9, bits=4),
    ...                  FinetuneConfig(epochs=2, prune_steps=3, qat_epochs=1))
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
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..core.config import FLOAT_BITS, CompressionConfig, ConfigError
from ..core.layers import select_layers
from ..core.pipeline import (
    Result,
    base_hash,
    baseline_metrics,
    calibration_batches,
    calibration_for,
    check_finite,
    evaluate_compressed,
)
from ..core.prune import PRUNERS, _keep_mask, apply_masks_
from ..core.quantize import calibrate_activations, quantize_tensor
from ..core.record import RECORD_ATTR, CompressionRecord, LayerRecord, get_record, materialize
from ..core.steps import calibrate_step_, layer_settings, quantize_step_, repair_step_
from ..io import diskcache
from .baseline import accuracy, recalibrate_bn_
from .loop import TrainingCancelled, TrainProgress, fit, steps_per_epoch

# Bump when a change makes cached models wrong (2: new skip_first_last; 3: k-means pins a
# 0.0 centroid where a channel has pruned weights).
CACHE_VERSION = 3
VAL_IMAGES = 2000  # validation images scored at the end of each epoch, for the progress bar


@dataclass(frozen=True)
class FinetuneConfig:
    """How to recover accuracy after compressing.

    Example:
        >>> FinetuneConfig(epochs=3, prune_steps=4, qat_epochs=1)
    """

    epochs: int = 2  # retraining epochs after pruning, mask held fixed; 0 = one-shot pruning
    prune_steps: int = 1  # prune in this many steps up to the target while retraining (cubic)
    qat_epochs: int = 0  # quantization-aware epochs after quantizing (k-means: centroids); 0 = PTQ
    lr: float = 5e-4  # Adam learning rate at the start of each phase, cosine-decayed to 0
    ramp: float = 0.5  # share of the retraining over which iterative pruning reaches the target
    batch_size: int = 128  # training batch size
    seed: int = 0  # batch order and random initialisations

    def __post_init__(self) -> None:
        for name, low in (("epochs", 0), ("prune_steps", 1), ("qat_epochs", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 1000:
                allowed = f"a whole number from {low} to 1000"
                raise ConfigError(f"{name} must be {allowed}; got {value!r}")
        if self.prune_steps > 1 and self.epochs == 0:
            raise ConfigError(
                "iterative pruning retrains between steps: set epochs >= 1, or prune_steps = 1"
            )
        for name, low, high in (("lr", 0.0, 1.0), ("ramp", 0.0, 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name} must be a number; got {value!r}")
            if not low < value <= high:
                raise ConfigError(f"{name} must be above {low} and at most {high}; got {value!r}")
            object.__setattr__(self, name, float(value))
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise ConfigError(f"batch_size must be a whole number; got {self.batch_size!r}")
        if not 2 <= self.batch_size <= 65536:
            raise ConfigError(f"batch_size must be from 2 to 65536; got {self.batch_size}")

    @property
    def trains(self) -> bool:
        return self.epochs + self.qat_epochs > 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FinetuneConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        if set(d) - known:
            raise ConfigError(f"unknown fine-tune keys {sorted(set(d) - known)}; known: {known}")
        return cls(**d)

    def key(self) -> str:
        """A stable string identifying these settings (a cache key)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def label(self) -> str:
        """A short human label, e.g. 'retrained 2 ep (3 steps) · QAT 1 ep'."""
        parts = []
        if self.epochs:
            steps = f" ({self.prune_steps} steps)" if self.prune_steps > 1 else ""
            parts.append(f"retrained {self.epochs} ep{steps}")
        if self.qat_epochs:
            parts.append(f"QAT {self.qat_epochs} ep")
        return " · ".join(parts) or "one-shot"


@dataclass(frozen=True)
class FinetuneProgress:
    """Where a recovery run is; sent every few steps and at the end of each epoch."""

    stage: str  # "prune" (retraining), "qat" (fake-quant STE) or "centroids" (k-means)
    epoch: int  # 1-based, within the stage
    epochs: int  # epochs in the stage
    step: int  # 1-based within the epoch
    steps: int  # steps per epoch
    loss: float  # mean training loss so far this epoch
    accuracy: float  # running training accuracy so far this epoch, 0..1
    sparsity: float  # share of the compressed layers' weights that are pruned now
    fraction: float  # of the whole run (all stages), 0..1
    val_accuracy: float | None = None  # on a fixed validation subset, at the end of each epoch


@dataclass
class Tracker:
    """Reports progress across stages and checks for a stop request."""

    progress: Callable[[FinetuneProgress], None] | None
    should_stop: Callable[[], bool] | None
    total_epochs: int
    done_epochs: int = 0

    def check(self, where: str) -> None:
        if self.should_stop is not None and self.should_stop():
            raise TrainingCancelled(f"fine-tuning stopped {where}; nothing was kept")


def prune_schedule(target: float, steps: int) -> list[float]:
    """Zhu & Gupta's gradual schedule: sparsity after each of ``steps`` pruning steps.

    Example:
        >>> [round(s, 3) for s in prune_schedule(0.9, 3)]
        [0.633, 0.867, 0.9]
    """
    return [target * (1 - (1 - k / steps) ** 3) for k in range(1, steps + 1)]


def nested_masks(
    weights: dict[str, torch.Tensor],
    previous: dict[str, torch.Tensor] | None,
    rate: float | dict[str, float],
    method: str,
    scope: str,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Keep-masks at ``rate`` that never revive a weight ``previous`` pruned.

    ``rate`` may differ per layer (a dict, scope "layer"). Without ``previous`` they
    equal ``prune.unstructured_masks`` (same scores, same ties).
    """
    generator = torch.Generator().manual_seed(seed)
    scores = {n: PRUNERS[method].score(w.detach(), generator) for n, w in weights.items()}
    if previous:  # scores are >= 0: pruned weights rank below every kept one
        scores = {n: s.masked_fill(~previous[n], -1.0) for n, s in scores.items()}
    if scope == "layer":
        rates = rate if isinstance(rate, dict) else dict.fromkeys(scores, rate)
        return {n: _keep_mask(s, rates[n]) for n, s in scores.items()}
    keep = _keep_mask(torch.cat([s.reshape(-1) for s in scores.values()]), rate)
    parts = keep.split([s.numel() for s in scores.values()])
    return {n: p.view_as(s) for (n, s), p in zip(scores.items(), parts, strict=True)}


# --- the training loop ----------------------------------------------------------------


def _fit(model, params, data, epochs, ft, stage, tracker, before_step=None, after_step=None):
    """Train ``params`` of ``model`` in place: Adam, learning rate cosine-decayed to 0.

    ``before_step(t, total)`` runs before optimiser step t (pruning events);
    ``after_step()`` after it (re-applying masks).
    """
    steps = steps_per_epoch(len(data.train_y), ft.batch_size)
    opt = torch.optim.Adam(params, lr=ft.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(_cosine, total=epochs * steps))

    def before(p: TrainProgress) -> None:
        tracker.check(f"in {stage} epoch {p.epoch}, step {p.step}")
        if before_step is not None:
            before_step(p.index, p.total)

    def after_epoch(p: TrainProgress) -> None:
        recalibrate_bn_(model, data.train_x)
        _report(model, data, tracker, stage, p)
        tracker.done_epochs += 1

    fit(
        model,
        data,
        epochs=epochs,
        optimizer=opt,
        scheduler=sched,
        generator=torch.Generator().manual_seed(ft.seed + 7919 * tracker.done_epochs),
        batch_size=ft.batch_size,
        before_step=before,
        after_step=after_step,
        progress=lambda p: _report(model, data, tracker, stage, p),
        after_epoch=after_epoch,
    )


def _cosine(t: int, total: int) -> float:
    return 0.5 * (1 + math.cos(math.pi * t / total))


def _report(model, data, tracker, stage: str, p: TrainProgress) -> None:
    if tracker.progress is None:
        return
    val = None
    if p.step == p.steps:  # the end of an epoch
        val = accuracy(model, data.val_x[:VAL_IMAGES], data.val_y[:VAL_IMAGES])
    fraction = (tracker.done_epochs + p.step / p.steps) / max(tracker.total_epochs, 1)
    tracker.progress(
        FinetuneProgress(
            stage,
            p.epoch,
            p.epochs,
            p.step,
            p.steps,
            p.loss,
            p.accuracy,
            _sparsity(model),
            fraction,
            val,
        )
    )


def _sparsity(model: nn.Module) -> float:
    record = get_record(model)
    layers = [] if record is None else record.layers.values()
    masks = [layer.mask for layer in layers if layer.mask is not None]
    total = sum(m.numel() for m in masks)
    return 1 - sum(int(m.sum()) for m in masks) / total if total else 0.0


# --- weight parametrizations: what the forward sees while training -------------------------


class _Masked(nn.Module):
    """weight -> weight with the pruned entries zeroed, so they get no gradient either."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.mask = mask

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w.masked_fill(~self.mask, 0.0)


class _FakeQuant(nn.Module):
    """weight -> the engine's quantized value in the forward, identity in the backward (STE)."""

    def __init__(self, mask: torch.Tensor | None, bits: int, method: str, per_channel: bool):
        super().__init__()
        self.mask, self.bits, self.method, self.per_channel = mask, bits, method, per_channel

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.mask is not None:
            w = w.masked_fill(~self.mask, 0.0)
        q = quantize_tensor(w.detach(), self.mask, self.bits, self.method, self.per_channel)
        target = materialize(w.shape, LayerRecord(self.mask, q), None)
        return w + (target - w).detach()


class _SharedWeights(nn.Module):
    """weight -> codebook[code] at each kept position: the codebook is what trains.

    Autograd's scatter of ``codebook[groups, codes]`` sums the gradients of all
    weights sharing a centroid into it: Deep Compression's centroid update.
    ``held`` entries (the pinned 0.0 of ``quantize_tensor``) stay 0.0 and get no gradient.
    """

    def __init__(self, layer: LayerRecord, numel: int, hold_zero: bool = True):
        super().__init__()
        q = layer.quant
        self.codebook = nn.Parameter(q.codebook.detach().clone())
        self.held = _pinned_zeros(q.codebook) if hold_zero else None
        self.codes, self.groups = q.codes, q.groups
        mask = layer.mask
        kept = torch.arange(numel) if mask is None else mask.reshape(-1).nonzero().view(-1)
        self.positions = kept

    def table(self) -> torch.Tensor:
        if self.held is None:
            return self.codebook
        return self.codebook.masked_fill(self.held, 0.0)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        values = self.table()[self.groups, self.codes]
        return w.new_zeros(w.numel()).scatter(0, self.positions, values).view_as(w)


def _pinned_zeros(codebook: torch.Tensor) -> torch.Tensor:
    """The entries that are exactly +0.0 (k-means pins them where a group has pruned
    weights; the artifact stores those weights as that code)."""
    return (codebook == 0) & ~torch.signbit(codebook)


class _parametrized:
    """Context: the named layers' weights computed by the given parametrizations.

    Yields the raw ("original") weight of each; on exit the raw weights are put back.
    """

    def __init__(self, model: nn.Module, parts: dict[str, nn.Module]):
        self.modules = dict(model.named_modules())
        self.parts = parts

    def __enter__(self) -> dict[str, nn.Parameter]:
        self.order = {n: list(self.modules[n]._parameters) for n in self.parts}
        for name, part in self.parts.items():
            parametrize.register_parametrization(self.modules[name], "weight", part)
        return {n: self.modules[n].parametrizations.weight.original for n in self.parts}

    def __exit__(self, *exc) -> None:
        for name, order in self.order.items():
            module = self.modules[name]
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
            # Removal re-adds ``weight`` after ``bias``; the artifact needs the model's order.
            params = dict(module._parameters)
            module._parameters.clear()
            module._parameters.update((k, params[k]) for k in order)


class _ActivationSTE:
    """Input fake-quant with a straight-through gradient (the engine's hook has none)."""

    def __init__(self, bits: int, scale: float, zero_point: int):
        self.bits, self.scale, self.zero_point = bits, scale, zero_point

    def __call__(self, module: nn.Module, inputs: tuple) -> tuple:
        x = inputs[0]
        q = torch.clamp(torch.round(x / self.scale) + self.zero_point, 0, 2**self.bits - 1)
        return (x + ((q - self.zero_point) * self.scale - x).detach(),) + tuple(inputs[1:])


class _activation_ste:
    """Context: fake-quantize the inputs of the compressed layers while training, if asked."""

    def __init__(self, model: nn.Module, data, config: CompressionConfig):
        self.model, self.data, self.config, self.handles = model, data, config, []

    def __enter__(self) -> None:
        if self.config.act_bits == FLOAT_BITS:
            return
        names = select_layers(self.model, self.config)[0]
        params = calibrate_activations(
            self.model,
            names,
            calibration_batches(self.data),
            self.config.act_bits,
            self.config.act_calibration,
        )
        modules = dict(self.model.named_modules())
        for name, p in params.items():
            hook = _ActivationSTE(p["bits"], p["scale"], p["zero_point"])
            self.handles.append(modules[name].register_forward_pre_hook(hook))

    def __exit__(self, *exc) -> None:
        for h in self.handles:
            h.remove()


# --- the phases -----------------------------------------------------------------------------


def _reapply(originals: dict[str, nn.Parameter], masks: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, mask in masks.items():
            originals[name].masked_fill_(~mask, 0.0)


def _retrain_masked_(model, record, targets, data, config, ft, tracker) -> None:
    """Prune the layers of ``targets`` (name -> rate, in ``ft.prune_steps`` steps) and
    retrain with masks held. Scope "global" ranks all layers at ``config.prune_rate``."""
    modules = dict(model.named_modules())
    weights = {n: modules[n].weight for n in targets}
    if config.scope == "global":
        rates = prune_schedule(config.prune_rate, ft.prune_steps)
    else:  # step k takes every layer the same share of the way to its own target
        steps = {n: prune_schedule(r, ft.prune_steps) for n, r in targets.items()}
        rates = [{n: s[k] for n, s in steps.items()} for k in range(ft.prune_steps)]
    masks = nested_masks(weights, None, rates[0], config.prune_method, config.scope, config.seed)
    apply_masks_(model, masks)
    record.layers = {n: LayerRecord(mask=m) for n, m in masks.items()}
    if ft.epochs == 0:
        return
    done = [1]  # pruning steps taken

    def before_step(originals, parts, t: int, total: int) -> None:
        k = done[0]
        if k < len(rates) and t >= k * ft.ramp * total / len(rates):
            new = nested_masks(
                originals, masks, rates[k], config.prune_method, config.scope, config.seed
            )
            masks.update(new)
            for n, m in new.items():
                parts[n].mask = record.layers[n].mask = m
            _reapply(originals, masks)
            done[0] += 1

    retrain_masked_(model, masks, data, ft, tracker, before_step)


def retrain_masked_(model, masks, data, ft, tracker, before_step=None) -> None:
    """Train all of ``model`` in place for ``ft.epochs`` with the named layers' ``masks`` held.

    The forward masks each weight and the mask is re-applied after every step, so
    a pruned weight stays exactly zero. ``before_step(originals, parts, t, total)``
    may grow the masks (iterative pruning) by updating ``masks`` and ``parts``.
    """
    parts = {n: _Masked(m) for n, m in masks.items()}
    with _parametrized(model, parts) as originals:
        step = None if before_step is None else partial(before_step, originals, parts)
        _fit(
            model,
            list(model.parameters()),
            data,
            ft.epochs,
            ft,
            "prune",
            tracker,
            step,
            lambda: _reapply(originals, masks),
        )
    apply_masks_(model, masks)  # +0.0 everywhere pruned


def prune_phase(base, data, config, ft, tracker, overrides=None) -> nn.Module:
    """A float copy of ``base``: pruned as ``config`` says and retrained for ``ft.epochs``.

    ``overrides`` (name glob -> {"prune_rate": r}, as ``compress`` takes them, scope
    "layer") gives layers their own target rates; iterative pruning takes every layer
    the same share of the way to its target at each step.
    """
    from ..core.pipeline import compress

    if config.structured or (config.prune_rate == 0 and not overrides):
        model = compress(base, config)  # channels physically removed: nothing to hold
        if config.prune_rate > 0 and ft.epochs:
            _fit(model, list(model.parameters()), data, ft.epochs, ft, "prune", tracker)
        return model
    model = copy.deepcopy(base).eval()
    names, skipped = select_layers(model, config)
    record = CompressionRecord(config=config, skipped=skipped)
    setattr(model, RECORD_ATTR, record)
    targets = {n: s.prune_rate for n, s in layer_settings(names, config, overrides).items()}
    if targets:
        _retrain_masked_(model, record, targets, data, config, ft, tracker)
    empty = [n for n, layer in record.layers.items() if not layer.mask.any()]
    if empty:
        record.warnings.append(
            f"{', '.join(empty)} lost every weight: its output no longer depends on its input "
            "(only the bias is left)"
        )
    return model


def train_ste_(model, record, bits, method, per_channel, data, config, ft, tracker) -> None:
    """Quantization-aware training of float shadow weights; quantize them afterwards."""
    masks = {n: record.layers[n].mask for n in bits if n in record.layers}
    masks = {n: m for n, m in masks.items() if m is not None}
    parts = {n: _FakeQuant(masks.get(n), b, method, per_channel) for n, b in bits.items()}
    with _parametrized(model, parts) as originals, _activation_ste(model, data, config):
        _fit(
            model,
            list(model.parameters()),
            data,
            ft.qat_epochs,
            ft,
            "qat",
            tracker,
            after_step=lambda: _reapply(originals, masks),
        )
    apply_masks_(model, masks)


def train_centroids_(model, record, names, data, config, ft, tracker, hold_zero=True) -> None:
    """Fine-tune the shared k-means centroids with every code fixed; weights := new decode.

    ``hold_zero``: centroids at exactly +0.0 (pinned by ``quantize_tensor``) stay there.
    """
    modules = dict(model.named_modules())
    parts = {
        n: _SharedWeights(record.layers[n], modules[n].weight.numel(), hold_zero) for n in names
    }
    with _parametrized(model, parts) as originals:
        for p in originals.values():
            p.requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
        with _activation_ste(model, data, config):
            _fit(model, params, data, ft.qat_epochs, ft, "centroids", tracker)
    with torch.no_grad():
        for n, part in parts.items():
            layer, w = record.layers[n], modules[n].weight
            layer.quant.codebook = part.table().detach().clone().contiguous()
            w.requires_grad_(True)
            w.copy_(materialize(w.shape, layer, None))


def quantize_phase_(model, record, bits, data, config, ft, tracker) -> None:
    """Quantize with ``config.quant`` at per-layer ``bits``, quantization-aware when asked.

    Pruned layers left in float (a budget plan may keep a layer at 32 bits) train
    on with their masks held, so their pruned weights stay zero.
    """
    per_channel = config.granularity == "per_channel"
    held = {n: layer.mask for n, layer in record.layers.items() if n not in bits}
    held = {n: m for n, m in held.items() if m is not None} if ft.qat_epochs else {}
    with _parametrized(model, {n: _Masked(m) for n, m in held.items()}):
        if ft.qat_epochs and config.quant != "kmeans":
            train_ste_(model, record, bits, config.quant, per_channel, data, config, ft, tracker)
        quantize_step_(model, record, bits, config.quant, per_channel)
        if ft.qat_epochs and config.quant == "kmeans":
            train_centroids_(model, record, list(bits), data, config, ft, tracker)
    apply_masks_(model, held)  # +0.0 where pruned


def repair_and_calibrate_(model, base, record: CompressionRecord, data, config) -> None:
    """The repairs and activation calibration on the final weights, as ``compress`` runs them."""
    names = select_layers(model, config)[0]
    batches = calibration_for(data, config)
    repair_step_(model, base, record, names, config, batches)
    calibrate_step_(model, record, names, config, batches)


# --- the public verbs -----------------------------------------------------------------------


def planned_epochs(config: CompressionConfig, ft: FinetuneConfig) -> int:
    """Epochs a run will train: retraining only when something is pruned, QAT when quantized."""
    return ft.epochs * (config.prune_rate > 0) + ft.qat_epochs * config.quantized


def finetune(
    base: nn.Module,
    data,
    config: CompressionConfig,
    ft: FinetuneConfig,
    progress: Callable[[FinetuneProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> nn.Module:
    """A compressed copy of ``base`` (never changed) with accuracy recovered by training.

    Like ``compress``: the copy's weights are the decoded record, so ``export``
    writes it. With ``FinetuneConfig(epochs=0, qat_epochs=0)`` it equals
    ``compress(base, config)``. ``should_stop()`` returning True raises
    ``TrainingCancelled`` at the next step.

    Example:
        >>> small = finetune(base, data, CompressionConfig(prune_rate=0.9), FinetuneConfig(3))
    """
    if config.structured and ft.prune_steps > 1:
        raise ConfigError(
            "iterative pruning (prune_steps > 1) needs magnitude or random pruning; "
            "channel pruning runs in one step"
        )
    check_finite(base, "base model")
    tracker = Tracker(progress, should_stop, planned_epochs(config, ft))
    float_config = dataclasses.replace(config, bits=FLOAT_BITS, act_bits=FLOAT_BITS)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ft.seed)
        model = prune_phase(base, data, float_config, ft, tracker)
        record = get_record(model)
        record.config = config
        if config.quantized:
            names = select_layers(model, config)[0]
            quantize_phase_(
                model, record, {n: config.bits for n in names}, data, config, ft, tracker
            )
        repair_and_calibrate_(model, base, record, data, config)
    check_finite(model, "fine-tuned model")
    return model.eval()


def finetuned_path(base, data, config, ft, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the fine-tuned artifact for (base weights, data set, config, ft) is cached."""
    spec = base.slimscope_spec
    key = {
        "base": base_hash(base),
        "dataset": data.name,
        "config": config.key(),
        "finetune": ft.key(),
        "version": CACHE_VERSION,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return diskcache.entry("finetuned", f"{spec.name}-{data.name}-{digest}.slim", cache_dir)


def get_finetuned(
    base, data, config, ft, cache_dir=None, progress=None, should_stop=None
) -> nn.Module:
    """``finetune``, remembered on disk: a cached artifact is loaded, else trained and saved.

    The artifact is written atomically (temp file, then rename) only once training
    has finished, so a cancelled run leaves nothing under the final name.
    """
    from ..format.artifact import export, load_compressed

    path = finetuned_path(base, data, config, ft, cache_dir)
    cached = diskcache.read(path, load_compressed, "cached fine-tuned model", "retraining")
    if cached is not None:
        return cached
    model = finetune(base, data, config, ft, progress, should_stop)
    diskcache.write(path, export(model), "the fine-tuned model")
    return model


def run_finetuned(
    base, data, config, ft, subset=None, cache_dir=None, progress=None, should_stop=None
) -> Result:
    """Fine-tune (or load the cached result of doing so), evaluate and measure: a ``Result``.

    ``result.finetune`` holds the settings, so its row is marked ``finetuned``.

    Example:
        >>> r = run_finetuned(base, data, CompressionConfig(prune_rate=0.9), FinetuneConfig(2))
        >>> r.to_row()["finetuned"]
        True
    """
    import time

    started = time.perf_counter()
    model = get_finetuned(base, data, config, ft, cache_dir, progress, should_stop)
    result = evaluate_compressed(base, model, data, subset, started)
    result.finetune = ft.to_dict()
    result.label = f"{config.label()} · {ft.label()}"
    return result


def finetune_sweep(
    base,
    data,
    configs,
    ft,
    subset=None,
    cache_dir=None,
    on_result=None,
    should_stop=None,
    executor=None,
) -> list[Result]:
    """``run_finetuned`` for every config (e.g. one setting at several pruning rates).

    ``executor`` (``analysis/executors.py``) trains the configs in parallel: in a
    process pool or on Ray, with the base model and data shipped once. Each trained
    model is also kept in the disk cache (``cache_dir``, resolved here so that
    local workers write where this process reads). ``on_result(i, result)`` is
    called as each finishes; ``should_stop`` is polled between configs.

    Example:
        >>> configs = [CompressionConfig(prune_rate=r) for r in (0.5, 0.7, 0.9)]
        >>> results = finetune_sweep(base, data, configs, FinetuneConfig(1), executor=ex)
    """
    from ..analysis.executors import run_grid

    cache_dir = str(diskcache.root(cache_dir))
    baseline_metrics(base, data, subset)  # once here, shipped with the model
    base_hash(base)
    shared = (base, data, ft, subset, cache_dir)
    return run_grid(executor, _finetune_point, configs, shared, on_result, should_stop)


def _finetune_point(base, data, ft, subset, cache_dir, config) -> Result:
    return run_finetuned(base, data, config, ft, subset, cache_dir)
