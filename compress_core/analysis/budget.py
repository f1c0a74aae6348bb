"""The smallest model that keeps accuracy >= delta: per-layer plans and the search for one.

A *plan* gives each layer its own pruning rate and bit width
(``{"fc1": LayerSetting(0.9, 3), ...}``); ``compress_plan`` builds it with the
engine's own masks, quantizers and record, so ``export``/``artifact_size``
measure it exactly and ``evaluate_compressed`` works on it.

``search`` answers "what is the smallest model I can ship?": minimise the
artifact bytes (or the non-zero parameters) subject to validation accuracy
>= delta. It runs in three stages, each deciding on the validation split only:

1. the uniform grid (every rate x bit width for all layers at once); its best
   point that meets delta is the reference and the first candidate;
2. layer sensitivity (``sensitivity.py``), then AIMET's greedy selection: for
   a tolerance t every layer takes its cheapest setting whose estimated drop
   is <= t; the largest t whose whole model still meets delta is found by
   bisection;
3. Neural Compressor-style accuracy-aware refinement: from the best model so
   far, try moving one layer at a time to its next cheaper setting and keep a
   move only when the whole model still meets delta.

Every candidate is compressed, measured and evaluated for real; the answer is
the smallest one that meets delta, so it is never larger than the best
uniform point (which is itself a candidate). Its test accuracy is reported
after the choice is made.

Example:
    >>> r = search(base, data, Budget(max_drop_pp=1.0))
    >>> r.met, r.best.plan, r.best.artifact_bytes, r.test.accuracy
"""

from __future__ import annotations

import copy
import dataclasses
import glob
import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..core.config import FLOAT_BITS, CompressionConfig, ConfigError
from ..core.layers import select_layers, weight_layers
from ..core.pipeline import (
    CompressionError,
    Result,
    calibration_for,
    check_finite,
    compress,
    evaluate_compressed,
)
from ..core.record import RECORD_ATTR, CompressionRecord
from ..core.steps import LayerSetting, prune_step_
from ..format.artifact import artifact_size
from ..train.finetune import (
    FinetuneConfig,
    FinetuneProgress,
    Tracker,
    quantize_phase_,
    repair_and_calibrate_,
    retrain_masked_,
)
from .executors import run_grid
from .sensitivity import SensitivityPoint, baseline_split_metrics, sensitivity, split_metrics
from .sweep import GRID_BITS, GRID_RATES

OBJECTIVES = {"artifact_bytes": "compressed bytes", "nonzero_params": "non-zero parameters"}
DEFAULT_CONFIG = CompressionConfig()  # frozen: safe as a shared default
MAX_EVALS = 60  # whole-model evaluations allowed in stages 2 and 3 together
ACCURACY_EPS = 1e-9  # accuracies are k/n: this only absorbs float error in "baseline - X pp"


# --- plans -------------------------------------------------------------------------


Plan = dict[str, LayerSetting]


def as_plan(plan: Mapping[str, LayerSetting | tuple[float, int] | list]) -> Plan:
    """A plan from settings or (rate, bits) pairs, e.g. ``{"fc1": (0.9, 4)}``."""
    return {
        name: s if isinstance(s, LayerSetting) else LayerSetting(*s) for name, s in plan.items()
    }


def plan_label(plan: Mapping[str, LayerSetting]) -> str:
    """'conv2 50% · 8-bit, fc1 90% · 3-bit' for the layers the plan changes."""
    changed = [
        f"{n} {s.label()}" for n, s in plan.items() if s.prune_rate > 0 or s.bits != FLOAT_BITS
    ]
    return ", ".join(changed) or "float baseline"


def plan_config(plan: Mapping[str, LayerSetting], common: CompressionConfig) -> CompressionConfig:
    """The config recorded with a plan: ``common``'s methods over exactly the plan's layers.

    Its rate and bits are 0 and float: the per-layer values live in the layer records.
    """
    return dataclasses.replace(
        common,
        prune_rate=0.0,
        bits=FLOAT_BITS,
        scope="layer",
        include=tuple(glob.escape(n) for n in plan),
        exclude=(),
        skip_first_last=False,
    )


