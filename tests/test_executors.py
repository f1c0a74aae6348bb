"""Grid jobs on a process pool and on a real local Ray cluster (2 workers on 127.0.0.1).

Every backend must give exactly the in-process results (same accuracies, same
bytes), stream each finished point to the result store, keep finished points
on Stop, and survive a worker killed mid-sweep.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

import ui.cache
from compress_core.__main__ import main
from compress_core.analysis import sweep as sweep_module
from compress_core.analysis.budget import Budget, search
from compress_core.analysis.executors import (
    ClusterUnavailable,
    ExecutorConfig,
    InlineExecutor,
    ProcessExecutor,
    describe,
    make_executor,
    run_grid,
)
from compress_core.analysis.sensitivity import sensitivity
from compress_core.analysis.sweep import grid, sweep
from compress_core.core.config import CompressionConfig
from compress_core.io.store import Store
from compress_core.train.finetune import FinetuneConfig, finetune_sweep

CONFIGS = grid((0.0, 0.5, 0.9), (3, 32))  # 6 points
PAGES = Path(__file__).resolve().parent.parent / "pages"
VOLATILE = ("seconds", "created")  # wall-clock fields: the only ones allowed to differ


def plain(results) -> list[dict]:
    return [{k: v for k, v in r.to_dict().items() if k not in VOLATILE} for r in results]


@pytest.fixture(scope="module")
def ray_cluster():
    ex = make_executor(ExecutorConfig("ray", workers=2))
    yield ex
    ex.shutdown()


@pytest.fixture(scope="module")
def pool():
    with ProcessExecutor(2) as ex:
        yield ex


@pytest.fixture(params=["pool", "ray_cluster"])
def elsewhere(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def reference(digits_lenet):
    base, data = digits_lenet
    return plain(sweep(base, data, CONFIGS))


def test_sweep_elsewhere_equals_in_process_and_streams_every_point_to_the_store(
    digits_lenet, reference, elsewhere, tmp_path
):
    base, data = digits_lenet
    store, seen = Store(tmp_path / "results.sqlite"), []

    def keep(i, r):
        seen.append(i)
        store.save(r)

    got = sweep(base, data, CONFIGS, on_result=keep, executor=elsewhere)
    assert plain(got) == reference
    assert sorted(seen) == list(range(len(CONFIGS)))
    assert store.count() == len(CONFIGS)


def test_sensitivity_elsewhere_equals_in_process(digits_lenet, elsewhere):
    base, data = digits_lenet
    args = (base, data, ["conv2", "fc1"], (0.0, 0.9), (2, 32))
    assert sensitivity(*args, executor=elsewhere) == sensitivity(*args)


def test_budget_search_on_ray_equals_in_process(digits_lenet, ray_cluster):
    base, data = digits_lenet
    args = (base, data, Budget(max_drop_pp=2.0), CompressionConfig(), (0.0, 0.5, 0.8), (3, 32))
    here = search(*args, max_evals=4)
    there = search(*args, max_evals=4, executor=ray_cluster)
    assert there.tried == here.tried and there.chosen == here.chosen
    assert there.sensitivity == here.sensitivity


def test_finetune_sweep_on_ray_equals_in_process_with_one_torch_thread(
    digits_lenet, ray_cluster, tmp_path
):
    base, data = digits_lenet
    configs = [CompressionConfig(prune_rate=r) for r in (0.5, 0.9)]
    ft = FinetuneConfig(epochs=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # workers train with one thread; the reduction order must match
    try:
        here = finetune_sweep(base, data, configs, ft, cache_dir=tmp_path / "here")
    finally:
        torch.set_num_threads(threads)
    there = finetune_sweep(
        base, data, configs, ft, cache_dir=tmp_path / "there", executor=ray_cluster
    )
    assert plain(there) == plain(here)
    assert len(list((tmp_path / "there").rglob("*.slim"))) == len(configs)  # cached by workers


def _dies_once(marker: str, base, data, subset, config):
    """A sweep point whose worker is killed (SIGKILL) the first time it runs config #2."""
    if config == CONFIGS[2] and not Path(marker).exists():
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return sweep_module._point(base, data, subset, config)


