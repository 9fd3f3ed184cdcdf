"""Sampling metrics: unbiased pass@k, majority vote and mean accuracy.

>>> pass_at_k(n=4, c=1, k=2)
0.5
>>> majority_answer(["3", "4", "4", None], equal=lambda a, b: a == b)
'4'
>>> mean_and_stderr([1.0, 0.0, 1.0, 0.0])
(0.5, 0.28867513459481287)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import comb, sqrt


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimator of pass@k from ``n`` samples of which ``c`` are correct.

    Chen et al. (2021): ``1 - C(n - c, k) / C(n, k)``.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def majority_answer(answers: Sequence[str | None],
                    equal: Callable[[str, str], bool]) -> str | None:
    """The most common answer, answers being grouped by ``equal``; ``None`` answers do not vote.

    Ties go to the answer whose first occurrence comes earliest in ``answers`` (so the rule
    is deterministic and does not depend on string order).  ``None`` when nothing parsed.
    """
    classes: list[list[int]] = []  # indices of equal answers, in order of first occurrence
    for i, a in enumerate(answers):
        if a is None:
            continue
        for cls in classes:
            if equal(answers[cls[0]], a):
                cls.append(i)
                break
        else:
            classes.append([i])
    if not classes:
        return None
    best = max(classes, key=lambda cls: (len(cls), -cls[0]))
    return answers[best[0]]


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    """The mean of ``values`` and its standard error, ``s / sqrt(n)`` with the sample standard
    deviation ``s`` (0 for fewer than two values): the error bar of an accuracy over problems."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, sqrt(var / n)


def paired_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """``mean(a) - mean(b)`` over the same problems and its paired standard error (the standard
    error of the per-problem differences: what two models share, problem by problem, cancels).

    >>> paired_difference([1.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0])
    (0.5, 0.28867513459481287)
    """
    if len(a) != len(b):
        raise ValueError(f"{len(a)} scores against {len(b)}: not the same problems")
    return mean_and_stderr([x - y for x, y in zip(a, b)])