def compress_plan(
    base: nn.Module,
    plan: Mapping[str, LayerSetting | tuple[float, int]],
    common: CompressionConfig = DEFAULT_CONFIG,
    calibration: list[torch.Tensor] | None = None,
) -> nn.Module:
    """A copy of ``base`` with each planned layer pruned and quantized to its own setting.

    ``common`` supplies the methods (unstructured pruning method, quantizer,
    granularity, activation bits, Huffman coding, seed); layers not in the plan
    are left alone. Ranking is per layer (each layer reaches its own rate).

    Example:
        >>> small = compress_plan(base, {"fc1": (0.9, 4), "conv2": (0.5, 8)})
        >>> artifact_size(small).artifact_bytes
    """
    plan = _checked_plan(base, plan, common)
    overrides = {glob.escape(n): dataclasses.asdict(s) for n, s in plan.items()}
    return compress(base, plan_config(plan, common), calibration, overrides=overrides)


def _checked_plan(base: nn.Module, plan, common: CompressionConfig) -> Plan:
    """The plan as settings, once its layers exist and its pruning is per weight."""
    plan = as_plan(plan)
    if common.structured:
        raise CompressionError(
            "per-layer plans prune single weights; choose magnitude or random pruning "
            "(channel pruning per layer is not supported yet)"
        )
    layers = weight_layers(base)
    unknown = [n for n in plan if n not in layers]
    if unknown:
        raise CompressionError(f"no prunable layer named {unknown}; choose from {list(layers)}")
    return plan


# --- the budget and the answer ---------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """The accuracy to keep and what to minimise. Give ``min_accuracy`` or ``max_drop_pp``.

    Example:
        >>> Budget(max_drop_pp=1.0)  # at most 1 point below the baseline's validation accuracy
        >>> Budget(min_accuracy=0.85, objective="nonzero_params")
    """

    min_accuracy: float | None = None  # validation accuracy to keep, 0..1
    max_drop_pp: float | None = None  # or: at most this many points below the baseline
    objective: str = "artifact_bytes"  # artifact_bytes | nonzero_params

    def __post_init__(self) -> None:
        if (self.min_accuracy is None) == (self.max_drop_pp is None):
            raise ConfigError("give exactly one of min_accuracy (0..1) or max_drop_pp (points)")
        if self.min_accuracy is not None and not 0.0 <= self.min_accuracy <= 1.0:
            raise ConfigError(f"min_accuracy must be from 0 to 1; got {self.min_accuracy!r}")
        if self.max_drop_pp is not None and not 0.0 <= self.max_drop_pp <= 100.0:
            raise ConfigError(f"max_drop_pp must be from 0 to 100 points; got {self.max_drop_pp!r}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(
                f"objective must be one of {', '.join(OBJECTIVES)}; got {self.objective!r}"
            )

    def delta(self, baseline_accuracy: float) -> float:
        """The validation accuracy a model must reach, given the baseline's."""
        if self.min_accuracy is not None:
            return self.min_accuracy
        return baseline_accuracy - self.max_drop_pp / 100

    def label(self) -> str:
        if self.min_accuracy is not None:
            return f"accuracy ≥ {self.min_accuracy:.2%}"
        return f"at most {self.max_drop_pp:g} pp below the baseline"


@dataclass
class Candidate:
    """One whole model that was built, measured and evaluated on the validation split."""

    plan: dict[str, tuple[float, int]]  # layer -> (prune_rate, bits), every planned layer
    label: str
    source: str  # "uniform" | "greedy" | "refine"
    val_accuracy: float
    artifact_bytes: int
    nonzero_params: int
    config: dict[str, Any] | None = None  # the uniform CompressionConfig, for "uniform"
    finite: bool = True
    layer_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # (bytes, non-zero)
    # Every stored module, searched or not: (parameters, non-zero, bytes), weights, biases
    # and buffers together; with ``header_bytes`` they sum to the artifact exactly.
    modules: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    header_bytes: int = 0

    def objective(self, name: str) -> tuple:
        """Sort key: the objective, then the other size, then higher accuracy first."""
        other = "nonzero_params" if name == "artifact_bytes" else "artifact_bytes"
        return (getattr(self, name), getattr(self, other), -self.val_accuracy)

    def to_row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        for name in ("plan", "config", "layer_sizes", "modules", "header_bytes"):
            row.pop(name)
        return row


@dataclass
class BudgetProgress:
    """Where the search is: stage, whole-model evaluations done, a line for the user."""

    stage: str  # "uniform grid" | "sensitivity" | "greedy" | "refine" | "test"
    done: int
    total: int  # an upper bound: the search may finish early
    message: str

    @property
    def fraction(self) -> float:
        """How far a progress bar is: ``done`` over ``total``, at most 1."""
        return min(self.done / max(self.total, 1), 1.0)


