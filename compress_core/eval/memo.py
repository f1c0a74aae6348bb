"""One explicit, size-limited cache for what is derived from a model: nothing lives on the model.

Entries are keyed by (model identity, what, key...). A model's identity is a
number given to the object itself (held weakly), so a compressed or
deep-copied model is a new identity and never inherits its base's baseline
metrics, weight hash or cached activations; entries of a model that is
garbage-collected are dropped with it. The cache holds at most
``MAX_BYTES`` of tensors and ``MAX_ENTRIES`` entries, least recently used
out first.

Example:
    >>> metrics = MEMO.get_or(base, ("eval", dataset_key(data), 2000), lambda: evaluate(...))
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import torch
from torch import nn

V = TypeVar("V")
MAX_BYTES = 1 << 30  # prefix activations are the big entries (each at most 512 MiB)
MAX_ENTRIES = 4096


def _nbytes(value: Any) -> int:
    """Tensor bytes held by a value (tensors, lists/tuples/dicts of them, dataclass fields)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if hasattr(value, "__dataclass_fields__"):
        return sum(_nbytes(getattr(value, f)) for f in value.__dataclass_fields__)
    return 0


class ModelMemo:
    """An LRU from (model identity, key) to a value, bounded in bytes and entries."""

    def __init__(self, max_bytes: int = MAX_BYTES, max_entries: int = MAX_ENTRIES):
        self.max_bytes, self.max_entries = max_bytes, max_entries
        self._ids: weakref.WeakKeyDictionary[nn.Module, int] = weakref.WeakKeyDictionary()
        self._next = itertools.count()
        self._items: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.RLock()

    def identity(self, model: nn.Module) -> int:
        """A number for this very object; copies get their own."""
        with self._lock:
            if model not in self._ids:
                ident = self._ids[model] = next(self._next)
                weakref.finalize(model, self._forget, ident)
            return self._ids[model]

    def get_or(self, model: nn.Module, key: Hashable, make: Callable[[], V]) -> V:
        """The cached value for (model, key), made (under the lock) when missing."""
        full = (self.identity(model), key)
        with self._lock:
            if full in self._items:
                self._items.move_to_end(full)
                return self._items[full][0]
            value = make()
            size = _nbytes(value)
            self._items[full] = (value, size)
            self._bytes += size
            while len(self._items) > 1 and (
                self._bytes > self.max_bytes or len(self._items) > self.max_entries
            ):
                self._bytes -= self._items.popitem(last=False)[1][1]
            return value

    def entries(self, model: nn.Module) -> int:
        """How many entries belong to ``model`` (for tests)."""
        ident = self.identity(model)
        with self._lock:
            return sum(1 for k in self._items if k[0] == ident)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def _forget(self, ident: int) -> None:
        with self._lock:
            for k in [k for k in self._items if k[0] == ident]:
                self._bytes -= self._items.pop(k)[1]


MEMO = ModelMemo()


def tensor_key(x: torch.Tensor) -> tuple:
    """Identifies a cached tensor (e.g. a data set's test images) while it is alive."""
    return (x.data_ptr(), tuple(x.shape), str(x.device))


def dataset_key(data, split: str = "test") -> tuple:
    """Identifies one split of one loaded data set: its name and its tensor."""
    return (data.name, split, tensor_key(getattr(data, f"{split}_x")))
