"""Fine-tuning after compression: masks held, QAT, centroid gradients, exact records, cancel."""

from __future__ import annotations

import copy
import os

import pytest
import torch

from compress_core.core.config import CompressionConfig, ConfigError
from compress_core.core.layers import weight_layers
from compress_core.core.pipeline import compress
from compress_core.core.prune import unstructured_masks
from compress_core.core.quantize import quantize_tensor
from compress_core.core.record import LayerRecord, get_record, materialize
from compress_core.eval.evaluate import evaluate
from compress_core.format.artifact import artifact_size, export, load_compressed
from compress_core.train.baseline import TrainingCancelled, train
from compress_core.train.finetune import (
    FinetuneConfig,
    _FakeQuant,
    _SharedWeights,
    finetune,
    finetuned_path,
    get_finetuned,
    nested_masks,
    prune_schedule,
    run_finetuned,
)

FAST = dict(batch_size=256)  # digits has ~1,200 training images: 5 steps an epoch


def bits_of(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().view(torch.int32)


def same_bits(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(bits_of(sa[k]), bits_of(sb[k])) for k in sa)


@pytest.mark.parametrize(
    "config, ft",
    [
        (CompressionConfig(prune_rate=0.8), FinetuneConfig(epochs=2, **FAST)),
        (
            CompressionConfig(prune_rate=0.9, scope="global"),
            FinetuneConfig(epochs=2, prune_steps=3),
        ),
        (
            CompressionConfig(prune_rate=0.7, prune_method="random"),
            FinetuneConfig(epochs=2, **FAST),
        ),
        (
            CompressionConfig(prune_rate=0.8, bits=4, skip_first_last=False),
            FinetuneConfig(epochs=1, prune_steps=2, qat_epochs=2, **FAST),
        ),
        (
            CompressionConfig(prune_rate=0.8, bits=3, quant="kmeans", granularity="per_tensor"),
            FinetuneConfig(epochs=1, qat_epochs=2, **FAST),
        ),
    ],
    ids=["magnitude", "global-iterative", "random", "qat-uniform", "kmeans-centroids"],
)
def test_masks_survive_finetuning(digits_lenet, config, ft):
    """No pruned weight becomes non-zero (not even -0.0), and the final sparsity is the target."""
    base, data = digits_lenet
    model = finetune(base, data, config, ft)
    record = get_record(model)
    modules, before = weight_layers(model), weight_layers(base)
    assert record.layers, "nothing was pruned"
    kept = total = 0
    for name, layer in record.layers.items():
        w = modules[name].weight.detach()
        assert (bits_of(w)[~layer.mask] == 0).all(), f"{name}: a pruned weight is not +0.0"
        assert not torch.equal(w, before[name].weight * layer.mask), f"{name}: never trained"
        kept, total = kept + int(layer.mask.sum()), total + layer.mask.numel()
    if config.scope == "global":
        assert total - kept == round(config.prune_rate * total)


def test_one_step_mask_is_the_one_shot_mask(digits_lenet):
    """Held fixed means held fixed: retraining keeps exactly compress()'s mask."""
    base, data = digits_lenet
    config = CompressionConfig(prune_rate=0.75)
    model = finetune(base, data, config, FinetuneConfig(epochs=2, **FAST))
    one_shot = get_record(compress(base, config))
    for name, layer in get_record(model).layers.items():
        assert torch.equal(layer.mask, one_shot.layers[name].mask)


@pytest.mark.parametrize(
    "config",
    [
        CompressionConfig(prune_rate=0.6),
        CompressionConfig(prune_rate=0.9, scope="global", bits=4, quant="kmeans"),
        CompressionConfig(prune_rate=0.5, prune_method="random", bits=3, quant="symmetric"),
        CompressionConfig(prune_rate=0.5, prune_method="l1-structured", bits=6),
        CompressionConfig(bits=8, act_bits=8),
    ],
    ids=["prune", "global-kmeans", "random-symmetric", "structured", "activations"],
)
def test_no_training_equals_compress(digits_lenet, config):
    """With 0 epochs everywhere, finetune is compress: bit for bit, record for record."""
    base, data = digits_lenet
    model = finetune(base, data, config, FinetuneConfig(epochs=0, qat_epochs=0))
    from compress_core.core.pipeline import calibration_batches

    reference = compress(base, config, calibration_batches(data))
    assert same_bits(model, reference)
    assert export(model) == export(reference)


def test_base_model_is_never_changed(digits_lenet):
    base, data = digits_lenet
    before = copy.deepcopy(base.state_dict())
    finetune(base, data, CompressionConfig(prune_rate=0.8, bits=4), FinetuneConfig(1, qat_epochs=1))
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())


