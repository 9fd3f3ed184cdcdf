"""The ground truth a self-judge is measured against, and the simulated judge that follows it.

A *truth* scores a group's responses from what the row knows and the judge does not: the gold
answer (``accuracy``, math rows: 1 right, 0 wrong) or the instruction-following checker
(``constraints``, the instruct task's rows: the share of the row's constraints satisfied).  Every
truth is registered by name in :data:`JUDGE_TRUTHS` and shares one signature::

    truth(row, completions) -> list[float] | None   # None: this row carries no truth

It never enters a reward: it measures the judge (its accuracy on the pairs the truth tells apart)
and drives the simulated judge.

:func:`simulated_winner` is that judge: it picks the response the truth ranks higher, and the
other one with probability ``1 - accuracy`` (each verdict an independent draw); responses the
truth ranks equal are decided by a fair coin, or, with ``ties=True``, get a tie (no winner) with
probability ``accuracy`` and a coin otherwise: a judge allowed to say "equally good", which
neither SERL's nor SR-R1's prompt offers.  With it, the same pair schedules and aggregators
as a model judge turn a judge of known accuracy into rewards, so that how much accuracy an
aggregator needs before training gains can be measured (``scripts/judge_sweep.py``), and a
real judge's measured accuracy can be read against that curve.

>>> import random
>>> truth = JUDGE_TRUTHS.get("constraints")
>>> row = {"constraints": [{"kind": "lowercase"}, {"kind": "no_commas"}]}
>>> truth(row, ["all calm", "All calm", "All, calm"])
[1.0, 0.5, 0.0]
>>> JUDGE_TRUTHS.get("accuracy")({"question": "2 + 2?"}, ["4"]) is None  # no gold answer
True
>>> simulated_winner(0, 1, [1.0, 0.0], accuracy=1.0, rng=random.Random(0))
0
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from selfrl.data.constraints import parse_constraints, satisfied
from selfrl.eval.extract import extract_answer, grade
from selfrl.registry import Registry

Truth = Callable[[dict, Sequence[str]], "list[float] | None"]

JUDGE_TRUTHS: Registry[Truth] = Registry("judge truth")


@JUDGE_TRUTHS.register("accuracy")
def accuracy_truth(row: dict, completions: Sequence[str]) -> list[float] | None:
    """1.0 for a completion whose extracted answer equals the row's gold ``answer``, else 0.0;
    ``None`` for a row without one."""
    gold = row.get("answer")
    if gold is None:
        return None
    return [float(grade(extract_answer(c), str(gold)).correct) for c in completions]


@JUDGE_TRUTHS.register("constraints")
def constraints_truth(row: dict, completions: Sequence[str]) -> list[float] | None:
    """The share of the row's ``constraints`` each completion satisfies (a partial answer ranks
    above none); ``None`` for a row without constraints."""
    if "constraints" not in row:
        return None
    constraints = parse_constraints(row["constraints"], where=f"row {row.get('id', '?')}")
    return [sum(oks) / len(oks) for oks in (satisfied(c, constraints) for c in completions)]


def simulated_winner(i: int, j: int, truth: Sequence[float], accuracy: float, rng: random.Random,
                     ties: bool = False) -> int | None:
    """The verdict of a judge that is right with probability ``accuracy``: ``i``, ``j`` or, with
    ``ties``, ``None`` (a tie).

    When the truth ranks the two differently: the better one, unless a draw (probability ``1 -
    accuracy``) flips it.  When it ranks them equally: a fair coin; with ``ties``, a tie with
    probability ``accuracy`` (the truth's own verdict) and a coin otherwise.  Each verdict is
    independent of every other; ``rng`` is drawn once, or twice for an equal pair a tie-allowed
    judge gets wrong.

    >>> rng = random.Random(0)
    >>> wins = [simulated_winner(0, 1, [1.0, 0.0], accuracy=0.8, rng=rng) for _ in range(10_000)]
    >>> round(wins.count(0) / len(wins), 2)
    0.8
    >>> verdicts = [simulated_winner(0, 1, [0.0, 0.0], 0.8, rng, ties=True) for _ in range(10_000)]
    >>> round(verdicts.count(None) / len(verdicts), 1), round(verdicts.count(0) / len(verdicts), 1)
    (0.8, 0.1)
    >>> simulated_winner(0, 1, [1.0, 1.0], accuracy=1.0, rng=rng, ties=True) is None
    True
    """
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"judge accuracy must be in [0, 1], got {accuracy}")
    if truth[i] == truth[j]:
        if ties and rng.random() < accuracy:
            return None
        return i if rng.random() < 0.5 else j
    better, worse = (i, j) if truth[i] > truth[j] else (j, i)
    return better if rng.random() < accuracy else worse
