"""Every Streamlit cache in one place, so the caching policy is visible at a glance.

- Baselines and compressed models: ``st.cache_resource`` (shared by all sessions,
  never mutated: the engine always compresses a copy).
- Results and artifacts: ``st.cache_data`` keyed by plain values (model, data set,
  epochs, seed, the config's key), so returning to a setting is instant.
Heavy work (training, a compression) runs under a small semaphore so one tab
cannot starve the others. Sessions asking for the same thing share one computation:
Streamlit's caches hold a lock per key, so 8 identical requests compute once and 7 wait
for it. Every cache has ``max_entries`` (and the big ones a ``ttl``), so a class using
the server for an hour keeps memory bounded (``bench/bench_class.py --minutes``).
"""

from __future__ import annotations

import collections
import contextvars
import json
import os
import sqlite3
import threading
import warnings

import streamlit as st
import torch

from compress_core.core.config import CompressionConfig
from compress_core.core.pipeline import (
    base_hash,
    calibration_batches,
    calibration_for,
    compress,
    evaluate_compressed,
)
from compress_core.eval.latency import measure_latency
from compress_core.format.artifact import export
from compress_core.format.onnx import export_onnx
from compress_core.io.imagefolder import register_image_folder
from compress_core.io.store import Store, StoreError
from compress_core.io.upload import load_user_model, register_from_env
from compress_core.train.baseline import get_baseline

from . import charts

# How many heavy jobs (training, compressing, evaluating) run at once, over all sessions;
# the others wait their turn. SLIMSCOPE_JOBS overrides it (default 2: this machine's cores).
HEAVY_JOBS = threading.BoundedSemaphore(int(os.environ.get("SLIMSCOPE_JOBS", "2")))
# One torch thread per job: with several sessions at once, two threads per job oversubscribe
# the cores and small-layer work runs several times slower. SLIMSCOPE_THREADS overrides it.
torch.set_num_threads(int(os.environ.get("SLIMSCOPE_THREADS", "1")))


@st.cache_resource(max_entries=8, show_spinner=False)
def baseline(model: str, dataset: str, epochs: int | None, seed: int, _progress=None):
    """(trained base model, data set); trains once on a miss, with ``_progress`` callbacks."""
    with HEAVY_JOBS:
        return get_baseline(model, dataset, epochs=epochs, seed=seed, progress=_progress)


# A compressed MLP with its record (masks, int64 codes) is ~5 MB: 32 of them stay well bounded.
@st.cache_resource(max_entries=32, ttl=3600, show_spinner=False)
def compressed(model: str, dataset: str, epochs: int | None, seed: int, config_key: str):
    """The compressed copy for one config (shared read-only, like the base)."""
    base, data = baseline(model, dataset, epochs, seed)
    config = CompressionConfig.from_dict(json.loads(config_key))
    calib = calibration_for(data, config)
    with HEAVY_JOBS:
        return compress(base, config, calib)


@st.cache_data(max_entries=1024, ttl=7200, show_spinner=False)
def result(model: str, dataset: str, epochs: int | None, seed: int, config_key: str, subset):
    """The evaluated, measured Result of one config."""
    base, data = baseline(model, dataset, epochs, seed)
    small = compressed(model, dataset, epochs, seed, config_key)
    with HEAVY_JOBS:
        r = evaluate_compressed(base, small, data, subset)
    remember(r, subset, {"source": "dashboard", "epochs": epochs, "seed": seed})
    return r


@st.cache_data(max_entries=32, show_spinner=False)
def artifact(model: str, dataset: str, epochs: int | None, seed: int, config_key: str) -> bytes:
    """The compressed artifact's bytes, as downloaded (and kept in the result store)."""
    blob = export(compressed(model, dataset, epochs, seed, config_key))
    remember_artifact(base_hash(baseline(model, dataset, epochs, seed)[0]), config_key, {}, blob)
    return blob


# Explore draws two of these per slider move. Keyed by which settings were tried (each row is
# a cached result, so the keys fix the figure), a class following the teacher builds each
# figure once, not once per student. Shared read-only: st.plotly_chart only copies it.
@st.cache_resource(max_entries=64, ttl=3600, show_spinner=False)
def tradeoff_figure(tried: tuple, x: str, current: str, baseline: tuple, lang: str, _frame):
    """``charts.tradeoff_figure(_frame, x, current, baseline)`` for the history ``tried``
    (its keys, in order) drawn in ``lang``."""
    return charts.tradeoff_figure(_frame, x, current, baseline)


# --- the result store and your own models (issue 6) ------------------------------------------
# Every computed result is also written to the SQLite store, so a restart loses nothing; a
# storage failure (read-only or full disk, damaged file) only warns: pages never break on it.

