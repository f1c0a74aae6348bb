"""Open registries: a registered method is accepted everywhere, and every registered method
passes the same invariants (conformance, as scikit-learn's parametrize_with_checks)."""

from __future__ import annotations

import contextlib

import pytest
import torch
from conftest import TinyNet

from compress_core import CompressionConfig, compress
from compress_core.__main__ import parser
from compress_core.core.config import PRUNE_METHODS, QUANT_METHODS, ConfigError
from compress_core.core.prune import PRUNERS, register_pruning_method
from compress_core.core.quantize import QUANTIZERS, uniform
from compress_core.format.artifact import export, load_compressed


@contextlib.contextmanager
def registered(registry, name):
    """Forget ``name`` from ``registry`` after the block."""
    try:
        yield
    finally:
        registry.unregister(name)


def test_a_registered_pruning_method_and_quantizer_are_accepted_everywhere(tiny):
    with registered(PRUNERS, "largest"), registered(QUANTIZERS, "uniform-copy"):
        with pytest.raises(ConfigError, match="prune_method must be one of"):
            CompressionConfig(prune_method="largest")

        @register_pruning_method("largest", description="drop the largest |w| (a test)")
        def largest(weight, generator):
            return -weight.abs()

        QUANTIZERS.register("uniform-copy")(uniform)
        config = CompressionConfig(prune_rate=0.5, prune_method="largest", quant="uniform-copy")
        assert "largest" in PRUNE_METHODS and "uniform-copy" in QUANT_METHODS
        assert not config.structured
        args = parser().parse_args(
            ["run", "--method", "largest", "--quant", "uniform-copy", "--prune", "0.5"]
        )
        assert (args.method, args.quant) == ("largest", "uniform-copy")
        small = compress(tiny, config)
        w, w0 = small.fc1.weight, tiny.fc1.weight
        kept = w0.abs()[w != 0]
        assert kept.max() <= w0.abs()[w == 0].min()  # the largest were removed
    assert "largest" not in PRUNE_METHODS


def test_structured_is_a_registry_attribute_not_a_name():
    with registered(PRUNERS, "channels-by-l1"):
        register_pruning_method("channels-by-l1", structured=True)(PRUNERS["l1-structured"].score)
        assert CompressionConfig(prune_method="channels-by-l1").structured
    assert {n for n in PRUNERS if PRUNERS[n].structured} == {"l1-structured", "l2-structured"}


def _conformance_cases():
    for method in PRUNERS:
        for quant in QUANTIZERS:
            yield pytest.param(method, quant, id=f"{method}-{quant}")


@pytest.mark.parametrize("method, quant", list(_conformance_cases()))
@pytest.mark.parametrize("bits", [2, 4])
def test_every_registered_method_keeps_the_invariants(tiny, method, quant, bits):
    config = CompressionConfig(
        prune_rate=0.5, prune_method=method, quant=quant, bits=bits, skip_first_last=False
    )
    small = compress(tiny, config)
    record = small.slimscope_record
    for name, layer in record.layers.items():
        w = dict(small.named_modules())[name].weight
        if layer.mask is not None:  # sparsity reached, pruned weights stay exactly zero
            assert (~layer.mask).float().mean() == pytest.approx(0.5, abs=0.01)
            assert torch.all(w[~layer.mask] == 0)
        mask = layer.mask if layer.mask is not None else torch.ones_like(w, dtype=torch.bool)
        per_channel = w.reshape(w.shape[0], -1)
        for row, keep in zip(per_channel, mask.reshape(w.shape[0], -1), strict=True):
            assert len(torch.unique(row[keep])) <= 2**bits  # at most 2^k levels
    if config.structured:
        assert record.structured and small.fc1.weight.shape[0] < tiny.fc1.weight.shape[0]
    blob = export(small)
    back = load_compressed(blob, model=TinyNet())
    assert export(back) == blob  # round trip, bit-exact
    for (k, a), b in zip(small.state_dict().items(), back.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_an_entry_point_registers_a_quantizer_once(monkeypatch):
    import importlib.metadata

    from compress_core.core import registry

    loads = []

    class Plugin:
        name, value = "mine", "mypkg.methods"

        def load(self):
            loads.append(1)
            QUANTIZERS.register("plugin-uniform")(uniform)

    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda group: [Plugin()] if group == "g" else []
    )
    with registered(QUANTIZERS, "plugin-uniform"):
        assert registry.load_entry_points("g") == []
        assert registry.load_entry_points("g") == []  # once per process
        assert CompressionConfig(bits=4, quant="plugin-uniform").quant == "plugin-uniform"
        assert loads == [1] and "plugin-uniform" in QUANT_METHODS
    registry._LOADED.discard("g")
