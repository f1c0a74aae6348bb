"""The Learn page's numbers against references: torch's pruning, the artifact, brute force."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn.utils import prune as torch_prune

from compress_core import CompressionConfig, compress
from compress_core.analysis import lessons
from compress_core.format.artifact import artifact_size, export
from compress_core.format.breakdown import COMPONENTS, bytes_by_component


@pytest.mark.parametrize(
    "config",
    [
        CompressionConfig(),
        CompressionConfig(prune_rate=0.5, bits=4),
        CompressionConfig(prune_rate=0.9, bits=3, quant="kmeans", huffman=True),
        CompressionConfig(prune_rate=0.5, prune_method="l1-structured", bits=8),
    ],
    ids=["float", "prune+4bit", "kmeans+huffman", "structured"],
)
def test_bytes_by_component_sum_exactly_to_the_artifact_size(tiny, config):
    small = compress(tiny, config)
    parts = bytes_by_component(small)
    assert list(parts) == list(COMPONENTS) and all(v >= 0 for v in parts.values())
    assert sum(parts.values()) == artifact_size(small).artifact_bytes == len(export(small))


def test_huffman_shrinks_the_codes_and_nothing_else_but_the_header(digits_lenet):
    base, _ = digits_lenet
    small = compress(base, CompressionConfig(prune_rate=0.9, bits=4))
    plain, coded = bytes_by_component(small, coded=False), bytes_by_component(small)
    assert coded["codes"] + coded["index"] < plain["codes"] + plain["index"]
    for part in ("codebooks", "float_weights", "biases"):
        assert coded[part] == plain[part]


def test_magnitude_keep_equals_torch_l1_unstructured(digits_lenet):
    base, _ = digits_lenet
    w = lessons.lesson_weight(base)
    module = torch.nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        module.weight.copy_(w)
    torch_prune.l1_unstructured(module, "weight", amount=0.7)
    assert torch.equal(lessons.magnitude_keep(w, 0.7), module.weight_mask.bool())


@pytest.mark.parametrize("method", ["uniform", "symmetric", "kmeans"])
@pytest.mark.parametrize("bits", [2, 3, 5])
def test_quant_levels_are_at_most_two_to_the_bits_and_errors_match_numpy(method, bits):
    torch.manual_seed(0)
    w = torch.randn(64, 32) * 0.1
    out = lessons.quant_levels(w, bits, method)
    assert 1 < len(out["levels"]) <= 2**bits
    # every weight is rounded to one of the levels: recompute the error from them
    from compress_core.core.quantize import quantize_tensor
    from compress_core.core.record import dequantize

    q = dequantize(quantize_tensor(w, None, bits, method, per_channel=False)).numpy()
    assert np.isin(q, out["levels"]).all()
    ref = w.numpy().ravel().astype(np.float64)
    assert out["mse"] == pytest.approx(np.mean((ref - q) ** 2))
    assert out["sqnr_db"] == pytest.approx(10 * np.log10(np.sum(ref**2) / np.sum((ref - q) ** 2)))
    if method == "symmetric":
        steps = out["levels"] / np.diff(out["levels"]).min()  # whole multiples of one step
        assert 0.0 in out["levels"] and np.allclose(steps, np.round(steps), atol=1e-4)
        assert np.abs(np.round(steps)).max() <= 2 ** (bits - 1) - 1


def test_affine_grids_keep_pruned_zeros_and_kmeans_on_the_whole_tensor_loses_them(digits_lenet):
    base, _ = digits_lenet
    w = lessons.lesson_weight(base)
    for method in ("uniform", "symmetric"):
        assert lessons.zero_level(w, 0.7, 3, method)["zeros_stay_zero"] == 1.0
    km = lessons.zero_level(w, 0.7, 3, "kmeans")
    assert km["has_zero_level"] is (km["zeros_stay_zero"] == 1.0)
    # quantizing only the kept weights spends every level on them: never worse
    assert km["sqnr_kept_only_db"] >= km["sqnr_kept_whole_db"] - 1e-9


def test_torch_save_of_a_pruned_model_is_not_smaller_and_prune_masks_are_bigger(digits_lenet):
    base, _ = digits_lenet
    small = compress(base, CompressionConfig(prune_rate=0.7))
    sizes = lessons.torch_save_sizes(base, small)
    assert abs(sizes["pruned"] - sizes["dense"]) < 0.01 * sizes["dense"]
    assert sizes["prune_masks"] > 1.5 * sizes["dense"]  # weight_orig + weight_mask
    assert sizes["artifact"] == len(export(small)) < sizes["dense"] / 2


def test_smallest_meeting_is_the_brute_force_minimum():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"artifact_bytes": rng.integers(100, 10_000, 50), "delta_pp": rng.normal(-2, 2, 50)}
    )
    for drop in (0.0, 1.0, 3.0):
        best = lessons.smallest_meeting(frame, drop)
        ok = [r for _, r in frame.iterrows() if r["delta_pp"] >= -drop]
        assert best["artifact_bytes"] == min(r["artifact_bytes"] for r in ok)
    assert lessons.smallest_meeting(frame, -100.0) is None


def test_ranking_configs_differ_only_in_method_and_scope():
    configs = lessons.ranking_configs(0.6, bits=4)
    assert {c.prune_rate for c in configs.values()} == {0.6}
    assert {(c.prune_method, c.scope) for c in configs.values()} == {
        ("magnitude", "layer"),
        ("random", "layer"),
        ("magnitude", "global"),
    }


def test_bench_learn_quick_prints_the_torch_save_surprise(digits_lenet):
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parent.parent / "bench" / "bench_learn.py"
    out = subprocess.run(
        [sys.executable, str(bench), "--quick"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("| lenet5 | digits"))
    cells = [c.strip().split(" ")[0].replace(",", "") for c in row.strip("|").split("|")]
    dense, pruned, masked, artifact = (int(c) for c in cells[3:7])
    assert pruned == dense < masked and artifact < dense / 10
