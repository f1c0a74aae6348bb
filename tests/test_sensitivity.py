"""Layer sensitivity: rate 0 / float is the baseline, and each point touches one layer only."""

import dataclasses

import pytest
import torch

from compress_core import CompressionConfig, compress
from compress_core.analysis.sensitivity import (
    SensitivityPoint,
    one_layer_config,
    rank_layers,
    sensitivity,
    sensitivity_configs,
)
from compress_core.core.config import FLOAT_BITS, ConfigError
from compress_core.core.layers import weight_layers
from compress_core.eval.evaluate import evaluate

METHODS = [
    CompressionConfig(),  # magnitude + uniform
    CompressionConfig(prune_method="random", quant="kmeans"),
    CompressionConfig(prune_method="l1-structured", quant="symmetric", granularity="per_tensor"),
]


@pytest.mark.parametrize("split", ["val", "test"])
def test_rate_zero_and_float_bits_equal_the_baseline_for_every_layer(digits_lenet, split):
    base, data = digits_lenet
    x, y = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
    reference = evaluate(base, x, y)
    points = sensitivity(base, data, None, rates=(0.0,), bits=(FLOAT_BITS,), split=split)
    layers = list(weight_layers(base))[1:-1]  # skip_first_last by default
    assert sorted({p.layer for p in points}) == sorted(layers) and len(points) == 2 * len(layers)
    for p in points:
        assert p.accuracy == reference.accuracy == p.baseline_accuracy
        assert p.loss == pytest.approx(reference.loss, rel=1e-6)
        assert p.delta_pp == 0.0 and p.kept == p.params


@pytest.mark.parametrize("common", METHODS, ids=lambda c: f"{c.prune_method}-{c.quant}")
def test_a_point_changes_its_layer_and_nothing_else(digits_lenet, common):
    base, _ = digits_lenet
    for layer in weight_layers(base):
        small = compress(base, one_layer_config(layer, common, 0.5, 3))
        before, after = base.state_dict(), small.state_dict()
        for key, t in before.items():
            module = key.rsplit(".", 1)[0]
            same = after[key].shape == t.shape and torch.equal(after[key], t)
            if module == layer and key.endswith("weight"):
                assert not same, f"{layer} was not compressed"
            elif not common.structured:
                assert same, f"{key} changed while only {layer} was compressed"


def test_points_match_a_plain_evaluation_of_the_same_compression(digits_lenet):
    """The analysis (prefix reuse, memoised baseline) gives what a plain forward pass gives."""
    base, data = digits_lenet
    layers = ["conv1", "fc2"]
    points = sensitivity(base, data, layers, rates=(0.7,), bits=(2,), split="test")
    for p in points:
        config = CompressionConfig(
            prune_rate=p.prune_rate, bits=p.bits, include=(p.layer,), skip_first_last=False
        )
        plain = evaluate(compress(base, config), data.test_x, data.test_y)
        assert p.accuracy == plain.accuracy
        weight = dict(base.named_modules())[p.layer].weight
        expected = weight.numel() - round(p.prune_rate * weight.numel())
        assert p.kept <= expected if p.kind == "quantize" else p.kept == expected
        assert p.kind == ("prune" if p.bits == FLOAT_BITS else "quantize")


def test_harsher_pruning_of_a_big_layer_costs_accuracy_and_saves_bytes(digits_lenet):
    base, data = digits_lenet
    points = sensitivity(base, data, ["fc1"], rates=(0.0, 0.99), bits=(1, FLOAT_BITS))
    by = {(p.kind, p.prune_rate, p.bits): p for p in points}
    mild, harsh, one_bit = by["prune", 0.0, 32], by["prune", 0.99, 32], by["quantize", 0.0, 1]
    assert harsh.accuracy < mild.accuracy
    assert harsh.kept == mild.params - round(0.99 * mild.params)
    assert (
        harsh.artifact_bytes < mild.artifact_bytes and one_bit.artifact_bytes < mild.artifact_bytes
    )


