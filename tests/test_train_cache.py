"""The one disk cache (``io/diskcache.py``): bad files are recomputed, the size limit holds by
evicting the least recently used files, and caches written before it existed are still read."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import pytest
import torch

from compress_core.core.config import CompressionConfig
from compress_core.core.pipeline import base_hash
from compress_core.format.artifact import export
from compress_core.io import diskcache
from compress_core.train import baseline as baseline_mod
from compress_core.train import deep_compression as dc_mod
from compress_core.train import finetune as ft_mod
from compress_core.train import soft_sharing as sws_mod
from compress_core.train.baseline import baseline_info, get_baseline
from compress_core.train.finetune import FinetuneConfig, finetune, get_finetuned

KB = 1024


def files(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file())


def put(cache: Path, name: str, size: int, age_s: float) -> Path:
    """A cache file of ``size`` bytes last used ``age_s`` seconds ago."""
    path = diskcache.entry("finetuned", name, cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    t = path.stat().st_mtime - age_s
    os.utime(path, (t, t))
    return path


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def refuse(*args, **kwargs):
    raise AssertionError("recomputed although a cached file was there")


# --- the helper itself -----------------------------------------------------------------------


def test_write_is_atomic_and_read_returns_what_was_written(tmp_path):
    path = diskcache.entry("baselines", "x.pt", tmp_path)
    assert diskcache.write(path, lambda f: torch.save({"w": torch.arange(5)}, f), "x")
    assert files(tmp_path) == [path]  # no temp file left
    blob = diskcache.read(path, lambda p: torch.load(p, weights_only=True), "x", "redo")
    assert torch.equal(blob["w"], torch.arange(5))
    assert diskcache.read(path.with_name("missing.pt"), refuse, "x", "redo") is None


@pytest.mark.parametrize("damage", [b"", b"\x00garbage" * 50, "truncate"])
def test_a_corrupt_file_is_warned_about_and_recomputed(tmp_path, damage):
    path = diskcache.entry("baselines", "x.pt", tmp_path)
    diskcache.write(path, lambda f: torch.save({"w": torch.ones(1000)}, f), "x")
    path.write_bytes(path.read_bytes()[:300] if damage == "truncate" else damage)
    load = lambda p: torch.load(p, weights_only=True)  # noqa: E731
    with pytest.warns(UserWarning, match=r"x .*x\.pt is unreadable \(.*\); redo"):
        assert diskcache.read(path, load, "x", "redo") is None
    diskcache.write(path, lambda f: torch.save({"w": torch.ones(1000)}, f), "x")
    assert torch.equal(diskcache.read(path, load, "x", "redo")["w"], torch.ones(1000))


def test_a_readers_verdict_is_the_warning(tmp_path):
    path = diskcache.entry("finetuned", "x.slim", tmp_path)
    diskcache.write(path, b"abc", "x")

    def reader(p):
        raise diskcache.Unusable("for another model")

    with pytest.warns(UserWarning, match=r"is for another model; retraining$"):
        assert diskcache.read(path, reader, "cached x", "retraining") is None


def test_eviction_removes_the_least_recently_used_until_the_limit_holds(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIMSCOPE_CACHE_MB", str(100 * KB / 2**20))  # 100 KiB
    old = [put(tmp_path, f"old{i}.slim", 20 * KB, age_s=1000 - i) for i in range(4)]  # 80 KiB
    used = diskcache.read(old[0], Path.read_bytes, "x", "redo")  # the oldest, read just now
    assert used is not None
    data = tmp_path / "data" / "FashionMNIST.gz"  # a download: not the cache's to evict
    data.parent.mkdir()
    data.write_bytes(os.urandom(300 * KB))
    temp = old[0].with_name(".new.slim.abc.tmp")  # another process's write in progress
    temp.write_bytes(os.urandom(50 * KB))
    new = diskcache.entry("deep-compression", "new.json", tmp_path)
    assert diskcache.write(new, os.urandom(50 * KB), "x")  # 130 KiB > 100: evict old1, old2
    assert diskcache.usage(tmp_path) <= 100 * KB
    survivors = {p.name for p in files(tmp_path)}
    assert survivors == {"old0.slim", "old3.slim", "new.json", "FashionMNIST.gz", temp.name}


def test_a_file_larger_than_the_limit_is_not_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIMSCOPE_CACHE_MB", str(10 * KB / 2**20))
    keep = put(tmp_path, "small.slim", 4 * KB, age_s=10)
    path = diskcache.entry("finetuned", "big.slim", tmp_path)
    with pytest.warns(UserWarning, match="larger than the disk cache's limit"):
        assert not diskcache.write(path, os.urandom(40 * KB), "the big model")
    assert diskcache.usage(tmp_path) <= 10 * KB and not path.exists()
    assert not keep.exists()  # evicted first: the newest file goes last


@pytest.mark.parametrize("value, expected", [("", 4096 * 2**20), ("1.5", int(1.5 * 2**20))])
def test_the_limit_comes_from_slimscope_cache_mb(monkeypatch, value, expected):
    monkeypatch.setenv("SLIMSCOPE_CACHE_MB", value)
    assert diskcache.limit_bytes() == expected


@pytest.mark.parametrize("value", ["lots", "-1", "nan", "inf"])
def test_a_bad_limit_warns_and_uses_the_default(monkeypatch, value):
    monkeypatch.setenv("SLIMSCOPE_CACHE_MB", value)
    with pytest.warns(UserWarning, match="SLIMSCOPE_CACHE_MB"):
        assert diskcache.limit_bytes() == 4096 * 2**20


def test_a_zero_limit_turns_the_disk_cache_off(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIMSCOPE_CACHE_MB", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not diskcache.write(diskcache.entry("finetuned", "x", tmp_path), b"x", "x")
    assert files(tmp_path) == []


# --- every cache goes through it ---------------------------------------------------------------


def test_baselines_are_evicted_lru_when_the_limit_is_reached(tmp_path, monkeypatch):
    first, _ = get_baseline("mlp", "digits", epochs=1, seed=0, cache_dir=str(tmp_path))
    (path,) = files(tmp_path)
    size = path.stat().st_size
    monkeypatch.setenv("SLIMSCOPE_CACHE_MB", str(1.5 * size / 2**20))  # room for one
    get_baseline("mlp", "digits", epochs=1, seed=1, cache_dir=str(tmp_path))
    assert [p.name for p in files(tmp_path)] == ["mlp-digits-8px-seed1-e1-v1.pt"]
    assert diskcache.usage(tmp_path) <= 1.5 * size


def test_a_corrupt_fine_tuned_model_is_retrained_and_rewritten(tmp_path, digits_mlp):
    base, data = digits_mlp
    config, ft = CompressionConfig(prune_rate=0.7, bits=4), FinetuneConfig(epochs=1)
    model = get_finetuned(base, data, config, ft, tmp_path)
    (path,) = files(tmp_path)
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.warns(UserWarning, match="cached fine-tuned model .* is unreadable.*retraining"):
        again = get_finetuned(base, data, config, ft, tmp_path)
    assert same_weights(again, model) and files(tmp_path) == [path]
    assert path.read_bytes() == export(model)  # whole again


def test_a_soft_sharing_run_is_trained_once_per_setting_and_a_bad_file_retrained(
    tmp_path, monkeypatch, digits_mlp
):
    base, data = digits_mlp
    cfg = sws_mod.SoftSharingConfig(epochs=1, components=3)
    model = sws_mod.get_soft_sharing(base, data, cfg, tmp_path)
    (path,) = files(tmp_path)
    assert path == sws_mod.cache_path(base, data, cfg, tmp_path)
    assert path.parent.name in diskcache.KINDS  # counted and evicted with the others
    assert path.read_bytes() == export(model)
    other = sws_mod.cache_path(base, data, sws_mod.SoftSharingConfig(epochs=1, tau=1e-2), tmp_path)
    assert other != path  # every setting has its own file
    with monkeypatch.context() as m:
        m.setattr(sws_mod, "soft_weight_sharing", refuse)
        assert export(sws_mod.get_soft_sharing(base, data, cfg, tmp_path)) == export(model)
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.warns(UserWarning, match="cached soft weight-sharing run .* is unreadable"):
        again = sws_mod.get_soft_sharing(base, data, cfg, tmp_path)
    assert same_weights(again, model) and path.read_bytes() == export(model)


# --- caches written before diskcache.py: the same names are read, nothing is retrained ---------


def test_an_old_baseline_checkpoint_is_read_without_training(tmp_path, monkeypatch):
    model, _ = get_baseline("mlp", "digits", epochs=2, cache_dir=str(tmp_path / "fresh"))
    old = tmp_path / "old" / "baselines" / "mlp-digits-8px-seed0-e2-v1.pt"  # the old naming
    old.parent.mkdir(parents=True)
    meta = {k: v for k, v in baseline_info(model).items()}
    torch.save({"state_dict": model.state_dict(), "meta": meta}, old)  # as the old code wrote
    monkeypatch.setattr(baseline_mod, "train", refuse)
    loaded, _ = get_baseline("mlp", "digits", epochs=2, cache_dir=str(tmp_path / "old"))
    assert same_weights(loaded, model) and baseline_info(loaded) == meta


def test_an_old_fine_tuned_model_is_read_without_training(tmp_path, monkeypatch, digits_mlp):
    base, data = digits_mlp
    config, ft = CompressionConfig(prune_rate=0.6, bits=4), FinetuneConfig(epochs=1)
    model = finetune(base, data, config, ft)
    key = {
        "base": base_hash(base),
        "dataset": data.name,
        "config": config.key(),
        "finetune": ft.key(),
        "version": ft_mod.CACHE_VERSION,  # a version bump is meant to retire old files
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    old = tmp_path / "finetuned" / f"mlp-digits-{digest}.slim"  # the old naming
    old.parent.mkdir()
    export(model, old)  # as the old code wrote it
    monkeypatch.setattr(ft_mod, "finetune", refuse)
    assert export(get_finetuned(base, data, config, ft, tmp_path)) == old.read_bytes()


def test_an_old_deep_compression_run_is_read_without_rerunning(tmp_path, monkeypatch, digits_mlp):
    base, data = digits_mlp
    dc = dc_mod.DeepCompressionConfig(prune_rate=0.8, prune_epochs=0, centroid_epochs=0)
    model, report = dc_mod.deep_compression(base, data, dc)
    key = json.dumps(
        {"base": base_hash(base), "dataset": data.name, "dc": dc.key(), "version": 1},
        sort_keys=True,
    )
    stem = (
        tmp_path
        / "deep-compression"
        / f"mlp-digits-{hashlib.sha256(key.encode()).hexdigest()[:20]}"
    )
    stem.parent.mkdir()
    export(model, stem.with_suffix(".slim"))  # as the old code wrote them
    stem.with_suffix(".json").write_text(json.dumps(report.to_dict(), indent=1))
    monkeypatch.setattr(dc_mod, "deep_compression", refuse)
    cached, again = dc_mod.get_deep_compression(base, data, dc, tmp_path)
    assert again == report and export(cached) == export(model)
