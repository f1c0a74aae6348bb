"""The numbers behind the Learn page's lessons, each a small function of a real model.

Nothing here is made up for teaching: every mask, level, byte and accuracy comes from the same
engine the other pages use (``compress``, ``quantize_tensor``, ``export``), so a lesson's figure
can be reproduced from the CLI and is checked by tests against independent references.

Example:
    >>> w = lesson_weight(base)                       # one real layer's weight matrix
    >>> keep = magnitude_keep(w, 0.7)                 # what 70 % magnitude pruning keeps
    >>> quant_levels(w, bits=3, method="kmeans")      # the 8 shared values, MSE and SQNR
"""

from __future__ import annotations

import copy
import io

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from ..core.config import CompressionConfig
from ..core.layers import weight_layers
from ..core.prune import unstructured_masks
from ..core.quantize import quantize_tensor
from ..core.record import dequantize, get_record
from ..eval.errors import sqnr_db
from ..format.artifact import export
from .pareto import pareto_mask

# Lesson 1: three ways to remove the same share of weights.
RANKINGS = {
    "magnitude_layer": dict(prune_method="magnitude", scope="layer"),
    "random_layer": dict(prune_method="random", scope="layer"),
    "magnitude_global": dict(prune_method="magnitude", scope="global"),
}
PARETO_RATES = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)  # lessons 4 and 5: one row of the grid


# --- lesson 1: what pruning removes -------------------------------------------------------


def lesson_layer(model: nn.Module) -> str:
    """The layer the lessons show: the middle Conv/Linear layer (compressed by default)."""
    names = list(weight_layers(model))
    return names[len(names) // 2]


def lesson_weight(model: nn.Module, layer: str | None = None) -> torch.Tensor:
    """A layer's weight as a 2-D matrix: outputs x inputs (a conv's kernels flattened)."""
    w = dict(model.named_modules())[layer or lesson_layer(model)].weight.detach()
    return w.reshape(w.shape[0], -1)


def magnitude_keep(w: torch.Tensor, rate: float) -> torch.Tensor:
    """The keep-mask of magnitude pruning at ``rate``: the engine's own, on this one tensor."""
    return unstructured_masks({"w": w}, rate, "magnitude", "layer")["w"]


def ranking_configs(rate: float, bits: int = 32) -> dict[str, CompressionConfig]:
    """Magnitude vs random (same rate, per layer), and per-layer vs global magnitude ranking."""
    return {k: CompressionConfig(prune_rate=rate, bits=bits, **v) for k, v in RANKINGS.items()}


# --- lesson 2: quantization levels ----------------------------------------------------------


def quant_levels(w: torch.Tensor, bits: int, method: str, keep: torch.Tensor | None = None) -> dict:
    """One tensor quantized per tensor with ``method``: its levels in use and its error.

    Returns {"levels": sorted distinct values, "mse", "sqnr_db"} over the kept weights.
    """
    q = quantize_tensor(w, keep, bits, method, per_channel=False)
    values = dequantize(q)
    kept = w.reshape(-1) if keep is None else w.reshape(-1)[keep.reshape(-1)]
    return {
        "levels": np.unique(values.numpy()),
        "mse": float(((kept.double() - values.double()) ** 2).mean()),
        "sqnr_db": sqnr_db(kept, values),
    }


def zero_level(w: torch.Tensor, rate: float, bits: int, method: str) -> dict:
    """Why an exact zero level matters after pruning, measured on one pruned tensor.

    Quantizing the whole pruned tensor (zeros included) as a plain quantizer would: the share
    of pruned weights that come back as exactly 0 (without a zero level they turn into small
    non-zero values and the sparsity is lost), and the kept weights' SQNR; against
    quantizing only the kept weights, as Slimscope does, which spends every level on them.
    """
    keep = magnitude_keep(w, rate)
    pruned = w * keep
    whole = quant_levels(pruned, bits, method)
    q = dequantize(quantize_tensor(pruned, None, bits, method, per_channel=False))
    zeros = ~keep.reshape(-1)
    return {
        "zeros_stay_zero": float((q[zeros] == 0).float().mean()) if zeros.any() else 1.0,
        "has_zero_level": bool((whole["levels"] == 0).any()),
        "sqnr_kept_whole_db": sqnr_db(w.reshape(-1)[~zeros], q[~zeros]),
        "sqnr_kept_only_db": quant_levels(w, bits, method, keep)["sqnr_db"],
    }


# --- lesson 3: where the bytes go -----------------------------------------------------------


def _saved_bytes(obj) -> int:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getbuffer().nbytes


def torch_save_sizes(base: nn.Module, compressed: nn.Module) -> dict[str, int]:
    """``torch.save`` of the dense, pruned and ``torch.nn.utils.prune``-masked models vs ours.

    The pruned model's zeros are still float32 values, so its ``state_dict`` is as large as
    the dense one; ``torch.nn.utils.prune`` keeps ``weight_orig`` *and* ``weight_mask``, so it
    is larger. Only an encoding that drops the zeros (the artifact) is smaller.
    """
    masked = copy.deepcopy(base)
    record = get_record(compressed)
    modules = dict(masked.named_modules())
    for name, layer in [] if record is None else record.layers.items():
        if layer.mask is not None:
            torch_prune.custom_from_mask(modules[name], "weight", layer.mask)
    return {
        "dense": _saved_bytes(base.state_dict()),
        "pruned": _saved_bytes(compressed.state_dict()),
        "prune_masks": _saved_bytes(masked.state_dict()),
        "artifact": len(export(compressed)),
    }


# --- lessons 4 and 5: the trade-off and the budget ------------------------------------------


def pareto_configs(bits: int, **common) -> list[CompressionConfig]:
    """The lesson's sweep: every rate of ``PARETO_RATES`` at ``bits``, plus the float model."""
    configs = [CompressionConfig(prune_rate=r, bits=bits, **common) for r in PARETO_RATES]
    if bits != 32:
        configs.append(CompressionConfig(**common))
    return configs


def trade_off(rows: list[dict]) -> pd.DataFrame:
    """Result rows with their Pareto front (on bytes) and their drop in pp from the baseline."""
    frame = pd.DataFrame(rows)
    frame["front"] = pareto_mask(frame, "artifact_bytes")
    return frame


def smallest_meeting(frame: pd.DataFrame, max_drop_pp: float, x: str = "artifact_bytes"):
    """The row with the least ``x`` whose accuracy is at most ``max_drop_pp`` below baseline.

    The source articles' formulation: minimise what is kept subject to accuracy >= δ, here
    with δ = baseline − max_drop_pp. None when no row meets it.
    """
    ok = frame[frame["delta_pp"] >= -max_drop_pp]
    return None if ok.empty else ok.loc[ok[x].idxmin()]
