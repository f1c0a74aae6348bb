"""Quantizers: level counts, exact zeros, error bounds, k-means vs uniform, activations."""

import pytest
import torch

from compress_core import CompressionConfig, compress
from compress_core.core.quantize import (
    PIN_ZERO_BITS,
    QUANTIZERS,
    QuantizationError,
    quantize_tensor,
)
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


# --- k-means with a zero level pinned where a group has pruned weights -------------------


def _pruned_weight(seed=4, shape=(12, 60)):
    """A weight whose smallest 10 % are pruned, with two output channels left whole."""
    w = _weight(seed, shape)
    mask = w.abs() > w.abs().quantile(0.1)
    mask[[2, 7]] = True
    return w, mask


def _plus_zero(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32) == 0  # exactly +0.0, the bits of a pruned weight


@pytest.mark.parametrize("bits", [3, 4, 8])
@pytest.mark.parametrize("per_channel", [False, True])
def test_kmeans_pins_an_exact_zero_entry_where_a_group_has_pruned_weights(bits, per_channel):
    w, mask = _pruned_weight()
    q = quantize_tensor(w, mask, bits, "kmeans", per_channel)
    pruned = (~mask).any(dim=1) if per_channel else (~mask).any().reshape(1)
    assert bits >= PIN_ZERO_BITS
    assert torch.equal(_plus_zero(q.codebook[:, 0]), pruned)  # entry 0, where pruned, only
    values = dequantize(q)
    for g in q.groups.unique():
        assert len(values[q.groups == g].unique()) <= 2**bits
    assert q.codes.min() >= 0 and q.codes.max() < 2**bits
    # Every kept weight is still coded as its nearest entry, the pinned 0.0 included.
    kept = w.reshape(-1)[mask.reshape(-1)]
    err = (q.codebook[q.groups] - kept[:, None]).abs()
    assert torch.equal(err.gather(1, q.codes[:, None]).squeeze(1), err.min(dim=1).values)


@pytest.mark.parametrize("per_channel", [False, True])
def test_kmeans_below_pin_zero_bits_without_pin_or_mask_is_plain_kmeans(per_channel):
    w, mask = _pruned_weight()
    plain = quantize_tensor(w, mask, 2, "kmeans", per_channel, pin_zero=False)
    for q in (
        quantize_tensor(w, mask, PIN_ZERO_BITS - 1, "kmeans", per_channel),
        QUANTIZERS["kmeans"](*_kept(w, mask, per_channel), 2),
    ):
        assert torch.equal(q.codes, plain.codes) and torch.equal(q.codebook, plain.codebook)
    unpinned = quantize_tensor(w, mask, 4, "kmeans", per_channel, pin_zero=False)
    assert not _plus_zero(unpinned.codebook).any()  # Deep Compression's clustering, as it was
    whole = quantize_tensor(w, None, 4, "kmeans", per_channel)  # nothing pruned: nothing pinned
    assert torch.equal(
        whole.codebook, quantize_tensor(w, None, 4, "kmeans", per_channel, False).codebook
    )


def _kept(w, mask, per_channel):
    flat, keep = w.reshape(-1), mask.reshape(-1).nonzero().view(-1)
    n_groups = w.shape[0] if per_channel else 1
    groups = keep // w.shape[1] if per_channel else torch.zeros_like(keep)
    return flat[keep], groups, n_groups


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_kmeans_keeps_the_mask_and_pruned_weights_stay_exactly_zero(tiny, bits):
    pruned = compress(tiny, CompressionConfig(prune_rate=0.3, skip_first_last=False))
    cfg = CompressionConfig(prune_rate=0.3, bits=bits, quant="kmeans", skip_first_last=False)
    out = compress(tiny, cfg)
    modules = dict(out.named_modules())
    for name, layer in get_record(out).layers.items():
        assert torch.equal(layer.mask, get_record(pruned).layers[name].mask)
        assert torch.all(_plus_zero(modules[name].weight[~layer.mask]))
        assert _plus_zero(layer.quant.codebook[:, 0]).all() == (bits >= PIN_ZERO_BITS)


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
