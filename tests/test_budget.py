"""Per-layer plans and the budget search, checked against independent references."""

import dataclasses
import json

import pytest
import torch

from compress_core import CompressionConfig, compress, run_on
from compress_core.__main__ import main as cli
from compress_core.analysis.budget import (
    Budget,
    LayerSetting,
    build,
    compress_plan,
    finetune_plan,
    finetuned_plan,
    search,
)
from compress_core.core.config import FLOAT_BITS, ConfigError
from compress_core.core.layers import select_layers
from compress_core.core.pipeline import CompressionError
from compress_core.core.record import get_record
from compress_core.eval.evaluate import evaluate
from compress_core.format.artifact import artifact_size, export, load_compressed
from compress_core.train.finetune import FinetuneConfig

RATES = (0.0, 0.5, 0.8, 0.95)
BITS = (2, 4, FLOAT_BITS)
QUANTS = ["uniform", "symmetric", "kmeans", "ecq"]


def _val(model, data) -> float:
    return evaluate(model, data.val_x, data.val_y).accuracy


@pytest.fixture(scope="module")
def uniform_grid(digits_lenet):
    """The reference: every uniform grid point, built and evaluated here independently."""
    base, data = digits_lenet
    rows = []
    for r in RATES:
        for b in BITS:
            model = compress(base, CompressionConfig(prune_rate=r, bits=b))
            size = artifact_size(model)
            rows.append((r, b, _val(model, data), size.artifact_bytes, size.nonzero_params))
    return rows


@pytest.mark.parametrize("quant", QUANTS)
def test_a_uniform_plan_builds_the_same_weights_as_the_uniform_config(tiny, quant):
    config = CompressionConfig(prune_rate=0.6, bits=3, quant=quant)
    names, _ = select_layers(tiny, config)
    planned = compress_plan(tiny, {n: (0.6, 3) for n in names}, config)
    reference = compress(tiny, config)
    for key, t in reference.state_dict().items():
        assert torch.equal(planned.state_dict()[key], t), key


def test_a_plan_gives_each_layer_its_own_rate_and_bits_and_round_trips(digits_lenet):
    base, _ = digits_lenet
    plan = {"conv1": (0.0, 8), "conv2": (0.5, 2), "fc1": (0.9, FLOAT_BITS), "fc3": (0.3, 3)}
    before = {k: t.clone() for k, t in base.state_dict().items()}
    small = compress_plan(base, plan, CompressionConfig(quant="kmeans", huffman=True))
    modules = dict(small.named_modules())
    for name, (rate, bits) in plan.items():
        w = modules[name].weight
        assert int((w == 0).sum()) >= round(rate * w.numel())
        if bits != FLOAT_BITS:
            per_channel = w.reshape(w.shape[0], -1)
            assert max(len(row.unique()) for row in per_channel) <= 2**bits + (rate > 0)
    assert torch.equal(modules["fc2"].weight, base.fc2.weight)  # not in the plan
    assert all(torch.equal(t, before[k]) for k, t in base.state_dict().items())  # a copy
    blob = export(small)
    assert artifact_size(small).artifact_bytes == len(blob)
    back = load_compressed(blob)
    for key, t in small.state_dict().items():
        assert torch.equal(back.state_dict()[key], t), key


def test_plan_and_budget_settings_are_validated(tiny):
    with pytest.raises(ConfigError, match="prune_rate"):
        LayerSetting(1.5, 4)
    with pytest.raises(ConfigError, match="bits"):
        LayerSetting(0.5, 0)
    with pytest.raises(CompressionError, match="no prunable layer"):
        compress_plan(tiny, {"nope": (0.5, 4)})
    with pytest.raises(CompressionError, match="magnitude or random"):
        compress_plan(tiny, {"conv2": (0.5, 4)}, CompressionConfig(prune_method="l1-structured"))
    with pytest.raises(ConfigError, match="exactly one"):
        Budget()
    with pytest.raises(ConfigError, match="exactly one"):
        Budget(min_accuracy=0.9, max_drop_pp=1.0)
    with pytest.raises(ConfigError, match="objective"):
        Budget(max_drop_pp=1.0, objective="flops")
    assert Budget(max_drop_pp=2.0).delta(0.95) == pytest.approx(0.93)


