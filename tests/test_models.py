"""Every registered model: builds for grey and colour inputs, any class count, readable layers."""

from __future__ import annotations

import pytest
import torch
import torch_pruning as tp
from torch import nn

from compress_core.core.record import ModelSpec, get_spec
from compress_core.core.registry import UnknownName
from compress_core.io.models import MODELS, build_model, input_size_for, prunable_layers

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]
CASES = [(n, s) for n in MODELS for s in SHAPES if min(s[1:]) >= MODELS[n].min_size]


def weight_count(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def call_order(model: nn.Module, x: torch.Tensor) -> list[str]:
    """The Conv2d/Linear modules in the order a forward pass calls them (the reference)."""
    order: list[str] = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, name=name: order.append(name))
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return order


def test_every_model_is_checked_on_its_sizes():
    assert {n for n, _ in CASES} == set(MODELS.names())
    assert ("mlp", (1, 8, 8)) in CASES and ("lenet5", (1, 8, 8)) not in CASES


@pytest.mark.parametrize("name, shape", CASES)
def test_forward_gives_one_logit_per_class_and_a_spec(name, shape):
    torch.manual_seed(0)
    model = build_model(name, shape, 7).eval()
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    assert get_spec(model) == ModelSpec(name, shape, 7)


@pytest.mark.parametrize("name", MODELS.names())
def test_prunable_layers_are_in_forward_order_from_stem_to_classifier(name):
    shape = (3, 32, 32)
    model = build_model(name, shape, 7).eval()
    names = prunable_layers(model)
    assert names == call_order(model, torch.zeros(1, *shape))
    modules = dict(model.named_modules())
    first, last = modules[names[0]], modules[names[-1]]
    fan_in = first.in_channels if isinstance(first, nn.Conv2d) else first.in_features
    assert fan_in == (3 if isinstance(first, nn.Conv2d) else 3 * 32 * 32)
    assert isinstance(last, nn.Linear) and last.out_features == 7


@pytest.mark.parametrize(
    "name, weights, layers",
    [
        ("mlp", 784 * 300 + 300 * 100 + 100 * 10, ["fc1", "fc2", "fc3"]),
        ("lenet5", 6 * 25 + 16 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10, None),
        ("lenet5-caffe", 430_500, ["conv1", "conv2", "fc1", "fc2"]),
        ("cnn", 32 * 9 + 64 * 32 * 9 + 3136 * 100 + 100 * 10, ["conv1", "conv2", "fc1", "fc2"]),
    ],
)
def test_small_models_match_their_published_sizes_on_28x28(name, weights, layers):
    model = build_model(name, (1, 28, 28), 10)
    assert weight_count(model) == weights
    if layers is not None:
        assert prunable_layers(model) == layers


def test_lenet5_caffe_is_deep_compressions_431k():
    model = build_model("lenet5-caffe", (1, 28, 28), 10)
    assert weight_count(model) == 430_500  # Han et al. 2016, table 2: 431K
    assert sum(p.numel() for p in model.parameters()) == 431_080  # with the 580 biases


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_torchvision_models_get_a_small_grey_stem(name):
    model = build_model(name, (1, 28, 28), 10)
    stem = dict(model.named_modules())[prunable_layers(model)[0]]
    assert (stem.in_channels, stem.kernel_size, stem.stride) == (1, (3, 3), (1, 1))
    if name == "resnet18":
        assert isinstance(model.maxpool, nn.Identity)


@pytest.mark.parametrize("name", MODELS.names())
def test_torch_pruning_can_remove_channels(name):
    """Structured pruning relies on torch-pruning's dependency graph handling every model."""
    model = build_model(name, (1, 28, 28), 10).eval()
    x = torch.randn(2, 1, 28, 28)
    last = dict(model.named_modules())[prunable_layers(model)[-1]]
    before = sum(p.numel() for p in model.parameters())
    tp.pruner.MagnitudePruner(
        model, x, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=0.5,
        ignored_layers=[last],
    ).step()  # fmt: skip
    assert sum(p.numel() for p in model.parameters()) < 0.6 * before
    assert model(x).shape == (2, 10)


def test_input_size_upsamples_only_below_the_minimum():
    assert input_size_for("mlp", 8) == 8
    assert input_size_for("lenet5", 8) == 28
    assert input_size_for("resnet18", 32) == 32
    with pytest.raises(ValueError, match="at least 28x28"):
        build_model("lenet5", (1, 8, 8), 10)


def test_unknown_model_lists_the_registered_ones():
    with pytest.raises(UnknownName, match="mlp, lenet5, lenet5-caffe, cnn"):
        build_model("vgg16", (3, 32, 32), 10)
