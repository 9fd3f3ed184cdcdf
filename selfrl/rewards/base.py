"""The reward interface: a callable over a batch of completions, one float per completion.

A reward is any callable ``(batch: RewardBatch) -> RewardResult | list[float]`` with a
``name`` attribute (when it has none, its function or class name is used).  Rewards see
the whole batch, so group-level rewards (majority vote, pairwise judges) read whole groups
through ``batch.group_size``; rollout code never computes a reward.

Callers go through :func:`compute_reward`, which turns a bare list into a
:class:`RewardResult` and rejects a wrong count, NaN/inf or a non-number with a
:class:`RewardError` that names the reward.

>>> batch = RewardBatch(prompts=["1+1?", "1+1?"], completions=["2", "3"],
...                     rows=[{"answer": "2"}] * 2, group_size=2)
>>> def is_two(batch):
...     return [float(c == "2") for c in batch.completions]
>>> compute_reward(is_two, batch)
RewardResult(scores=[1.0, 0.0], metrics={}, group_data={}, components={})
>>> compute_reward(lambda b: [1.0], batch)
Traceback (most recent call last):
...
selfrl.rewards.base.RewardError: reward '<lambda>' returned 1 scores for 2 completions
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class RewardError(ValueError):
    """A reward was misconfigured, failed, or returned something unusable."""


@dataclass(frozen=True)
class RewardBatch:
    """Completions to score, with the prompt and dataset row each one answers.

    Args:
        prompts: one per completion (repeated within a group).
        completions: the generated texts.
        rows: the dataset row of each completion's prompt (``answer`` and other fields).
        group_size: completions ``[g * group_size:(g + 1) * group_size]`` share one prompt.
    """

    prompts: list[str]
    completions: list[str]
    rows: list[dict]
    group_size: int = 1

    def __post_init__(self) -> None:
        n = len(self.completions)
        if len(self.prompts) != n or len(self.rows) != n:
            raise RewardError(
                f"RewardBatch needs one prompt and one row per completion; got {len(self.prompts)} "
                f"prompts, {n} completions, {len(self.rows)} rows"
            )
        if self.group_size < 1 or n % self.group_size:
            raise RewardError(f"group_size {self.group_size} does not divide {n} completions")

    def __len__(self) -> int:
        return len(self.completions)

    def groups(self) -> list[range]:
        """Index ranges of the groups: ``[range(0, k), range(k, 2k), ...]`` for ``k = group_size``.

        >>> RewardBatch(["p"] * 4, ["a", "b", "c", "d"], [{}] * 4, group_size=2).groups()
        [range(0, 2), range(2, 4)]
        """
        k = self.group_size
        return [range(start, start + k) for start in range(0, len(self), k)]


@dataclass
class RewardResult:
    """One score per completion plus scalar metrics to log (e.g. ``{"accuracy": 0.5}``).

    ``group_data`` is what a group-aware reward found out about each group and a recipe may
    need later (SeRL's ``pseudo_label``, SERL's ``judge`` samples): name -> one value per
    group.  The trainer puts it on the rollout batch, where it follows its group through the
    filters; a reward never keeps it on itself for someone to read later.

    ``components`` breaks ``scores`` down by part when a reward is made of parts (a
    :class:`~selfrl.rewards.weighted.WeightedSum`): part name -> that part's own score of every
    completion, before its weight.  The rollout samples show them beside each completion.
    """

    scores: list[float]
    metrics: dict[str, float] = field(default_factory=dict)
    group_data: dict[str, list] = field(default_factory=dict)
    components: dict[str, list[float]] = field(default_factory=dict)


Reward = Callable[[RewardBatch], RewardResult | Sequence[float]]


def reward_name(reward: Any) -> str:
    """The reward's ``name`` attribute, else its function name, else its class name."""
    name = getattr(reward, "name", None) or getattr(reward, "__name__", None)
    return str(name) if name else type(reward).__name__


def _as_float(value: Any) -> float | None:
    """``value`` as a float when it is a number (bools count as 0/1), else ``None``."""
    if isinstance(value, (str, bytes)) or not hasattr(type(value), "__float__"):
        return None
    try:  # a 0-d tensor or numpy scalar converts; a multi-element one raises
        return float(value)
    except (TypeError, ValueError):
        return None


def check_scores(name: str, values: Any, n: int) -> list[float]:
    """``values`` as ``n`` finite floats, or a :class:`RewardError` naming reward ``name``."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise RewardError(f"reward {name!r} returned {type(values).__name__}, not a list of scores")
    values = list(values)
    if len(values) != n:
        raise RewardError(f"reward {name!r} returned {len(values)} scores for {n} completions")
    scores = []
    for i, v in enumerate(values):
        f = _as_float(v)
        if f is None:
            raise RewardError(f"reward {name!r}: score {i} is {v!r}, not a number")
        if not math.isfinite(f):
            raise RewardError(f"reward {name!r}: score {i} is {f}, not finite")
        scores.append(f)
    return scores


def check_metrics(name: str, metrics: Any) -> dict[str, float]:
    """``metrics`` as a ``str -> float`` dict, or a :class:`RewardError` naming the reward."""
    if not isinstance(metrics, Mapping):
        raise RewardError(f"reward {name!r} returned metrics of type {type(metrics).__name__}, not a dict")
    out = {}
    for key, v in metrics.items():
        f = _as_float(v)
        if f is None:
            raise RewardError(f"reward {name!r}: metric {key!r} is {v!r}, not a number")
        out[str(key)] = f
    return out


def check_group_data(name: str, group_data: Any, n_groups: int) -> dict[str, list]:
    """``group_data`` as a ``str -> list`` dict of one value per group, or a :class:`RewardError`."""
    if not isinstance(group_data, Mapping):
        raise RewardError(f"reward {name!r} returned group_data of type {type(group_data).__name__}, "
                          f"not a dict")
    for key, values in group_data.items():
        if not isinstance(values, list) or len(values) != n_groups:
            got = f"{len(values)} values" if isinstance(values, list) else type(values).__name__
            raise RewardError(f"reward {name!r}: group_data[{key!r}] must be a list of one value per "
                              f"group ({n_groups}), got {got}")
    return dict(group_data)


def compute_reward(reward: Reward, batch: RewardBatch) -> RewardResult:
    """Call ``reward`` on ``batch`` and check its answer; every failure names the reward."""
    name = reward_name(reward)
    try:
        out = reward(batch)
    except RewardError:
        raise
    except Exception as e:  # say which reward failed; the cause stays chained
        raise RewardError(f"reward {name!r} raised {type(e).__name__}: {e}") from e
    if isinstance(out, RewardResult):
        components = {str(part): check_scores(f"{name}/{part}", scores, len(batch))
                      for part, scores in out.components.items()}
        return RewardResult(check_scores(name, out.scores, len(batch)), check_metrics(name, out.metrics),
                            check_group_data(name, out.group_data, len(batch.groups())), components)
    return RewardResult(check_scores(name, out, len(batch)))


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean, 0.0 for an empty batch (metrics must stay finite numbers)."""
    return sum(values) / len(values) if values else 0.0
