"""``constraints``: how well a completion follows its row's instruction-following constraints.

The row carries its constraints as data (``{"kind": ..., "params": ...}``, the ``instruct`` task:
:mod:`selfrl.data.instruct`); each is checked by its kind's checker
(:mod:`selfrl.data.constraints`).  ``mode: share`` scores the share of them satisfied (Tulu 3's
RLVR constraint reward is all-or-nothing per constraint, one per prompt; a share keeps a partial
answer's signal when a prompt combines several), ``mode: all`` scores 1.0 only when every one
holds (IFEval's prompt-level strictness).  A row whose constraints do not parse, or cannot all
hold, is an error naming the row, never a score.

>>> rows = [{"id": "r1", "constraints": [{"kind": "lowercase"}, {"kind": "max_words", "params": {"n": 4}}]}]
>>> batch = RewardBatch(["q"] * 3, ["all quiet here", "All quiet here", "All quiet here, really now."],
...                     rows * 3, group_size=3)
>>> ConstraintsReward()(batch).scores, ConstraintsReward(mode="all")(batch).scores
([1.0, 0.5, 0.0], [1.0, 0.0, 0.0])
>>> ConstraintsReward()(batch).metrics["kind/lowercase"]
0.3333333333333333
"""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

from selfrl.data.constraints import Constraint, ConstraintError, parse_constraints, satisfied
from selfrl.rewards.base import RewardBatch, RewardError, RewardResult, mean
from selfrl.rewards.registry import register_reward


@register_reward("constraints")
class ConstraintsReward:
    """The share of the row's constraints a completion satisfies (``mode="share"``), or 1.0 when it
    satisfies them all (``mode="all"``).

    Args:
        mode: ``share`` or ``all``.
        field: the row field holding the constraints.
        name: the name used in logs and errors.

    Metrics: ``constraint_level`` (the share of all constraints satisfied), ``prompt_level`` (the
    share of completions satisfying all theirs) and ``kind/KIND`` (per kind, the share satisfied).
    """

    name = "constraints"

    def __init__(self, mode: Literal["share", "all"] = "share", field: str = "constraints",
                 name: str | None = None) -> None:
        if mode not in ("share", "all"):
            raise RewardError(f"reward 'constraints': mode must be 'share' or 'all', got {mode!r}")
        self.mode, self.field = mode, field
        if name is not None:
            self.name = name

    def _constraints(self, row: dict, index: int) -> list[Constraint]:
        where = f"reward {self.name!r}: row {row.get('id', index)!r}"
        if self.field not in row:
            raise RewardError(f"{where} has no field {self.field!r} (fields: {sorted(row)})")
        try:
            return parse_constraints(row[self.field], where)
        except ConstraintError as e:
            raise RewardError(str(e)) from None

    def __call__(self, batch: RewardBatch) -> RewardResult:
        parsed: dict[int, list[Constraint]] = {}  # a group's completions share one row object
        scores, all_ok, by_kind = [], [], defaultdict(list)
        for k, (completion, row) in enumerate(zip(batch.completions, batch.rows, strict=True)):
            if id(row) not in parsed:
                parsed[id(row)] = self._constraints(row, k)
            constraints = parsed[id(row)]
            verdicts = satisfied(completion, constraints)
            for c, ok in zip(constraints, verdicts):
                by_kind[c.kind].append(ok)
            all_ok.append(all(verdicts))
            scores.append(float(all(verdicts)) if self.mode == "all" else sum(verdicts) / len(verdicts))
        pooled = [ok for oks in by_kind.values() for ok in oks]
        metrics = {"constraint_level": mean(pooled), "prompt_level": mean(all_ok)}
        metrics.update({f"kind/{kind}": mean(oks) for kind, oks in sorted(by_kind.items())})
        return RewardResult(scores, metrics)
