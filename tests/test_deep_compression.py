"""The Deep Compression preset: stages, exact artifact, per-type bits, cache and cancel."""

from __future__ import annotations

import json
import os

import pytest
import torch
from torch import nn

from compress_core.core.config import ConfigError
from compress_core.core.layers import weight_layers
from compress_core.core.record import get_record
from compress_core.format.artifact import artifact_size, export, load_compressed
from compress_core.train.baseline import TrainingCancelled
from compress_core.train.deep_compression import (
    STAGES,
    DeepCompressionConfig,
    DeepCompressionReport,
    cache_paths,
    deep_compression,
    format_report,
    get_deep_compression,
)

SMALL = DeepCompressionConfig(
    prune_rate=0.9, conv_bits=6, fc_bits=4, prune_steps=1, prune_epochs=2, centroid_epochs=1
)


@pytest.fixture(scope="module")
def run(digits_lenet):
    base, data = digits_lenet
    seen = []
    model, report = deep_compression(base, data, SMALL, progress=seen.append)
    return model, report, seen


def test_artifact_round_trips_bit_exactly_and_its_length_is_the_reported_bytes(run):
    model, report, _ = run
    blob = export(model)
    assert len(blob) == report.final.artifact_bytes == artifact_size(model).artifact_bytes
    back = load_compressed(blob)
    assert export(back) == blob
    for (k, a), (k2, b) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a.view(torch.int32), b.view(torch.int32)), k


def test_stages_in_order_shrinking_with_ratios_against_fp32(run, digits_lenet):
    _, report, _ = run
    base, _ = digits_lenet
    assert [s.name for s in report.stages] == list(STAGES)
    dense = 4 * sum(p.numel() for p in base.parameters())
    sizes = [s.artifact_bytes for s in report.stages]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)
    for s in report.stages:
        assert s.dense_bytes == dense and s.ratio == dense / s.artifact_bytes
    prune, quantize, huffman = report.stages[1:]
    assert huffman.accuracy == quantize.accuracy  # Huffman coding is lossless
    # The quantize stage is the paper's fixed-width file, the last one the real artifact.
    model, _, _ = run
    assert quantize.artifact_bytes == artifact_size(model, coded=False).artifact_bytes
    assert huffman.artifact_bytes == artifact_size(model).artifact_bytes
    assert prune.nonzero_params == quantize.nonzero_params == huffman.nonzero_params


def test_every_layer_is_pruned_to_the_rate_with_one_global_ranking(run):
    model, _, _ = run
    record = get_record(model)
    assert set(record.layers) == set(weight_layers(model))  # first and last layers included
    masks = [layer.mask for layer in record.layers.values()]
    pruned = sum(int((~m).sum()) for m in masks)
    assert pruned == round(SMALL.prune_rate * sum(m.numel() for m in masks))


def test_conv_and_fc_layers_get_their_own_bit_widths(run):
    model, _, _ = run
    record = get_record(model)
    for name, module in weight_layers(model).items():
        bits = SMALL.conv_bits if isinstance(module, nn.Conv2d) else SMALL.fc_bits
        q = record.layers[name].quant
        assert q.bits == bits and q.scheme == "codebook" and len(q.codebook) == 1
        kept = module.weight.detach()[record.layers[name].mask]
        assert len(torch.unique(kept)) <= 2**bits


def test_k_means_clusters_the_kept_weights_only_with_no_zero_pinned(run):
    """The paper's clustering (pin_zero=False, nothing held in centroid training): no
    codebook entry is +0.0, so the replay is what it was before k-means pinned one."""
    model, _, _ = run
    for name, layer in get_record(model).layers.items():
        assert not (layer.quant.codebook.view(torch.int32) == 0).any(), name
    assert export(model)[4] == 4  # no codebook zero level: format 4, as before


def test_retraining_wins_back_what_one_shot_pruning_lost(run):
    _, report, _ = run
    prune = report.stages[1]
    assert prune.accuracy > prune.one_shot_accuracy + 0.02


def test_progress_covers_both_training_stages(run):
    _, _, seen = run
    ends = [(p.stage, p.epoch) for p in seen if p.step == p.steps]
    assert ends == [("prune", 1), ("prune", 2), ("centroids", 1)]
    assert seen[-1].fraction == pytest.approx(1.0)


def test_report_round_trips_through_json(run):
    _, report, _ = run
    again = DeepCompressionReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report
    text = format_report(report)
    assert "Huffman" in text and f"{report.final.artifact_bytes:,}" in text


def _files(folder) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, files in os.walk(folder) for f in files)


def test_cancel_leaves_nothing_and_a_finished_run_is_reused(digits_lenet, tmp_path):
    base, data = digits_lenet
    dc = DeepCompressionConfig(prune_rate=0.9, prune_epochs=1, centroid_epochs=1)
    steps = iter(range(1000))
    with pytest.raises(TrainingCancelled):
        get_deep_compression(base, data, dc, tmp_path, should_stop=lambda: next(steps) >= 11)
    assert _files(tmp_path) == []  # not the artifact, not the report, no temp file
    model, report = get_deep_compression(base, data, dc, tmp_path)
    slim, meta = cache_paths(base, data, dc, tmp_path)
    assert _files(tmp_path) == sorted([str(meta), str(slim)])
    assert slim.read_bytes() == export(model)

    def never() -> bool:
        raise AssertionError("a cached run must not train again")

    cached, again = get_deep_compression(base, data, dc, tmp_path, should_stop=never)
    assert again == report and export(cached) == export(model)


def test_a_damaged_cache_is_rerun_not_trusted(digits_lenet, tmp_path):
    base, data = digits_lenet
    dc = DeepCompressionConfig(prune_rate=0.8, prune_epochs=0, centroid_epochs=0)
    model, report = get_deep_compression(base, data, dc, tmp_path)
    slim, _ = cache_paths(base, data, dc, tmp_path)
    slim.write_bytes(slim.read_bytes()[:-10])
    with pytest.warns(UserWarning, match="unusable"):
        _, again = get_deep_compression(base, data, dc, tmp_path)
    assert again.final.artifact_bytes == report.final.artifact_bytes == len(slim.read_bytes())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prune_rate=1.5), "prune_rate must be"),
        (dict(conv_bits=0), "conv_bits must be"),
        (dict(fc_bits=17), "fc_bits must be"),
        (dict(scope="everywhere"), "scope must be one of"),
        (dict(prune_epochs=-1), "epochs must be"),
        (dict(centroid_lr=0), "lr must be above"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DeepCompressionConfig(**kwargs)


def test_cli_deep_compression_reports_the_artifact_it_writes(
    digits_mlp, tmp_path, capsys, cache_dir
):
    from compress_core.__main__ import main

    out = tmp_path / "dc.slim"
    argv = ["deep-compression", "--model", "mlp", "--data", "digits", "--prune-epochs", "1"]
    argv += ["--centroid-epochs", "0", "--export", str(out), "--json", "--cache-dir", cache_dir]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in report["stages"]] == list(STAGES)
    assert report["stages"][-1]["artifact_bytes"] == len(out.read_bytes())
    assert main(["deep-compression", "--model", "mlp", "--fc-bits", "0"]) == 2
