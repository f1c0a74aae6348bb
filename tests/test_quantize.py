"""Quantizers: level counts, exact zeros, error bounds, k-means vs uniform, activations."""

import pytest
import torch

from compress_core import CompressionConfig, compress
from compress_core.core.quantize import QUANTIZERS, QuantizationError, quantize_tensor
from compress_core.core.record import dequantize, get_record

BITS = [1, 2, 3, 4, 5, 6, 8, 12, 16]


def _weight(seed=0, shape=(24, 40)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("method", QUANTIZERS.names())
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("per_channel", [False, True])
def test_k_bits_give_at_most_2_pow_k_values_per_group(method, bits, per_channel):
    w = _weight()
    q = quantize_tensor(w, None, bits, method, per_channel)
    assert q.codes.min() >= 0 and q.codes.max() < 2**bits
    values = dequantize(q)
    for g in q.groups.unique():
        assert len(values[q.groups == g].unique()) <= 2**bits
    if not per_channel:
        assert len(values.unique()) <= 2**bits


@pytest.mark.parametrize("method", ["uniform", "symmetric"])
@pytest.mark.parametrize("bits", [2, 4, 8, 16])
def test_uniform_error_is_at_most_half_a_step(method, bits):
    w = _weight(1)
    q = quantize_tensor(w, None, bits, method, per_channel=False)
    step = q.scale[0].item()
    assert (dequantize(q) - w.reshape(-1)).abs().max() <= step / 2 + 1e-6


@pytest.mark.parametrize("bits", [2, 3, 4, 5])
def test_kmeans_error_not_worse_than_uniform(bits):
    # Lloyd's iterations start from the uniform grid and never increase the squared error.
    w = _weight(2)
    mse = {}
    for method in ("uniform", "kmeans"):
        q = quantize_tensor(w, None, bits, method, per_channel=False)
        mse[method] = ((dequantize(q) - w.reshape(-1)) ** 2).mean().item()
    assert mse["kmeans"] <= mse["uniform"] * 1.0001


def test_one_bit_is_sign_times_scale():
    w = _weight(3)
    q = quantize_tensor(w, None, 1, "uniform", per_channel=True)
    v = dequantize(q).view_as(w)
    assert torch.equal(torch.sign(v), torch.sign(w))
    assert torch.allclose(v.abs().mean(dim=1), w.abs().mean(dim=1), atol=1e-6)


@pytest.mark.parametrize("method", QUANTIZERS.names())
@pytest.mark.parametrize("value", [0.0, 0.37, -2.5])
def test_constant_tensor_is_coded_exactly(method, value):
    w = torch.full((4, 5), value)
    q = quantize_tensor(w, None, 4, method, per_channel=True)
    assert torch.equal(dequantize(q), w.reshape(-1))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(bad):
    w = _weight()
    w[3, 4] = bad
    with pytest.raises(QuantizationError, match="NaN or Inf"):
        quantize_tensor(w, None, 4, "uniform", per_channel=False)


@pytest.mark.parametrize("method", QUANTIZERS.names())
def test_pruned_weights_stay_exactly_zero_after_quantization(tiny, method):
    cfg = CompressionConfig(prune_rate=0.6, bits=3, quant=method, skip_first_last=False)
    out = compress(tiny, cfg)
    for name, layer in get_record(out).layers.items():
        w = dict(out.named_modules())[name].weight
        assert torch.all(w[~layer.mask] == 0)
        assert int(torch.count_nonzero(w)) <= int(layer.mask.sum())


def test_activation_quantization_limits_layer_inputs(tiny):
    calib = [torch.randn(32, 1, 16, 16)]
    cfg = CompressionConfig(act_bits=4, skip_first_last=False)
    out = compress(tiny, cfg, calibration=calib)
    seen = []
    out.fc1.register_forward_pre_hook(lambda m, i: seen.append(i[0]))  # runs after fake-quant
    out(torch.randn(8, 1, 16, 16))
    assert len(seen[0].unique()) <= 2**4
    assert set(get_record(out).activations) == {"conv1", "conv2", "fc1", "fc2"}


def test_activation_quantization_needs_calibration(tiny):
    with pytest.raises(ValueError, match="calibration"):
        compress(tiny, CompressionConfig(act_bits=8))
