"""Where grid-shaped work runs: in this process, a local process pool, or a Ray cluster.

Every backend is a ``concurrent.futures.Executor`` with one extra method,
``put(obj)``, which ships a large shared object (the base model, the test
tensors) to the workers once and returns a handle to pass to ``submit``:
in-process it is the object itself, for the process pool a file each worker
reads once, for Ray an object-store reference (``ray.put``). ``run_grid``
runs a function over a list of items on any of them, handing each result to
a callback as it finishes (``wait(FIRST_COMPLETED)``, as ``as_completed`` does) and
stopping cleanly: finished results are kept, queued ones cancelled. A task whose
worker died is run again (Ray's ``max_retries``; the pool is restarted).

Workers run torch with one thread each, so N workers use N cores.

Example:
    >>> with make_executor(ExecutorConfig("ray", workers=2)) as ex:
    ...     results = sweep(base, data, grid(), executor=ex)
"""

from __future__ import annotations

import collections
import copy
import functools
import os
import pickle
import shutil
import socket
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    BrokenExecutor,
    Executor,
    Future,
    ProcessPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from ..core.config import ConfigError
from ..core.registry import Registry

KINDS = ("inline", "processes", "ray")
ENV_KIND, ENV_WORKERS = "SLIMSCOPE_EXECUTOR", "SLIMSCOPE_WORKERS"
ENV_ADDRESS, ENV_FALLBACK = "SLIMSCOPE_RAY_ADDRESS", "SLIMSCOPE_EXECUTOR_FALLBACK"


class ClusterUnavailable(ConfigError):
    """The Ray cluster cannot be reached (or Ray is not installed); says what to do."""

    def __init__(self, reason: str, hint: str):
        super().__init__(f"{reason}. {hint}")
        self.reason = reason


@dataclass(frozen=True)
class ExecutorConfig:
    """Where to run grid-shaped jobs. Settings only; ``make_executor`` builds the executor."""

    kind: str = "inline"  # "inline" (this process), "processes" (local pool) or "ray"
    workers: int | None = None  # pool size / a local Ray cluster's CPUs (default: all cores)
    address: str | None = None  # ray: "auto", "ray://head:10001"; None starts a local cluster
    fallback: bool = False  # run in this process when the cluster cannot be reached
    max_retries: int = 3  # times a task whose worker died is run again

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"executor must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be at least 1; got {self.workers}")
        if self.address is not None and self.kind != "ray":
            raise ConfigError("an address is only for --executor ray")
        if self.max_retries < 0:
            raise ConfigError(f"max_retries must be 0 or more; got {self.max_retries}")

    def where(self) -> str:
        """Where work will run, in words, before connecting to anything."""
        if self.kind == "processes":
            return f"in a pool of {self.workers or os.cpu_count()} local processes"
        if self.kind == "ray":
            return (
                f"on the Ray cluster at {self.address}"
                if self.address
                else "on a local Ray cluster"
            )
        return "in this process"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ExecutorConfig:
        """The operator's setting: ``SLIMSCOPE_EXECUTOR``, ``SLIMSCOPE_WORKERS``,
        ``SLIMSCOPE_RAY_ADDRESS`` and ``SLIMSCOPE_EXECUTOR_FALLBACK=1``."""
        env = os.environ if env is None else env
        address = env.get(ENV_ADDRESS) or None
        kind = env.get(ENV_KIND) or ("ray" if address else "inline")
        workers = env.get(ENV_WORKERS) or None
        try:
            workers = int(workers) if workers else None
        except ValueError:
            raise ConfigError(f"{ENV_WORKERS} must be a whole number; got {workers!r}") from None
        fallback = env.get(ENV_FALLBACK, "").lower() in ("1", "true", "yes")
        return cls(kind, workers, address, fallback)


# --- the backends --------------------------------------------------------------------------


class InlineExecutor(Executor):
    """Runs each task in the calling thread when it is submitted: the default, no overhead."""

    where = "in this process"
    slots = 1  # run_grid submits one task at a time, so results stream and Stop is prompt

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(e)
        return future

    def put(self, obj: Any) -> Any:
        return obj


LOCAL_MEMOS = ("_slimscope_prefix",)  # traced graphs: rebuilt once per worker, not shipped


def shippable(obj: Any) -> Any:
    """``obj`` without the per-process caches the engine keeps on a base model.

    A shallow copy: parameters and buffers are shared, only the memo is left out.
    The evaluation memos (baseline metrics) are plain data and travel along.
    """
    if not any(k in getattr(obj, "__dict__", {}) for k in LOCAL_MEMOS):
        return obj
    light = copy.copy(obj)
    light.__dict__ = {k: v for k, v in obj.__dict__.items() if k not in LOCAL_MEMOS}
    return light


