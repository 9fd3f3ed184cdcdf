"""A name → function table, so that callers pick an algorithm by name and never branch on it.

Each kind (advantage estimator, policy loss, KL estimator, loss aggregation, judge aggregator)
has one registry, and every function in it shares that kind's signature.  Registering a
name twice is an error rather than a silent override, so two modules can never fight over
a name depending on import order.

>>> table = Registry("greeting")
>>> @table.register("hello")
... def hello() -> str:
...     return "hi"
>>> table.get("hello")()
'hi'
>>> table.names()
('hello',)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

F = TypeVar("F", bound=Callable)


class UnknownNameError(KeyError):
    """Raised by :meth:`Registry.get` for a name that was never registered.

    A ``KeyError`` so that ``except KeyError`` still catches it; ``__str__`` is overridden
    because ``KeyError`` would otherwise print the message as a quoted repr.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(Generic[F]):
    """Functions of one kind, looked up by name.

    Args:
        kind: what the functions are (used in error messages), e.g. ``"advantage estimator"``.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._table: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator that files the function under ``name`` and returns it unchanged."""

        def add(fn: F) -> F:
            if name in self._table:
                raise ValueError(f"{self.kind} {name!r} is already registered "
                                 f"(by {self._table[name].__module__}.{self._table[name].__qualname__})")
            self._table[name] = fn
            return fn

        return add

    def unregister(self, name: str) -> F:
        """Remove ``name`` (for plug-ins and tests that register temporarily); returns it."""
        if name not in self._table:
            raise UnknownNameError(f"cannot unregister {self.kind} {name!r}: not registered")
        return self._table.pop(name)

    def get(self, name: str) -> F:
        """The function registered under ``name``; :class:`UnknownNameError` lists the valid ones."""
        try:
            return self._table[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}") from None

    def names(self) -> tuple[str, ...]:
        """Registered names, sorted."""
        return tuple(sorted(self._table))

    def __contains__(self, name: object) -> bool:
        return name in self._table

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={list(self.names())})"
