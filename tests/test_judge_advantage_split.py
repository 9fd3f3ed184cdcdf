"""scripts/judge_advantage_split.py: advantages split by the hidden truth and by finish reason, read
from rollout groups written by hand (as ``rollouts.jsonl`` stores them)."""

from __future__ import annotations

import doctest
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def split():
    spec = importlib.util.spec_from_file_location("judge_advantage_split",
                                                  REPO / "scripts" / "judge_advantage_split.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def group(constraints, answers):
    """A logged group: ``answers`` as (text, advantage, finish_reason)."""
    return {"step": 1, "row": {"id": "r", "constraints": constraints},
            "completions": [{"text": t, "advantage": a, "finish_reason": f} for t, a, f in answers]}


def test_docstring_examples(split):
    assert doctest.testmod(split).failed == 0


def test_best_and_rest_follow_the_checker_not_the_order(split):
    lower = [{"kind": "lowercase"}, {"kind": "no_commas"}]
    groups = [
        group(lower, [("Yes, sir", -0.5, "stop"), ("yes sir", 1.5, "stop"), ("yes, sir", 0.0, "length")]),
        # every answer meets every constraint: the truth cannot tell them apart, so no best/rest
        group(lower, [("ok", 2.0, "length"), ("fine", -2.0, "stop")]),
    ]
    out = split.split_advantages(groups, "constraints")
    assert out["best"] == [1.5]                  # meets both
    assert sorted(out["rest"]) == [-0.5, 0.0]    # meets none / one
    assert sorted(out["cut"]) == [0.0, 2.0]
    assert sorted(out["ended"]) == [-2.0, -0.5, 1.5]


def test_ties_at_the_top_are_all_best(split):
    words = [{"kind": "max_words", "params": {"n": 3}}]
    answers = [("one two", 1.0, "stop"), ("a b", 1.0, "stop"), ("one two three four five", -2.0, "length")]
    out = split.split_advantages([group(words, answers)], "constraints")
    assert out["best"] == [1.0, 1.0] and out["rest"] == [-2.0]


def test_accuracy_truth_and_rows_without_truth(split):
    rows = [{"row": {"id": "a", "answer": "4"},
             "completions": [{"text": "The answer is 4.", "advantage": 1.0, "finish_reason": "stop"},
                             {"text": "The answer is 5.", "advantage": -1.0, "finish_reason": "stop"}]},
            {"row": {"id": "b"}, "completions": [{"text": "x", "advantage": 0.3, "finish_reason": "stop"}]}]
    out = split.split_advantages(rows, "accuracy")
    assert out["best"] == [1.0] and out["rest"] == [-1.0]
    assert out["ended"] == [1.0, -1.0, 0.3]  # a row with no gold still counts by finish reason
