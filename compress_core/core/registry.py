"""A name -> object registry with a decorator, used for models, data sets and methods.

Example:
    >>> PRUNERS = Registry("pruning method")
    >>> @PRUNERS.register("magnitude")
    ... def magnitude(...): ...
    >>> PRUNERS["magnitude"]
"""

from __future__ import annotations

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