class _Shared:
    """A handle to an object shipped to the workers once; ``get()`` there returns it."""

    def get(self) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class _Stored(_Shared):
    """A shared object pickled to a file; each pool worker reads it once."""

    path: str

    def get(self) -> Any:
        return _load(self.path)


@functools.lru_cache(maxsize=8)
def _load(path: str) -> Any:
    with open(path, "rb") as f:
        return pickle.load(f)


@dataclass(frozen=True)
class _InStore(_Shared):
    """A Ray object-store reference, wrapped so that Ray hands it over unresolved: each worker
    then fetches it once and keeps it, with the caches the engine hangs on a base model."""

    ref: Any

    def get(self) -> Any:
        return _fetch(self.ref)


_fetched: dict[str, Any] = {}  # per worker process: object-store id -> object


def _fetch(ref) -> Any:
    import ray

    key = ref.hex()
    if key not in _fetched:
        if len(_fetched) >= 8:
            _fetched.pop(next(iter(_fetched)))
        _fetched[key] = ray.get(ref)
    return _fetched[key]


def _worker_call(fn: Callable, *args, **kwargs) -> Any:
    """A task in a worker: one torch thread, shared handles replaced by their objects."""
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    args = [a.get() if isinstance(a, _Shared) else a for a in args]
    return fn(*args, **kwargs)


class ProcessExecutor(Executor):
    """A local process pool (``spawn``: safe beside Streamlit's threads); 1 torch thread each.

    When a worker dies the pool breaks; ``run_grid`` then calls ``restart`` and
    runs the lost tasks again (up to ``max_retries`` times each), as Ray does.
    """

    def __init__(self, workers: int | None = None, max_retries: int = 3):
        self.slots = workers or os.cpu_count() or 1
        self.max_retries = max_retries
        self.where = f"in a pool of {self.slots} local processes"
        self._dir = tempfile.mkdtemp(prefix="slimscope-shared-")
        self._pool = ProcessPoolExecutor(self.slots, get_context("spawn"))

    def put(self, obj: Any) -> _Stored:
        fd, path = tempfile.mkstemp(dir=self._dir, suffix=".pkl")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(shippable(obj), f, protocol=pickle.HIGHEST_PROTOCOL)
        return _Stored(path)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        try:
            future = self._pool.submit(_worker_call, fn, *args, **kwargs)
        except BrokenProcessPool:  # a worker died since the last result came back
            self._replace_pool()
            future = self._pool.submit(_worker_call, fn, *args, **kwargs)
        future.pool = self._pool  # which pool broke, when one does
        return future

    def restart(self, broken: Future) -> None:
        """A fresh pool in place of the one ``broken`` ran on (once per broken pool)."""
        if broken.pool is self._pool:
            self._replace_pool()

    def _replace_pool(self) -> None:
        self._pool.shutdown(wait=False)
        self._pool = ProcessPoolExecutor(self.slots, get_context("spawn"))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait, cancel_futures=cancel_futures)
        shutil.rmtree(self._dir, ignore_errors=True)


class RayExecutor(Executor):
    """Tasks on a Ray cluster: a running one (``address``) or a local one started here.

    A local cluster binds to 127.0.0.1 without the dashboard. Shared objects go
    into the object store once (``put``); a task whose worker process died is
    run again up to ``max_retries`` times (Ray's own retry of system failures).
    """

    def __init__(self, address: str | None = None, workers: int | None = None, max_retries=3):
        ray = _import_ray()
        self._started = _connect(ray, address, workers)
        self._ray = ray
        self._task = ray.remote(_worker_call).options(max_retries=max_retries, num_cpus=1)
        self._refs: dict[Future, Any] = {}
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.slots = 2 * cpus  # keep every CPU busy while results come back
        where = address or "a local Ray cluster on 127.0.0.1"
        self.where = f"on Ray ({where}, {cpus} CPUs)"

    def put(self, obj: Any) -> _InStore:
        return _InStore(self._ray.put(shippable(obj)))

    def submit(self, fn, /, *args, **kwargs) -> Future:
        ref = self._task.remote(fn, *args, **kwargs)
        future = ref.future()
        self._refs[future] = ref
        future.add_done_callback(lambda f: self._refs.pop(f, None))
        return future

    def cancel(self, futures) -> None:
        for f in futures:
            ref = self._refs.pop(f, None)
            if ref is not None:
                self._ray.cancel(ref, force=True)
            f.cancel()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            self.cancel(list(self._refs))
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ClusterUnavailable(
            "Ray is not installed", "pip install 'ray==2.60.0', or use --executor processes"
        ) from None
    return ray


