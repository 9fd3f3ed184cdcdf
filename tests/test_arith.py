"""The ``arith`` generator, its wrong-solution corruptor, the splits and the written files."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import pytest

from selfrl.data.arith import ArithGenerator, ArithProblem, ArithSpec, corrupt_solution
from selfrl.data.arith_files import ArithSplits, make_splits, write_arith

_OP = re.compile(r"(-?\d+) ([-+*]) (-?\d+) = (-?\d+)")
_FINAL = re.compile(r"^The answer is \\boxed\{(-?\d+)\}\.$")
_APPLY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def _sample(spec: ArithSpec, seed: int, n: int) -> list[ArithProblem]:
    gen = ArithGenerator(spec, seed)
    return [gen.sample() for _ in range(n)]


def _check_solution(solution: str, answer: int, n_steps: int | None = None) -> list[int]:
    """Assert the solution's layout and arithmetic; return every number it states."""
    lines = solution.splitlines()
    *steps, last = lines
    if n_steps is not None:
        assert len(steps) == n_steps
    for i, line in enumerate(steps, start=1):
        assert line.startswith(f"{i}. "), line
    m = _FINAL.match(last)
    assert m, last
    assert int(m.group(1)) == answer
    carried = None
    for line in steps:
        ops = _OP.findall(line)
        assert len(ops) <= 1, line
        if ops:
            a, op, b, c = ops[0]
            assert _APPLY[op](int(a), int(b)) == int(c), line
            if carried is not None:  # each step starts from the previous result
                assert int(a) == carried, (line, carried)
            carried = int(c)
        else:
            nums = re.findall(r"\d+", line[len("1. "):])
            assert len(nums) == 1, line
            carried = int(nums[0])
    assert carried == answer
    return [int(x) for x in re.findall(r"-?\d+", solution)]


# --- generator ----------------------------------------------------------------------


def test_same_seed_same_problems():
    a = _sample(ArithSpec(), 7, 50)
    b = _sample(ArithSpec(), 7, 50)
    assert [p.to_row() for p in a] == [p.to_row() for p in b]


def test_different_seed_different_problems():
    a = [p.question for p in _sample(ArithSpec(), 7, 50)]
    b = [p.question for p in _sample(ArithSpec(), 8, 50)]
    assert a != b
    assert len(set(a) & set(b)) < 5


@pytest.mark.parametrize("spec", [
    ArithSpec(),
    ArithSpec(min_ops=4, max_ops=5),
    ArithSpec(min_ops=1, max_ops=1, max_number=5, max_value=12, p_mul=0.9),
    ArithSpec(min_ops=3, max_ops=6, max_number=9, max_value=20, p_mul=0.5),
])
def test_solutions_are_numbered_correct_and_bounded(spec):
    for seed in (0, 1):
        for p in _sample(spec, seed, 300):
            assert spec.min_ops <= p.n_ops <= spec.max_ops
            assert len(p.steps) == p.n_ops + 1  # the start, then one step per operation
            nums = _check_solution(p.solution, p.answer, n_steps=p.n_ops + 1)
            assert all(0 <= v for v in nums)
            # Every intermediate value (each "= c" and the start) respects max_value.
            results = [int(c) for *_, c in _OP.findall(p.solution)] + [p.answer]
            assert max(results) <= spec.max_value, (spec, p.solution)
            assert p.answer >= 0
            assert p.question.endswith("?")


def test_to_row_fields():
    p = _sample(ArithSpec(), 3, 1)[0]
    row = p.to_row()
    assert row["answer"] == str(p.answer)
    assert row["solution"] == p.solution
    assert row["steps"] == p.steps
    assert row["question"] == p.question


@pytest.mark.parametrize("kwargs", [
    {"min_ops": 0},
    {"min_ops": 3, "max_ops": 2},
    {"max_number": 1},
    {"max_number": 50, "max_value": 40},
    {"p_mul": -0.1},
    {"p_mul": 1.5},
])
def test_spec_validation(kwargs):
    with pytest.raises(ValueError):
        ArithSpec(**kwargs)