@pytest.mark.parametrize("objective", ["artifact_bytes", "nonzero_params"])
@pytest.mark.parametrize("drop", [0.0, 2.0])
def test_answer_meets_delta_and_beats_every_uniform_point_meeting_it(
    digits_lenet, uniform_grid, objective, drop
):
    base, data = digits_lenet
    r = search(base, data, Budget(max_drop_pp=drop, objective=objective), rates=RATES, bits=BITS)
    delta = _val(base, data) - drop / 100
    assert r.delta == pytest.approx(delta) and r.met and not r.stopped
    # The answer, rebuilt from its plan alone, meets delta on the validation split.
    model = build(base, data, r.best, CompressionConfig())
    assert _val(model, data) == r.best.val_accuracy >= r.delta - 1e-9
    size = artifact_size(model)
    assert (size.artifact_bytes, size.nonzero_params) == (
        r.best.artifact_bytes,
        r.best.nonzero_params,
    )
    # Not larger than the best uniform grid point meeting delta (computed independently).
    column = 3 if objective == "artifact_bytes" else 4
    meeting = [row for row in uniform_grid if row[2] >= r.delta - 1e-9]
    assert getattr(r.best, objective) <= min(row[column] for row in meeting)
    assert getattr(r.best_uniform, objective) == min(row[column] for row in meeting)
    # Its test accuracy is that of the same model on the test split.
    assert r.test.accuracy == evaluate(model, data.test_x, data.test_y).accuracy


def test_a_generous_budget_finds_a_plan_smaller_than_any_uniform_point(digits_lenet, uniform_grid):
    base, data = digits_lenet
    r = search(base, data, Budget(max_drop_pp=3.0), rates=RATES, bits=BITS)
    best_uniform = min(row[3] for row in uniform_grid if row[2] >= r.delta)
    assert r.best.artifact_bytes < best_uniform
    assert r.best.source in ("greedy", "refine")
    plan_rows = [row for row in r.plan_rows() if row["searched"]]
    assert [row["layer"] for row in plan_rows] == r.layers
    assert {(row["prune_rate"], row["bits"]) for row in plan_rows} != {
        (row["uniform_prune_rate"], row["uniform_bits"]) for row in plan_rows
    }


@pytest.mark.parametrize("max_evals", [3, 12, 40])
def test_the_search_spends_at_most_its_evaluations_and_keeps_the_smallest(digits_lenet, max_evals):
    base, data = digits_lenet
    r = search(base, data, Budget(max_drop_pp=2.0), rates=RATES, bits=BITS, max_evals=max_evals)
    searched = [c for c in r.tried if c.source != "uniform"]
    plans = {tuple(sorted(c.plan.items())) for c in searched}
    assert len(plans) == len(searched) <= max_evals  # no plan is evaluated twice
    # The answer is the smallest of everything tried that meets delta, whichever stage.
    meeting = [c for c in r.tried if c.val_accuracy >= r.delta - 1e-9]
    assert r.best.artifact_bytes == min(c.artifact_bytes for c in meeting)
    # More evaluations never give a larger answer: the search restarts, it does not stall.
    if max_evals == 40:
        fewer = search(base, data, Budget(max_drop_pp=2.0), rates=RATES, bits=BITS, max_evals=12)
        assert r.best.artifact_bytes <= fewer.best.artifact_bytes


def test_an_unreachable_delta_says_so_and_returns_the_closest(digits_lenet):
    base, data = digits_lenet
    r = search(base, data, Budget(min_accuracy=1.0), rates=(0.0, 0.9), bits=(2, 32), max_evals=5)
    assert _val(base, data) < 1.0  # else this budget would be reachable
    assert not r.met and r.best is None and r.best_uniform is None
    assert r.closest.val_accuracy == max(c.val_accuracy for c in r.tried)
    assert r.chosen is r.closest and r.test is not None


