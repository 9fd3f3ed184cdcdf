"""Re-export of :mod:`selfrl.registry` (the registry itself imports no torch)."""

from selfrl.registry import Registry, UnknownNameError

__all__ = ["Registry", "UnknownNameError"]
