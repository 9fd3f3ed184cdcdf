"""Format rewards: 1.0 when a completion has the required shape, else 0.0; and SR-R1's
tag-count reward (:class:`TagCountReward`), partial credit per layout tag.

By default the completion must contain a complete final answer box: the last
``\\boxed{…}`` (or ``\\fbox{…}``) with balanced braces and something inside.  With
``pattern`` the completion is matched against a regular expression instead (compiled with
``re.DOTALL``, so ``.`` crosses newlines), either anywhere in the text (``search``) or
as the whole text after stripping surrounding whitespace (``fullmatch``).
:data:`THINK_ANSWER` is SR-R1's ``<think>…</think><answer>…</answer>`` layout.

>>> batch = RewardBatch(["q"] * 3, ["\\\\boxed{\\\\frac{1}{2}}", "\\\\boxed{}", "42"], [{}] * 3, 3)
>>> FormatReward()(batch).scores
[1.0, 0.0, 0.0]
>>> tagged = RewardBatch(["q"] * 2, ["<think>a\\nb</think> <answer>4</answer>\\n", "<answer>4</answer>"],
...                      [{}] * 2, 2)
>>> FormatReward(pattern=THINK_ANSWER, fullmatch=True)(tagged).scores
[1.0, 0.0]
"""

from __future__ import annotations

import re

from selfrl.eval.extract import last_boxed
from selfrl.rewards.base import RewardBatch, RewardError, RewardResult, mean
from selfrl.rewards.registry import register_reward

THINK_ANSWER = r"<think>.*?</think>\s*<answer>.*?</answer>"
THINK_ANSWER_TAGS = ("<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>")


@register_reward("format")
class FormatReward:
    """1.0 if the completion matches the format, else 0.0.

    Args:
        pattern: a regular expression (``re.DOTALL``); ``None`` requires a final
            non-empty ``\\boxed{…}``.
        fullmatch: match the whole stripped completion rather than search inside it.
        name: the name used in logs and errors.

    Metric: ``format_fraction`` (share of completions in format).
    """

    name = "format"

    def __init__(self, pattern: str | None = None, fullmatch: bool = False, name: str | None = None) -> None:
        if pattern is None and fullmatch:
            raise RewardError("FormatReward: fullmatch needs a pattern")
        try:
            self.regex = None if pattern is None else re.compile(pattern, re.DOTALL)
        except re.error as e:
            raise RewardError(f"FormatReward: bad pattern {pattern!r}: {e}") from e
        self.fullmatch = fullmatch
        if name is not None:
            self.name = name

    def matches(self, text: str) -> bool:
        if self.regex is None:
            return bool(last_boxed(text))
        if self.fullmatch:
            return self.regex.fullmatch(text.strip()) is not None
        return self.regex.search(text) is not None

    def __call__(self, batch: RewardBatch) -> RewardResult:
        scores = [1.0 if self.matches(c) else 0.0 for c in batch.completions]
        return RewardResult(scores, {"format_fraction": mean(scores)})


@register_reward("tag_count")
class TagCountReward:
    """open-r1's ``tag_count_reward`` (part of SR-R1's reward sum): 0.25 for each of
    :data:`THINK_ANSWER_TAGS` (``<think>\\n``, ``\\n</think>\\n``, ``\\n<answer>\\n``,
    ``\\n</answer>``) that appears exactly once in the completion, so 0.0 to 1.0.

    Args:
        name: the name used in logs and errors.

    Metric: ``tag_count_mean`` (mean score).

    >>> batch = RewardBatch(["q"] * 3, ["<think>\\nx\\n</think>\\n<answer>\\n4\\n</answer>",
    ...                                 "<think>\\nx\\n</think>\\n4", "4"], [{}] * 3, 3)
    >>> TagCountReward()(batch).scores
    [1.0, 0.5, 0.0]
    """

    name = "tag_count"

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name

    @staticmethod
    def count(text: str) -> float:
        return 0.25 * sum(text.count(tag) == 1 for tag in THINK_ANSWER_TAGS)

    def __call__(self, batch: RewardBatch) -> RewardResult:
        scores = [self.count(c) for c in batch.completions]
        return RewardResult(scores, {"tag_count_mean": mean(scores)})