def test_should_stop_returns_the_best_found_so_far(digits_lenet):
    base, data = digits_lenet
    calls = []
    r = search(
        base,
        data,
        Budget(max_drop_pp=5.0),
        rates=RATES,
        bits=BITS,
        progress=calls.append,
        should_stop=lambda: len(calls) >= 4,
    )
    assert r.stopped and len(r.tried) == 4 and r.sensitivity == []
    assert all(c.source == "uniform" for c in r.tried)
    assert r.met == any(c.val_accuracy >= r.delta for c in r.tried)
    assert [c.stage for c in calls[:4]] == ["uniform grid"] * 4


def test_counts_agree_with_the_candidates_and_the_progress_steps(digits_lenet):
    base, data = digits_lenet
    ticks = []
    r = search(
        base,
        data,
        Budget(max_drop_pp=1.0),
        rates=RATES,
        bits=BITS,
        max_evals=8,
        progress=ticks.append,
    )
    n = r.counts()
    assert n.built == len(r.tried) == sum(n.by_source.values())
    assert n.by_source["uniform"] == len(RATES) * len(BITS)  # the whole grid
    # Meeting delta, recounted from the validation accuracies alone.
    assert n.met == sum(c.val_accuracy >= r.delta - 1e-9 for c in r.tried) >= 1
    assert n.sensitivity == len(r.layers) * (len(RATES) + len(BITS))
    assert n.tested == 2  # the answer and the best uniform point
    # The progress bar counted the same steps, stage by stage.
    assert len(ticks) == ticks[-1].done == n.steps
    stages = {"uniform grid": "uniform", "greedy": "greedy", "refine": "refine"}
    for stage, source in stages.items():
        assert sum(u.stage == stage for u in ticks) == n.by_source.get(source, 0), stage
    assert sum(u.stage == "sensitivity" for u in ticks) == n.sensitivity
    assert sum(u.stage == "test" for u in ticks) == n.tested
    unreachable = search(base, data, Budget(min_accuracy=1.0), rates=(0.0,), bits=(32,))
    assert unreachable.counts().met == 0 and not unreachable.met


def test_plan_rows_and_totals_recount_the_chosen_and_the_uniform_models(digits_lenet):
    """Every layer (searched or intact) with its bias, plus the header, is the whole file."""
    base, data = digits_lenet
    r = search(base, data, Budget(max_drop_pp=1.0), rates=RATES, bits=BITS, max_evals=8)
    assert r.met and r.best_uniform is not None
    stored = [n for n, m in base.named_modules() if list(m.parameters(recurse=False))]
    rows = r.plan_rows()
    assert [row["layer"] for row in rows] == stored  # conv1 and fc3 too, left intact
    for prefix, c in (("", r.best), ("uniform_", r.best_uniform)):
        model = build(base, data, c, CompressionConfig())
        modules = dict(model.named_modules())
        for row in rows:
            params = list(modules[row["layer"]].parameters(recurse=False))
            nonzero = sum(int((p != 0).sum()) for p in params)
            numel = sum(p.numel() for p in params)
            assert row[f"{prefix}nonzero_share"] == nonzero / numel, row
            rate, bits = c.plan.get(row["layer"], (0.0, FLOAT_BITS))
            assert (row[f"{prefix}prune_rate"], row[f"{prefix}bits"]) == (rate, bits)
            if not prefix:
                assert (row["params"], row["nonzero"]) == (numel, nonzero)
                assert row["searched"] == (row["layer"] in r.layers)
        blob = export(model)
        assert sum(row[f"{prefix}bytes"] for row in rows) + c.header_bytes == len(blob)
    n = r.totals()
    model = build(base, data, r.best, CompressionConfig())
    assert n.artifact_bytes == len(export(model)) == r.best.artifact_bytes
    assert n.nonzero == sum(int((p != 0).sum()) for p in model.parameters())
    assert n.nonzero == r.best.nonzero_params
    assert n.params == sum(p.numel() for p in base.parameters()) == r.baseline_params
    # The changes the page shows, recomputed from the same numbers.
    assert r.size_vs_dense() == pytest.approx(n.artifact_bytes / (4 * n.params) - 1)
    assert r.nonzero_vs_baseline() == pytest.approx(n.nonzero / n.params - 1)
    saved = 1 - r.best.artifact_bytes / r.best_uniform.artifact_bytes
    assert r.saved_vs_uniform() == pytest.approx(saved) and saved >= 0
    # The best uniform point is the same setting the Explore page runs: the same counts.
    explore = run_on(base, data, CompressionConfig.from_dict(r.best_uniform.config))
    assert explore.artifact_bytes == r.best_uniform.artifact_bytes
    assert explore.nonzero_params == r.best_uniform.nonzero_params


