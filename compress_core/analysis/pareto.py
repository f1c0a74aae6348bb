"""The Pareto front: configurations no other one beats on both size and accuracy."""

from __future__ import annotations

import pandas as pd


def pareto_mask(frame: pd.DataFrame, x: str = "artifact_bytes", y: str = "accuracy") -> pd.Series:
    """True for the rows on the front, minimising ``x`` and maximising ``y``.

    A row is dominated when another is no larger and no less accurate, and
    strictly better in one. Exact duplicates of a front point are on the front.

    Example:
        >>> df = pd.DataFrame({"artifact_bytes": [10, 20, 30], "accuracy": [0.8, 0.7, 0.9]})
        >>> pareto_mask(df).tolist()
        [True, False, True]
    """
    on_front = pd.Series(False, index=frame.index)
    best = float("-inf")
    last = None
    for idx, row in frame.sort_values([x, y], ascending=[True, False]).iterrows():
        point = (row[x], row[y])
        if row[y] > best or point == last:
            on_front[idx] = True
            best, last = max(best, row[y]), point
    return on_front


def dominates(a: pd.Series, b: pd.Series, x: str = "artifact_bytes", y: str = "accuracy") -> bool:
    """Whether row ``a`` dominates row ``b``."""
    return a[x] <= b[x] and a[y] >= b[y] and (a[x] < b[x] or a[y] > b[y])
