"""Pruning: unstructured masks (magnitude, random) and structured channel removal.

Unstructured methods zero single weights and record a boolean mask per layer.
Structured methods physically remove output channels with Torch-Pruning's
dependency graph, so the next layers' inputs, BatchNorm and residual adds
shrink with them and parameter count and latency really fall.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .config import PRUNE_METHODS, CompressionConfig
from .layers import weight_layers
from .record import get_spec
from .registry import Registry


@dataclass(frozen=True)
class PruneMethod:
    """A registered pruning method.

    Unstructured: ``score(weight, generator)`` gives a score per weight, the
    lowest pruned first. Structured: ``score()`` builds a Torch-Pruning group
    importance whose lowest-scored output channels are removed.
    """

    score: Callable
    structured: bool = False  # True: removes whole output channels through the dependency graph
    description: str = ""  # one line for the dashboard and the CLI


PRUNERS: Registry[PruneMethod] = Registry("pruning method", PRUNE_METHODS)


def register_pruning_method(name: str, *, structured: bool = False, description: str = ""):
    """Register ``score`` under ``name``: config, CLI and dashboard then accept it.

    Example:
        >>> @register_pruning_method("taylor")
        ... def taylor(weight, generator):
        ...     return weight.abs() * weight.grad.abs()
    """

    def add(score: Callable) -> Callable:
        PRUNERS.add(name, PruneMethod(score, structured, description or (score.__doc__ or "")))
        return score

    return add


@register_pruning_method("magnitude", description="drop the smallest |w| (Han et al.)")
def magnitude_score(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """|w|: the L1 magnitude criterion of Han et al. and torch.nn.utils.prune."""
    return weight.abs()


@register_pruning_method("random", description="drop weights at random (the baseline)")
def random_score(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Uniform noise: the baseline that shows magnitude matters."""
    # Drawn on the CPU generator, then moved: the same mask on every device.
    return torch.rand(weight.shape, generator=generator).to(weight.device)


def _group_norm(p: int) -> Callable:
    def importance():
        import torch_pruning as tp

        return tp.importance.GroupMagnitudeImportance(p=p)

    return importance


register_pruning_method(
    "l1-structured", structured=True, description="remove whole channels, smallest L1 norm first"
)(_group_norm(1))
register_pruning_method(
    "l2-structured", structured=True, description="remove whole channels, smallest L2 norm first"
)(_group_norm(2))


def _keep_mask(scores: torch.Tensor, rate: float) -> torch.Tensor:
    """True for the weights that survive; prunes round(rate * n) lowest scores.

    Uses the same rounding and ``torch.topk`` call as ``torch.nn.utils.prune``'s
    L1Unstructured, so ties break identically and the masks match exactly.
    """
    flat = scores.reshape(-1)
    n_prune = round(rate * flat.numel())
    keep = torch.ones_like(flat, dtype=torch.bool)
    if n_prune:
        keep[torch.topk(flat, k=n_prune, largest=False).indices] = False
    return keep.view_as(scores)


