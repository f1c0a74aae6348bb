"""compress() on a user's own nn.Module: selection, per-layer overrides, channel pruning,
evaluation, artifact round trip, torch.export and torch.compile."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from compress_core import CompressionConfig, CompressionError, compress, evaluate_compressed
from compress_core.core.config import ConfigError
from compress_core.format.artifact import ArtifactError, export, load_compressed


class UserNet(nn.Module):
    """Not in the registry: BatchNorm, a residual block, a depthwise conv, a 1-D head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)  # depthwise
        self.bn1 = nn.BatchNorm2d(16)
        self.pw = nn.Conv2d(16, 16, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.seq = nn.Conv1d(16, 24, 3, padding=1)  # over the flattened rows
        self.fc1 = nn.Linear(24 * 8, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.bn0(self.stem(x)))
        y = torch.relu(self.bn1(self.dw(x)))
        x = torch.relu(x + self.bn2(self.pw(y)))  # residual add ties stem and pw channels
        x = torch.nn.functional.adaptive_avg_pool2d(x, (8, 1)).flatten(2)  # (N, 16, 8)
        x = torch.relu(self.seq(x)).flatten(1)
        return self.head(torch.relu(self.fc1(x)))


def user_net() -> UserNet:
    torch.manual_seed(0)
    model = UserNet().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model


X = torch.randn(64, 1, 16, 16, generator=torch.Generator().manual_seed(1))
DATA = SimpleNamespace(
    name="noise",
    test_x=X,
    test_y=torch.arange(64) % 10,
    train_x=X,
    train_y=torch.arange(64) % 10,
)


def levels(w: torch.Tensor) -> int:
    return len(torch.unique(w[w != 0]))


def test_every_linear_and_conv_kind_is_compressed_and_the_base_is_untouched():
    base = user_net()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    small = compress(base, CompressionConfig(prune_rate=0.5, bits=3, skip_first_last=False))
    for name in ("stem", "dw", "pw", "seq", "fc1", "head"):
        w = dict(small.named_modules())[name].weight
        assert (w == 0).float().mean() >= 0.5 - 1e-6, name
        assert max(levels(channel) for channel in w) <= 2**3, name  # per-channel codes
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())


def test_filter_fn_and_overrides_choose_layers_and_settings():
    base = user_net()
    config = CompressionConfig(bits=4, granularity="per_tensor", skip_first_last=False)
    small = compress(
        base,
        config,
        filter_fn=lambda module, name: not isinstance(module, nn.Conv1d),
        overrides={"fc1": {"bits": 2}, "*w": {"prune_rate": 0.3}},  # dw and pw
    )
    mods, base_mods = dict(small.named_modules()), dict(base.named_modules())
    assert torch.equal(mods["seq"].weight, base_mods["seq"].weight)  # filtered out
    assert levels(mods["fc1"].weight) <= 4  # 2 bits
    assert 4 < levels(mods["head"].weight) <= 16  # the config's 4 bits
    for name in ("dw", "pw"):
        assert abs((mods[name].weight == 0).float().mean() - 0.3) < 0.02
    record = small.slimscope_record
    assert record.layers["head"].mask is None and record.layers["dw"].mask is not None


def test_an_override_that_matches_nothing_says_which_layers_there_are():
    with pytest.raises(ConfigError, match="matches no layer.*dw, pw"):
        compress(user_net(), CompressionConfig(bits=4), overrides={"conv*": {"bits": 2}})
    with pytest.raises(ConfigError, match="only"):
        compress(user_net(), CompressionConfig(bits=4), overrides={"fc1": {"quant": "kmeans"}})


def test_artifact_round_trip_needs_and_uses_the_architecture():
    base = user_net()
    small = compress(base, CompressionConfig(prune_rate=0.6, bits=4, skip_first_last=False))
    blob = export(small)
    with pytest.raises(ArtifactError, match="model=MyNet"):
        load_compressed(blob)
    back = load_compressed(blob, model=UserNet())
    assert export(back) == blob
    with torch.no_grad():
        assert torch.equal(back(X), small(X))


def test_channel_pruning_of_an_unregistered_model_through_the_dependency_graph():
    base = user_net()
    config = CompressionConfig(prune_rate=0.5, prune_method="l1-structured", skip_first_last=False)
    with pytest.raises(CompressionError, match="example_inputs"):
        compress(base, config)
    small = compress(base, config, example_inputs=X[:1])
    assert small.fc1.weight.shape[0] == 16  # 32 -> 16 channels, and the head follows
    assert small.head.weight.shape[1] == 16
    assert small.stem.weight.shape[0] == small.pw.weight.shape[0] == small.bn0.num_features
    assert small(X).shape == (64, 10)
    back = load_compressed(export(small), model=UserNet())
    with torch.no_grad():
        assert torch.equal(back(X), small(X))


class RawParameter(nn.Module):
    """fc1's channels feed a bare nn.Parameter, which Torch-Pruning cannot cut correctly."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(3, 2)
        self.mix = nn.Parameter(torch.randn(8, 3))

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)) @ self.mix)


@pytest.mark.filterwarnings("ignore:Unwrapped parameters")
def test_a_layer_channel_pruning_cannot_handle_is_named_with_what_to_do():
    config = CompressionConfig(prune_rate=0.5, prune_method="l2-structured", skip_first_last=False)
    with pytest.raises(CompressionError, match="layer 'fc1'.*exclude=\\('fc1',\\)"):
        compress(RawParameter(), config, example_inputs=torch.randn(1, 4))
    small = compress(RawParameter(), dataclasses.replace(config, exclude=("fc1",)),
                     example_inputs=torch.randn(1, 4))  # fmt: skip
    assert small.fc1.weight.shape == (8, 4) and small(torch.randn(2, 4)).shape == (2, 2)


def test_evaluate_compressed_works_on_an_unregistered_model():
    base = user_net()
    small = compress(base, CompressionConfig(prune_rate=0.5, bits=4))
    r = evaluate_compressed(base, small, DATA)
    assert r.model == "UserNet" and r.artifact_bytes == len(export(small))
    with torch.no_grad():
        expected = (small(X).argmax(1) == DATA.test_y).float().mean().item()
    assert r.accuracy == pytest.approx(expected)


def test_the_result_is_a_plain_module_torch_export_and_compile_accept():
    base = user_net()
    small = compress(base, CompressionConfig(prune_rate=0.5, bits=4, skip_first_last=False))
    with torch.no_grad():
        expected = small(X)
        exported = torch.export.export(small, (X[:2],))
        assert torch.allclose(exported.module()(X[:2]), expected[:2], atol=1e-5)
        compiled = torch.compile(small, backend="eager")
        assert torch.allclose(compiled(X), expected, atol=1e-5)