@dataclass(frozen=True)
class BudgetCounts:
    """How many models a search built, counted once so every page number agrees.

    ``built`` is the uniform grid's models (``grid``) plus the evaluations the greedy
    and refinement stages spent (``used``, at most ``allowed``: the page's allowance).
    ``steps`` is what the progress bar counts: every whole model evaluated on
    validation (``built``), every one-layer model behind the sensitivity curves,
    and every test evaluation.
    """

    built: int  # whole models built, measured and evaluated on validation
    by_source: dict[str, int]  # of those: "uniform", "greedy", "refine" -> how many
    met: int  # of those, how many reach delta on validation
    sensitivity: int  # one-layer models behind the sensitivity curves
    tested: int  # models then evaluated on the test split (the answer, the best uniform)
    allowed: int  # the evaluations allowed after the grid (``max_evals``)

    @property
    def steps(self) -> int:
        return self.built + self.sensitivity + self.tested

    @property
    def grid(self) -> int:
        """Models of the uniform grid (every rate x bit width; fewer when stopped)."""
        return self.by_source.get("uniform", 0)

    @property
    def used(self) -> int:
        """Evaluations the greedy and refinement stages spent: at most ``allowed``."""
        return self.by_source.get("greedy", 0) + self.by_source.get("refine", 0)


@dataclass(frozen=True)
class PlanTotals:
    """The chosen model summed over ``plan_rows``: every layer, searched or left intact."""

    params: int  # every parameter, weights and biases
    nonzero: int  # of those, not exactly zero: the model's non-zero parameters
    layer_bytes: int  # the layers' bytes in the file
    header_bytes: int  # the file's header

    @property
    def artifact_bytes(self) -> int:
        """The file's exact length: the layers and the header."""
        return self.layer_bytes + self.header_bytes


def meets(c: Candidate, delta: float) -> bool:
    """Whether a candidate reaches ``delta`` (finite outputs, validation accuracy >= delta)."""
    return c.finite and c.val_accuracy >= delta - ACCURACY_EPS


