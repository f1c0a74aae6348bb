"""Going smaller than Deep Compression: per-layer rates, other quantizers, rounded biases."""

from __future__ import annotations

import json

import pytest
import torch

from compress_core.core.config import ConfigError
from compress_core.core.layers import weight_layers
from compress_core.core.quantize import round_mantissa
from compress_core.core.record import dequantize, get_record
from compress_core.format.artifact import artifact_size, export, load_compressed
from compress_core.train.deep_compression import (
    SMALLER,
    DeepCompressionConfig,
    deep_compression,
    round_biases_,
    smaller_preset,
)
from compress_core.train.finetune import nested_masks

RATES = (("fc1", 0.95), ("fc2", 0.8), ("fc3", 0.3))


def test_round_mantissa_at_7_bits_is_bfloat16_rounding():
    x = torch.randn(50_000, generator=torch.Generator().manual_seed(0)) * 10
    assert torch.equal(round_mantissa(x, 7), x.to(torch.bfloat16).float())


@pytest.mark.parametrize("bits", [0, 3, 10, 22])
def test_round_mantissa_clears_the_low_bits_within_half_a_step(bits):
    x = torch.randn(20_000, generator=torch.Generator().manual_seed(1)) * 3
    r = round_mantissa(x, bits)
    low = r.view(torch.int32) & ((1 << (23 - bits)) - 1)
    assert not low.any()
    assert ((r - x).abs() <= x.abs() * 2.0 ** -(bits + 1)).all()
    assert torch.equal(round_mantissa(r, bits), r)  # idempotent


def test_round_mantissa_keeps_finite_values_finite():
    big = torch.tensor([3.4e38, -3.4e38, float("inf"), 0.0])
    r = round_mantissa(big, 2)
    assert torch.isfinite(r[:2]).all() and r[2] == float("inf") and r[3] == 0


def test_per_layer_nested_masks_reach_each_layers_own_rate_and_never_revive():
    g = torch.Generator().manual_seed(0)
    weights = {n: torch.randn(40, 50, generator=g) for n in ("a", "b")}
    first = nested_masks(weights, None, {"a": 0.5, "b": 0.2}, "magnitude", "layer")
    noisy = {n: w + torch.randn(w.shape, generator=g) for n, w in weights.items()}
    second = nested_masks(noisy, first, {"a": 0.9, "b": 0.4}, "magnitude", "layer")
    for name, rate in (("a", 0.9), ("b", 0.4)):
        assert int((~second[name]).sum()) == round(rate * 2000)
        assert not (second[name] & ~first[name]).any()


@pytest.fixture(scope="module")
def run(digits_mlp):
    base, data = digits_mlp
    dc = DeepCompressionConfig(
        scope="layer",
        layer_rates=RATES,
        fc_bits=3,
        prune_steps=2,
        prune_epochs=1,
        centroid_epochs=1,
        quant="ecq",
        bias_mantissa=7,
    )
    model, report = deep_compression(base, data, dc)
    return base, data, dc, model, report


def test_every_layer_is_pruned_to_its_own_rate(run):
    _, _, _, model, _ = run
    record = get_record(model)
    rates = dict(RATES)
    for name, module in weight_layers(model).items():
        mask = record.layers[name].mask
        assert int((~mask).sum()) == round(rates[name] * module.weight.numel()), name


def test_ecq_codes_are_the_weights_and_the_artifact_round_trips(run):
    _, data, dc, model, report = run
    record = get_record(model)
    for name, module in weight_layers(model).items():
        layer = record.layers[name]
        assert layer.quant.scheme == "affine" and int(layer.quant.codes.max()) < 2**dc.fc_bits
        assert torch.equal(module.weight.detach()[layer.mask], dequantize(layer.quant))
    blob = export(model)
    assert len(blob) == report.final.artifact_bytes
    assert export(load_compressed(blob)) == blob
    assert report.stages[2].title.startswith("+ ecq quantized")


def test_biases_are_rounded_and_the_artifact_is_smaller_for_it(run):
    _, _, _, model, _ = run
    for module in weight_layers(model).values():
        b = module.bias.detach()
        assert torch.equal(b, round_mantissa(b, 7))
    full = artifact_size(model).artifact_bytes
    unrounded = load_compressed(export(model))
    with torch.no_grad():  # put some float32 noise back into the low bits
        for module in weight_layers(unrounded).values():
            module.bias.add_(module.bias.abs() * 2e-5)
    assert artifact_size(unrounded).artifact_bytes > full + 100


def test_round_biases_leaves_float32_alone(digits_mlp):
    base, _ = digits_mlp
    model = load_compressed(export(base))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    round_biases_(model, list(weight_layers(model)), 23)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_new_settings_at_their_defaults_keep_old_cache_keys():
    old = {
        "prune_rate", "scope", "conv_bits", "fc_bits", "prune_steps", "prune_epochs",
        "centroid_epochs", "lr", "centroid_lr", "seed",
    }  # fmt: skip
    assert set(json.loads(DeepCompressionConfig().key())) == old
    dc = smaller_preset("lenet5-caffe", quant="ecq")
    assert DeepCompressionConfig.from_dict(json.loads(dc.key())) == dc


