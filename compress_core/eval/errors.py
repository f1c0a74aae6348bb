"""Per-layer quantization and pruning error: how far each compressed layer is from the float one.

For every layer the compression touched: the weight MSE, the weight SQNR in dB and the cosine
similarity against the base model's float weights, and the SQNR of that layer's *output* on a
calibration batch, both models run end to end (so the error a layer inherits from the layers
before it is included, as in AIMET's and MCT's per-layer analysis).

Example:
    >>> table = layer_errors(base, compress(base, CompressionConfig(bits=4)), data.val_x[:256])
    >>> table.sort_values("output_sqnr_db").iloc[0]["layer"]  # the worst layer
"""

from __future__ import annotations

import math

import pandas as pd
import torch
from torch import nn

from ..core.record import get_record

COLUMNS = ["layer", "shape", "weight_mse", "weight_sqnr_db", "cosine", "output_sqnr_db"]


def sqnr_db(reference: torch.Tensor, approx: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio, 10·log10(Σ ref² / Σ (ref − approx)²), in dB.

    ``inf`` when the two are equal, ``nan`` when both the signal and the noise are zero.
    """
    ref = reference.detach().double()
    noise = float(((ref - approx.detach().double()) ** 2).sum())
    signal = float((ref**2).sum())
    if noise == 0.0:
        return math.inf if signal > 0 else math.nan
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().reshape(-1), b.detach().double().reshape(-1)
    norms = float(a.norm() * b.norm())
    return float(a @ b) / norms if norms > 0 else math.nan


def _outputs(model: nn.Module, names: list[str], batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each named module's output on ``batch``, captured with forward hooks."""
    modules = dict(model.named_modules())
    seen: dict[str, torch.Tensor] = {}
    handles = [
        modules[n].register_forward_hook(lambda _m, _i, out, n=n: seen.__setitem__(n, out))
        for n in names
    ]
    try:
        with torch.no_grad():
            model.eval()(batch)
    finally:
        for h in handles:
            h.remove()
    return seen


def layer_errors(base: nn.Module, compressed: nn.Module, batch: torch.Tensor) -> pd.DataFrame:
    """One row per compressed layer: weight MSE, weight SQNR (dB), cosine, output SQNR (dB).

    Layers whose shape changed (channels removed) have no element-wise weight error: those
    cells are NaN. ``batch`` is a calibration batch of inputs (a few hundred images).
    """
    record = get_record(compressed)
    names = [] if record is None else list(record.layers)
    before, after = dict(base.named_modules()), dict(compressed.named_modules())
    out_base, out_small = _outputs(base, names, batch), _outputs(compressed, names, batch)
    rows = []
    for name in names:
        w, q = before[name].weight.detach(), after[name].weight.detach()
        same = w.shape == q.shape
        same_out = out_base[name].shape == out_small[name].shape
        rows.append(
            {
                "layer": name,
                "shape": "x".join(map(str, q.shape)),
                "weight_mse": float(((w - q).double() ** 2).mean()) if same else math.nan,
                "weight_sqnr_db": sqnr_db(w, q) if same else math.nan,
                "cosine": _cosine(w, q) if same else math.nan,
                "output_sqnr_db": sqnr_db(out_base[name], out_small[name])
                if same_out
                else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def worst_layer(table: pd.DataFrame) -> str | None:
    """The layer with the lowest output SQNR (weight SQNR where outputs are missing)."""
    if table.empty:
        return None
    score = table["output_sqnr_db"].fillna(table["weight_sqnr_db"])
    if score.isna().all():
        return None
    return str(table.loc[score.idxmin(), "layer"])


def calibration_batch(data, n: int = 256) -> torch.Tensor:
    """The first ``n`` validation images: the batch the error table's output SQNR uses."""
    return data.val_x[:n]


def to_records(table: pd.DataFrame) -> list[dict]:
    """JSON-ready rows: ±inf and NaN become None (inf SQNR means the layer is exact)."""
    clean = table.astype(object).where(table.map(_finite_or_text), None)
    return clean.to_dict("records")


def _finite_or_text(v) -> bool:
    return isinstance(v, str) or (isinstance(v, (int, float)) and math.isfinite(v))