def unstructured_masks(
    weights: dict[str, torch.Tensor],
    rate: float | dict[str, float],
    method: str,
    scope: str,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Boolean keep-masks for the given weights; ``rate`` may differ per layer (scope "layer").

    Example:
        >>> masks = unstructured_masks({"fc1": w}, rate=0.5, method="magnitude", scope="layer")
        >>> masks["fc1"].float().mean()  # 0.5
    """
    method_ = PRUNERS[method]
    if method_.structured:
        raise ValueError(f"{method} removes channels; it gives no per-weight masks")
    score = method_.score
    generator = torch.Generator().manual_seed(seed)
    scores = {name: score(w.detach(), generator) for name, w in weights.items()}
    if scope == "layer":
        rates = rate if isinstance(rate, dict) else dict.fromkeys(scores, rate)
        return {name: _keep_mask(s.cpu(), rates[name]) for name, s in scores.items()}
    keep = _keep_mask(torch.cat([s.reshape(-1).cpu() for s in scores.values()]), rate)
    parts = keep.split([s.numel() for s in scores.values()])
    return {name: p.view_as(s) for (name, s), p in zip(scores.items(), parts, strict=True)}


def apply_masks_(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the pruned weights in place."""
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, mask in masks.items():
            weight = modules[name].weight
            weight.masked_fill_(~mask.to(weight.device), 0.0)  # +0.0, never -0.0


# --- structured ------------------------------------------------------------


def example_input(model: nn.Module, example: torch.Tensor | None = None) -> torch.Tensor:
    """One input batch to trace ``model`` with: ``example``, else zeros of its spec's shape."""
    if example is not None:
        return example
    spec = get_spec(model)
    if spec is None:
        raise ValueError(
            f"structured pruning traces the model, and {type(model).__name__} is not in the "
            "registry: pass an input, e.g. compress(model, config, example_inputs=torch.zeros("
            "1, 3, 32, 32))"
        )
    return torch.zeros(1, *spec.in_shape, device=next(model.parameters()).device)


def _dependency_graph(model: nn.Module, example: torch.Tensor | None = None):
    import torch_pruning as tp

    example = example_input(model, example)
    try:
        return tp.DependencyGraph().build_dependency(model, example_inputs=example)
    except Exception as e:  # Torch-Pruning traces with autograd: data-dependent code fails here
        raise ValueError(
            f"structured pruning cannot trace {type(model).__name__} ({type(e).__name__}: {e}); "
            "use magnitude or random pruning for it"
        ) from e


def _prune_out_channels_(graph, name: str, module: nn.Module, idxs: list[int]) -> None:
    try:
        fn = graph.get_pruner_of_module(module).prune_out_channels
        graph.get_pruning_group(module, fn, idxs=idxs).prune()
    except Exception as e:
        raise ValueError(_cannot(name, e)) from e


def _cannot(name: str, e: Exception) -> str:
    return (
        f"structured pruning cannot handle layer {name!r} ({type(e).__name__}: {e}); "
        f"leave it out with exclude=({name!r},) or use magnitude pruning"
    )


def structured_prune_(
    model: nn.Module,
    config: CompressionConfig,
    rates: dict[str, float],
    example: torch.Tensor | None = None,
) -> tuple[list[dict], list[str], dict[str, str]]:
    """Remove the least important output channels of the named layers, in place.

    ``rates`` maps each layer to its share of channels to remove (``scope``
    "global" ranks all of them together at ``config.prune_rate`` instead).
    Channels are ranked by the norm of everything coupled to them
    (Torch-Pruning's group importance). Each layer keeps at least one channel.
    The last layer's outputs (the classes) are never removed.

    Returns the replayable plan, warnings and the layers skipped (with why).
    """
    names = list(rates)
    graph = _dependency_graph(model, example)
    all_layers = weight_layers(model)
    names_of = {m: n for n, m in all_layers.items()}
    last = list(all_layers)[-1]
    ignored = [m for n, m in all_layers.items() if n not in names or n == last]
    importance = PRUNERS[config.prune_method].score()

    candidates, skipped = [], {}
    for group in graph.get_all_groups(
        ignored_layers=ignored, root_module_types=[nn.Conv1d, nn.Conv2d, nn.Linear]
    ):
        root = group[0].dep.target.module
        name = names_of.get(root)
        if name is None:
            continue
        convolution = isinstance(root, (nn.Conv1d, nn.Conv2d))
        if convolution and 1 < root.groups < root.in_channels:
            skipped[name] = "grouped convolution (channels are tied across groups)"
            continue
        try:
            scores = importance(group)
        except Exception as e:  # e.g. a raw nn.Parameter coupled to the channels
            raise ValueError(_cannot(name, e)) from e
        if scores is None:
            skipped[name] = "no importance could be computed for its channel group"
            continue
        candidates.append((name, scores.detach().float()))

    plan, warnings = [], []
    threshold = None
    if config.scope == "global" and candidates:
        joined = torch.cat([s for _, s in candidates])
        n_prune = round(config.prune_rate * joined.numel())
        if n_prune:
            threshold = torch.topk(joined, n_prune, largest=False).values[-1]
    capped = []
    for name, scores in candidates:
        n = scores.numel()
        if config.scope == "global":
            n_prune = 0 if threshold is None else int((scores <= threshold).sum())
        else:
            n_prune = round(rates[name] * n)
        if n_prune >= n:
            n_prune = n - 1
            capped.append(name)
        if n_prune <= 0:
            continue
        idxs = torch.topk(scores, n_prune, largest=False).indices.sort().values.tolist()
        plan.append({"module": name, "dim": "out", "idxs": idxs})
    if capped:
        warnings.append(
            f"structured pruning keeps one channel in {', '.join(capped)}: "
            "a layer with no channels would cut the network in two"
        )
    outputs = {n: m.weight.shape[0] for n, m in all_layers.items()}
    _replay(model, plan, graph, example)
    _check_runs(model, example_input(model, example))
    ranked = {n for n, _ in candidates}
    for name in names:  # say which layers no channel group could reach, never skip silently
        reached = all_layers[name].weight.shape[0] < outputs[name]
        if name != last and name not in ranked and name not in skipped and not reached:
            skipped[name] = "its channels are tied to a layer left alone (e.g. by a residual add)"
    return plan, warnings, skipped


def _check_runs(model: nn.Module, example: torch.Tensor) -> None:
    """Run the pruned model once; name the layer where its shapes no longer fit."""
    entered: list[str] = []
    hooks = [
        m.register_forward_pre_hook(lambda *_, name=n: entered.append(name))
        for n, m in weight_layers(model).items()
    ]
    try:
        with torch.no_grad():
            model(example)
    except Exception as e:
        where = f"layer {entered[-1]!r}" if entered else type(model).__name__
        raise ValueError(
            f"after channel pruning {where} no longer fits its input ({type(e).__name__}): "
            "the dependency graph could not follow this model's forward (e.g. .detach(), "
            "reshapes by constant sizes); exclude that layer or use magnitude pruning"
        ) from e
    finally:
        for h in hooks:
            h.remove()


def _replay(model: nn.Module, plan: list[dict], graph=None, example=None) -> None:
    graph = graph or _dependency_graph(model, example)
    modules = dict(model.named_modules())
    for step in plan:
        if step.get("dim") != "out" or step["module"] not in modules:
            raise ValueError(f"cannot replay structured step {step!r} on this model")
        name = step["module"]
        _prune_out_channels_(graph, name, modules[name], list(step["idxs"]))


def replay_structured(model: nn.Module, plan: list[dict], example=None) -> nn.Module:
    """Re-apply a recorded channel-removal plan to a fresh model (in place), e.g. on load."""
    if plan:
        _replay(model, plan, example=example)
    return model
