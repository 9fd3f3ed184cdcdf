"""pass@k against brute force, and majority voting."""

from __future__ import annotations

from itertools import combinations

import pytest

from selfrl.eval.extract import equivalent
from selfrl.eval.metrics import majority_answer, pass_at_k


def _brute_pass_at_k(n: int, c: int, k: int) -> float:
    samples = [True] * c + [False] * (n - c)
    subsets = list(combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n, c, k", [
    (n, c, k) for n in (1, 2, 3, 5, 8) for c in range(n + 1) for k in range(1, n + 1)
])
def test_pass_at_k_matches_enumeration(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(_brute_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_known_values():
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 3, 8) == 1.0  # fewer than k wrong samples: every k-subset has a right one


@pytest.mark.parametrize("n, c, k", [
    (5, 6, 1),   # c > n
    (5, -1, 1),  # c < 0
    (5, 2, 0),   # k < 1
    (5, 2, 6),   # k > n
    (0, 0, 1),
])
def test_pass_at_k_invalid(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def _eq(a: str, b: str) -> bool:
    return a == b


def test_majority_simple():
    assert majority_answer(["3", "4", "4", None], equal=_eq) == "4"
    assert majority_answer(["5"], equal=_eq) == "5"


def test_majority_tie_goes_to_earliest_first_occurrence():
    assert majority_answer(["b", "a", "a", "b"], equal=_eq) == "b"
    assert majority_answer(["a", "b", "b", "a"], equal=_eq) == "a"
    # Not string order: "9" first beats "10".
    assert majority_answer(["9", "10", "10", "9"], equal=_eq) == "9"
    # A three-way tie.
    assert majority_answer(["z", "y", "x"], equal=_eq) == "z"
    # None before the tie does not count as a first occurrence.
    assert majority_answer([None, None, "q", "p", "p", "q"], equal=_eq) == "q"


def test_majority_more_votes_beat_earlier_first_occurrence():
    assert majority_answer(["a", "b", "b"], equal=_eq) == "b"


def test_majority_none_ignored():
    assert majority_answer([None, None, "7"], equal=_eq) == "7"
    assert majority_answer([None, "1", None, None, "2", "2"], equal=_eq) == "2"


def test_majority_all_none_or_empty():
    assert majority_answer([None, None, None], equal=_eq) is None
    assert majority_answer([], equal=_eq) is None


def test_majority_groups_equivalent_answers():
    # By string equality "3" wins (2 votes); grouped by value, 0.5 = \frac{1}{2} = 1/2 has 3.
    answers = ["3", "0.5", "\\frac{1}{2}", "3", "1/2"]
    assert majority_answer(answers, equal=_eq) == "3"
    winner = majority_answer(answers, equal=equivalent)
    assert winner == "0.5"  # the class's first member is returned


def test_majority_groups_thousands_separators():
    answers = ["1,234", "99", "1234", "99", "1234.0"]
    assert majority_answer(answers, equal=equivalent) == "1,234"
