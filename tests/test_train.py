"""Baselines: deterministic training, and a disk cache that never serves or leaves a bad file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from compress_core.eval.evaluate import evaluate
from compress_core.io.data import load_dataset
from compress_core.io.models import MODELS, build_model
from compress_core.train import baseline as train_mod
from compress_core.train.baseline import (
    TrainingCancelled,
    TrainProgress,
    accuracy,
    baseline_info,
    default_epochs,
    get_baseline,
    recalibrate_bn_,
    train,
)

EPOCHS = 3  # mlp on digits: a fraction of a second per epoch


def fresh_mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("mlp", (1, 8, 8), 10)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def checkpoints(cache: Path) -> list[Path]:
    """Every file under the cache folder: finished checkpoints and any temp leftovers."""
    return sorted(p for p in cache.rglob("*") if p.is_file())


def baseline(cache: Path, **kw):
    return get_baseline("mlp", "digits", epochs=EPOCHS, cache_dir=str(cache), **kw)


def test_training_is_deterministic_per_seed_and_leaves_global_rng_alone():
    data = load_dataset("digits")
    a, b, c = fresh_mlp(), fresh_mlp(), fresh_mlp()
    state = torch.get_rng_state()
    train(a, data, EPOCHS, seed=1)
    train(b, data, EPOCHS, seed=1)
    train(c, data, EPOCHS, seed=2)
    assert same_weights(a, b) and not same_weights(a, c)
    assert torch.equal(torch.get_rng_state(), state)
    assert not a.training


def test_progress_reports_every_few_steps_and_each_epoch_end():
    data = load_dataset("digits")
    events: list[TrainProgress] = []
    model = train(fresh_mlp(), data, EPOCHS, batch_size=32, progress=events.append)
    ends = [e for e in events if e.step == e.steps]
    assert [e.epoch for e in ends] == list(range(1, EPOCHS + 1))
    assert all(e.val_accuracy is not None for e in ends)
    assert all(e.val_accuracy is None for e in events if e.step < e.steps)
    assert len(events) > 3 * len(ends)  # reports within each epoch too
    assert ends[-1].val_accuracy == accuracy(model, data.val_x, data.val_y)
    assert all(0 <= e.accuracy <= 1 and e.loss > 0 for e in events)
    assert ends[-1].loss < ends[0].loss


def test_bn_recalibration_averages_the_batch_statistics(tiny):
    x = torch.randn(512, 1, 16, 16)  # two batches of 256
    recalibrate_bn_(tiny, x)
    sample = torch.randperm(512, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        batches = [tiny.conv1(xb) for xb in x[sample].split(256)]
    mean = torch.stack([h.mean((0, 2, 3)) for h in batches]).mean(0)
    var = torch.stack([h.var((0, 2, 3), unbiased=True) for h in batches]).mean(0)
    torch.testing.assert_close(tiny.bn1.running_mean, mean, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(tiny.bn1.running_var, var, atol=1e-5, rtol=1e-4)
    assert tiny.bn1.momentum == 0.1 and not tiny.training


def test_mobilenet_is_accurate_in_eval_mode_after_a_short_training():
    """MobileNetV3's BN momentum 0.01 left eval-mode accuracy at chance without recalibration."""
    data = load_dataset("digits", 28)
    torch.manual_seed(0)
    model = train(build_model("mobilenet_v3_small", data.in_shape, 10), data, epochs=1)
    assert accuracy(model, data.val_x, data.val_y) > 0.5


def test_baseline_is_accurate_and_its_meta_matches_a_fresh_evaluation(tmp_path):
    model, data = get_baseline("mlp", "digits", cache_dir=str(tmp_path))  # default 20 epochs
    meta = baseline_info(model)
    assert not model.training and data.in_shape == (1, 8, 8)
    assert meta["epochs"] == default_epochs("mlp", "digits") and meta["seed"] == 0
    assert meta["test_accuracy"] == evaluate(model, data.test_x, data.test_y).accuracy
    assert meta["test_accuracy"] > 0.95
    assert meta["train_seconds"] > 0


