"""A weighted sum of rewards: ``total = Σ weight · score``, each part logged on its own.

For every component named ``n`` the metrics hold ``reward/n`` (the mean of its scores)
and its own metrics as ``n/<metric>``.  Components must have distinct names (pass
``name=`` to tell two of the same kind apart) so their metrics cannot collide.  Their group
data (:attr:`RewardResult.group_data`) is passed on under its own names, which must not
collide either.  Each component's own scores (before its weight) come back in
:attr:`RewardResult.components`, so a completion's reward can be read part by part.

>>> from selfrl.rewards import AccuracyReward, FormatReward
>>> batch = RewardBatch(["2+2?"] * 2, ["\\\\boxed{4}", "4"], [{"answer": "4"}] * 2, 2)
>>> total = WeightedSum([(AccuracyReward(), 1.0), (FormatReward(), 0.5)])
>>> result = total(batch)
>>> result.scores
[1.5, 1.0]
>>> result.metrics["reward/format"], result.metrics["format/format_fraction"]
(0.5, 0.5)
>>> result.components
{'accuracy': [1.0, 1.0], 'format': [1.0, 0.0]}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from selfrl.rewards.base import (
    Reward,
    RewardBatch,
    RewardError,
    RewardResult,
    compute_reward,
    mean,
    reward_name,
)
from selfrl.rewards.registry import build_reward, register_reward


class WeightedSum:
    """Combine ``[(reward, weight), ...]`` into one reward.

    Args:
        components: pairs of a reward and its (finite) weight.
        name: the name used in logs and errors.
    """

    name = "weighted_sum"

    def __init__(self, components: Sequence[tuple[Reward, float]], name: str | None = None) -> None:
        if not components:
            raise RewardError("WeightedSum needs at least one (reward, weight) pair")
        pairs = []
        for item in components:
            reward, weight = item
            if not callable(reward) or isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise RewardError(f"WeightedSum: expected (reward, weight) pairs, got {item!r}")
            if not math.isfinite(weight):
                raise RewardError(f"WeightedSum: weight of {reward_name(reward)!r} is {weight}")
            pairs.append((reward, float(weight)))
        names = [reward_name(r) for r, _ in pairs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise RewardError(f"WeightedSum: components share names {duplicates}; give them distinct name=")
        self.components = pairs
        if name is not None:
            self.name = name

    def __call__(self, batch: RewardBatch) -> RewardResult:
        total = [0.0] * len(batch)
        metrics: dict[str, float] = {}
        group_data: dict[str, list] = {}
        components: dict[str, list[float]] = {}
        for reward, weight in self.components:
            part = compute_reward(reward, batch)
            total = [t + weight * s for t, s in zip(total, part.scores, strict=True)]
            n = reward_name(reward)
            components[n] = part.scores
            metrics[f"reward/{n}"] = mean(part.scores)
            metrics.update({f"{n}/{k}": v for k, v in part.metrics.items()})
            clash = sorted(group_data.keys() & part.group_data.keys())
            if clash:
                raise RewardError(f"WeightedSum: reward {n!r} returns group data {clash} that another "
                                  f"component returns too")
            group_data.update(part.group_data)
        return RewardResult(total, metrics, group_data, components)


def _component(spec: Any) -> tuple[Reward, float]:
    """``{"reward": "format", "weight": 0.5, **options}`` or ``(reward_or_name, weight)``."""
    if isinstance(spec, Mapping):
        options = dict(spec)
        if "reward" not in options:
            raise RewardError(f"weighted_sum component {spec!r} has no 'reward' key")
        kind, weight = options.pop("reward"), options.pop("weight", 1.0)
        return build_reward(kind, **options), weight
    reward, weight = spec
    return (build_reward(reward) if isinstance(reward, str) else reward), weight


@register_reward("weighted_sum")
def weighted_sum(components: Sequence[Any], name: str | None = None) -> WeightedSum:
    """Build a :class:`WeightedSum` from config: each component is a dict such as
    ``{"reward": "format", "weight": 0.5, "pattern": "..."}`` (the other keys are the
    reward's options; ``weight`` defaults to 1.0) or a ``(reward or name, weight)`` pair.
    """
    return WeightedSum([_component(c) for c in components], name=name)
