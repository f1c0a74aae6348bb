"""The one training loop (``train/loop.py``) trains exactly as the four loops it replaced.

Each ``_ref_*`` below is the loop as it was before ``fit`` existed, copied verbatim (only
renamed), so that the comparison is against the old code, not against a restatement of
the new one. Every comparison is bit-for-bit: weights, records, artifacts, progress
events and where a stop request lands.
"""

from __future__ import annotations

import copy
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compress_core.core.config import CompressionConfig
from compress_core.core.record import SPEC_ATTR, ModelSpec, get_record
from compress_core.format.artifact import export
from compress_core.io.data import load_dataset
from compress_core.io.models import build_model
from compress_core.train import deep_compression as dc_mod
from compress_core.train import finetune as ft_mod
from compress_core.train import soft_sharing as sws_mod
from compress_core.train.baseline import (
    TrainingCancelled,
    TrainProgress,
    accuracy,
    recalibrate_bn_,
    train,
)
from compress_core.train.finetune import FinetuneConfig, FinetuneProgress, finetune
from compress_core.train.loop import fit, shuffled_batches, steps_per_epoch

# --- the old loops, verbatim ------------------------------------------------------------------


def _ref_train(
    model, data, epochs, seed=0, lr=1e-3, batch_size=128, progress=None, should_stop=None
):
    """baseline.train before loop.py (lr given: the spec lookup is not under test)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(data.train_y)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        for epoch in range(1, epochs + 1):
            batches = torch.randperm(n, generator=gen).split(batch_size)
            if len(batches) > 1 and len(batches[-1]) == 1:
                batches = batches[:-1]  # BatchNorm cannot train on a batch of one
            _ref_train_epoch(model, data, opt, batches, epoch, epochs, progress, should_stop)
    model.cpu().eval()
    return model


def _ref_train_epoch(model, data, opt, batches, epoch, epochs, progress, should_stop) -> None:
    model.train()
    steps, every = len(batches), max(1, len(batches) // 20)
    loss_sum, hits, seen = 0.0, 0, 0
    for step, idx in enumerate(batches, start=1):
        if should_stop is not None and should_stop():
            raise TrainingCancelled(f"training stopped in epoch {epoch}, step {step}")
        device = next(model.parameters()).device
        x, y = data.train_x[idx].to(device), data.train_y[idx].to(device)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.item() * len(y)
        hits += int((logits.argmax(1) == y).sum())
        seen += len(y)
        if progress is not None and step % every == 0 and step < steps:
            progress(TrainProgress(epoch, epochs, step, steps, loss_sum / seen, hits / seen))
    if progress is not None or epoch == epochs:
        recalibrate_bn_(model, data.train_x)
    if progress is not None:
        val = accuracy(model, data.val_x, data.val_y)
        progress(TrainProgress(epoch, epochs, steps, steps, loss_sum / seen, hits / seen, val))


def _ref_batches(n, batch_size, generator):
    batches = torch.randperm(n, generator=generator).split(batch_size)
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches = batches[:-1]  # BatchNorm cannot train on a batch of one
    return batches


def _ref_fit(model, params, data, epochs, ft, stage, tracker, before_step=None, after_step=None):
    """finetune._fit before loop.py (used by fine-tuning, QAT and Deep Compression)."""
    n = len(data.train_y)
    steps = math.ceil(n / ft.batch_size) - (n % ft.batch_size == 1 and n > ft.batch_size)
    opt = torch.optim.Adam(params, lr=ft.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(_ref_cosine, total=epochs * steps))
    generator = torch.Generator().manual_seed(ft.seed + 7919 * tracker.done_epochs)
    hooks = (before_step, after_step)
    for epoch in range(1, epochs + 1):
        batches = _ref_batches(n, ft.batch_size, generator)
        _ref_ft_epoch(model, data, (opt, sched), batches, (stage, epoch, epochs), tracker, hooks)
        tracker.done_epochs += 1
    model.eval()


def _ref_ft_epoch(model, data, optim, batches, where, tracker, hooks) -> None:
    (opt, sched), (stage, epoch, epochs), (before_step, after_step) = optim, where, hooks
    model.train()
    steps, total = len(batches), epochs * len(batches)
    every = max(1, steps // 20)
    loss_sum, hits, seen = 0.0, 0, 0
    for step, idx in enumerate(batches, start=1):
        tracker.check(f"in {stage} epoch {epoch}, step {step}")
        if before_step is not None:
            before_step((epoch - 1) * steps + step - 1, total)
        x, y = data.train_x[idx], data.train_y[idx]
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if after_step is not None:
            after_step()
        loss_sum += loss.item() * len(y)
        hits += int((logits.argmax(1) == y).sum())
        seen += len(y)
        if step % every == 0 and step < steps:
            where = (stage, epoch, epochs, step, steps)
            _ref_report(model, data, tracker, where, loss_sum / seen, hits / seen)
    recalibrate_bn_(model, data.train_x)
    where = (stage, epoch, epochs, steps, steps)
    _ref_report(model, data, tracker, where, loss_sum / seen, hits / seen)


def _ref_cosine(t, total):
    return 0.5 * (1 + math.cos(math.pi * t / total))


def _ref_report(model, data, tracker, where, loss, acc) -> None:
    if tracker.progress is None:
        return
    stage, epoch, epochs, step, steps = where
    val = None
    if step == steps:  # the end of an epoch
        val = accuracy(model, data.val_x[: ft_mod.VAL_IMAGES], data.val_y[: ft_mod.VAL_IMAGES])
    fraction = (tracker.done_epochs + step / steps) / max(tracker.total_epochs, 1)
    tracker.progress(
        FinetuneProgress(
            stage, epoch, epochs, step, steps, loss, acc, ft_mod._sparsity(model), fraction, val
        )
    )


def _ref_soft_weight_sharing(base, data, cfg):
    """soft_sharing.soft_weight_sharing before loop.py."""
    model = copy.deepcopy(base)
    layers = sws_mod.weight_layers(model)
    weights = [m.weight for m in layers.values()]
    prior = sws_mod._Prior(
        torch.cat([w.detach().reshape(-1) for w in weights]), cfg.components, cfg.zero_mix
    )
    opt = torch.optim.Adam(
        [
            {"params": model.parameters(), "lr": cfg.lr},
            {"params": prior.parameters(), "lr": cfg.prior_lr},
        ]
    )
    n = len(data.train_y)
    generator = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.epochs):
        model.train()
        for idx in torch.randperm(n, generator=generator).split(cfg.batch_size):
            flat = torch.cat([w.reshape(-1) for w in weights])
            loss = F.cross_entropy(model(data.train_x[idx]), data.train_y[idx])
            loss = loss + cfg.tau * prior.nll(flat) / n
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    return sws_mod._snap(model, layers, prior, cfg)


# --- helpers -----------------------------------------------------------------------------------


class BNNet(nn.Module):
    """conv -> BatchNorm -> dropout -> fc on 8x8 digits: recalibration and the global RNG matter."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(6 * 4 * 4, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return self.fc(self.drop(x.flatten(1)))


