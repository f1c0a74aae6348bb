"""The public verbs: compress a copy, measure it, evaluate it, and run all three."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..eval.evaluate import Metrics, evaluate
from ..eval.memo import MEMO, dataset_key
from .config import FLOAT_BITS, CompressionConfig
from .layers import FilterFn, select_layers, weight_layers
from .record import (
    RECORD_ATTR,
    SPEC_ATTR,
    CompressionRecord,
    ModelSpec,
    get_record,
    get_spec,
)
from .steps import (
    CompressionError,
    calibrate_step_,
    layer_settings,
    prune_step_,
    quantize_step_,
    repair_step_,
)


def check_finite(model: nn.Module, what: str = "model") -> None:
    """Raise CompressionError naming the first tensor holding NaN or Inf."""
    for name, t in model.state_dict().items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CompressionError(
                f"the {what} has NaN/Inf values in {name}; retrain it or load a healthy checkpoint"
            )


def compress(
    model: nn.Module,
    config: CompressionConfig,
    calibration: list[torch.Tensor] | None = None,
    *,
    filter_fn: FilterFn | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    example_inputs: torch.Tensor | None = None,
) -> nn.Module:
    """A pruned and quantized copy of any ``nn.Module``; ``model`` itself is never changed.

    Linear, Conv1d and Conv2d layers (grouped and depthwise included) are
    compressed; ``filter_fn(module, name)`` and ``config.include/exclude``
    choose which, and ``overrides`` sets ``prune_rate``/``bits`` per layer
    by name glob (later patterns win). Pruning runs first, then quantization
    of the kept weights, then the repairs the config asks for (BatchNorm
    re-estimation, bias correction), then activation calibration. The copy is
    a plain module whose weights hold the decoded values, plus a
    ``CompressionRecord`` (``model.slimscope_record``) from which ``export``
    writes the artifact. ``calibration`` (a few training batches) is needed
    for activation quantization and the repairs; ``example_inputs`` (one
    batch) for channel pruning of a model that is not in the registry.

    Example:
        >>> small = compress(base, CompressionConfig(prune_rate=0.5, bits=4))
        >>> mixed = compress(net, CompressionConfig(bits=4), overrides={"fc1": {"bits": 2}},
        ...                  filter_fn=lambda m, name: not name.startswith("head"))
    """
    check_finite(model, "base model")
    out = copy.deepcopy(model).eval()
    names, skipped = select_layers(out, config, filter_fn)
    settings = layer_settings(names, config, overrides)
    record = CompressionRecord(config=config, skipped=skipped)
    if example_inputs is not None and get_spec(out) is None:
        setattr(out, SPEC_ATTR, _spec_of(out, example_inputs))
    try:
        prune_step_(out, record, settings, config, example_inputs)
    except ValueError as e:  # Torch-Pruning could not trace or cut the model
        raise CompressionError(str(e)) from e
    bits = {n: s.bits for n, s in settings.items()}
    per_channel = config.granularity == "per_channel"
    quantize_step_(out, record, bits, config.quant, per_channel)
    repair_step_(out, model, record, names, config, calibration)
    calibrate_step_(out, record, names, config, calibration)
    check_finite(out, "compressed model")
    setattr(out, RECORD_ATTR, record)
    return out


def _spec_of(model: nn.Module, example: torch.Tensor) -> ModelSpec:
    """A spec for a model outside the registry: its class name and input shape."""
    last = list(weight_layers(model).values())[-1] if weight_layers(model) else None
    classes = int(last.weight.shape[0]) if last is not None else 0
    return ModelSpec(type(model).__name__, tuple(int(d) for d in example.shape[1:]), classes)


def measure(model: nn.Module):
    """Parameter counts and bytes; ``artifact_bytes`` is the exported artifact's exact length."""
    from ..format.artifact import artifact_size

    return artifact_size(model)