def test_p_mul_zero_means_no_multiplication():
    problems = _sample(ArithSpec(min_ops=2, max_ops=4, max_value=20, p_mul=0.0), 3, 400)
    assert not any("*" in p.solution for p in problems)
    # ... while the default draws some, at the start and in later steps alike.
    default = _sample(ArithSpec(min_ops=2, max_ops=4, max_value=20), 3, 400)
    assert any("*" in p.steps[0] for p in default) and any("*" in s for p in default for s in p.steps[1:])


# --- corrupt_solution ---------------------------------------------------------------


@pytest.mark.parametrize("spec", [ArithSpec(), ArithSpec(min_ops=1, max_ops=1, max_number=3, max_value=6)])
def test_corrupt_solution_changes_answer_keeps_length(spec):
    rng = random.Random(0)
    for p in _sample(spec, 11, 300):
        steps, wrong = corrupt_solution(p, rng)
        assert wrong != p.answer
        assert wrong >= 0
        assert len(steps) == len(p.steps)
        text = ArithProblem(p.question, steps, wrong, p.n_ops).solution
        assert text != p.solution
        # The wrong solution still says its own (wrong) answer in its last step.
        assert re.findall(r"-?\d+", steps[-1])[-1] == str(wrong)
        assert _FINAL.match(text.splitlines()[-1]).group(1) == str(wrong)


def test_corrupt_solution_is_seeded():
    p = _sample(ArithSpec(), 5, 1)[0]
    assert corrupt_solution(p, random.Random(3)) == corrupt_solution(p, random.Random(3))


# --- splits -------------------------------------------------------------------------


def test_make_splits_disjoint_sizes_and_hardness():
    splits = ArithSplits(n_seed=30, n_train=120, n_test=40, n_test_hard=25, n_validation=35)
    data = make_splits(splits, seed=0)
    assert {k: len(v) for k, v in data.items()} == {"seed": 30, "train": 120, "test": 40, "test_hard": 25,
                                                    "validation": 35}
    texts = [p.question for probs in data.values() for p in probs]
    assert len(texts) == len(set(texts))
    assert min(p.n_ops for p in data["test_hard"]) > splits.spec.max_ops
    for name in ("seed", "train", "test", "validation"):
        assert all(p.n_ops <= splits.spec.max_ops for p in data[name])


def test_make_splits_test_independent_of_train_size():
    small = make_splits(ArithSplits(n_seed=10, n_train=20, n_test=30, n_test_hard=10), seed=4)
    large = make_splits(ArithSplits(n_seed=10, n_train=200, n_test=30, n_test_hard=10), seed=4)
    assert [p.question for p in small["test"]] == [p.question for p in large["test"]]
    assert [p.question for p in small["test_hard"]] == [p.question for p in large["test_hard"]]
    # The validation split is drawn last: adding it left every other split as it was.
    no_val = make_splits(ArithSplits(n_seed=10, n_train=20, n_test=30, n_test_hard=10, n_validation=0),
                         seed=4)
    assert {k: [p.question for p in v] for k, v in no_val.items() if k != "validation"} == \
        {k: [p.question for p in v] for k, v in small.items() if k != "validation"}
    other_seed = make_splits(ArithSplits(n_seed=10, n_train=20, n_test=30, n_test_hard=10), seed=5)
    assert [p.question for p in small["test"]] != [p.question for p in other_seed["test"]]


# --- written files ------------------------------------------------------------------


def _read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


SMALL = ArithSplits(n_seed=12, n_train=20, n_test=10, n_test_hard=6, n_validation=8)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("arith")
    counts = write_arith(out, SMALL, seed=0)
    return out, counts


def test_write_arith_files_and_counts(written):
    out, counts = written
    expected = {
        "seed.jsonl": 12, "train.jsonl": 20, "test.jsonl": 10, "test_hard.jsonl": 6, "validation.jsonl": 8,
        "trajectories.jsonl": 20, "selfinstruct_prompts.jsonl": 12,
        "judge_train.jsonl": 20, "judge_test.jsonl": 10,
        "preference_train.jsonl": 20, "preference_test.jsonl": 10,
    }
    # SRL instances: one per step after the first of every training trajectory.
    train = _read(out / "train.jsonl")
    expected["srl_train.jsonl"] = sum(len(r["steps"]) - 1 for r in train)
    assert counts == expected
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    for name, n in expected.items():
        assert len(_read(out / name)) == n