@pytest.mark.parametrize("quant", ["uniform", "symmetric", "kmeans"])
def test_qat_at_4_bits_beats_one_shot_4_bits(digits_lenet, quant):
    """Same model, same data, same 4 bits: training through the quantizer wins accuracy back."""
    base, data = digits_lenet
    config = CompressionConfig(bits=4, quant=quant, granularity="per_tensor", skip_first_last=False)
    one = evaluate(compress(base, config), data.test_x, data.test_y)
    qat = evaluate(
        finetune(base, data, config, FinetuneConfig(qat_epochs=2)), data.test_x, data.test_y
    )
    assert qat.accuracy > one.accuracy
    assert qat.loss < one.loss


@pytest.mark.parametrize("quant", ["uniform", "symmetric"])
def test_qat_beats_float_training_then_quantizing_at_2_bits(digits_lenet, quant):
    """The straight-through estimator matters: the same epochs in float, then PTQ, lose."""
    base, data = digits_lenet
    config = CompressionConfig(bits=2, quant=quant, granularity="per_tensor", skip_first_last=False)
    ft = FinetuneConfig(qat_epochs=2)
    qat = finetune(base, data, config, ft)
    trained = train(copy.deepcopy(base), data, ft.qat_epochs, seed=ft.seed, lr=ft.lr)
    ptq = compress(trained, config)
    acc = lambda m: evaluate(m, data.test_x, data.test_y).accuracy  # noqa: E731
    assert acc(qat) > acc(ptq) + 0.05


@pytest.mark.parametrize("per_channel", [False, True])
def test_centroid_gradient_is_the_sum_of_its_weights_gradients(per_channel):
    """Deep Compression's centroid update, checked against an explicit scatter-add."""
    torch.manual_seed(0)
    w = torch.randn(6, 4, 3, 3)
    mask = torch.rand(w.shape) > 0.4
    layer = LayerRecord(mask, quantize_tensor(w, mask, 3, "kmeans", per_channel))
    q = layer.quant
    upstream = torch.randn(w.shape)
    flat = q.groups * q.codebook.shape[1] + q.codes
    summed = torch.zeros_like(q.codebook).view(-1)
    summed.index_add_(0, flat, upstream.reshape(-1)[mask.reshape(-1)])
    pinned = bits_of(q.codebook) == 0  # the 0.0 k-means pins where weights are pruned
    assert pinned[:, 0].all() and int(pinned.sum()) == len(q.codebook)
    for hold_zero in (True, False):  # False: Deep Compression's replay, nothing held
        shared = _SharedWeights(layer, w.numel(), hold_zero)
        out = shared(torch.zeros_like(w))
        assert torch.equal(out, materialize(w.shape, layer, None))
        (out * upstream).sum().backward()
        expected = summed.clone()
        if hold_zero:
            expected[pinned.view(-1)] = 0.0  # the pinned 0.0 gets no gradient: it stays 0.0
        torch.testing.assert_close(shared.codebook.grad.view(-1), expected)


