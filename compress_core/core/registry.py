"""A name -> object registry with a decorator, used for models, data sets and methods.

Example:
    >>> PRUNERS = Registry("pruning method")
    >>> @PRUNERS.register("magnitude")
    ... def magnitude(...): ...
    >>> PRUNERS["magnitude"]
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(ValueError):
    """A name that is not in a registry; the message lists the valid ones."""


class Registry(Generic[T]):
    """A dict from name to object whose lookup errors list the valid names."""

    def __init__(self, kind: str, names: list[str] | None = None):
        self.kind = kind
        self._items: dict[str, T] = {}
        # A plain list kept equal to the names, for those who hold it (choices in the CLI
        # and the dashboard): a name registered later shows up there too.
        self.live_names = names if names is not None else []

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            self.live_names.append(name)
            return obj

        return add

    def unregister(self, name: str) -> None:
        """Forget ``name`` (e.g. a plugin unloaded, or a test's temporary method)."""
        self._items.pop(name, None)
        if name in self.live_names:
            self.live_names.remove(name)

    def add(self, name: str, obj: T) -> T:
        return self.register(name)(obj)

    def __getitem__(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownName(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self._items)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def names(self) -> list[str]:
        return list(self._items)


_LOADED: set[str] = set()


def load_entry_points(group: str) -> list[str]:
    """Load, once per process, every ``group`` entry point; registering is their import's job.

    A package adds methods with, in its pyproject.toml,
    ``[project.entry-points."slimscope.methods"] mine = "mypkg.methods"``, where
    ``mypkg.methods`` uses ``register_pruning_method`` / ``QUANTIZERS.register``.
    Returns one line per entry point that failed to load (the others still count).
    """
    if group in _LOADED:
        return []
    _LOADED.add(group)
    from importlib.metadata import entry_points

    problems = []
    for ep in entry_points(group=group):
        try:
            ep.load()
        except Exception as e:  # one broken plugin must not take the engine down
            problems.append(f"{group} entry point {ep.name!r} ({ep.value}): {e}")
    for line in problems:
        warnings.warn(line, stacklevel=2)
    return problems
