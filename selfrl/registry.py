"""A name → plug-in table, so that callers pick a plug-in by name and never branch on it.

Every kind of plug-in (advantage estimator, policy loss, KL estimator, loss aggregation,
judgment aggregator, reward, recipe) has one :class:`Registry`, and every entry of a kind
shares that kind's signature.  Registering a name twice is an error rather than a silent
override, so two modules can never fight over a name depending on import order.

An entry may declare what it needs where it is registered (``traits``: e.g. an advantage
estimator that needs a critic), so that callers read the declaration instead of testing
the name.  A registry whose entries live in many modules names their package
(``builtins``); the package's modules are imported the first time the table is read, so
adding a plug-in is one file and one decorator, and nothing is imported for its side
effect at start-up.

>>> table = Registry("greeting")
>>> @table.register("hello")
... def hello() -> str:
...     return "hi"
>>> table.get("hello")()
'hi'
>>> table.names()
('hello',)
>>> table.get("helo")
Traceback (most recent call last):
...
selfrl.registry.UnknownNameError: unknown greeting 'helo' (did you mean 'hello'?); valid names: hello
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, Generic, TypeVar

F = TypeVar("F", bound=Callable)


class UnknownNameError(KeyError):
    """Raised by :meth:`Registry.get` for a name that was never registered.

    A ``KeyError`` so that ``except KeyError`` still catches it; ``__str__`` is overridden
    because ``KeyError`` would otherwise print the message as a quoted repr.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for close matches of ``word`` among ``choices``, else ``""``.

    >>> did_you_mean("acuracy", ["accuracy", "format"]), did_you_mean("zzz", ["accuracy"])
    (" (did you mean 'accuracy'?)", '')
    """
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


class Registry(Generic[F]):
    """Plug-ins of one kind, looked up by name.

    Args:
        kind: what the entries are (used in error messages), e.g. ``"advantage estimator"``.
        builtins: a package whose modules register the shipped entries; they are imported
            the first time the registry is read.
        traits: a dataclass of what an entry may declare at registration
            (``register(name, **traits)``); :meth:`traits` returns it, defaults filled in.
        error: the exception class raised for a duplicate name.
    """

    def __init__(self, kind: str, builtins: str | None = None, traits: type | None = None,
                 error: type[Exception] = ValueError) -> None:
        self.kind = kind
        self._builtins = builtins
        self._traits_type = traits
        self._error = error
        self._table: dict[str, F] = {}
        self._traits: dict[str, Any] = {}
        self._loading = False

    def register(self, name: str, **traits: Any) -> Callable[[F], F]:
        """Decorator that files the entry under ``name`` (with its declared ``traits``) and
        returns it unchanged."""
        declared = self._make_traits(name, traits)

        def add(fn: F) -> F:
            if name in self._table:
                earlier = self._table[name]
                raise self._error(f"{self.kind} {name!r} is already registered (by "
                                  f"{earlier.__module__}.{getattr(earlier, '__qualname__', earlier)})")
            self._table[name] = fn
            self._traits[name] = declared
            return fn

        return add

    def unregister(self, name: str) -> F:
        """Remove ``name`` (for plug-ins and tests that register temporarily); returns it."""
        if name not in self._table:
            raise UnknownNameError(f"cannot unregister {self.kind} {name!r}: not registered")
        self._traits.pop(name, None)
        return self._table.pop(name)

    def get(self, name: str) -> F:
        """The entry registered under ``name``; :class:`UnknownNameError` lists the valid ones."""
        self._load_builtins()
        try:
            return self._table[name]
        except KeyError:
            names = self.names()
            raise UnknownNameError(f"unknown {self.kind} {name!r}{did_you_mean(name, names)}; "
                                   f"valid names: {', '.join(names)}") from None

    def traits(self, name: str) -> Any:
        """What the entry ``name`` declared when it was registered (the traits dataclass)."""
        self.get(name)
        return self._traits[name]

    def names(self) -> tuple[str, ...]:
        """Registered names, sorted."""
        self._load_builtins()
        return tuple(sorted(self._table))

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._table

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={list(self.names())})"

    def _make_traits(self, name: str, traits: dict[str, Any]) -> Any:
        if self._traits_type is None:
            if traits:
                raise TypeError(f"{self.kind} {name!r}: this registry takes no traits, got {sorted(traits)}")
            return None
        return self._traits_type(**traits)  # an unknown trait is a TypeError naming it

    def _load_builtins(self) -> None:
        """Import every module of the ``builtins`` package once (each registers its entries)."""
        package = self._builtins
        if package is None or self._loading:  # loaded, or a module being loaded reads the table
            return
        self._loading = True
        try:
            for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
                importlib.import_module(f"{package}.{module.name}")
        finally:
            self._loading = False
        self._builtins = None