@dataclass
class BudgetResult:
    """The answer of ``search``: the smallest plan meeting delta, and what it was compared with."""

    budget: dict[str, Any]
    common: dict[str, Any]
    delta: float  # the validation accuracy to keep
    baseline_val_accuracy: float
    baseline_params: int
    dense_bytes: int  # the base model in fp32
    layers: list[str]  # the layers the search could change
    met: bool  # some candidate reached delta
    best: Candidate | None  # the smallest candidate meeting delta (None when not met)
    closest: Candidate | None  # when not met: the most accurate candidate
    best_uniform: Candidate | None  # the smallest uniform grid point meeting delta
    test: Result | None  # the chosen model (best, else closest) on the test split
    uniform_test: Result | None  # the best uniform point on the test split
    tried: list[Candidate] = field(default_factory=list)  # every candidate, in order
    sensitivity: list[dict[str, Any]] = field(default_factory=list)  # SensitivityPoint rows
    seconds: float = 0.0
    stopped: bool = False  # should_stop ended the search early: the answer is the best so far
    max_evals: int = MAX_EVALS  # the evaluations allowed after the uniform grid

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON; the test results without their per-image lists."""
        out = dataclasses.asdict(self)
        for name in ("test", "uniform_test"):
            for key in ("changed", "changed_from", "changed_to"):
                (out[name] or {}).pop(key, None)
        return out

    @property
    def chosen(self) -> Candidate | None:
        return self.best if self.met else self.closest

    def counts(self) -> BudgetCounts:
        """The counts a page shows (models built, meeting delta, by stage), from ``tried``.

        Example:
            >>> c = r.counts()
            >>> c.built == len(r.tried) == sum(c.by_source.values())
            True
        """
        sources = {}
        for c in self.tried:
            sources[c.source] = sources.get(c.source, 0) + 1
        return BudgetCounts(
            built=len(self.tried),
            by_source=sources,
            met=sum(meets(c, self.delta) for c in self.tried),
            sensitivity=len(self.sensitivity),
            tested=(self.test is not None) + (self.uniform_test is not None),
            allowed=self.max_evals,
        )

    def tried_rows(self) -> list[dict[str, Any]]:
        """Every candidate as a row (``Candidate.to_row``) with ``meets``: reaches delta."""
        return [dict(c.to_row(), meets=meets(c, self.delta)) for c in self.tried]

    def size_vs_dense(self) -> float:
        """The chosen model's bytes against the fp32 model's, as a change: -0.9 is 10x smaller."""
        return self.chosen.artifact_bytes / self.dense_bytes - 1

    def nonzero_vs_baseline(self) -> float:
        """The chosen model's non-zero parameters against the baseline's parameters, a change."""
        return self.chosen.nonzero_params / self.baseline_params - 1

    def saved_vs_uniform(self) -> float | None:
        """How much smaller the answer is than the best uniform point, in the objective."""
        if self.best is None or self.best_uniform is None:
            return None
        name = self.budget["objective"]
        return 1 - getattr(self.best, name) / max(getattr(self.best_uniform, name), 1)

    def plan_rows(self) -> list[dict[str, Any]]:
        """One row per stored layer of the chosen model, against the best uniform point.

        Every layer is here, the ones the search set (``searched``) and the ones it left
        intact (at 0 % and float), each with its weights and biases together: the rows'
        ``nonzero`` sum to the model's non-zero parameters, and their ``bytes`` with
        ``totals().header_bytes`` to the artifact's length. ``nonzero_share`` is the
        share of the layer's parameters that are not zero (what the plan chart shows):
        quantizing can zero weights that pruning kept.
        """
        if self.chosen is None:
            return []
        uniform = self.best_uniform
        rows = []
        for layer, (params, nonzero, nbytes) in self.chosen.modules.items():
            row = {"layer": layer, "searched": layer in self.chosen.plan}
            row.update(_layer_columns(self.chosen, layer, params, nonzero, nbytes))
            if uniform is not None and layer in uniform.modules:
                u = _layer_columns(uniform, layer, *uniform.modules[layer])
            else:
                u = dict.fromkeys(("prune_rate", "bits", "nonzero_share", "bytes"))
            row.update({f"uniform_{k}": u[k] for k in ("prune_rate", "bits", "nonzero_share")})
            row["uniform_bytes"] = u["bytes"]
            rows.append(row)
        return rows

    def totals(self) -> PlanTotals | None:
        """The chosen model's ``plan_rows`` summed, with the header: its exact counts.

        Example:
            >>> n = r.totals()
            >>> (n.artifact_bytes, n.nonzero) == (r.chosen.artifact_bytes, r.chosen.nonzero_params)
            True
        """
        if self.chosen is None:
            return None
        rows = self.chosen.modules.values()
        return PlanTotals(
            params=sum(p for p, _, _ in rows),
            nonzero=sum(n for _, n, _ in rows),
            layer_bytes=sum(b for _, _, b in rows),
            header_bytes=self.chosen.header_bytes,
        )


def _layer_columns(c: Candidate, layer: str, params: int, nonzero: int, nbytes: int) -> dict:
    rate, bits = c.plan.get(layer, (0.0, FLOAT_BITS))
    return {
        "prune_rate": rate,
        "bits": bits,
        "params": params,
        "nonzero": nonzero,
        "nonzero_share": nonzero / params if params else None,
        "bytes": nbytes,
    }


def build(base: nn.Module, data, candidate: Candidate, common: CompressionConfig) -> nn.Module:
    """The compressed model a candidate stands for (its uniform config, or its plan)."""
    config = CompressionConfig.from_dict(candidate.config) if candidate.config else common
    calibration = calibration_for(data, config)
    if candidate.config is not None:
        return compress(base, config, calibration)
    return compress_plan(base, candidate.plan, common, calibration)


# --- fine-tuning a plan ------------------------------------------------------------


def finetuned_plan(
    base: nn.Module,
    data,
    plan: Mapping[str, LayerSetting | tuple[float, int]],
    common: CompressionConfig = DEFAULT_CONFIG,
    ft: FinetuneConfig | None = None,
    progress: Callable[[FinetuneProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> nn.Module:
    """``compress_plan`` with training in between: a copy of ``base``, never ``base`` itself.

    The engine's prune step gives each planned layer its own mask (as
    ``compress_plan`` does); ``ft.epochs`` retrain the whole model with those
    masks held (``finetune.retrain_masked_``); each layer is then quantized to
    its own bits, quantization-aware for ``ft.qat_epochs`` (k-means: its
    centroids), and repaired and calibrated as ``compress`` would. The masks are
    the one-shot plan's, so a pruned weight stays zero and each layer keeps
    its number of levels. ``should_stop()`` returning True raises
    ``TrainingCancelled`` at the next step.

    Example:
        >>> r = search(base, data, Budget(max_drop_pp=1.0))
        >>> small = finetuned_plan(base, data, r.best.plan, ft=FinetuneConfig(epochs=2))
    """
    ft = ft or FinetuneConfig()
    if ft.prune_steps > 1:
        raise ConfigError("a plan's masks are fixed: fine-tune it with prune_steps = 1")
    plan = _checked_plan(base, plan, common)
    config = plan_config(plan, common)
    pruned = any(s.prune_rate > 0 for s in plan.values())
    quantized = {n: s.bits for n, s in plan.items() if s.bits != FLOAT_BITS}
    epochs = ft.epochs * pruned + ft.qat_epochs * bool(quantized)
    tracker = Tracker(progress, should_stop, epochs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ft.seed)
        model = copy.deepcopy(base).eval()
        record = CompressionRecord(config=config, skipped=select_layers(model, config)[1])
        setattr(model, RECORD_ATTR, record)
        prune_step_(model, record, plan, config)
        masks = {n: layer.mask for n, layer in record.layers.items() if layer.mask is not None}
        if masks and ft.epochs:
            retrain_masked_(model, masks, data, ft, tracker)
        if quantized:
            quantize_phase_(model, record, quantized, data, config, ft, tracker)
        repair_and_calibrate_(model, base, record, data, config)
    check_finite(model, "fine-tuned model")
    return model.eval()


def finetune_plan(
    base: nn.Module,
    data,
    plan: Mapping[str, LayerSetting | tuple[float, int]],
    common: CompressionConfig = DEFAULT_CONFIG,
    ft: FinetuneConfig | None = None,
    progress: Callable[[FinetuneProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Result:
    """Fine-tune a plan the search returned, then measure it: test accuracy and exact bytes.

    Example:
        >>> r = search(base, data, Budget(max_drop_pp=1.0))
        >>> tuned = finetune_plan(base, data, r.best.plan, ft=FinetuneConfig(epochs=2))
        >>> tuned.accuracy, tuned.artifact_bytes
    """
    ft = ft or FinetuneConfig()
    started = time.perf_counter()
    model = finetuned_plan(base, data, plan, common, ft, progress, should_stop)
    result = evaluate_compressed(base, model, data, None, started)
    result.finetune = ft.to_dict()
    result.label = f"{plan_label(as_plan(plan))} · {ft.label()}"
    return result


# --- the search --------------------------------------------------------------------


@dataclass
class _Search:
    """The state the stages share: settings, the candidates so far, progress."""

    base: nn.Module
    data: Any
    common: CompressionConfig
    budget: Budget
    delta: float
    layers: list[str]
    subset: int | None
    total: int
    progress: Callable[[BudgetProgress], None] | None
    should_stop: Callable[[], bool] | None
    max_evals: int = MAX_EVALS  # whole-model evaluations allowed after the uniform grid
    tried: list[Candidate] = field(default_factory=list)
    seen: dict[tuple, Candidate] = field(default_factory=dict)
    done: int = 0
    stopped: bool = False

    def stop(self) -> bool:
        if not self.stopped and self.should_stop is not None and self.should_stop():
            self.stopped = True
        return self.stopped

    def tick(self, stage: str, message: str) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(BudgetProgress(stage, self.done, max(self.total, self.done), message))

    def meets(self, c: Candidate) -> bool:
        return meets(c, self.delta)

    def key(self, c: Candidate) -> tuple:
        return c.objective(self.budget.objective)

    def best(self) -> Candidate | None:
        ok = [c for c in self.tried if self.meets(c)]
        return min(ok, key=self.key) if ok else None

    def build(self, c: Candidate) -> nn.Module:
        return build(self.base, self.data, c, self.common)

    def evaluate(self, plan: dict, source: str, stage: str, config=None) -> Candidate:
        """Build, measure and evaluate one whole model on validation (memoised by plan)."""
        c = self.seen.get(_plan_key_of(plan, config))
        if c is None:
            c = measure_candidate(self.base, self.data, self.common, self.subset, (plan, config))
            c.source = source
            self.remember(c)
            self.report(c, stage)
        return c

    def remember(self, c: Candidate) -> None:
        self.seen[_plan_key_of(c.plan, c.config)] = c
        self.tried.append(c)

    def report(self, c: Candidate, stage: str) -> None:
        verdict = "meets" if self.meets(c) else "misses"
        self.tick(
            stage, f"{c.label}: val {c.val_accuracy:.2%} ({verdict} δ), {c.artifact_bytes:,} B"
        )


def _plan_key_of(plan: dict, config) -> tuple:
    return (tuple(sorted(plan.items())), config is not None)


def measure_candidate(base, data, common, subset, todo: tuple[dict, dict | None]) -> Candidate:
    """Build the plan (or uniform config), measure it, evaluate it on validation."""
    plan, config = todo
    label = CompressionConfig.from_dict(config).label() if config else plan_label(as_plan(plan))
    c = Candidate(plan, label, "", 0.0, 0, 0, config)
    model = build(base, data, c, common)
    metrics = split_metrics(model, data, "val", subset, base=base)
    size = artifact_size(model)
    c.val_accuracy, c.finite = metrics.accuracy, metrics.finite
    c.artifact_bytes, c.nonzero_params = size.artifact_bytes, size.nonzero_params
    rows = {row["name"]: row for row in size.layers}
    c.layer_sizes = {
        n: (rows[f"{n}.weight"]["total_bytes"], rows[f"{n}.weight"]["nonzero"]) for n in plan
    }
    c.modules = module_sizes(size.layers, {n for n, _ in model.named_parameters()})
    c.header_bytes = size.header_bytes
    return c


def module_sizes(rows: list[dict], parameters: set[str]) -> dict[str, tuple[int, int, int]]:
    """``artifact_size`` rows summed per module: (parameters, non-zero parameters, bytes).

    A module's weight, bias and buffers go together; buffers (BatchNorm statistics) count
    in its bytes but not in its parameters, as ``Size.nonzero_params`` counts them.
    """
    out: dict[str, tuple[int, int, int]] = {}
    for row in rows:
        is_param = row["name"] in parameters
        module = row["name"].rpartition(".")[0]
        params, nonzero, nbytes = out.get(module, (0, 0, 0))
        out[module] = (
            params + row["numel"] * is_param,
            nonzero + row["nonzero"] * is_param,
            nbytes + row["total_bytes"],
        )
    return out


Costs = dict[tuple[str, float, int], tuple[int, int]]  # (layer, rate, bits) -> (bytes, non-zero)
Drops = dict[tuple[str, float, int], float]  # (layer, rate, bits) -> estimated drop in points


def _uniform_stage(s: _Search, rates, bits, executor: Executor | None = None) -> Costs:
    """Stage 1: the uniform grid. Returns each layer's exact (bytes, non-zero) per setting.

    The grid's models are independent, so they run on ``executor``; they are kept
    in grid order whatever order they finish in, so the answer does not depend on it.
    """
    pairs = itertools.product(rates, bits)
    uniform = [dataclasses.replace(s.common, prune_rate=r, bits=b) for r, b in pairs]
    todo = [({n: (c.prune_rate, c.bits) for n in s.layers}, c.to_dict()) for c in uniform]
    shared = (s.base, s.data, s.common, s.subset)
    found = run_grid(
        executor, measure_candidate, todo, shared, lambda i, c: s.report(c, "uniform grid"), s.stop
    )
    costs = {}
    for c in found:
        c.source = "uniform"
        s.remember(c)
        for n in s.layers:
            r, b = c.plan[n]
            costs[n, r, b] = c.layer_sizes[n]
    return costs


def _estimated_drops(points: list[SensitivityPoint], costs: Costs) -> Drops:
    """Each (layer, rate, bits): the drop pruning alone costs plus the drop quantizing alone does.

    Gains (negative drops) count as zero, so noise never makes a setting look free.
    """
    prune = {(p.layer, p.prune_rate): max(0.0, -p.delta_pp) for p in points if p.kind == "prune"}
    quant = {(p.layer, p.bits): max(0.0, -p.delta_pp) for p in points if p.kind == "quantize"}
    return {
        (n, r, b): prune[n, r] + quant[n, b]
        for n, r, b in costs
        if (n, r) in prune and (n, b) in quant
    }


def _cost(s: _Search, costs: Costs, option: tuple[str, float, int]) -> tuple[int, int]:
    """Sort key of one layer's setting: the objective first, the other size second."""
    nbytes, nonzero = costs[option]
    return (nbytes, nonzero) if s.budget.objective == "artifact_bytes" else (nonzero, nbytes)