def test_a_worker_killed_mid_sweep_loses_no_point(digits_lenet, reference, elsewhere, tmp_path):
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    base, data = digits_lenet
    store, marker = Store(tmp_path / "results.sqlite"), tmp_path / "killed"
    shared = (str(marker), base, data, None)
    got = run_grid(elsewhere, _dies_once, CONFIGS, shared, lambda i, r: store.save(r))
    assert marker.exists()  # the worker really died
    assert plain(got) == reference
    assert store.count() == len(CONFIGS)


def test_stop_keeps_exactly_the_finished_points(digits_lenet, reference, ray_cluster, tmp_path):
    base, data = digits_lenet
    store = Store(tmp_path / "results.sqlite")
    got = sweep(
        base,
        data,
        CONFIGS,
        on_result=lambda i, r: store.save(r),
        should_stop=lambda: store.count() >= 2,
        executor=ray_cluster,
    )
    assert 2 <= len(got) < len(CONFIGS)
    assert store.count() == len(got)
    assert all(row in reference for row in plain(got))


def test_unreachable_cluster_says_what_to_do_and_falls_back_only_when_allowed(
    digits_lenet, tmp_path, capsys
):
    with pytest.raises(ClusterUnavailable, match="cannot reach.*ray start --head.*--fallback"):
        make_executor(ExecutorConfig("ray", address="127.0.0.1:1"))
    fallback = make_executor(ExecutorConfig("ray", address="127.0.0.1:1", fallback=True))
    assert isinstance(fallback, InlineExecutor) and "cannot reach" in describe(fallback)
    assert ExecutorConfig.from_env({"SLIMSCOPE_RAY_ADDRESS": "auto"}).kind == "ray"

    cli = ["sweep", "--rates", "0.5", "--bits", "4", "--address", "127.0.0.1:1"]
    out = tmp_path / "sweep.csv"
    assert main([*cli, "--no-store"]) == 2
    assert "cannot reach the Ray cluster" in capsys.readouterr().err
    assert main([*cli, "--fallback", "--store", str(tmp_path / "r.sqlite"), "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 2 and Store(tmp_path / "r.sqlite").count() == 1


def _sweep_page(monkeypatch, **env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(str(PAGES / "1_Sweep.py"), default_timeout=300).run()
    at.multiselect(key="sweep_rates").set_value([0, 50, 90])
    at.multiselect(key="sweep_bits").set_value([3, 32])
    return at.button(key="sweep_submit").click().run()


def test_sweep_page_on_the_operators_pool_shows_the_in_process_points(
    digits_lenet, reference, monkeypatch
):
    at = _sweep_page(monkeypatch, SLIMSCOPE_EXECUTOR="processes", SLIMSCOPE_WORKERS="2")
    try:
        assert not at.exception and not at.error
        assert any("pool of 2 local processes" in c.value for c in at.caption)
        table = next(d.value for d in at.dataframe)
        by_label = {r["label"]: r for r in reference}
        assert len(table) == len(reference)
        for _, row in table.iterrows():
            ref = by_label[row["label"]]
            assert (row["accuracy"], row["artifact_bytes"]) == (
                ref["accuracy"],
                ref["artifact_bytes"],
            )
    finally:
        ui.cache.executor("processes", 2, None, False).shutdown()
        ui.cache.executor.clear()


def test_sweep_page_with_an_unreachable_cluster_says_so_and_runs_nothing(digits_lenet, monkeypatch):
    at = _sweep_page(monkeypatch, SLIMSCOPE_RAY_ADDRESS="127.0.0.1:1")
    assert not at.exception
    assert any("on the Ray cluster at 127.0.0.1:1" in c.value for c in at.caption)
    assert any("cannot reach the Ray cluster" in e.value for e in at.error)
    assert not at.dataframe