@pytest.mark.parametrize("max_evals", [4, 30])
def test_the_allowance_bounds_what_greedy_and_refine_spend_and_the_grid_comes_on_top(
    digits_lenet, max_evals
):
    base, data = digits_lenet
    r = search(base, data, Budget(max_drop_pp=1.0), rates=RATES, bits=BITS, max_evals=max_evals)
    n = r.counts()
    searched = [c for c in r.tried if c.source in ("greedy", "refine")]
    assert n.allowed == max_evals and n.used == len(searched) <= max_evals
    assert n.grid == len(RATES) * len(BITS) and n.built == n.grid + n.used == len(r.tried)
    rows = r.tried_rows()
    assert [row["label"] for row in rows] == [c.label for c in r.tried]
    assert n.met == sum(row["meets"] for row in rows)
    assert all(row["meets"] == (row["val_accuracy"] >= r.delta - 1e-9) for row in rows)


@pytest.mark.parametrize("quant", ["uniform", "kmeans", "ecq"])
def test_finetuning_a_plan_keeps_its_masks_and_level_counts(digits_lenet, quant):
    base, data = digits_lenet
    before = {k: t.clone() for k, t in base.state_dict().items()}
    plan = {"conv2": (0.5, 4), "fc1": (0.9, 2), "fc2": (0.7, FLOAT_BITS)}
    common = CompressionConfig(quant=quant)
    ft = FinetuneConfig(epochs=1, qat_epochs=1)
    one_shot, tuned = (
        compress_plan(base, plan, common),
        finetuned_plan(base, data, plan, common, ft),
    )
    shot_modules, tuned_modules = dict(one_shot.named_modules()), dict(tuned.named_modules())
    shot_record, tuned_record = get_record(one_shot), get_record(tuned)
    moved = 0
    for name, (rate, bits) in plan.items():
        mask = shot_record.layers[name].mask
        assert torch.equal(tuned_record.layers[name].mask, mask), name  # the plan's own mask
        w = tuned_modules[name].weight
        assert not w[~mask].any(), name  # pruned weights stayed exactly zero
        moved += not torch.equal(w, shot_modules[name].weight)
        if bits != FLOAT_BITS:
            rows = w.reshape(w.shape[0], -1)
            assert max(len(row.unique()) for row in rows) <= 2**bits + (rate > 0), name
    assert moved == len(plan)  # training changed every planned layer
    assert all(torch.equal(t, before[k]) for k, t in base.state_dict().items())  # a copy
    blob = export(tuned)
    back = load_compressed(blob)
    assert all(torch.equal(back.state_dict()[k], t) for k, t in tuned.state_dict().items())
    # The result record is that model, measured: same bytes, same test accuracy.
    r = finetune_plan(base, data, plan, common, ft)
    assert r.artifact_bytes == len(blob) and r.finetune == ft.to_dict()
    assert r.accuracy == evaluate(tuned, data.test_x, data.test_y).accuracy
    with pytest.raises(ConfigError, match="prune_steps"):
        finetuned_plan(base, data, plan, common, FinetuneConfig(epochs=2, prune_steps=2))


def test_structured_pruning_and_no_layer_left_are_refused(digits_lenet):
    base, data = digits_lenet
    with pytest.raises(ConfigError, match="magnitude or random"):
        search(base, data, Budget(max_drop_pp=1), CompressionConfig(prune_method="l2-structured"))
    with pytest.raises(ConfigError, match="no layer is left"):
        search(base, data, Budget(max_drop_pp=1), CompressionConfig(include=("nothing*",)))


