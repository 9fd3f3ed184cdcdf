"""Math answer accuracy against the gold answer in the dataset row.

The answer is extracted with :func:`selfrl.eval.extract.extract_answer` (last
``\\boxed{…}``, then "The answer is …", then the last number) and graded with
:func:`selfrl.eval.extract.grade` (math-verify, with a fast path for plain numbers).
A gold answer that does not parse never earns 1.0: such completions score 0.0 and are
counted in the ``unparsable_gold`` metric, so a broken dataset shows up in the logs
instead of as a silently easy or impossible task.

>>> batch = RewardBatch(prompts=["2+2?"] * 3,
...                     completions=["so \\\\boxed{4}", "The answer is 5.", "no idea"],
...                     rows=[{"answer": "4"}] * 3, group_size=3)
>>> result = AccuracyReward()(batch)
>>> result.scores
[1.0, 0.0, 0.0]
>>> result.metrics
{'accuracy': 0.3333333333333333, 'parsed_fraction': 0.6666666666666666, 'unparsable_gold': 0.0}
"""

from __future__ import annotations

from selfrl.eval.extract import Grade, extract_answer, grade
from selfrl.rewards.base import RewardBatch, RewardError, RewardResult, mean
from selfrl.rewards.registry import register_reward


@register_reward("accuracy")
class AccuracyReward:
    """1.0 when the extracted answer equals ``row[answer_field]``, else 0.0.

    Args:
        answer_field: the row field holding the gold answer.
        name: the name used in logs and errors.

    Metrics: ``accuracy`` (mean score), ``parsed_fraction`` (completions with an
    extractable answer) and ``unparsable_gold`` (number of completions whose gold answer
    does not parse; each scored 0.0).
    """

    name = "accuracy"

    def __init__(self, answer_field: str = "answer", name: str | None = None) -> None:
        self.answer_field = answer_field
        if name is not None:
            self.name = name

    def _gold(self, row: dict) -> str | None:
        if self.answer_field not in row:
            raise RewardError(
                f"reward {self.name!r}: row has no field {self.answer_field!r} (fields: {sorted(row)})"
            )
        gold = row[self.answer_field]
        return None if gold is None else str(gold)

    def __call__(self, batch: RewardBatch) -> RewardResult:
        # Completions in a group often agree, so grade each (prediction, gold) pair once.
        cache: dict[tuple[str | None, str | None], Grade] = {}
        scores, parsed, bad_gold = [], 0, 0
        for completion, row in zip(batch.completions, batch.rows, strict=True):
            pred, gold = extract_answer(completion), self._gold(row)
            if (pred, gold) not in cache:
                cache[pred, gold] = grade(pred, gold)
            g = cache[pred, gold]
            scores.append(1.0 if g.correct and g.gold_parsed else 0.0)
            parsed += pred is not None
            bad_gold += not g.gold_parsed
        n = len(scores)
        metrics = {
            "accuracy": mean(scores),
            "parsed_fraction": parsed / n if n else 0.0,
            "unparsable_gold": float(bad_gold),
        }
        return RewardResult(scores, metrics)