def fresh(kind: str) -> nn.Module:
    torch.manual_seed(0)
    model = BNNet() if kind == "bn" else build_model(kind, (1, 8, 8), 10)
    setattr(model, SPEC_ATTR, ModelSpec(kind, (1, 8, 8), 10))
    return model


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def base(digits_lenet):
    """LeNet-5 trained on digits (the session's cached baseline)."""
    return digits_lenet[0]


@pytest.fixture(scope="module")
def digits28(digits_lenet):
    """digits at LeNet-5's 28 px."""
    return digits_lenet[1]


# --- baseline training -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mlp", "bn"])
@pytest.mark.parametrize("with_progress", [False, True], ids=["quiet", "progress"])
def test_baseline_training_is_bit_identical_to_the_old_loop(digits, kind, with_progress):
    old, new = fresh(kind), fresh(kind)
    events_old, events_new = [], []
    state = torch.get_rng_state()
    _ref_train(old, digits, 3, seed=3, progress=events_old.append if with_progress else None)
    train(new, digits, 3, seed=3, lr=1e-3, progress=events_new.append if with_progress else None)
    assert_same_state(old, new)
    assert events_new == events_old and (len(events_new) > 3) == with_progress
    assert accuracy(new, digits.test_x, digits.test_y) == accuracy(
        old, digits.test_x, digits.test_y
    )
    assert torch.equal(torch.get_rng_state(), state) and not new.training


def test_a_stop_request_lands_on_the_same_step_as_before(digits):
    def stopper():
        calls = []
        return lambda: calls.append(1) or len(calls) > 13

    old, new = fresh("mlp"), fresh("mlp")
    with pytest.raises(TrainingCancelled) as e_old:
        _ref_train(old, digits, 3, should_stop=stopper())
    with pytest.raises(TrainingCancelled) as e_new:
        train(new, digits, 3, lr=1e-3, should_stop=stopper())
    assert str(e_new.value) == str(e_old.value) == "training stopped in epoch 2, step 4"
    assert_same_state(old, new)  # part-trained to the same point


# --- fine-tuning, QAT, centroids, Deep Compression: old _fit against the new one ---------------


def run_both(monkeypatch, fn):
    """``fn()`` with the old finetune._fit, then with the new one: both results."""
    with monkeypatch.context() as m:
        m.setattr(ft_mod, "_fit", _ref_fit)
        old = fn()
    return old, fn()