def _plan_at(s: _Search, costs: Costs, drops: Drops, tolerance: float) -> dict:
    """Every layer at its cheapest setting whose estimated drop is within ``tolerance``."""
    plan = {}
    for n in s.layers:
        options = [(o, d) for o, d in drops.items() if o[0] == n]
        fits = [(o, d) for o, d in options if d <= tolerance] or [min(options, key=lambda x: x[1])]
        (_, r, b), _ = min(fits, key=lambda x: (_cost(s, costs, x[0]), x[1]))
        plan[n] = (r, b)
    return plan


def _greedy_stage(s: _Search, costs: Costs, drops: Drops, max_evals: int) -> int:
    """Stage 2 (AIMET's greedy selection): bisect the largest per-layer tolerance meeting delta."""
    tolerances = sorted(set(drops.values()))
    lo, hi, used = -1, len(tolerances), 0  # plan_at(tolerances[lo]) meets, [hi] misses
    while hi - lo > 1 and used < max_evals and not s.stop():
        mid = (lo + hi) // 2
        plan = _plan_at(s, costs, drops, tolerances[mid])
        fresh = (tuple(sorted(plan.items())), False) not in s.seen
        c = s.evaluate(plan, "greedy", "greedy", None)
        used += fresh
        lo, hi = (mid, hi) if s.meets(c) else (lo, mid)
    return used