def test_conv_baseline_is_served_at_its_input_size(digits_lenet):
    model, data = digits_lenet
    assert data.in_shape == (1, 28, 28)
    assert baseline_info(model)["input_size"] == 28
    assert baseline_info(model)["test_accuracy"] > 0.9


def test_second_request_loads_the_same_weights_fast(tmp_path):
    first, _ = baseline(tmp_path)
    assert len(checkpoints(tmp_path)) == 1
    events = []
    started = time.perf_counter()
    second, _ = baseline(tmp_path, progress=events.append)
    assert time.perf_counter() - started < 1.0
    assert events == []  # loaded, not trained
    assert same_weights(first, second) and not second.training
    assert baseline_info(second) == baseline_info(first)


def nan_weights(path: Path) -> None:
    blob = torch.load(path, weights_only=True)
    blob["state_dict"]["fc2.weight"][0, 0] = float("nan")
    torch.save(blob, path)


def wrong_shapes(path: Path) -> None:
    blob = torch.load(path, weights_only=True)
    blob["state_dict"]["fc2.weight"] = torch.zeros(3, 3)
    torch.save(blob, path)


def other_baseline(path: Path) -> None:
    blob = torch.load(path, weights_only=True)
    blob["meta"]["seed"] = 7
    torch.save(blob, path)


CORRUPTIONS = {
    "garbage": lambda p: p.write_bytes(b"\x00garbage" * 100),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "not a dict": lambda p: torch.save([1, 2, 3], p),
    "nan weights": nan_weights,
    "wrong shapes": wrong_shapes,
    "other baseline": other_baseline,
}


@pytest.mark.parametrize("damage", CORRUPTIONS, ids=list(CORRUPTIONS))
def test_bad_checkpoint_is_retrained_rewritten_and_warned_about(tmp_path, damage):
    good, _ = baseline(tmp_path)
    (path,) = checkpoints(tmp_path)
    CORRUPTIONS[damage](path)
    with pytest.warns(UserWarning, match="retraining it"):
        retrained, _ = baseline(tmp_path)
    assert same_weights(retrained, good)  # training is deterministic
    assert checkpoints(tmp_path) == [path]
    blob = torch.load(path, weights_only=True)  # rewritten healthy: loads cleanly again
    assert blob["meta"]["seed"] == 0 and torch.isfinite(blob["state_dict"]["fc2.weight"]).all()


def test_cancelled_training_leaves_no_checkpoint(tmp_path):
    calls = []

    def stop_in_second_epoch() -> bool:
        calls.append(1)
        return len(calls) > 15  # digits has 10 steps per epoch at batch 128

    with pytest.raises(TrainingCancelled, match="epoch 2"):
        baseline(tmp_path, should_stop=stop_in_second_epoch)
    assert checkpoints(tmp_path) == []
    model, _ = baseline(tmp_path)  # and the next request trains cleanly
    assert len(checkpoints(tmp_path)) == 1 and baseline_info(model)["epochs"] == EPOCHS


def test_unwritable_cache_trains_in_memory_with_a_warning(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="kept in memory only"):
        model, data = baseline(blocker)  # cache_dir under a regular file: every write fails
    assert baseline_info(model)["test_accuracy"] > 0.5
    assert blocker.read_text() == "not a folder"


def test_full_disk_mid_write_leaves_no_partial_file(tmp_path, monkeypatch):
    real_save = torch.save

    def save_half_then_fail(obj, f):
        real_save(obj, f)
        f.truncate(100)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(train_mod.torch, "save", save_half_then_fail)
    with pytest.warns(UserWarning, match="No space left"):
        model, _ = baseline(tmp_path)
    assert checkpoints(tmp_path) == [] and not model.training
    monkeypatch.undo()
    reloaded, _ = baseline(tmp_path)
    assert same_weights(reloaded, model) and len(checkpoints(tmp_path)) == 1


def test_default_epochs_cover_every_model_and_data_set():
    for model in MODELS:
        for data in ("digits", "mnist", "fashion-mnist", "cifar10"):
            assert 1 <= default_epochs(model, data) <= 30
    assert default_epochs("mlp", "digits") >= 10
    with pytest.raises(ValueError, match="unknown model"):
        default_epochs("vgg16", "digits")
