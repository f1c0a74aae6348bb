"""Evaluation: metrics against a hand computation, and the prefix cache against a plain forward."""

import pytest
import torch

from compress_core import CompressionConfig, compress
from compress_core.core.pipeline import calibration_batches
from compress_core.eval.evaluate import evaluate, subset_indices

CONFIGS = [
    CompressionConfig(prune_rate=0.5, bits=4),  # first layer intact: prefix reused
    CompressionConfig(prune_rate=0.5, bits=4, skip_first_last=False),  # nothing to reuse
    CompressionConfig(prune_rate=0.5, prune_method="l1-structured", bits=8),
    CompressionConfig(bits=6, act_bits=8),  # activation hooks change the second layer's input
    CompressionConfig(prune_rate=0.9, exclude=("conv2",)),
]


def test_metrics_match_a_hand_computation(tiny):
    x = torch.randn(300, 1, 16, 16)
    y = torch.randint(0, 10, (300,))
    m = evaluate(tiny, x, y)
    with torch.no_grad():
        logits = tiny(x)
    pred = logits.argmax(1)
    assert m.accuracy == pytest.approx((pred == y).float().mean().item())
    assert m.loss == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    for c in range(10):
        sel = y == c
        assert m.per_class[c] == pytest.approx((pred[sel] == c).float().mean().item())
    assert torch.equal(m.predictions, pred) and m.finite


def test_subset_is_fixed_and_sorted():
    a, b = subset_indices(1000, 100), subset_indices(1000, 100)
    assert torch.equal(a, b) and len(a.unique()) == 100 and torch.all(a[1:] > a[:-1])
    assert torch.equal(subset_indices(50, 100), torch.arange(50))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.label() + str(c.skip_first_last))
def test_prefix_cache_gives_bit_identical_results(digits_lenet, config):
    base, data = digits_lenet
    small = compress(base, config, calibration_batches(data))
    plain = evaluate(small, data.test_x, data.test_y)
    for _ in range(2):  # the second call reads the cache
        fast = evaluate(small, data.test_x, data.test_y, base=base)
        assert torch.equal(plain.predictions, fast.predictions)
        assert plain.loss == fast.loss and plain.accuracy == fast.accuracy


def test_changed_lists_flipped_images(digits_lenet):
    base, data = digits_lenet
    ref = evaluate(base, data.test_x, data.test_y)
    small = compress(base, CompressionConfig(prune_rate=0.95, bits=2))
    m = evaluate(small, data.test_x, data.test_y, base=base)
    flipped = m.changed(ref)
    assert flipped == (m.predictions != ref.predictions).nonzero().view(-1).tolist()
    assert len(flipped) > 0


def test_prefix_cache_is_channels_last_only_where_bit_identical(digits_lenet):
    """LeNet's cached conv1 maps are kept channels-last (pooling and conv2 run faster), and
    only because its suffix gives the same bits on them; 2-D values are never converted."""
    from compress_core.eval import prefix

    base, data = digits_lenet
    small = compress(base, CompressionConfig(prune_rate=0.5, bits=4))
    graph = prefix._trace(base)
    frontier = prefix._frontier(graph, base, small)
    values = prefix._prefix_values(graph, frontier, base, data.test_x[:64], 32)
    maps = [t for v in values for t in v if t.dim() == 4]
    assert maps and all(t.is_contiguous(memory_format=torch.channels_last) for t in maps)
    suffix = prefix._suffix(graph, frontier, small)
    with torch.inference_mode():
        fast = suffix(*values[0])
        plain = suffix(*(t.contiguous() for t in values[0]))
    assert torch.equal(fast, plain)
    flat = (torch.randn(4, 8),)
    assert not prefix._same_in_channels_last(torch.nn.Identity(), flat)
