"""How the tables' columns read: a catalog key and a kind per column, for page and report.

The dashboard (``ui/format.py``'s ``table``) and the HTML report (``formatted``) read
the same specs, so a column has one human name and one unit wherever it is shown. A
kind says how a value is shown:

- ``percent``: a fraction 0..1 shown as a percentage (87.5%), ``accuracy`` the same with
  two decimals (97.33%);
- ``pp``: signed percentage points (+0.56 pp); ``count``/``bytes``: whole numbers,
  grouped (the unit is in the column's name); ``bits``: a bit width; ``ratio``: 12.3×;
- ``yesno``: a yes/no column; ``source``/``sens_kind``: a code shown as its word
  (``source.<code>``, ``sens.kind_<code>``); ``text``: as it is.

Columns not in a spec are not shown.

Example:
    >>> formatted("zh", pd.DataFrame(r.plan_rows()), PLAN)  # human names, 87.5%, 是/否
"""

from __future__ import annotations

import pandas as pd

from . import catalog

# BudgetResult.plan_rows(): the chosen model layer by layer, against the best uniform point.
PLAN = {
    "layer": ("layers.layer", "text"),
    "searched": ("bcol.searched", "yesno"),
    "prune_rate": ("bcol.prune_rate", "percent"),
    "bits": ("rcol.bits", "bits"),
    "params": ("bcol.params", "count"),
    "nonzero": ("rcol.nonzero_params", "count"),
    "nonzero_share": ("bcol.nonzero_share", "percent"),
    "bytes": ("bcol.bytes", "bytes"),
    "uniform_prune_rate": ("bcol.uniform_prune_rate", "percent"),
    "uniform_bits": ("bcol.uniform_bits", "bits"),
    "uniform_nonzero_share": ("bcol.uniform_nonzero_share", "percent"),
    "uniform_bytes": ("bcol.uniform_bytes", "bytes"),
}

# BudgetResult.tried_rows(): every whole model the search built.
TRIED = {
    "label": ("rcol.label", "text"),
    "source": ("bcol.source", "source"),
    "val_accuracy": ("bcol.val_accuracy", "accuracy"),
    "meets": ("bcol.meets", "yesno"),
    "artifact_bytes": ("rcol.artifact_bytes", "bytes"),
    "nonzero_params": ("rcol.nonzero_params", "count"),
}

# SensitivityPoint.to_row() on the validation split: one layer changed at a time.
SENSITIVITY = {
    "layer": ("layers.layer", "text"),
    "kind": ("bcol.kind", "sens_kind"),
    "prune_rate": ("bcol.prune_rate", "percent"),
    "bits": ("rcol.bits", "bits"),
    "accuracy": ("bcol.val_accuracy", "accuracy"),
    "baseline_accuracy": ("bcol.baseline_val", "accuracy"),
    "delta_pp": ("bcol.change_pp", "pp"),
    "params": ("bcol.layer_weights", "count"),
    "kept": ("bcol.layer_nonzero", "count"),
    "artifact_bytes": ("rcol.artifact_bytes", "bytes"),
}

# Result.to_row(): a sweep's settings (the report's table).
RESULT = {
    "label": ("rcol.label", "text"),
    "prune_method": ("rcol.prune_method", "text"),
    "prune_rate": ("rcol.prune_rate", "percent"),
    "bits": ("rcol.bits", "bits"),
    "quant": ("rcol.quant", "text"),
    "granularity": ("rcol.granularity", "text"),
    "accuracy": ("rcol.accuracy", "accuracy"),
    "delta_pp": ("rcol.delta_pp", "pp"),
    "nonzero_params": ("rcol.nonzero_params", "count"),
    "artifact_bytes": ("rcol.artifact_bytes", "bytes"),
    "ratio": ("rcol.ratio", "ratio"),
    "front_bytes": ("rcol.front_bytes", "yesno"),
    "front_params": ("rcol.front_params", "yesno"),
}

# Result.layers (``pipeline.layer_table``): one compressed setting, layer by layer.
LAYERS = {
    "layer": ("layers.layer", "text"),
    "type": ("layers.type", "text"),
    "shape": ("layers.shape", "text"),
    "params": ("layers.params", "count"),
    "nonzero": ("layers.nonzero", "count"),
    "sparsity": ("layers.sparsity", "percent"),
    "bits": ("layers.bits", "bits"),
    "bytes": ("layers.bytes", "bytes"),
    "encoding": ("layers.encoding", "text"),
    "skipped": ("layers.skipped", "text"),
}

WORDS = {"source": "source.{}", "sens_kind": "sens.kind_{}"}  # kinds shown as words


def words(lang: str, frame: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """A copy of ``frame`` with the coded columns (``source``, ``sens_kind``) as words."""
    out = frame.copy()
    for column, (_, kind) in spec.items():
        if kind in WORDS and column in out:
            out[column] = [catalog.text(lang, WORDS[kind].format(v)) for v in out[column]]
    return out


def shown(lang: str, value, kind: str, digits: int | None = None) -> str:
    """One value as the report shows it, e.g. ``shown("en", 0.875, "percent")`` -> '87.5%'."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if kind in ("percent", "accuracy"):
        return catalog.percent(lang, value, 2 if kind == "accuracy" else 1)
    if kind == "pp":
        return catalog.text(lang, "num.pp", value=f"{value:+.2f}")
    if kind in ("count", "bytes"):
        return catalog.number(lang, value)
    if kind == "bits":
        return str(int(value))
    if kind == "ratio":
        return f"{catalog.number(lang, value, 1)}×"
    if kind == "yesno":
        return catalog.text(lang, "table.yes" if value else "table.no")
    return str(value)


def formatted(lang: str, frame: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """The spec's columns of ``frame``, in its order, with human names and shown values."""
    frame = words(lang, frame, spec)
    out = {}
    for column, (key, kind) in spec.items():
        if column in frame:
            out[catalog.text(lang, key)] = [shown(lang, v, kind) for v in frame[column]]
    return pd.DataFrame(out)