def test_cli_budget_prints_the_plan_and_exports_it(digits_lenet, cache_dir, tmp_path, capsys):
    out = tmp_path / "plan.slim"
    args = ["budget", "--data", "digits", "--model", "lenet5", "--cache-dir", cache_dir]
    args += ["--max-drop", "1", "--rates", "0,0.5,0.9", "--bits", "4,32", "--max-evals", "8"]
    assert cli([*args, "--no-store", "--export", str(out)]) == 0
    text = capsys.readouterr().out
    assert "plan" in text and "uniform" in text
    restored = load_compressed(out.read_bytes())
    base, data = digits_lenet
    assert _val(restored, data) >= _val(base, data) - 0.01
    assert cli([*args, "--no-store", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["met"] and answer["best"]["val_accuracy"] >= answer["delta"]
    assert dataclasses.asdict(Budget(max_drop_pp=1.0)) == answer["budget"]


def test_cli_budget_finetunes_the_chosen_plan_and_exports_that_model(
    digits_lenet, cache_dir, tmp_path, capsys
):
    out = tmp_path / "tuned.slim"
    args = ["budget", "--data", "digits", "--model", "lenet5", "--cache-dir", cache_dir]
    args += ["--max-drop", "1", "--rates", "0,0.5,0.9", "--bits", "4,32", "--max-evals", "4"]
    args += ["--no-store", "--finetune-epochs", "1"]
    assert cli([*args, "--json", "--export", str(out)]) == 0
    answer = json.loads(capsys.readouterr().out)
    tuned = answer["finetuned"]
    assert tuned["finetuned"] and tuned["artifact_bytes"] == len(out.read_bytes())
    # The exported model is the fine-tuned plan: the chosen plan's masks, its test accuracy.
    base, data = digits_lenet
    restored = load_compressed(out.read_bytes())
    assert evaluate(restored, data.test_x, data.test_y).accuracy == tuned["accuracy"]
    one_shot = compress_plan(base, answer["best"]["plan"], CompressionConfig())
    shot_modules = dict(one_shot.named_modules())
    for name, layer in get_record(one_shot).layers.items():
        if layer.mask is not None:
            w = dict(restored.named_modules())[name].weight
            assert torch.equal(w != 0, (w != 0) & layer.mask), name  # no pruned weight revived
            assert not torch.equal(w, shot_modules[name].weight), name  # and it trained
    assert cli([*args, "--prune-steps", "3"]) == 2  # a plan's masks are fixed
    assert "prune-steps" in capsys.readouterr().err


def test_cli_budget_searches_with_ecq_and_finetunes_that_plan(
    digits_lenet, cache_dir, tmp_path, capsys
):
    base, data = digits_lenet
    plain, tuned = tmp_path / "ecq.slim", tmp_path / "ecq-tuned.slim"
    args = ["budget", "--data", "digits", "--model", "lenet5", "--cache-dir", cache_dir]
    args += ["--max-drop", "1", "--rates", "0,0.5,0.9", "--bits", "3,4", "--max-evals", "6"]
    args += ["--quant", "ecq", "--no-store", "--json"]
    assert cli([*args, "--export", str(plain)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["met"] and answer["common"]["quant"] == "ecq"
    # Every candidate was built with ecq: the export is the plan compressed with ecq, and
    # not the same plan with uniform levels.
    plan = answer["best"]["plan"]
    ecq = compress_plan(base, plan, CompressionConfig(quant="ecq"))
    uniform = compress_plan(base, plan, CompressionConfig(quant="uniform"))
    restored = load_compressed(plain.read_bytes())
    assert get_record(restored).config.quant == "ecq"
    assert all(torch.equal(t, ecq.state_dict()[k]) for k, t in restored.state_dict().items())
    assert any(not torch.equal(t, uniform.state_dict()[k]) for k, t in ecq.state_dict().items())
    assert _val(restored, data) >= answer["delta"]
    # Then fine-tuned, quantization-aware with ecq's levels; the export is that model.
    assert cli([*args, "--finetune-epochs", "1", "--qat-epochs", "1", "--export", str(tuned)]) == 0
    done = json.loads(capsys.readouterr().out)["finetuned"]
    assert done["finetuned"] and done["quant"] == "ecq"
    assert done["artifact_bytes"] == len(tuned.read_bytes())
    back = load_compressed(tuned.read_bytes())
    assert evaluate(back, data.test_x, data.test_y).accuracy == done["accuracy"]