STORE_PROBLEMS: collections.deque[str] = collections.deque(maxlen=5)  # newest last, for pages
MODEL_MODULE_PROBLEMS = register_from_env()  # the operator's SLIMSCOPE_MODEL_MODULES, at start-up


def open_store() -> Store | None:
    """The result store, or None (the problem is in STORE_PROBLEMS)."""
    try:
        store = Store()
    except (StoreError, OSError, sqlite3.Error) as e:
        _store_problem(str(e))
        return None
    for w in store.warnings:
        _store_problem(w)
    return store


def remember(r, subset, identity: dict, artifact: bytes | None = None) -> None:
    """Keep a result in the store (once per base, config, subset and fine-tuning)."""
    store = open_store()
    if store is not None:
        try:
            store.save(r, subset, identity, artifact)
            STORE_PROBLEMS.clear()  # healthy again: old problems are no longer news
        except (StoreError, OSError, sqlite3.Error) as e:
            _store_problem(str(e))


def remember_artifact(base: str, config_key: str, finetune: dict, blob: bytes) -> None:
    store = open_store()
    if store is not None:
        try:
            store.save_artifact(base, config_key, finetune, blob)
        except (StoreError, OSError, sqlite3.Error) as e:
            _store_problem(str(e))


def _store_problem(text: str) -> None:
    warnings.warn(f"result store: {text}", stacklevel=3)
    if text not in STORE_PROBLEMS:
        STORE_PROBLEMS.append(text)


@st.cache_resource(max_entries=16, show_spinner=False)
def image_folder(path: str, size: int) -> str:
    """Register an operator-allowed image folder as a data set once; returns its name."""
    return register_image_folder(path, size)


@st.cache_resource(max_entries=4, show_spinner=False)
def user_model(digest: str, filename: str, arch: str, dataset: str, in_shape, _blob: bytes):
    """(model, data, report) for uploaded weights, read and checked once per file hash."""
    with HEAVY_JOBS:
        return load_user_model(_blob, arch, dataset, in_shape, filename=filename)


@st.cache_resource(max_entries=16, show_spinner=False)
def user_compressed(digest, filename, arch, dataset, in_shape, config_key: str, _blob: bytes):
    base, data, _ = user_model(digest, filename, arch, dataset, in_shape, _blob)
    config = CompressionConfig.from_dict(json.loads(config_key))
    calib = calibration_for(data, config)
    with HEAVY_JOBS:
        return compress(base, config, calib)


@st.cache_data(max_entries=256, show_spinner=False)
def user_result(digest, filename, arch, dataset, in_shape, config_key: str, subset, _blob: bytes):
    """The Result of one config on uploaded weights; stored with the file's identity."""
    base, data, report = user_model(digest, filename, arch, dataset, in_shape, _blob)
    small = user_compressed(digest, filename, arch, dataset, in_shape, config_key, _blob)
    with HEAVY_JOBS:
        r = evaluate_compressed(base, small, data, subset)
    remember(r, subset, report.identity())
    return r


@st.cache_data(max_entries=16, show_spinner=False)
def user_artifact(digest, filename, arch, dataset, in_shape, config_key: str, _blob: bytes):
    small = user_compressed(digest, filename, arch, dataset, in_shape, config_key, _blob)
    blob = export(small)
    base = user_model(digest, filename, arch, dataset, in_shape, _blob)[0]
    remember_artifact(base_hash(base), config_key, {}, blob)
    return blob


# --- recovery: fine-tuning, Deep Compression, soft weight-sharing ---------------------------
# Training does not run inside an st.cache_* function: its progress bar, drawn in a block
# created outside, would be replayed on a cache hit and fail. The engine keeps finished
# runs on disk (written atomically, only when a run completes); ``train_*`` fill that cache
# with a progress bar, and the cached readers below load from it (or, when the disk cache is
# unwritable, recompute without a progress bar).


def train_finetuned(model, dataset, epochs, seed, config_key, ft_key, progress=None):
    """Fine-tune one config (or find it on disk) with progress callbacks; not memoised here."""
    from compress_core.train.finetune import FinetuneConfig, get_finetuned

    base, data = baseline(model, dataset, epochs, seed)
    config = CompressionConfig.from_dict(json.loads(config_key))
    ft = FinetuneConfig.from_dict(json.loads(ft_key))
    with HEAVY_JOBS:
        get_finetuned(base, data, config, ft, progress=progress)


@st.cache_data(max_entries=512, show_spinner=False)
def finetuned_result(model, dataset, epochs, seed, config_key, ft_key, subset):
    """The Result of a fine-tuned config (``finetune`` filled in, so rows say finetuned)."""
    from compress_core.train.finetune import FinetuneConfig, run_finetuned

    base, data = baseline(model, dataset, epochs, seed)
    config = CompressionConfig.from_dict(json.loads(config_key))
    ft = FinetuneConfig.from_dict(json.loads(ft_key))
    with HEAVY_JOBS:
        r = run_finetuned(base, data, config, ft, subset)
    remember(r, subset, {"source": "dashboard", "epochs": epochs, "seed": seed})
    return r


