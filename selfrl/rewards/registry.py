"""Rewards by name, so a config can say ``reward: accuracy`` and pass keyword options.

A factory (a reward class, or a function returning a reward) registers under one name in
:data:`REWARDS`; registering a name twice is an error.  The shipped rewards are the modules of
this package: :data:`REWARDS` imports them the first time it is read, so a new reward is one
module with ``@register_reward("name")``.  :func:`build_reward` checks the options against the
factory's signature, so a typo is reported with the close matches.

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

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from selfrl.registry import Registry, did_you_mean
from selfrl.rewards.base import Reward, RewardError

F = TypeVar("F", bound=Callable[..., Any])

#: Reward factories by name: ``factory(**options) -> Reward``.
REWARDS: Registry[Callable[..., Reward]] = Registry("reward", builtins="selfrl.rewards", error=RewardError)


def register_reward(name: str) -> Callable[[F], F]:
    """Decorator: register a reward factory (class or function) under ``name``."""
    return REWARDS.register(name)


def available_rewards() -> list[str]:
    """The registered reward names, sorted."""
    return list(REWARDS.names())


def build_reward(name: str, /, **kwargs: Any) -> Reward:
    """Build the reward registered as ``name`` with keyword options ``kwargs``."""
    if name not in REWARDS:
        valid = available_rewards()
        raise RewardError(f"unknown reward {name!r}{did_you_mean(name, valid)}; valid: {', '.join(valid)}")
    factory = REWARDS.get(name)
    sig = inspect.signature(factory)
    try:
        sig.bind(**kwargs)
    except TypeError as e:
        params = [p for p in sig.parameters if p != "self"]
        unknown = sorted(set(kwargs) - set(params))
        hint = "".join(f" {k!r}{did_you_mean(k, params)}" for k in unknown)
        raise RewardError(
            f"bad options for reward {name!r}: {e}.{' Unknown:' + hint + '.' if hint else ''} "
            f"Accepted: {', '.join(params)}"
        ) from e
    return factory(**kwargs)