def test_write_arith_split_rows(written):
    out, _ = written
    all_questions = []
    for split in ("seed", "train", "test", "test_hard"):
        rows = _read(out / f"{split}.jsonl")
        for i, row in enumerate(rows):
            assert {"id", "question", "answer", "solution", "steps", "prompt"} <= set(row)
            assert row["id"] == f"{split}-{i}"
            assert isinstance(row["answer"], str)
            _check_solution(row["solution"], int(row["answer"]), n_steps=len(row["steps"]))
            assert row["solution"].splitlines()[:-1] == [
                f"{j}. {s}" for j, s in enumerate(row["steps"], start=1)]
            assert isinstance(row["prompt"], list) and row["prompt"]
            assert all(set(m) == {"role", "content"} for m in row["prompt"])
            assert row["prompt"][-1] == {"role": "user", "content": row["question"]}
            all_questions.append(row["question"])
    assert len(all_questions) == len(set(all_questions))


def test_write_arith_trajectories(written):
    out, _ = written
    train = _read(out / "train.jsonl")
    traj = _read(out / "trajectories.jsonl")
    assert [(t["problem"], t["solution"], t["answer"]) for t in traj] == [
        (r["question"], r["solution"], r["answer"]) for r in train]


@pytest.mark.parametrize("split", ["train", "test"])
def test_write_arith_judge_rows(written, split):
    out, _ = written
    right = {r["question"]: r for r in _read(out / f"{split}.jsonl")}
    rows = _read(out / f"judge_{split}.jsonl")
    winners = Counter(r["winner"] for r in rows)
    assert winners[1] == winners[2] == len(rows) // 2
    for r in rows:
        gold = right[r["question"]]
        win, lose = (r["response_1"], r["response_2"]) if r["winner"] == 1 else (
            r["response_2"], r["response_1"])
        assert win == gold["solution"]
        assert lose != gold["solution"]
        assert r["answer"] == gold["answer"]
        lose_answer = _FINAL.match(lose.splitlines()[-1]).group(1)
        assert lose_answer != gold["answer"]
        assert len(lose.splitlines()) == len(win.splitlines())


@pytest.mark.parametrize("split", ["train", "test"])
def test_write_arith_preference_rows(written, split):
    out, _ = written
    right = {r["question"]: r for r in _read(out / f"{split}.jsonl")}
    rows = _read(out / f"preference_{split}.jsonl")
    assert [r["question"] for r in rows] == list(right)
    for r in rows:
        assert set(r) >= {"question", "response_j", "response_k", "answer"}
        assert r["response_j"] == right[r["question"]]["solution"]
        assert r["response_k"] != r["response_j"]
        assert _FINAL.match(r["response_k"].splitlines()[-1]).group(1) != r["answer"]


def test_write_arith_selfinstruct_prompts(written):
    out, _ = written
    seeds = {r["question"] for r in _read(out / "seed.jsonl")}
    for row in _read(out / "selfinstruct_prompts.jsonl"):
        examples = row["examples"]
        assert len(examples) == 8 and len(set(examples)) == 8
        assert set(examples) <= seeds
        user = row["prompt"][-1]
        assert user["role"] == "user"
        lines = user["content"].splitlines()
        assert lines[-1] == "9."
        assert lines[-9:-1] == [f"{i}. {q}" for i, q in enumerate(examples, start=1)]


def test_write_arith_test_unchanged_by_n_train(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_arith(a, SMALL, seed=0)
    write_arith(b, ArithSplits(n_seed=12, n_train=35, n_test=10, n_test_hard=6), seed=0)
    for name in ("test.jsonl", "test_hard.jsonl"):
        assert (a / name).read_text() == (b / name).read_text()
    assert (a / "train.jsonl").read_text() != (b / "train.jsonl").read_text()
