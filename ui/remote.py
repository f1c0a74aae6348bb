"""Where the heavy pages' grid jobs run: this process, or the operator's pool or Ray cluster.

The operator chooses with ``SLIMSCOPE_EXECUTOR`` / ``SLIMSCOPE_WORKERS`` /
``SLIMSCOPE_RAY_ADDRESS`` / ``SLIMSCOPE_EXECUTOR_FALLBACK``, or an ``[executor]``
table in ``.streamlit/secrets.toml`` (``kind``, ``workers``, ``address``,
``fallback``); the environment wins. Points computed elsewhere go to the result
store like any other, and land on the page as they finish.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Executor

import streamlit as st

from compress_core.analysis.executors import ExecutorConfig, describe, run_grid
from compress_core.analysis.sweep import point_or_error
from compress_core.core.config import CompressionConfig, ConfigError
from compress_core.core.pipeline import CompressionError

from . import cache, pick
from .i18n import t
from .safe import plain


def settings() -> ExecutorConfig:
    """The operator's setting: the environment, else secrets.toml's [executor], else here."""
    env = ExecutorConfig.from_env()
    if env.kind != "inline":
        return env
    try:
        table = dict(st.secrets.get("executor", {}))
    except (FileNotFoundError, OSError, ValueError):  # no secrets file, or unreadable
        table = {}
    return ExecutorConfig(**table) if table else env


def caption() -> None:
    """Say on the page where heavy work runs (without connecting to anything yet)."""
    try:
        where = settings().where()
    except (ConfigError, TypeError) as e:
        where = t("remote.invalid", error=plain(e))
    st.caption(t("remote.where", where=where))


def executor_from_settings() -> Executor | None:
    """The operator's executor (None: this process), connected once per server process.

    An unreachable cluster without ``fallback`` stops the page with the reason,
    rather than quietly running a cluster-sized job on the web server.
    """
    try:
        config = settings()
        ex = None if config.kind == "inline" else cache.executor(*_fields(config))
    except (ConfigError, TypeError) as e:  # ClusterUnavailable is a ConfigError
        st.error(t("remote.unusable", error=plain(e)))
        st.stop()
    note = getattr(ex, "note", None)
    if note:
        st.warning(t("remote.running", where=plain(describe(ex))))
    return ex


def _fields(config: ExecutorConfig) -> tuple:
    return (config.kind, config.workers, config.address, config.fallback)


def run_sweep(
    p: pick.Pick,
    keys: list[str],
    on_point: Callable[[int, object], None],
    executor: Executor | None,
) -> None:
    """``on_point(i, Result or error)`` for every config key, as each finishes.

    In this process each point goes through the page cache; elsewhere the base
    model and data are shipped once, and every finished point is stored.
    """
    if executor is None:
        for i, key in enumerate(keys):
            try:
                on_point(i, cache.result(*p.args, key, p.subset))
            except (ConfigError, CompressionError) as e:
                on_point(i, e)
        return
    base, data = cache.baseline(*p.args)
    configs = [CompressionConfig.from_dict(json.loads(k)) for k in keys]

    def land(i: int, r) -> None:
        if not isinstance(r, Exception):
            cache.remember(r, p.subset, identity(p))
        on_point(i, r)

    run_grid(executor, point_or_error, configs, (base, data, p.subset), land)


def finetune_sweep(p: pick.Pick, configs, ft, executor: Executor | None) -> dict:
    """{config key: fine-tuned Result} computed on ``executor``; {} in this process, where the
    page trains each config itself with a progress bar."""
    from compress_core.train.finetune import finetune_sweep as sweep

    if executor is None:
        return {}
    base, data = cache.baseline(*p.args)
    results = sweep(base, data, configs, ft, p.subset, executor=executor)
    for r in results:
        cache.remember(r, p.subset, identity(p))
    return {CompressionConfig.from_dict(r.config).key(): r for r in results}


def identity(p: pick.Pick) -> dict:
    return {"source": "dashboard", "epochs": p.epochs, "seed": p.seed}
