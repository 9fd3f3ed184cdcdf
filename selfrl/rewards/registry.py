"""Rewards by name, so a config can say ``reward: accuracy`` and pass keyword options.

A factory (a reward class, or a function returning a reward) registers under one name;
registering a name twice is an error.  :func:`build_reward` checks the options against
the factory's signature, so a typo is reported with the close matches.

>>> sorted(set(available_rewards()) & {"accuracy", "format"})
['accuracy', 'format']
>>> build_reward("format").name
'format'
>>> build_reward("acuracy")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
selfrl.rewards.base.RewardError: unknown reward 'acuracy' (did you mean 'accuracy'?); valid: ...
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from selfrl.rewards.base import Reward, RewardError

F = TypeVar("F", bound=Callable[..., Any])

_FACTORIES: dict[str, Callable[..., Reward]] = {}


def register_reward(name: str) -> Callable[[F], F]:
    """Decorator: register a reward factory (class or function) under ``name``."""

    def decorate(factory: F) -> F:
        if name in _FACTORIES:
            raise RewardError(f"reward {name!r} is already registered (by {_FACTORIES[name]!r})")
        _FACTORIES[name] = factory
        return factory

    return decorate


def available_rewards() -> list[str]:
    """The registered reward names, sorted."""
    return sorted(_FACTORIES)


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def build_reward(name: str, /, **kwargs: Any) -> Reward:
    """Build the reward registered as ``name`` with keyword options ``kwargs``."""
    if name not in _FACTORIES:
        valid = available_rewards()
        raise RewardError(f"unknown reward {name!r}{_did_you_mean(name, valid)}; valid: {', '.join(valid)}")
    factory = _FACTORIES[name]
    sig = inspect.signature(factory)
    try:
        sig.bind(**kwargs)
    except TypeError as e:
        params = [p for p in sig.parameters if p != "self"]
        unknown = sorted(set(kwargs) - set(params))
        hint = "".join(f" {k!r}{_did_you_mean(k, params)}" for k in unknown)
        raise RewardError(
            f"bad options for reward {name!r}: {e}.{' Unknown:' + hint + '.' if hint else ''} "
            f"Accepted: {', '.join(params)}"
        ) from e
    return factory(**kwargs)