@pytest.mark.parametrize("model", sorted(SMALLER))
def test_smaller_presets_are_valid_and_name_real_layers(model):
    from compress_core.io.models import build_model

    dc = smaller_preset(model)
    layers = weight_layers(build_model(model, (1, 28, 28), 10))
    assert {glob for glob, _ in dc.layer_rates} == set(layers)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(layer_rates=(("fc1", 0.9),)), "need scope='layer'"),
        (dict(scope="layer", layer_rates=(("fc1", 1.5),)), "layer_rates must be"),
        (dict(scope="layer", layer_rates=("fc1",)), "layer_rates must be"),
        (dict(quant="zip"), "quant must be one of"),
        (dict(bias_mantissa=24), "bias_mantissa must be"),
    ],
)
def test_bad_new_settings_are_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DeepCompressionConfig(**kwargs)


def test_soft_sharing_from_a_pruned_model_holds_its_masks(digits_mlp):
    from compress_core.core.config import CompressionConfig
    from compress_core.core.pipeline import compress
    from compress_core.eval.evaluate import evaluate
    from compress_core.train.soft_sharing import SoftSharingConfig, soft_weight_sharing

    base, data = digits_mlp
    config = CompressionConfig(prune_rate=0.8, scope="global", skip_first_last=False)
    pruned = compress(base, config)
    before = {n: layer.mask.clone() for n, layer in get_record(pruned).layers.items()}
    cfg = SoftSharingConfig(epochs=1, components=7, zero_mix=0.3, bias_mantissa=7)
    small = soft_weight_sharing(pruned, data, cfg)
    record = get_record(small)
    for name, module in weight_layers(small).items():
        assert torch.equal(module.bias, round_mantissa(module.bias, 7))
        mask = record.layers[name].mask
        assert not (mask & ~before[name]).any(), name  # nothing pruned comes back
        assert not module.weight.detach()[~before[name]].any()
    values = torch.cat([m.weight.reshape(-1) for m in weight_layers(small).values()])
    assert len(torch.unique(values)) <= cfg.components + 1
    acc = {m: evaluate(m, data.test_x, data.test_y).accuracy for m in (pruned, small)}
    assert acc[small] >= acc[pruned] - 0.05
    blob = export(small)
    assert export(load_compressed(blob)) == blob
    with pytest.raises(ConfigError, match="float weights"):
        soft_weight_sharing(small, data, cfg)


# --- the CLI: --preset smaller, --quant ------------------------------------------------------

QUICK_ARGS = ["--prune-epochs", "1", "--prune-steps", "1", "--centroid-epochs", "1"]


def test_a_prune_rate_override_replaces_the_tuned_per_layer_rates():
    dc = smaller_preset("mlp", prune_rate=0.9)
    assert dc.layer_rates == () and dc.scope == "layer" and dc.prune_rate == 0.9
    assert dc.fc_bits == SMALLER["mlp"]["fc_bits"]  # the rest of the preset stays
    kept = smaller_preset("mlp", prune_epochs=1)
    assert kept.layer_rates == SMALLER["mlp"]["layer_rates"]


def test_cli_smaller_preset_runs_with_its_per_layer_rates_in_the_settings_line(
    digits_mlp, capsys, cache_dir
):
    from compress_core.__main__ import main
    from compress_core.train.deep_compression import cache_paths, preset

    base, data = digits_mlp
    argv = ["deep-compression", "--model", "mlp", "--data", "digits", "--preset", "smaller"]
    assert main([*argv, *QUICK_ARGS, "--cache-dir", cache_dir]) == 0
    settings = next(line for line in capsys.readouterr().out.splitlines() if "settings" in line)
    assert "(smaller preset)" in settings
    assert "keep fc1 2.5%, fc2 6.0%, fc3 40.0%" in settings and "3-bit fc" in settings
    quick = dict(prune_epochs=1, prune_steps=1, centroid_epochs=1, seed=0)
    dc = smaller_preset("mlp", **quick)
    assert cache_paths(base, data, dc, cache_dir)[1].is_file()  # the run the CLI kept
    others = [preset("mlp", **quick), smaller_preset("mlp", quant="ecq", **quick)]
    paths = {cache_paths(base, data, c, cache_dir)[1] for c in [dc, *others]}
    assert len(paths) == 3  # the presets and quantizers are cached apart


def test_cli_quant_override_reaches_the_report(digits_mlp, capsys, cache_dir):
    from compress_core.__main__ import main

    argv = ["deep-compression", "--model", "mlp", "--preset", "smaller", "--quant", "ecq"]
    assert main([*argv, *QUICK_ARGS, "--fc-bits", "4", "--json", "--cache-dir", cache_dir]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["settings"]["quant"] == "ecq" and report["settings"]["fc_bits"] == 4
    assert [list(p) for p in SMALLER["mlp"]["layer_rates"]] == report["settings"]["layer_rates"]
    assert report["stages"][2]["title"].startswith("+ ecq quantized")


def test_cli_smaller_preset_for_a_model_without_one_names_those_with_one(capsys, monkeypatch):
    import compress_core.__main__ as cli

    def no_training(args):
        raise AssertionError("the settings are checked before any training")

    monkeypatch.setattr(cli, "_baseline", no_training)
    assert cli.main(["deep-compression", "--model", "lenet5", "--preset", "smaller"]) == 2
    err = capsys.readouterr().err
    assert "no smaller preset for 'lenet5'" in err and "mlp, lenet5-caffe" in err
    with pytest.raises(SystemExit):  # argparse: not a registered quantizer
        cli.main(["deep-compression", "--model", "mlp", "--quant", "zip"])