def train_deep_compression(model, dataset, epochs, seed, dc_key, progress=None):
    """Run the Deep Compression pipeline (or find it on disk) with progress callbacks."""
    from compress_core.train.deep_compression import DeepCompressionConfig, get_deep_compression

    base, data = baseline(model, dataset, epochs, seed)
    dc = DeepCompressionConfig.from_dict(json.loads(dc_key))
    with HEAVY_JOBS:
        get_deep_compression(base, data, dc, progress=progress)


@st.cache_data(max_entries=64, show_spinner=False)
def deep_compression_run(model, dataset, epochs, seed, dc_key) -> dict:
    """{"report": stage report (dict), "artifact": final bytes, "result": its Result row}."""
    from compress_core.train.deep_compression import (
        DeepCompressionConfig,
        as_result,
        get_deep_compression,
    )

    base, data = baseline(model, dataset, epochs, seed)
    dc = DeepCompressionConfig.from_dict(json.loads(dc_key))
    with HEAVY_JOBS:
        small, report = get_deep_compression(base, data, dc)
        blob = export(small)
        r = as_result(base, small, data, dc)
    remember(r, None, {"source": "dashboard", "epochs": epochs, "seed": seed}, blob)
    return {"report": report.to_dict(), "artifact": blob, "result": r.to_row()}


def train_soft_sharing(model, dataset, epochs, seed, sws_key, progress=None):
    """Train under soft weight-sharing's prior (or find the run on disk) with progress."""
    from compress_core.train.soft_sharing import SoftSharingConfig, get_soft_sharing

    base, data = baseline(model, dataset, epochs, seed)
    cfg = SoftSharingConfig.from_dict(json.loads(sws_key))
    with HEAVY_JOBS:
        get_soft_sharing(base, data, cfg, progress=progress)


@st.cache_data(max_entries=64, show_spinner=False)
def soft_sharing_run(model, dataset, epochs, seed, sws_key) -> dict:
    """{"result": the snapped model's Result, "artifact": its bytes}, read from the disk cache."""
    from compress_core.train.soft_sharing import SoftSharingConfig, as_result, get_soft_sharing

    base, data = baseline(model, dataset, epochs, seed)
    cfg = SoftSharingConfig.from_dict(json.loads(sws_key))
    with HEAVY_JOBS:
        small = get_soft_sharing(base, data, cfg)
        blob = export(small)
        r = as_result(base, small, data, cfg)
    remember(r, None, {"source": "dashboard", "epochs": epochs, "seed": seed}, blob)
    return {"result": r, "artifact": blob}


# --- analysis: layer sensitivity and the accuracy budget (issue 4) ---------------------------
# Sweep points go through ``result`` above, so the Sweep page and Explore share their cache.


def outside_cache(callback):
    """``callback`` run in the caller's context, for progress bars fed from a cached function.

    Streamlit records st calls made inside a cached function and replays them on
    a hit; a call on a block created outside the function (a progress bar) then
    fails with CacheReplayClosureError. Running the callback in a context copied
    before the call keeps it out of the recording (the capture lives in contextvars).
    """
    context = contextvars.copy_context()

    def call(*args, **kwargs):
        return context.run(callback, *args, **kwargs)

    return call


@st.cache_data(max_entries=4096, show_spinner=False)
def sensitivity_point(
    model: str,
    dataset: str,
    epochs,
    seed: int,
    layer: str,
    kind: str,
    config_key: str,
    split,
    subset,
):
    """One layer compressed alone, the whole model evaluated on ``split``."""
    from compress_core.analysis.sensitivity import sensitivity_point as point

    base, data = baseline(model, dataset, epochs, seed)
    config = CompressionConfig.from_dict(json.loads(config_key))
    with HEAVY_JOBS:
        return point(base, data, layer, kind, config, split, subset)


@st.cache_data(max_entries=32, show_spinner=False)
def budget(
    model: str,
    dataset: str,
    epochs,
    seed: int,
    budget_key: str,
    common_key: str,
    rates: tuple,
    bits: tuple,
    max_evals: int,
    _progress=None,
):
    """The budget search's BudgetResult; a rerun (Stop) interrupts it and nothing is cached."""
    from compress_core.analysis.budget import Budget, search

    base, data = baseline(model, dataset, epochs, seed)
    goal = Budget(**json.loads(budget_key))
    common = CompressionConfig.from_dict(json.loads(common_key))
    with HEAVY_JOBS:
        return search(base, data, goal, common, rates, bits, None, max_evals, _progress)


