"""Pruning: unstructured masks (magnitude, random) and structured channel removal.

Unstructured methods zero single weights and record a boolean mask per layer.
Structured methods physically remove output channels with Torch-Pruning's
dependency graph, so the next layers' inputs, BatchNorm and residual adds
shrink with them and parameter count and latency really fall.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .config import CompressionConfig
from .layers import weight_layers
from .record import get_spec
from .registry import Registry

# A score per weight: the lowest-scored are pruned first.
Scorer = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
SCORERS: Registry[Scorer] = Registry("unstructured pruning method")


@SCORERS.register("magnitude")
def magnitude_score(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """|w|: the L1 magnitude criterion of Han et al. and torch.nn.utils.prune."""
    return weight.abs()


@SCORERS.register("random")
def random_score(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Uniform noise: the baseline that shows magnitude matters."""
    return torch.rand(weight.shape, generator=generator)


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
    weights: dict[str, torch.Tensor], rate: float, method: str, scope: str, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Boolean keep-masks for the given weights.

    Example:
        >>> masks = unstructured_masks({"fc1": w}, rate=0.5, method="magnitude", scope="layer")
        >>> masks["fc1"].float().mean()  # 0.5
    """
    score = SCORERS[method]
    generator = torch.Generator().manual_seed(seed)
    scores = {name: score(w.detach(), generator) for name, w in weights.items()}
    if scope == "layer":
        return {name: _keep_mask(s, rate) for name, s in scores.items()}
    keep = _keep_mask(torch.cat([s.reshape(-1) for s in scores.values()]), rate)
    parts = keep.split([s.numel() for s in scores.values()])
    return {name: p.view_as(s) for (name, s), p in zip(scores.items(), parts, strict=True)}


def apply_masks_(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the pruned weights in place."""
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, mask in masks.items():
            modules[name].weight.masked_fill_(~mask, 0.0)  # +0.0, never -0.0


# --- structured ------------------------------------------------------------


def _dependency_graph(model: nn.Module):
    import torch_pruning as tp

    spec = get_spec(model)
    if spec is None:
        raise ValueError("structured pruning needs the model's input shape (build it via models)")
    example = torch.zeros(1, *spec.in_shape)
    return tp.DependencyGraph().build_dependency(model, example_inputs=example)


def _prune_out_channels_(graph, module: nn.Module, idxs: list[int]) -> None:
    fn = graph.get_pruner_of_module(module).prune_out_channels
    group = graph.get_pruning_group(module, fn, idxs=idxs)
    group.prune()


def structured_prune_(
    model: nn.Module, config: CompressionConfig, names: list[str]
) -> tuple[list[dict], list[str], dict[str, str]]:
    """Remove the least important output channels of the named layers, in place.

    Channels are ranked by the L1 or L2 norm of everything coupled to them
    (Torch-Pruning's group importance). Each layer keeps at least one channel.
    The last layer's outputs (the classes) are never removed.

    Returns the replayable plan, warnings and the layers skipped (with why).
    """
    import torch_pruning as tp

    graph = _dependency_graph(model)
    all_layers = weight_layers(model)
    names_of = {m: n for n, m in all_layers.items()}
    last = list(all_layers)[-1]
    ignored = [m for n, m in all_layers.items() if n not in names or n == last]
    p = 1 if config.prune_method.startswith("l1") else 2
    importance = tp.importance.GroupMagnitudeImportance(p=p)

    candidates, skipped = [], {}
    for group in graph.get_all_groups(
        ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear]
    ):
        root = group[0].dep.target.module
        name = names_of.get(root)
        if name is None:
            continue
        if isinstance(root, nn.Conv2d) and 1 < root.groups < root.in_channels:
            skipped[name] = "grouped convolution (channels are tied across groups)"
            continue
        scores = importance(group)
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
            n_prune = round(config.prune_rate * n)
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
    _replay(model, plan, graph)
    ranked = {n for n, _ in candidates}
    for name in names:  # say which layers no channel group could reach, never skip silently
        reached = all_layers[name].weight.shape[0] < outputs[name]
        if name != last and name not in ranked and name not in skipped and not reached:
            skipped[name] = "its channels are tied to a layer left alone (e.g. by a residual add)"
    return plan, warnings, skipped


def _replay(model: nn.Module, plan: list[dict], graph=None) -> None:
    graph = graph or _dependency_graph(model)
    modules = dict(model.named_modules())
    for step in plan:
        if step.get("dim") != "out" or step["module"] not in modules:
            raise ValueError(f"cannot replay structured step {step!r} on this model")
        _prune_out_channels_(graph, modules[step["module"]], list(step["idxs"]))


def replay_structured(model: nn.Module, plan: list[dict]) -> nn.Module:
    """Re-apply a recorded channel-removal plan to a fresh model (in place), e.g. on load."""
    if plan:
        _replay(model, plan)
    return model
