"""SRL's step-wise reward: how closely the model's next step matches the expert's step k.

The completion must be ``<think>…</think>`` followed by exactly one step, the action.  It
scores −1.0 when:

- it does not start with ``<think>`` (leading whitespace is allowed), or has no
  ``</think>``, or has more than one ``<think>`` or ``</think>`` (nested or repeated blocks);
- the action is empty;
- the action holds more than one step: a line after its first begins, unindented, with a
  step marker (``3.``, ``3)``, ``Step 3:``; see :func:`selfrl.data.srl.step_marker`).

Otherwise the score is ``difflib.SequenceMatcher(None, action, target).ratio()`` in [0, 1],
where ``target`` is the row's expert step.  A leading step marker (``2.``, ``Step 2:``) is
stripped from both before comparing, so the score measures the step's content and does not
depend on how (or whether) the step is numbered; the number itself is not checked.

``mode="whole_solution"`` is the paper's ablation: the previous steps with the action
appended are compared with the previous steps with the target appended, both rendered as
the prompt renders them (``"1. …\\n2. …\\nk. <step k>"``, from the row's ``previous_steps``).
The shared prefix makes every valid action score high, so the signal between actions in a
group is weaker.

Limitation: a step whose own text holds an unindented numbered sub-list cannot be written
without scoring −1; :func:`selfrl.data.srl.split_steps` never yields such a target from a
``1.``-style solution (the sub-list would have been split), only from a ``Step k``-style one.

>>> rows = [{"target": "Then he finds 6 more shells: 8 + 6 = 14."}] * 3
>>> completions = ["<think>So far: 8.</think>\\n2. Then he finds 6 more shells: 8 + 6 = 14.",
...                "2. Then he finds 6 more shells: 8 + 6 = 14.",
...                "<think>ok</think>\\n2. 8 + 6 = 14.\\n3. 14 - 4 = 10."]
>>> result = SrlStepReward()(RewardBatch(["p"] * 3, completions, rows, group_size=3))
>>> result.scores
[1.0, -1.0, -1.0]
>>> result.metrics
{'format_ok': 0.3333333333333333, 'similarity': 1.0}
"""

from __future__ import annotations

import difflib

from selfrl.data.srl import step_marker, strip_step_marker
from selfrl.rewards.base import RewardBatch, RewardError, RewardResult, mean
from selfrl.rewards.registry import register_reward

INVALID = -1.0
MODES = ("step", "whole_solution")


def parse_action(completion: str) -> str | None:
    """The action after ``<think>…</think>`` with its step marker removed, or ``None`` if malformed.

    >>> parse_action("<think>So far: 8.</think>\\n2. 8 + 6 = 14.")
    '8 + 6 = 14.'
    >>> parse_action("<think>a<think>b</think></think> 2. x") is None
    True
    """
    text = completion.lstrip()
    if not text.startswith("<think>") or text.count("<think>") != 1 or text.count("</think>") != 1:
        return None
    action = text.split("</think>", 1)[1].strip()
    if not action:
        return None
    later_lines = action.splitlines()[1:]
    if any(not line[:1].isspace() and step_marker(line) is not None for line in later_lines):
        return None  # a second step
    action = strip_step_marker(action)
    return action or None


def render_steps(steps: list[str]) -> str:
    """Steps numbered as the SRL prompt numbers them: ``"1. …\\n2. …"``."""
    return "\n".join(f"{i}. {s}" for i, s in enumerate(steps, start=1))


def similarity(a: str, b: str) -> float:
    """``difflib.SequenceMatcher(None, a, b).ratio()``: 2·matches / (len(a) + len(b)).

    >>> similarity("abcd", "abcd"), similarity("abcd", "wxyz"), similarity("ab", "abcd")
    (1.0, 0.0, 0.6666666666666666)
    """
    return difflib.SequenceMatcher(None, a, b).ratio()


@register_reward("srl_step")
class SrlStepReward:
    """SRL's reward: −1 for a malformed completion, else the action's similarity to the target.

    Args:
        mode: ``"step"`` (the action vs the expert's step k) or ``"whole_solution"``
            (previous steps + action vs previous steps + step k; the paper's ablation).
        target_field: the row field holding the expert step.
        previous_field: the row field holding the previous steps (``whole_solution`` only).
        name: the name used in logs and errors.

    Metrics: ``format_ok`` (share of completions that parse) and ``similarity`` (mean
    similarity over those that parse; 0.0 when none does).
    """

    name = "srl_step"

    def __init__(self, mode: str = "step", target_field: str = "target",
                 previous_field: str = "previous_steps", name: str | None = None) -> None:
        if mode not in MODES:
            raise RewardError(f"SrlStepReward: mode must be one of {', '.join(MODES)}; got {mode!r}")
        self.mode = mode
        self.target_field = target_field
        self.previous_field = previous_field
        if name is not None:
            self.name = name

    def _field(self, row: dict, field: str, i: int):
        if field not in row:
            raise RewardError(f"reward {self.name!r}: row {i} has no field {field!r} (fields: {sorted(row)})")
        return row[field]

    def score(self, action: str, row: dict, i: int) -> float:
        target = strip_step_marker(str(self._field(row, self.target_field, i)))
        if self.mode == "step":
            return similarity(action, target)
        previous = list(self._field(row, self.previous_field, i))
        return similarity(render_steps(previous + [action]), render_steps(previous + [target]))

    def __call__(self, batch: RewardBatch) -> RewardResult:
        scores, valid = [], []
        for i, (completion, row) in enumerate(zip(batch.completions, batch.rows)):
            action = parse_action(completion)
            if action is None:
                scores.append(INVALID)
                continue
            s = self.score(action, row, i)
            scores.append(s)
            valid.append(s)
        return RewardResult(scores, {"format_ok": len(valid) / len(scores) if scores else 0.0,
                                     "similarity": mean(valid)})
