"""Length penalty: DAPO's soft overlong punishment, measured in characters or words.

DAPO (Yu et al., 2025) shapes the reward of long answers instead of cutting them off at a
cliff.  With ``L = max_len`` and a buffer ``B``::

    penalty(len) =  0                          if len <= L - B
                   -(len - (L - B)) / B        if L - B < len <= L
                   -1                          if len > L

so the penalty grows linearly from 0 at the soft limit ``L - B`` to -1 at the hard limit
``L``.  DAPO counts tokens; here the unit is ``"chars"`` or ``"words"`` (whitespace
split), since rewards see text only.  ``buffer=0`` is a plain step: 0 up to
``max_len``, -1 beyond.  Add it to a task reward with :class:`WeightedSum`.

>>> batch = RewardBatch(["q"] * 4, ["a" * 50, "a" * 80, "a" * 90, "a" * 120], [{}] * 4, 4)
>>> LengthPenalty(max_len=100, buffer=20)(batch).scores
[0.0, 0.0, -0.5, -1.0]
"""

from __future__ import annotations

from selfrl.rewards.base import RewardBatch, RewardError, RewardResult, mean
from selfrl.rewards.registry import register_reward

_UNITS = ("chars", "words")


@register_reward("length_penalty")
class LengthPenalty:
    """0 up to ``max_len - buffer``, then linearly down to -1 at ``max_len``, -1 beyond.

    Args:
        max_len: the hard limit, where the penalty reaches -1.
        buffer: the width of the linear ramp below ``max_len`` (0 gives a step).
        unit: ``"chars"`` or ``"words"``.
        name: the name used in logs and errors.

    Metrics: ``mean_length`` (in ``unit``), ``penalised_fraction`` (score < 0) and
    ``overlong_fraction`` (length > ``max_len``).
    """

    name = "length_penalty"

    def __init__(self, max_len: int, buffer: int = 0, unit: str = "chars", name: str | None = None) -> None:
        if max_len <= 0 or not 0 <= buffer <= max_len:
            raise RewardError(
                f"LengthPenalty needs max_len > 0 and 0 <= buffer <= max_len; got {max_len}, {buffer}"
            )
        if unit not in _UNITS:
            raise RewardError(f"LengthPenalty: unit must be one of {_UNITS}, got {unit!r}")
        self.max_len, self.buffer, self.unit = max_len, buffer, unit
        if name is not None:
            self.name = name

    def length(self, text: str) -> int:
        return len(text) if self.unit == "chars" else len(text.split())

    def penalty(self, length: int) -> float:
        soft = self.max_len - self.buffer
        if length <= soft:
            return 0.0
        if length > self.max_len:
            return -1.0
        return -(length - soft) / self.buffer  # buffer > 0 here: soft < length <= max_len

    def __call__(self, batch: RewardBatch) -> RewardResult:
        lengths = [self.length(c) for c in batch.completions]
        scores = [self.penalty(n) for n in lengths]
        metrics = {
            "mean_length": mean(lengths),
            "penalised_fraction": mean([float(s < 0) for s in scores]),
            "overlong_fraction": mean([float(n > self.max_len) for n in lengths]),
        }
        return RewardResult(scores, metrics)