FINETUNES = {
    "masked": (CompressionConfig(prune_rate=0.8, bits=32), FinetuneConfig(epochs=2)),
    "gradual": (
        CompressionConfig(prune_rate=0.8, bits=32, scope="global"),
        FinetuneConfig(epochs=2, prune_steps=3),
    ),
    "qat": (
        CompressionConfig(prune_rate=0.5, bits=3, act_bits=8),
        FinetuneConfig(epochs=1, qat_epochs=1),
    ),
    "centroids": (
        CompressionConfig(prune_rate=0.5, bits=3, quant="kmeans"),
        FinetuneConfig(epochs=1, qat_epochs=1),
    ),
    "channels": (
        CompressionConfig(prune_rate=0.3, bits=32, prune_method="l1-structured"),
        FinetuneConfig(epochs=1),
    ),
}


@pytest.mark.parametrize("name", FINETUNES)
def test_finetuning_is_bit_identical_to_the_old_loop(monkeypatch, base, digits28, name):
    config, ft = FINETUNES[name]

    def run():
        events = []
        model = finetune(base, digits28, config, ft, progress=events.append)
        return model, events

    (old, events_old), (new, events_new) = run_both(monkeypatch, run)
    assert_same_state(old, new)
    assert export(new) == export(old)  # masks, codes and codebooks too
    assert events_new == events_old and events_new[-1].fraction == 1.0


def test_a_stopped_finetune_stops_on_the_same_step_and_says_so(monkeypatch, base, digits28):
    config, ft = FINETUNES["gradual"]

    def run():
        calls = []
        try:
            finetune(
                base, digits28, config, ft, should_stop=lambda: calls.append(1) or len(calls) > 12
            )
        except TrainingCancelled as e:
            return str(e)
        return None

    old, new = run_both(monkeypatch, run)
    assert new == old == "fine-tuning stopped in prune epoch 2, step 3; nothing was kept"


def test_deep_compression_is_bit_identical_to_the_old_loop(monkeypatch, base, digits28):
    dc = dc_mod.DeepCompressionConfig(
        prune_rate=0.85, conv_bits=5, fc_bits=4, prune_steps=2, prune_epochs=2, centroid_epochs=1
    )
    (old, report_old), (new, report_new) = run_both(
        monkeypatch, lambda: dc_mod.deep_compression(base, digits28, dc)
    )
    assert_same_state(old, new)
    assert export(new) == export(old)
    pairs = zip(report_old.stages, report_new.stages, strict=True)
    assert all((a.accuracy, a.artifact_bytes) == (b.accuracy, b.artifact_bytes) for a, b in pairs)
    assert get_record(new).config == get_record(old).config


# --- soft weight-sharing -------------------------------------------------------------------


def test_soft_weight_sharing_is_bit_identical_to_the_old_loop(base, digits28):
    cfg = sws_mod.SoftSharingConfig(epochs=2, components=7)
    with torch.random.fork_rng(devices=[]):
        old = _ref_soft_weight_sharing(base, digits28, cfg)
    with torch.random.fork_rng(devices=[]):
        events = []
        new = sws_mod.soft_weight_sharing(base, digits28, cfg, progress=events.append)
    assert_same_state(old, new)
    assert export(new) == export(old)
    assert [e.epoch for e in events if e.step == e.steps] == [1, 2]  # each epoch's end reported


# --- the loop's own contract -----------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 128, 129, 130, 1212])
def test_steps_per_epoch_counts_the_batches_shuffled_batches_gives(n):
    batches = shuffled_batches(n, 128, torch.Generator().manual_seed(0))
    assert steps_per_epoch(n, 128) == len(batches)
    assert all(len(b) > 1 for b in batches) or n == 1  # never a batch of one to BatchNorm
    seen = torch.cat(batches)
    assert len(seen.unique()) == len(seen) >= n - 1  # each example once; at most one left out


def test_fit_calls_each_hook_once_per_step_in_order(digits):
    model = fresh("mlp")
    calls = []
    fit(
        model,
        digits,
        epochs=2,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        generator=torch.Generator().manual_seed(0),
        before_step=lambda p: calls.append(("before", p.index, p.total)),
        after_step=lambda: calls.append(("after",)),
        after_epoch=lambda p: calls.append(("epoch", p.epoch)),
    )
    steps = steps_per_epoch(len(digits.train_y), 128)
    expected = []
    for epoch in range(2):
        for s in range(steps):
            expected += [("before", epoch * steps + s, 2 * steps), ("after",)]
        expected.append(("epoch", epoch + 1))
    assert calls == expected and not model.training