def test_centroid_training_keeps_the_pinned_zero_and_writes_format_5(digits_lenet):
    """k-means at 4 bits, 5 % pruned, centroids trained: each pruned channel's entry 0 is
    still +0.0, the pruned weights are that code (format 5's zero level, no positions)."""
    base, data = digits_lenet
    config = CompressionConfig(prune_rate=0.05, bits=4, quant="kmeans")
    model = finetune(base, data, config, FinetuneConfig(epochs=0, qat_epochs=1, **FAST))
    one_shot = get_record(compress(base, config)).layers
    moved = 0
    for name, layer in get_record(model).layers.items():
        q = layer.quant
        pruned = (~layer.mask).reshape(len(q.codebook), -1).any(dim=1)
        assert torch.equal(bits_of(q.codebook[:, 0]) == 0, pruned), name
        moved += int((q.codebook != one_shot[name].quant.codebook).sum())
    assert moved > 0  # the other centroids did train
    blob = export(model)
    assert blob[4] == 5
    assert "zero level" in {r["index_encoding"] for r in artifact_size(model).layers}
    back = load_compressed(blob)
    assert same_bits(model, back) and export(back) == blob


@pytest.mark.parametrize("method", ["uniform", "symmetric"])
def test_fake_quant_forward_is_the_quantizer_and_backward_is_straight_through(method):
    torch.manual_seed(0)
    w = torch.randn(8, 16, requires_grad=True)
    mask = torch.rand(w.shape) > 0.5
    out = _FakeQuant(mask, 4, method, True)(w)
    q = quantize_tensor(w.detach(), mask, 4, method, True)
    torch.testing.assert_close(out, materialize(w.shape, LayerRecord(mask, q), None))
    upstream = torch.randn(w.shape)
    (out * upstream).sum().backward()
    assert torch.equal(w.grad, upstream * mask)  # identity on kept weights, zero on pruned


@pytest.mark.parametrize("rate, steps", [(0.9, 1), (0.9, 4), (0.5, 3), (0.99, 10)])
def test_prune_schedule_rises_to_the_target(rate, steps):
    schedule = prune_schedule(rate, steps)
    assert len(schedule) == steps and schedule[-1] == pytest.approx(rate)
    assert all(a < b for a, b in zip(schedule, schedule[1:], strict=False))
    assert schedule == [rate * (1 - (1 - k / steps) ** 3) for k in range(1, steps + 1)]


@pytest.mark.parametrize("method", ["magnitude", "random"])
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_nested_masks_match_the_engine_and_never_revive(tiny, method, scope):
    weights = {n: m.weight for n, m in weight_layers(tiny).items()}
    first = nested_masks(weights, None, 0.5, method, scope, seed=3)
    reference = unstructured_masks(weights, 0.5, method, scope, seed=3)
    assert all(torch.equal(first[n], reference[n]) for n in weights)
    noisy = {n: w + torch.randn_like(w) for n, w in weights.items()}  # ranks change
    second = nested_masks(noisy, first, 0.8, method, scope, seed=4)
    assert all(not (second[n] & ~first[n]).any() for n in weights)
    pruned = sum(int((~m).sum()) for m in second.values())
    total = sum(m.numel() for m in second.values())
    if scope == "global":
        assert pruned == round(0.8 * total)


@pytest.mark.parametrize(
    "config, ft",
    [
        (
            CompressionConfig(prune_rate=0.9, bits=5, quant="kmeans", huffman=True),
            FinetuneConfig(1),
        ),
        (CompressionConfig(prune_rate=0.5, bits=4, act_bits=6), FinetuneConfig(1, qat_epochs=1)),
        (
            CompressionConfig(prune_rate=0.5, prune_method="l2-structured", bits=4),
            FinetuneConfig(1, qat_epochs=1),
        ),
    ],
    ids=["kmeans-huffman", "activations", "structured"],
)
def test_finetuned_artifact_round_trips_bit_exactly(digits_lenet, config, ft):
    base, data = digits_lenet
    model = finetune(base, data, config, FinetuneConfig(**{**ft.to_dict(), **FAST}))
    blob = export(model)
    assert len(blob) == artifact_size(model).artifact_bytes
    back = load_compressed(blob)
    assert same_bits(model, back)
    assert export(back) == blob
    x = data.test_x[:64]
    assert torch.equal(model(x), back(x))