@st.cache_data(max_entries=16, show_spinner=False)
def budget_artifact(model: str, dataset: str, epochs, seed: int, plan_key: str, common_key: str):
    """The artifact of a budget search's chosen model (``plan_key``: its plan and config)."""
    from compress_core.analysis.budget import Candidate, build

    base, data = baseline(model, dataset, epochs, seed)
    common = CompressionConfig.from_dict(json.loads(common_key))
    chosen = json.loads(plan_key)
    candidate = Candidate(chosen["plan"], "", "", 0.0, 0, 0, chosen["config"])
    with HEAVY_JOBS:
        return export(build(base, data, candidate, common))


@st.cache_data(max_entries=16, show_spinner=False)
def budget_finetuned(
    model: str,
    dataset: str,
    epochs,
    seed: int,
    plan_key: str,
    common_key: str,
    ft_key: str,
    _progress=None,
):
    """A budget search's chosen plan fine-tuned (``finetune_plan``): its test Result.

    ``plan_key``: {"plan": ...}; a rerun (Stop) interrupts it and nothing is cached.
    """
    from compress_core.analysis.budget import finetune_plan
    from compress_core.train.finetune import FinetuneConfig

    base, data = baseline(model, dataset, epochs, seed)
    common = CompressionConfig.from_dict(json.loads(common_key))
    ft = FinetuneConfig.from_dict(json.loads(ft_key))
    plan = json.loads(plan_key)["plan"]
    with HEAVY_JOBS:
        r = finetune_plan(base, data, plan, common, ft, _progress)
    remember(r, None, {"source": "dashboard", "epochs": epochs, "seed": seed})
    return r


# --- where grid jobs run (issue 16) ---------------------------------------------------------


@st.cache_resource(max_entries=2, show_spinner=False)
def executor(kind: str, workers: int | None, address: str | None, fallback: bool):
    """The operator's executor, one per server process (Ray allows one connection each)."""
    from compress_core.analysis.executors import ExecutorConfig, make_executor

    return make_executor(ExecutorConfig(kind, workers, address, fallback))


# --- ship it: ONNX files and measured latency (issue 15) ---------------------------------------


@st.cache_data(max_entries=32, show_spinner=False)
def onnx_file(model: str, dataset: str, epochs, seed: int, config_key: str, int8: bool) -> bytes:
    """The compressed model as float32 or int8 QDQ ONNX (int8 calibrated on training images)."""
    _, data = baseline(model, dataset, epochs, seed)
    small = compressed(model, dataset, epochs, seed, config_key)
    with HEAVY_JOBS:
        return export_onnx(small, int8=int8, calibration=calibration_batches(data))


@st.cache_data(max_entries=1024, show_spinner=False)
def latency(model, dataset, epochs, seed, config_key, runtimes, batches, threads) -> list[dict]:
    """Latency rows of one config, measured in a child process; kept per (model, config,
    runtimes, batches, threads) so each setting is measured once per server."""
    _, data = baseline(model, dataset, epochs, seed)
    small = compressed(model, dataset, epochs, seed, config_key)
    calib = calibration_batches(data) if "onnx-int8" in runtimes else None
    with HEAVY_JOBS:
        return measure_latency(
            small, calibration=calib, runtimes=runtimes, batches=batches, threads=threads
        )


# --- the Learn page (issue 13) ----------------------------------------------------------------
# Lesson points go through ``result`` and ``finetuned_result`` above; only the byte lesson
# needs its own entry (two artifacts and three torch.save sizes per setting).


@st.cache_data(max_entries=64, show_spinner=False)
def lesson_bytes(model: str, dataset: str, epochs, seed: int, config_key: str) -> dict:
    """{"parts": bytes by component at fixed width ("plain") and entropy coded ("huffman",
    the real artifact), "saves": torch.save sizes}."""
    from compress_core.analysis.lessons import torch_save_sizes
    from compress_core.format.breakdown import bytes_by_component

    base, _ = baseline(model, dataset, epochs, seed)
    small = compressed(model, dataset, epochs, seed, config_key)
    with HEAVY_JOBS:
        return {
            "parts": {
                "plain": bytes_by_component(small, coded=False),
                "huffman": bytes_by_component(small),
            },
            "saves": torch_save_sizes(base, small),
        }


@st.cache_data(max_entries=256, show_spinner=False)
def layer_errors(model: str, dataset: str, epochs, seed: int, config_key: str):
    """The per-layer error table of one config (``compress_core.eval.errors``)."""
    from compress_core.eval.errors import calibration_batch
    from compress_core.eval.errors import layer_errors as errors

    base, data = baseline(model, dataset, epochs, seed)
    small = compressed(model, dataset, epochs, seed, config_key)
    with HEAVY_JOBS:
        return errors(base, small, calibration_batch(data))