def _connect(ray, address: str | None, workers: int | None) -> bool:
    """Join the cluster at ``address`` or start a local one; False when this process already
    had a Ray connection (one per process: it is reused, and not shut down by us)."""
    package = str(Path(__file__).resolve().parents[1])  # compress_core, shipped to the cluster
    options: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False)
    if address is None:
        options.update(num_cpus=workers or os.cpu_count(), _node_ip_address="127.0.0.1")
    else:
        options["runtime_env"] = {"py_modules": [package]}
    try:
        _probe(address)
        if ray.is_initialized():
            return False
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError, OSError) as e:
        raise ClusterUnavailable(
            f"cannot reach the Ray cluster at {address!r} ({e})",
            "Start one with `ray start --head`, check the address, or allow running in "
            f"this process instead (--fallback, or {ENV_FALLBACK}=1)",
        ) from None
    return True


def _probe(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast when nothing listens at ``address``: ``ray.init`` would retry for minutes."""
    if address is None:
        return
    if address == "auto":
        from ray._private.services import canonicalize_bootstrap_address

        address = canonicalize_bootstrap_address("auto")  # ConnectionError when none runs
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not port.isdigit():
        raise ValueError(f"expected host:port, ray://host:port or auto, got {address!r}")
    socket.create_connection((host, int(port)), timeout).close()


EXECUTORS: Registry[Callable[[ExecutorConfig], Executor]] = Registry("executor")
EXECUTORS.add("inline", lambda c: InlineExecutor())
EXECUTORS.add("processes", lambda c: ProcessExecutor(c.workers, c.max_retries))
EXECUTORS.add("ray", lambda c: RayExecutor(c.address, c.workers, c.max_retries))


def make_executor(config: ExecutorConfig = ExecutorConfig()) -> Executor:
    """The executor ``config`` names; an unreachable cluster raises ``ClusterUnavailable``
    unless ``config.fallback``, which runs in this process instead (``.note`` says why)."""
    try:
        return EXECUTORS[config.kind](config)
    except ClusterUnavailable as e:
        if not config.fallback:
            raise
        ex = InlineExecutor()
        ex.note = f"fallback: {e.reason}"
        return ex


# --- running a grid ------------------------------------------------------------------------


def run_grid(
    executor: Executor | None,
    fn: Callable,
    items: Sequence,
    shared: Sequence = (),
    on_result: Callable[[int, Any], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Any]:
    """``[fn(*shared, item) for item in items]`` on ``executor`` (None: in this process).

    ``shared`` objects are shipped once (``executor.put``). At most
    ``executor.slots`` tasks are in flight; ``on_result(i, result)`` is called
    as each finishes, in completion order. ``should_stop`` is polled before
    each batch of submissions: once it says stop, tasks still running are
    cancelled and the finished results returned.
    Returns the finished results in item order. A task that raises cancels the
    rest and re-raises.
    """
    executor = executor or InlineExecutor()
    handles = [executor.put(obj) for obj in shared]
    slots = max(1, getattr(executor, "slots", 1))
    todo = collections.deque(range(len(items)))
    retries = collections.Counter()
    running: dict[Future, int] = {}
    done: dict[int, Any] = {}

    def top_up() -> None:
        while todo and len(running) < slots:
            i = todo.popleft()
            running[executor.submit(fn, *handles, items[i])] = i

    try:
        while not (should_stop is not None and should_stop()):
            top_up()
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                i = running.pop(future)
                if _lost(executor, future, retries[i]):  # its worker died: run it again
                    retries[i] += 1
                    todo.appendleft(i)
                    continue
                done[i] = future.result()
                if on_result is not None:
                    on_result(i, done[i])
    finally:
        _cancel(executor, list(running))
    return [done[i] for i in sorted(done)]


def _lost(executor: Executor, future: Future, retries: int) -> bool:
    """True when ``future`` failed because its process pool broke and may be retried."""
    if not isinstance(future.exception(), BrokenExecutor) or not hasattr(executor, "restart"):
        return False
    if retries >= executor.max_retries:
        return False
    executor.restart(future)
    return True


def _cancel(executor: Executor, futures: list[Future]) -> None:
    if hasattr(executor, "cancel"):
        executor.cancel(futures)
    for f in futures:
        f.cancel()


def describe(executor: Executor | None) -> str:
    """Where ``executor``'s work runs, in words, e.g. "on Ray (auto, 16 CPUs)"."""
    executor = executor or InlineExecutor()
    text = getattr(executor, "where", type(executor).__name__)
    note = getattr(executor, "note", None)
    return f"{text} ({note})" if note else text


__all__ = [
    "ClusterUnavailable",
    "ExecutorConfig",
    "InlineExecutor",
    "ProcessExecutor",
    "RayExecutor",
    "make_executor",
    "run_grid",
    "describe",
]
