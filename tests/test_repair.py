"""BatchNorm re-estimation and bias correction: statistics and means against references."""

from __future__ import annotations

import pytest
import torch

from compress_core import CompressionConfig, CompressionError, compress
from compress_core.format.artifact import export, load_compressed

BATCHES = list(torch.randn(512, 1, 16, 16, generator=torch.Generator().manual_seed(0)).split(128))


def test_bn_statistics_are_re_estimated_on_the_compressed_weights(tiny):
    config = CompressionConfig(prune_rate=0.6, bits=3, skip_first_last=False, recalibrate_bn=True)
    small = compress(tiny, config, BATCHES)
    with torch.no_grad():  # reference: per-batch mean and unbiased variance, averaged
        outs = [small.conv1(x) for x in BATCHES]
    mean = torch.stack([o.mean(dim=(0, 2, 3)) for o in outs]).mean(0)
    var = torch.stack([o.var(dim=(0, 2, 3), unbiased=True) for o in outs]).mean(0)
    assert torch.allclose(small.bn1.running_mean, mean, atol=1e-5)
    assert torch.allclose(small.bn1.running_var, var, rtol=1e-4)
    assert not torch.allclose(tiny.bn1.running_mean, mean, atol=1e-3)  # the base is untouched
    assert small.bn1.momentum == tiny.bn1.momentum and not small.training
    back = load_compressed(export(small), model=type(tiny)())
    assert torch.equal(back.bn1.running_var, small.bn1.running_var)  # stored in the artifact


def test_bias_correction_matches_each_layers_mean_output_to_the_base(tiny):
    config = CompressionConfig(bits=2, include=("fc1",), skip_first_last=False)
    plain = compress(tiny, config)
    fixed = compress(tiny, CompressionConfig(**{**config.to_dict(), "bias_correction": True,
                                                "include": ("fc1",)}), BATCHES)  # fmt: skip

    def fc1_mean(model):
        seen = []
        hook = model.fc1.register_forward_hook(lambda m, i, o: seen.append(o.mean(0)))
        with torch.no_grad():
            for x in BATCHES:
                model(x)
        hook.remove()
        return torch.stack(seen).mean(0)

    target = fc1_mean(tiny)
    assert not torch.allclose(fc1_mean(plain), target, atol=1e-3)
    assert torch.allclose(fc1_mean(fixed), target, atol=1e-5)
    assert torch.equal(fixed.fc1.weight, plain.fc1.weight)  # only the float bias moved


def test_repairs_without_batches_say_what_to_pass(tiny):
    with pytest.raises(CompressionError, match="calibration="):
        compress(tiny, CompressionConfig(bits=4, recalibrate_bn=True))