def _next_cheaper(
    s: _Search, costs: Costs, drops: Drops, n: str, current: tuple, failed: set, useless: set
) -> tuple | None:
    """Layer ``n``'s mildest untried step down in cost: least estimated drop, then smallest step."""
    here = _cost(s, costs, (n, *current))
    # A setting at least as harsh as one that failed (higher rate, fewer bits) fails too.
    harsh = [(r, b) for m, r, b in failed if m == n]
    cheaper = [
        o
        for o in drops
        if o[0] == n
        and _cost(s, costs, o) < here
        and not any(o[1] >= r and o[2] <= b for r, b in harsh)
        and o not in useless
    ]
    if not cheaper:
        return None
    return min(cheaper, key=lambda o: (drops[o], tuple(-v for v in _cost(s, costs, o))))[1:]


def _refine_stage(s: _Search, costs: Costs, drops: Drops, max_evals: int) -> None:
    """Stage 3 (Neural Compressor's accuracy-aware tuning): shrink one layer at a time.

    Climbs down from the smallest model meeting delta; when no single step from it
    works, climbs on from the next smallest not yet exhausted, so a local dead end
    does not end the search while evaluations are left.
    """
    failed: dict[tuple, set] = {}  # per start: settings that missed delta
    useless: dict[tuple, set] = {}  # per start: settings that met it without shrinking
    exhausted: set[tuple] = set()
    used = 0
    while used < max_evals and not s.stop():
        starts = [c for c in s.tried if s.meets(c) and _plan_key(c) not in exhausted]
        if not starts:
            return
        start = min(starts, key=s.key)
        here = _plan_key(start)
        bad, same = failed.setdefault(here, set()), useless.setdefault(here, set())
        moves = []
        for n in s.layers:
            step = _next_cheaper(s, costs, drops, n, start.plan[n], bad, same)
            if step is None:
                continue
            saving = _cost(s, costs, (n, *start.plan[n]))[0] - _cost(s, costs, (n, *step))[0]
            damage = max(0.0, drops[(n, *step)] - drops.get((n, *start.plan[n]), 0.0))
            moves.append((saving / (damage + 0.05), n, step))
        if not moves:
            exhausted.add(here)
            continue
        for _, n, step in sorted(moves, reverse=True):
            plan = dict(start.plan, **{n: step})
            fresh = (tuple(sorted(plan.items())), False) not in s.seen
            c = s.evaluate(plan, "refine", "refine", None)
            used += fresh
            if s.meets(c) and s.key(c) < s.key(start) and _plan_key(c) not in exhausted:
                break  # a new smallest model: climb on from it
            # Missing delta rules out every harsher setting; meeting it without shrinking
            # the whole model (a rare header effect), or reaching a dead end already
            # climbed from, rules out only this one.
            (bad if not s.meets(c) else same).add((n, *step))
            if used >= max_evals or s.stop():
                return


