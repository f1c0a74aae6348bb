"""The Pareto front: no front point is dominated, every other point is, on real and random data."""

import numpy as np
import pandas as pd
import pytest

from compress_core.analysis.pareto import dominates, pareto_mask
from compress_core.analysis.sweep import grid, method_grid, sweep
from compress_core.core.config import FLOAT_BITS

MEASURES = [("artifact_bytes", "accuracy"), ("nonzero_params", "accuracy")]


def brute_force_front(frame: pd.DataFrame, x: str, y: str) -> list[bool]:
    """The reference: a point is on the front iff no other point dominates it."""
    rows = [frame.loc[i] for i in frame.index]
    return [not any(dominates(b, a, x, y) for b in rows) for a in rows]


def check_front(frame: pd.DataFrame, x: str, y: str) -> pd.Series:
    front = pareto_mask(frame, x, y)
    on, off = frame[front], frame[~front]
    assert len(on) > 0
    for _, a in on.iterrows():  # nothing dominates a front point ...
        assert not any(dominates(b, a, x, y) for _, b in frame.iterrows())
    for _, a in off.iterrows():  # ... and a point off the front is dominated by one on it
        assert any(dominates(b, a, x, y) for _, b in on.iterrows())
    assert front.tolist() == brute_force_front(frame, x, y)
    return front


@pytest.fixture(scope="module")
def digits_sweep(digits_lenet):
    base, data = digits_lenet
    configs = grid((0.0, 0.3, 0.6, 0.8, 0.9, 0.95), (2, 3, 4, 8, FLOAT_BITS))
    results = sweep(base, data, configs)
    return pd.DataFrame([r.to_row() for r in results])


@pytest.mark.parametrize("x,y", MEASURES)
def test_front_of_a_real_sweep_has_no_dominated_point_and_dominates_the_rest(digits_sweep, x, y):
    front = check_front(digits_sweep, x, y)
    assert 1 < front.sum() < len(digits_sweep)  # a real trade-off, not one winner or all
    # Its two ends: the best accuracy anywhere, and the smallest size anywhere.
    assert digits_sweep.loc[front, y].max() == digits_sweep[y].max()
    assert digits_sweep.loc[front, x].min() == digits_sweep[x].min()


@pytest.mark.parametrize("seed", range(6))
def test_front_of_random_points_with_ties_matches_the_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    n = 60
    frame = pd.DataFrame(
        {
            "artifact_bytes": rng.integers(1, 12, n),  # few values: many ties in x
            "accuracy": rng.integers(0, 8, n) / 8,  # ... and in y
        }
    )
    frame = pd.concat([frame, frame.iloc[:5]], ignore_index=True)  # exact duplicates
    check_front(frame, "artifact_bytes", "accuracy")


def test_duplicates_of_a_front_point_are_all_on_the_front():
    frame = pd.DataFrame({"artifact_bytes": [5, 5, 9, 3], "accuracy": [0.9, 0.9, 0.95, 0.5]})
    assert pareto_mask(frame).tolist() == [True, True, True, True]
    frame.loc[4] = [5, 0.8]  # dominated by (5, 0.9)
    assert pareto_mask(frame).tolist()[4] is False


def test_method_grid_covers_every_setting_once():
    rates, bits = (0.0, 0.5, 0.9), (2, 4, FLOAT_BITS)
    methods, quants = ("magnitude", "random"), ("uniform", "kmeans")
    configs = method_grid(rates, bits, methods, quants)
    keys = [c.key() for c in configs]
    assert len(keys) == len(set(keys))
    # Every method pair's points are present, up to settings that have no effect.
    seen = {(c.prune_rate, c.bits, c.prune_method, c.quant) for c in configs}
    for r in rates:
        for b in bits:
            for m in methods:
                for q in quants:
                    m_eff = m if r > 0 else "magnitude"
                    q_eff = q if b != FLOAT_BITS else "uniform"
                    assert (r, b, m_eff, q_eff) in seen
    # 2 x 2 method pairs on the 2 x 2 compressed corner, 2 pruning-only, 2 quant-only, 1 float.
    assert len(configs) == 2 * 2 * 2 * 2 + 2 * 2 + 2 * 2 + 1