def test_should_stop_keeps_the_finished_points(digits_lenet):
    base, data = digits_lenet
    seen = []
    points = sensitivity(
        base,
        data,
        ["fc1"],
        rates=(0.0, 0.5, 0.9),
        bits=(4, 32),
        on_point=lambda i, n, p: seen.append((i, n)),
        should_stop=lambda: len(seen) >= 2,
    )
    assert len(points) == 2 and seen == [(0, 5), (1, 5)]


def test_configs_cover_each_layer_and_setting_and_reject_unknown_layers(digits_lenet):
    base, _ = digits_lenet
    todo = sensitivity_configs(base, ["conv1", "fc3"], (0.0, 0.5), (4, 8, 32))
    assert len(todo) == 2 * (2 + 3)
    for layer, kind, config in todo:
        assert config.include == (layer,) and not config.skip_first_last
        assert (config.bits == FLOAT_BITS) if kind == "prune" else (config.prune_rate == 0.0)
    with pytest.raises(ConfigError, match="no prunable layer named"):
        sensitivity_configs(base, ["nope"])
    with pytest.raises(ConfigError, match="split"):
        sensitivity(base, None, split="train")


def _point(layer, kind, setting, delta_pp, params=100):
    rate, bits = (setting, FLOAT_BITS) if kind == "prune" else (0.0, setting)
    kept = round(params * (1 - rate))
    return SensitivityPoint(
        layer, kind, rate, bits, 0.9 + delta_pp / 100, 0.0, 0.9, "val", params, kept, 0
    )


def test_ranking_stops_at_the_first_setting_beyond_the_tolerance():
    points = [
        _point("a", "prune", 0.0, 0.0),
        _point("a", "prune", 0.5, -0.5),
        _point("a", "prune", 0.8, -3.0),
        _point("a", "prune", 0.9, -0.2),  # recovers by chance: must not count, 0.8 failed
        _point("a", "quantize", 32, 0.0),
        _point("a", "quantize", 4, -0.9),
        _point("a", "quantize", 2, -5.0),
        _point("b", "prune", 0.0, 0.0),
        _point("b", "prune", 0.9, -0.1),
        _point("b", "quantize", 32, 0.0),
        _point("b", "quantize", 2, -0.5),
    ]
    rows = {r["layer"]: r for r in rank_layers(points, tolerance_pp=1.0)}
    assert rows["a"]["max_rate"] == 0.5 and rows["a"]["min_bits"] == 4
    assert rows["b"]["max_rate"] == 0.9 and rows["b"]["min_bits"] == 2
    assert rows["b"]["rank"] == 1 and rows["a"]["rank"] == 2
    assert rows["a"]["worst_prune_pp"] == pytest.approx(-3.0)
    assert sum(r["share_of_weights"] for r in rows.values()) == pytest.approx(1.0)
    loose = {r["layer"]: r for r in rank_layers(points, tolerance_pp=10.0)}
    assert loose["a"]["max_rate"] == 0.9 and loose["a"]["min_bits"] == 2


def test_channel_pruning_marks_the_classifier_as_not_prunable(digits_lenet):
    base, data = digits_lenet
    common = CompressionConfig(prune_method="l1-structured")
    points = sensitivity(base, data, ["fc2", "fc3"], (0.0, 0.5), (FLOAT_BITS,), common)
    rows = {r["layer"]: r for r in rank_layers(points, tolerance_pp=100.0)}
    assert rows["fc3"]["max_rate"] is None and rows["fc2"]["max_rate"] == 0.5
    assert rows["fc2"]["rank"] == 1
    fc2 = next(p for p in points if p.layer == "fc2" and p.prune_rate == 0.5)
    assert fc2.kept == fc2.params // 2  # half the output channels (rows) are gone


def test_one_layer_config_keeps_the_methods_and_escapes_the_name():
    common = CompressionConfig(prune_method="random", quant="kmeans", exclude=("fc*",))
    config = one_layer_config("features.[0]", common, 0.3, 4)
    assert dataclasses.replace(config, include=(), exclude=("fc*",), skip_first_last=True) == (
        dataclasses.replace(common, prune_rate=0.3, bits=4)
    )
    assert config.include == ("features.[[]0]",)