def _cache_files(folder) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files]


def test_cancel_leaves_no_checkpoint_in_the_cache(digits_lenet, tmp_path):
    base, data = digits_lenet
    config, ft = CompressionConfig(prune_rate=0.8, bits=4), FinetuneConfig(3, qat_epochs=1)
    steps = iter(range(1000))

    def stop_mid_run() -> bool:
        return next(steps) >= 12  # digits: 9 steps an epoch, 36 in the run

    with pytest.raises(TrainingCancelled):
        get_finetuned(base, data, config, ft, tmp_path, should_stop=stop_mid_run)
    assert _cache_files(tmp_path) == []  # no final file, no temp file
    model = get_finetuned(base, data, config, ft, tmp_path)
    assert _cache_files(tmp_path) == [str(finetuned_path(base, data, config, ft, tmp_path))]

    def never() -> bool:
        raise AssertionError("a cached run must not train again")

    again = get_finetuned(base, data, config, ft, tmp_path, should_stop=never)
    assert same_bits(model, again)
    assert finetuned_path(base, data, config, ft, tmp_path).read_bytes() == export(model)


def test_progress_covers_every_epoch_and_ends_at_one(digits_lenet):
    base, data = digits_lenet
    seen = []
    finetune(
        base,
        data,
        CompressionConfig(prune_rate=0.8, bits=4),
        FinetuneConfig(2, qat_epochs=1),
        progress=seen.append,
    )
    ends = [(p.stage, p.epoch) for p in seen if p.step == p.steps]
    assert ends == [("prune", 1), ("prune", 2), ("qat", 1)]
    assert all(p.val_accuracy is not None for p in seen if p.step == p.steps)
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert seen[-1].sparsity == pytest.approx(0.8, abs=0.01)


def test_result_is_marked_finetuned(digits_mlp, tmp_path, monkeypatch):
    monkeypatch.setenv("SLIMSCOPE_CACHE", str(tmp_path))
    base, data = digits_mlp
    r = run_finetuned(base, data, CompressionConfig(prune_rate=0.9), FinetuneConfig(2, **FAST))
    row = r.to_row()
    assert row["finetuned"] is True and r.finetune["epochs"] == 2
    assert "retrained 2 ep" in r.label
    assert (
        r.accuracy
        == evaluate(
            load_compressed(next(tmp_path.rglob("*.slim"))), data.test_x, data.test_y
        ).accuracy
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(epochs=-1), "epochs must be"),
        (dict(epochs=1.5), "epochs must be"),
        (dict(prune_steps=0), "prune_steps must be"),
        (dict(epochs=0, prune_steps=3), "iterative pruning retrains"),
        (dict(qat_epochs=True), "qat_epochs must be"),
        (dict(lr=0), "lr must be above"),
        (dict(lr="fast"), "lr must be a number"),
        (dict(ramp=1.5), "ramp must be"),
        (dict(batch_size=1), "batch_size must be"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        FinetuneConfig(**kwargs)


def test_iterative_channel_pruning_is_refused(digits_lenet):
    base, data = digits_lenet
    with pytest.raises(ConfigError, match="channel pruning runs in one step"):
        finetune(
            base,
            data,
            CompressionConfig(prune_rate=0.5, prune_method="l1-structured"),
            FinetuneConfig(epochs=2, prune_steps=2),
        )


def test_cli_run_fine_tunes(digits_mlp, tmp_path, capsys, cache_dir):
    from compress_core.__main__ import main

    out = tmp_path / "m.slim"
    code = main(
        [
            "run",
            "--model",
            "mlp",
            "--data",
            "digits",
            "--prune",
            "0.9",
            "--bits",
            "4",
            "--finetune-epochs",
            "1",
            "--qat-epochs",
            "1",
            "--export",
            str(out),
            "--json",
            "--cache-dir",
            cache_dir,
        ]
    )
    assert code == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert result["finetune"]["epochs"] == 1 and result["artifact_bytes"] == len(out.read_bytes())