def _plan_key(c: Candidate) -> tuple:
    return tuple(sorted(c.plan.items()))


def _test_result(s: _Search, c: Candidate | None) -> Result | None:
    if c is None:
        return None
    result = evaluate_compressed(s.base, s.build(c), s.data)
    result.label = c.label
    s.tick("test", f"{c.label}: test {result.accuracy:.2%}")
    return result


def search(
    base: nn.Module,
    data,
    budget: Budget,
    common: CompressionConfig = DEFAULT_CONFIG,
    rates: Iterable[float] = GRID_RATES,
    bits: Iterable[int] = GRID_BITS,
    subset: int | None = None,
    max_evals: int = MAX_EVALS,
    progress: Callable[[BudgetProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    executor: Executor | None = None,
) -> BudgetResult:
    """The smallest model (per-layer rates and bits) whose validation accuracy is >= delta.

    ``common`` gives the methods (magnitude or random pruning, quantizer,
    granularity, Huffman, which layers: ``skip_first_last``, include/exclude);
    its own rate and bits are ignored. ``rates`` x ``bits`` are the settings
    each layer may take (and the uniform grid). ``subset`` limits the
    validation images. ``max_evals`` bounds the whole-model evaluations of the
    greedy and refinement stages. ``should_stop`` is polled between
    evaluations; a stopped search returns the best found so far. ``executor``
    (``executors.py``) runs the uniform grid and the sensitivity points, which are
    independent; the greedy and refinement stages run here, one model at a time.

    Example:
        >>> r = search(base, data, Budget(max_drop_pp=0.5, objective="artifact_bytes"))
        >>> r.best.artifact_bytes <= r.best_uniform.artifact_bytes
        True
    """
    started = time.perf_counter()
    rates, bits = sorted(set(rates)), sorted(set(bits))
    s = _start(base, data, budget, common, rates, bits, subset, max_evals, progress, should_stop)
    costs = _uniform_stage(s, rates, bits, executor)
    points = sensitivity(
        base,
        data,
        s.layers,
        rates,
        bits,
        s.common,
        "val",
        subset,
        on_point=lambda i, n, p: s.tick("sensitivity", f"{p.layer} {p.kind}: {p.delta_pp:+.2f} pp"),
        should_stop=s.stop,
        executor=executor,
    )
    drops = _estimated_drops(points, costs)
    if drops and not s.stop():
        used = _greedy_stage(s, costs, drops, max_evals)
        _refine_stage(s, costs, drops, max_evals - used)
    return _answer(s, points, time.perf_counter() - started)


def _start(base, data, budget, common, rates, bits, subset, max_evals, progress, should_stop):
    """Check the request and set up the search's shared state."""
    if common.structured:
        raise ConfigError("the budget search prunes single weights: choose magnitude or random")
    common = dataclasses.replace(common, scope="layer", prune_rate=0.0, bits=FLOAT_BITS)
    if not rates or not bits:
        raise ConfigError("give at least one pruning rate and one bit width")
    layers = select_layers(base, common)[0]
    if not layers:
        raise ConfigError(
            "no layer is left to compress; turn off 'keep first and last layer' or widen include"
        )
    delta = budget.delta(baseline_split_metrics(base, data, "val", subset).accuracy)
    total = len(rates) * len(bits) + len(layers) * (len(rates) + len(bits)) + max_evals + 2
    return _Search(
        base, data, common, budget, delta, layers, subset, total, progress, should_stop, max_evals
    )


def _answer(s: _Search, points: list[SensitivityPoint], seconds: float) -> BudgetResult:
    """The record: the smallest candidate meeting delta, else the most accurate one."""
    best = s.best()
    closest = None
    if best is None and s.tried:
        closest = max(
            s.tried, key=lambda c: (c.finite, c.val_accuracy, tuple(-v for v in s.key(c)))
        )
    uniform_ok = [c for c in s.tried if c.source == "uniform" and s.meets(c)]
    best_uniform = min(uniform_ok, key=s.key) if uniform_ok else None
    base_params = sum(p.numel() for p in s.base.parameters())
    return BudgetResult(
        budget=dataclasses.asdict(s.budget),
        common=s.common.to_dict(),
        delta=s.delta,
        baseline_val_accuracy=baseline_split_metrics(s.base, s.data, "val", s.subset).accuracy,
        baseline_params=base_params,
        dense_bytes=4 * base_params,
        layers=s.layers,
        met=best is not None,
        best=best,
        closest=closest,
        best_uniform=best_uniform,
        test=_test_result(s, best or closest),
        uniform_test=_test_result(s, best_uniform),
        tried=s.tried,
        sensitivity=[p.to_row() for p in points],
        seconds=seconds,
        stopped=s.stopped,
        max_evals=s.max_evals,
    )