def weights_hash(model: nn.Module) -> str:
    """A short hash of a model's weights, to tell which base a result came from."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def layer_table(model: nn.Module, size) -> list[dict[str, Any]]:
    """One row per Conv/Linear layer: shape, sparsity, bits and stored bytes."""
    record = get_record(model) or CompressionRecord(config=CompressionConfig())
    stored = {row["name"]: row["total_bytes"] for row in size.layers}
    encoding = {row["name"]: row["encoding"] for row in size.layers}
    rows = []
    for name, m in weight_layers(model).items():
        w = m.weight
        layer = record.layers.get(name)
        bits = layer.quant.bits if layer is not None and layer.quant is not None else FLOAT_BITS
        nbytes = sum(b for t, b in stored.items() if t.rsplit(".", 1)[0] == name)
        rows.append(
            {
                "layer": name,
                "type": type(m).__name__,
                "shape": "x".join(map(str, w.shape)),
                "params": w.numel(),
                "nonzero": int(torch.count_nonzero(w)),
                "sparsity": 1 - int(torch.count_nonzero(w)) / max(w.numel(), 1),
                "bits": bits,
                "bytes": nbytes,
                "encoding": encoding.get(f"{name}.weight", ""),  # how the artifact stores it
                "skipped": record.skipped.get(name, ""),
            }
        )
    return rows


@dataclass
class Result:
    """One compressed configuration, evaluated and measured: a row of every table and plot."""

    model: str
    dataset: str
    config: dict[str, Any]
    label: str
    accuracy: float
    loss: float
    baseline_accuracy: float
    baseline_loss: float
    total_params: int
    nonzero_params: int
    baseline_params: int
    dense_bytes: int  # the uncompressed base model in fp32
    artifact_bytes: int  # the exported artifact's exact length
    eval_images: int
    base_hash: str
    seconds: float
    finite: bool = True
    per_class: list[float] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)  # test images whose prediction flipped
    changed_from: list[int] = field(default_factory=list)  # their baseline prediction
    changed_to: list[int] = field(default_factory=list)  # their new predicted class
    layers: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    finetune: dict[str, Any] = field(default_factory=dict)  # recovery settings, empty = one-shot
    created: float = field(default_factory=time.time)

    @property
    def ratio(self) -> float:
        return self.dense_bytes / max(self.artifact_bytes, 1)

    @property
    def delta_pp(self) -> float:
        return 100 * (self.accuracy - self.baseline_accuracy)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_row(self) -> dict[str, Any]:
        """A flat dict for a pandas row: settings, metrics, sizes."""
        row = {"model": self.model, "dataset": self.dataset, "label": self.label}
        row["key"] = CompressionConfig.from_dict(self.config).key()
        row.update(self.config)
        row.update(
            accuracy=self.accuracy,
            delta_pp=self.delta_pp,
            loss=self.loss,
            total_params=self.total_params,
            nonzero_params=self.nonzero_params,
            artifact_bytes=self.artifact_bytes,
            dense_bytes=self.dense_bytes,
            ratio=self.ratio,
            finetuned=bool(self.finetune),
            finite=self.finite,
            eval_images=self.eval_images,
            seconds=self.seconds,
        )
        row["include"], row["exclude"] = ",".join(row["include"]), ",".join(row["exclude"])
        return row


def baseline_metrics(base: nn.Module, data, subset: int | None = None) -> Metrics:
    """The base model's test metrics, computed once per (base, data set, subset) in ``MEMO``."""
    key = ("eval", dataset_key(data), subset)
    return MEMO.get_or(base, key, lambda: evaluate(base, data.test_x, data.test_y, subset))


def base_hash(base: nn.Module) -> str:
    """``weights_hash`` of ``base``, computed once per model object (a copy gets its own)."""
    return MEMO.get_or(base, ("weights hash",), lambda: weights_hash(base))


def calibration_batches(data, n: int = 1024, batch: int = 256) -> list[torch.Tensor]:
    """The first ``n`` training images in batches: activation ranges and repairs use them."""
    return list(data.train_x[:n].split(batch))


def calibration_for(data, config: CompressionConfig) -> list[torch.Tensor] | None:
    """Calibration batches when ``config`` needs them (activation bits, repairs), else None."""
    needs = config.act_bits != FLOAT_BITS or config.recalibrate_bn or config.bias_correction
    return calibration_batches(data) if needs else None


def evaluate_compressed(
    base: nn.Module, compressed: nn.Module, data, subset: int | None = None, started=None
) -> Result:
    """Evaluate and measure an already compressed model against its base."""
    started = time.perf_counter() if started is None else started
    ref = baseline_metrics(base, data, subset)
    metrics = evaluate(compressed, data.test_x, data.test_y, subset, base=base)
    size = measure(compressed)
    record = get_record(compressed) or CompressionRecord(config=CompressionConfig())
    spec = get_spec(compressed) or get_spec(base)
    flipped = metrics.predictions != ref.predictions
    base_params = sum(p.numel() for p in base.parameters())
    warnings = list(record.warnings)
    if not metrics.finite:
        warnings.append("the compressed model outputs NaN/Inf: its accuracy is meaningless")
    return Result(
        model=spec.name if spec is not None else type(base).__name__,
        dataset=data.name,
        config=record.config.to_dict(),
        label=record.config.label(),
        accuracy=metrics.accuracy,
        loss=metrics.loss,
        baseline_accuracy=ref.accuracy,
        baseline_loss=ref.loss,
        total_params=size.total_params,
        nonzero_params=size.nonzero_params,
        baseline_params=base_params,
        dense_bytes=base_params * 4,
        artifact_bytes=size.artifact_bytes,
        eval_images=len(metrics.indices),
        base_hash=base_hash(base),
        seconds=time.perf_counter() - started,
        finite=metrics.finite,
        per_class=metrics.per_class,
        changed=metrics.indices[flipped].tolist(),
        changed_from=ref.predictions[flipped].tolist(),
        changed_to=metrics.predictions[flipped].tolist(),
        layers=layer_table(compressed, size),
        warnings=warnings,
    )


def run_on(base: nn.Module, data, config: CompressionConfig, subset: int | None = None) -> Result:
    """Compress ``base`` (never mutated) with ``config``, evaluate and measure the copy."""
    started = time.perf_counter()
    compressed = compress(base, config, calibration_for(data, config))
    return evaluate_compressed(base, compressed, data, subset, started)


def run(
    model_name: str,
    dataset: str,
    config: CompressionConfig,
    *,
    epochs: int | None = None,
    seed: int = 0,
    subset: int | None = None,
    cache_dir: str | None = None,
    data_dir: str | None = None,
    progress=None,
) -> Result:
    """Train (or load) the baseline, compress it with ``config``, evaluate and measure.

    Example:
        >>> r = run("lenet5", "digits", CompressionConfig(prune_rate=0.5, bits=4))
        >>> r.accuracy, r.artifact_bytes, r.ratio
    """
    from ..train.baseline import get_baseline

    base, data = get_baseline(
        model_name,
        dataset,
        epochs=epochs,
        seed=seed,
        cache_dir=cache_dir,
        data_dir=data_dir,
        progress=progress,
    )
    return run_on(base, data, config, subset)
