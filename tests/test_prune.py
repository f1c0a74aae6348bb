"""Pruning: exact sparsity, agreement with torch.nn.utils.prune, structured shrinkage."""

import copy

import pytest
import torch
import torch.nn.utils.prune as tprune

from compress_core import CompressionConfig, compress
from compress_core.core.config import SKIP_MAX_SHARE
from compress_core.core.layers import compressed_share, select_layers, weight_layers
from compress_core.core.prune import replay_structured, unstructured_masks
from compress_core.core.record import get_record
from compress_core.io.models import MODELS, build_model

RATES = [0.0, 0.1, 0.5, 0.9, 0.95, 1.0]


def _sparsity(model, names):
    layers = weight_layers(model)
    total = sum(layers[n].weight.numel() for n in names)
    zeros = sum(int((layers[n].weight == 0).sum()) for n in names)
    return zeros / total


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("method", ["magnitude", "random"])
def test_sparsity_equals_the_asked_rate(tiny, rate, scope, method):
    cfg = CompressionConfig(prune_rate=rate, prune_method=method, scope=scope)
    out = compress(tiny, cfg)
    names, _ = select_layers(out, cfg)
    n = sum(weight_layers(out)[k].weight.numel() for k in names)
    assert abs(_sparsity(out, names) - rate) <= 1 / n * len(names)
    if scope == "layer":
        for k in names:
            assert abs(_sparsity(out, [k]) - rate) <= 1 / weight_layers(out)[k].weight.numel()


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.8, 0.97])
def test_global_magnitude_mask_equals_torch_global_unstructured(tiny, rate):
    ref = copy.deepcopy(tiny)
    params = [(m, "weight") for m in weight_layers(ref).values()]
    tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=rate)
    ours = unstructured_masks(
        {n: m.weight for n, m in weight_layers(tiny).items()}, rate, "magnitude", "global"
    )
    for name, module in weight_layers(ref).items():
        assert torch.equal(ours[name], module.weight_mask.bool())


@pytest.mark.parametrize("rate", [0.3, 0.75])
def test_layer_magnitude_mask_equals_torch_l1_unstructured(tiny, rate):
    for name, module in weight_layers(copy.deepcopy(tiny)).items():
        tprune.l1_unstructured(module, "weight", amount=rate)
        ours = unstructured_masks(
            {name: weight_layers(tiny)[name].weight}, rate, "magnitude", "layer"
        )
        assert torch.equal(ours[name], module.weight_mask.bool())


def test_random_pruning_depends_on_seed_magnitude_does_not(tiny):
    w = {"fc1": tiny.fc1.weight}
    a, b = (unstructured_masks(w, 0.5, "random", "layer", seed=s)["fc1"] for s in (0, 1))
    assert not torch.equal(a, b)
    m0, m1 = (unstructured_masks(w, 0.5, "magnitude", "layer", seed=s)["fc1"] for s in (0, 1))
    assert torch.equal(m0, m1)


def test_base_model_is_untouched(tiny):
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    for cfg in [
        CompressionConfig(prune_rate=0.7, bits=3, quant="kmeans"),
        CompressionConfig(prune_rate=0.5, prune_method="l1-structured", bits=4),
    ]:
        compress(tiny, cfg)
    after = tiny.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert get_record(tiny) is None


def test_skip_first_last_leaves_them_dense(tiny):
    out = compress(tiny, CompressionConfig(prune_rate=0.9, bits=2))
    assert torch.equal(out.conv1.weight, tiny.conv1.weight)
    assert torch.equal(out.fc2.weight, tiny.fc2.weight)
    assert set(get_record(out).skipped) == {"conv1", "fc2"}


def test_include_exclude_patterns(tiny):
    cfg = CompressionConfig(
        prune_rate=0.5, skip_first_last=False, include=("conv*",), exclude=("conv1",)
    )
    names, skipped = select_layers(tiny, cfg)
    assert names == ["conv2"]
    assert set(skipped) == {"conv1", "fc1", "fc2"}


def test_full_pruning_is_reported_not_nan(tiny):
    out = compress(tiny, CompressionConfig(prune_rate=1.0, bits=4, skip_first_last=False))
    y = out(torch.randn(4, 1, 16, 16))
    assert torch.isfinite(y).all()
    assert "lost every weight" in " ".join(get_record(out).warnings)


@pytest.mark.parametrize("method", ["l1-structured", "l2-structured"])
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_structured_pruning_really_removes_channels(tiny, method, scope):
    cfg = CompressionConfig(prune_rate=0.5, prune_method=method, scope=scope)
    out = compress(tiny, cfg)
    base_params = sum(p.numel() for p in tiny.parameters())
    params = sum(p.numel() for p in out.parameters())
    assert params < base_params
    assert out.fc2.out_features == 10  # classes are never removed
    if scope == "layer":
        assert out.conv2.out_channels == 8 and out.fc1.in_features == 8 * 4 * 4
    assert out(torch.randn(2, 1, 16, 16)).shape == (2, 10)
    # The recorded plan rebuilds the same architecture from a fresh copy.
    fresh = replay_structured(copy.deepcopy(tiny), get_record(out).structured)
    shapes = {k: v.shape for k, v in out.state_dict().items()}
    assert {k: v.shape for k, v in fresh.state_dict().items()} == shapes


def test_structured_pruning_at_100_percent_keeps_one_channel(tiny):
    out = compress(tiny, CompressionConfig(prune_rate=1.0, prune_method="l1-structured"))
    assert out.conv2.out_channels == 1 and out.fc1.out_features == 1
    assert torch.isfinite(out(torch.randn(2, 1, 16, 16))).all()
    assert "keeps one channel" in " ".join(get_record(out).warnings)


def test_structured_keeps_the_most_important_channels(tiny):
    with torch.no_grad():
        tiny.fc1.weight[:16] *= 100  # rows 0..15 clearly the largest
    out = compress(tiny, CompressionConfig(prune_rate=0.5, prune_method="l1-structured"))
    removed = {s["module"]: s["idxs"] for s in get_record(out).structured}
    assert removed["fc1"] == list(range(16, 32))


@pytest.mark.parametrize("name", MODELS.names())
def test_default_layer_selection_compresses_the_bulk_of_every_registry_model(name):
    shape = (3, 32, 32) if name in ("resnet18", "mobilenet_v3_small") else (1, 28, 28)
    model = build_model(name, shape, 10)
    share, kept = compressed_share(model, CompressionConfig())
    layers = weight_layers(model)
    total = sum(m.weight.numel() for m in layers.values())
    assert share >= 0.9
    for layer in kept:  # only a small first or last layer is kept
        assert layer in (next(iter(layers)), list(layers)[-1])
        assert layers[layer].weight.numel() <= SKIP_MAX_SHARE * total
    chosen, _ = select_layers(model, CompressionConfig())
    assert share == pytest.approx(sum(layers[n].weight.numel() for n in chosen) / total)
