"""CPU unit tests of SRL (selfrl.data.srl, selfrl.rewards.srl_step): step parsing across styles,
instance building, prepare_srl end to end (with its data errors), and the srl_step reward on
hand-made completions."""

from __future__ import annotations

import difflib
import doctest
import json
import pickle

import pytest

from selfrl.data import srl as steps_module
from selfrl.data.arith_files import ArithSplits, write_arith
from selfrl.data.io import DataError, read_jsonl, write_jsonl
from selfrl.data.srl import build_instances, prepare_srl, split_steps
from selfrl.rewards import RewardBatch, RewardError, build_reward, compute_reward
from selfrl.rewards import srl_step as reward_module
from selfrl.rewards.srl_step import SrlStepReward, parse_action


@pytest.mark.parametrize("module", [steps_module, reward_module])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0


# --- split_steps ------------------------------------------------------------------------

ARITH = ("1. Sam has 8 shells.\n2. Then he finds 6 more shells: 8 + 6 = 14.\n"
         "3. Then he loses 4 shells: 14 - 4 = 10.\nThe answer is \\boxed{10}.")


def test_arith_solution_keeps_final_answer_on_last_step():
    assert split_steps(ARITH) == ["Sam has 8 shells.", "Then he finds 6 more shells: 8 + 6 = 14.",
                                  "Then he loses 4 shells: 14 - 4 = 10.\nThe answer is \\boxed{10}."]


def test_final_answer_can_be_dropped():
    assert split_steps(ARITH, keep_final_answer=False)[-1] == "Then he loses 4 shells: 14 - 4 = 10."
    text = "Step 1: a\nStep 2: b\nc\n**Final Answer:** 7\n\\boxed{7}"
    assert split_steps(text, keep_final_answer=False) == ["a", "b\nc"]
    # A last step that is only the answer keeps it: a step is never left empty.
    assert split_steps("1. a\n2.\nThe answer is 3.", keep_final_answer=False) == ["a", "The answer is 3."]


@pytest.mark.parametrize("text", [
    "1. a\n2. b\n3. c",
    "1) a\n2) b\n3) c",
    "Step 1: a\nStep 2: b\nStep 3: c",
    "Step 1. a\nStep 2. b\nStep 3. c",
    "step 1 - a\nSTEP 2 - b\nStep 3 \u2014 c",
    "**Step 1:** a\n**Step 2:** b\n**Step 3:** c",
    "**Step 1: a**\n**Step 2: b**\n**Step 3: c**",
    "**1.** a\n**2.** b\n**3.** c",
    "### Step 1\na\n### Step 2\nb\n### Step 3\nc",
    "Step 1:\na\n\nStep 2:\nb\n\nStep 3:\nc\n",
    "Let us solve it.\nWe need three steps.\n\n1. a\n2. b\n3. c",
    "  1. a\n  2. b\n  3. c",
])
def test_styles(text):
    assert split_steps(text) == ["a", "b", "c"]


def test_bold_title_closing_mid_line():
    assert split_steps("**Step 1: Add.** 8 + 6 = 14.\n**Step 2: Halve.** 14 / 2 = 7.") == [
        "Add. 8 + 6 = 14.", "Halve. 14 / 2 = 7."]


def test_multiline_steps_and_prose_numbers():
    text = ("1. Compute the total.\n   8 + 6 = 14.\n3.5 kg is not a step.\n12 apples neither.\n"
            "2. Then 14 - 4 = 10.")
    first = "Compute the total.\n   8 + 6 = 14.\n3.5 kg is not a step.\n12 apples neither."
    assert split_steps(text) == [first, "Then 14 - 4 = 10."]


def test_sublists_inside_steps_stay_in_their_step():
    # With "Step k" markers, bare numbers are a sub-list; in bare style, deeper indents are.
    word = "Step 1: Two cases:\n1. x > 0\n2. x < 0\nStep 2: Combine.\nStep 2 shows that x != 0."
    assert split_steps(word) == ["Two cases:\n1. x > 0\n2. x < 0", "Combine.\nStep 2 shows that x != 0."]
    bare = "1. Two cases:\n   1. x > 0\n   2. x < 0\n2. Combine."
    assert split_steps(bare) == ["Two cases:\n   1. x > 0\n   2. x < 0", "Combine."]


@pytest.mark.parametrize("text", [
    "1. a\n3. b\n4. c",         # skipped number
    "2. a\n3. b",               # does not start at 1
    "1. a\n2. b\n2. c",         # repeated number
    "1. a\n2. b\n1. c",         # restarts
    "1. only one step",
    "We add 8 and 6 to get 14.\nThe answer is 14.",  # no numbers
    "",
    "1. a\n2.\n3. c",           # an empty step
    "Step 1: a\nStep 3: b",
])
def test_does_not_parse(text):
    assert split_steps(text) is None


# --- build_instances --------------------------------------------------------------------

def test_instances_one_per_step_after_the_first():
    steps = split_steps(ARITH)
    rows = build_instances("Sam has 8 shells...", steps)
    assert len(rows) == len(steps) - 1 == 2
    for row in rows:
        k = row["step_index"]
        assert row["target"] == steps[k - 1] and row["n_steps"] == 3
        assert row["previous_steps"] == steps[: k - 1]
        content = row["prompt"][-1]["content"]
        assert "Sam has 8 shells..." in content
        assert all(f"{i}. {s}" in content for i, s in enumerate(steps[: k - 1], start=1))
        assert row["target"] not in content
    assert [r["step_index"] for r in rows] == [2, 3]
    assert build_instances("p", ["one"]) == []


# --- prepare_srl ------------------------------------------------------------------------

def test_prepare_srl_counts_and_drops(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, [
        {"problem": "p1", "solution": ARITH, "answer": "10"},
        {"problem": "p2", "solution": "no steps here", "answer": "3"},
        {"problem": "p3", "solution": "1. a\n3. b", "answer": "3"},
        {"problem": "p4", "solution": "1. a\n2. b", "answer": "4"},
    ])
    counts = prepare_srl(src, out, answer_field="answer")
    assert counts == {"solutions": 4, "parsed": 2, "dropped": 2, "instances": 3}
    rows = read_jsonl(out)
    assert [(r["problem"], r["step_index"], r["answer"]) for r in rows] == [
        ("p1", 2, "10"), ("p1", 3, "10"), ("p4", 2, "4")]
    prepare_srl(src, out)  # the answer is carried only when asked for
    assert "answer" not in read_jsonl(out)[0]


def test_prepare_srl_on_arith_trajectories(tmp_path):
    write_arith(tmp_path, ArithSplits(n_seed=10, n_train=30, n_test=10, n_test_hard=10))
    traj = read_jsonl(tmp_path / "trajectories.jsonl")
    counts = prepare_srl(tmp_path / "trajectories.jsonl", tmp_path / "srl.jsonl", answer_field="answer")
    n_steps = [len(split_steps(r["solution"])) for r in traj]
    assert counts == {"solutions": 30, "parsed": 30, "dropped": 0, "instances": sum(n - 1 for n in n_steps)}
    row = read_jsonl(tmp_path / "srl.jsonl")[0]
    assert set(row) == {"prompt", "target", "step_index", "n_steps", "problem", "previous_steps", "answer"}


def test_prepare_srl_s1k_style_fields(tmp_path):
    src = tmp_path / "s1k.jsonl"
    write_jsonl(src, [{"question": "Find x.", "solution": "x = 2",
                       "thinking_trajectories": ["Step 1: Write 2x = 4.\nStep 2: Divide: x = 2."]}])
    counts = prepare_srl(src, tmp_path / "out.jsonl", problem_field="question",
                         solution_field="thinking_trajectories", answer_field="solution")
    assert counts["instances"] == 1
    row = read_jsonl(tmp_path / "out.jsonl")[0]
    assert (row["problem"], row["target"], row["answer"]) == ("Find x.", "Divide: x = 2.", "x = 2")


def test_prepare_srl_malformed_line_names_file_and_line(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps({"problem": "p", "solution": "1. a\n2. b"}) + "\n\n{not json\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:3: malformed JSON"):
        prepare_srl(src, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_prepare_srl_missing_field_names_it(tmp_path):
    src = tmp_path / "in.jsonl"
    write_jsonl(src, [{"problem": "p", "solution": "1. a\n2. b"}, {"problem": "p"}])
    with pytest.raises(DataError, match=r"in\.jsonl:2: missing field 'solution'"):
        prepare_srl(src, tmp_path / "out.jsonl")
    with pytest.raises(DataError, match=r"in\.jsonl:1: missing field 'answer'"):
        prepare_srl(src, tmp_path / "out.jsonl", answer_field="answer")


def test_prepare_srl_non_text_field_names_line(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("\n" + json.dumps({"problem": "p", "solution": "1. a\n2. b"}) + "\n"
                   + json.dumps({"problem": "p", "solution": 5}) + "\n")
    with pytest.raises(DataError, match=r"in\.jsonl:3: field 'solution' must be a string"):
        prepare_srl(src, tmp_path / "out.jsonl")


def test_prepare_srl_nothing_parses_is_an_error(tmp_path):
    src = tmp_path / "in.jsonl"
    write_jsonl(src, [{"question": "p", "solution": "x = 2"}])
    with pytest.raises(DataError, match=r"none of 1 solutions in field 'solution'"):
        prepare_srl(src, tmp_path / "out.jsonl", problem_field="question")


# --- the srl_step reward ----------------------------------------------------------------

TARGET = "Then he finds 6 more shells: 8 + 6 = 14."


def score(completions, mode="step", target=TARGET, previous=("Sam has 8 shells.",)):
    rows = [{"target": target, "previous_steps": list(previous)}] * len(completions)
    batch = RewardBatch(["p"] * len(completions), list(completions), rows)
    return compute_reward(build_reward("srl_step", mode=mode), batch)


@pytest.mark.parametrize("completion", [
    "2. " + TARGET,                                         # no think block
    "<think>So far: 8.\n2. " + TARGET,                      # no </think>
    "So far: 8.</think>\n2. " + TARGET,                     # no <think>
    "2. " + TARGET + "<think>So far: 8.</think>",           # think not at the start
    "<think>a<think>b</think>c</think>\n2. " + TARGET,      # nested
    "<think>a</think><think>b</think>\n2. " + TARGET,       # two blocks
    "<think>So far: 8.</think>",                            # empty action
    "<think>So far: 8.</think>\n  \n",                      # blank action
    "<think>So far: 8.</think>\n2.",                        # only a number
    "<think>x</think>\n2. " + TARGET + "\n3. Then he loses 4 shells: 14 - 4 = 10.",  # two steps
    "<think>x</think>\n" + TARGET + "\nStep 3: Then he loses 4.",                    # two steps
])
def test_malformed_scores_minus_one(completion):
    result = score([completion])
    assert result.scores == [-1.0]
    assert result.metrics == {"format_ok": 0.0, "similarity": 0.0}


def test_hand_computed_similarities():
    good = [
        "<think>So far: 8.</think>\n2. " + TARGET,             # as the embedded model answers
        "\n<think></think>" + TARGET,                         # no number, empty thought
        "<think>x</think>\nStep 2: " + TARGET + "\n",
        "<think>x</think>\nzzzz",                             # no character in common with "abcd"
    ]
    result = score(good[:3])
    assert result.scores == [1.0, 1.0, 1.0]
    assert score([good[3]], target="abcd").scores == [0.0]
    # "abcd" vs "abxd": 3 matching characters, 2 * 3 / 8 = 0.75.
    assert score(["<think>t</think>\n2. abxd"], target="abcd").scores == [0.75]
    # The step number is stripped from the target too.
    assert score(["<think>t</think>abcd"], target="2. abcd").scores == [1.0]


def test_sanity_pair_matches_difflib_and_metrics():
    action = "Then he finds 6 shells: 8 + 6 = 15."
    result = score(["<think>So far: 8.</think>\n2. " + action, "no think", "<think>t</think>2. " + TARGET])
    expected = difflib.SequenceMatcher(None, action, TARGET).ratio()
    assert 0.5 < expected < 1.0
    assert result.scores == [pytest.approx(expected), -1.0, 1.0]
    assert result.metrics["format_ok"] == pytest.approx(2 / 3)
    assert result.metrics["similarity"] == pytest.approx((expected + 1.0) / 2)


def test_final_answer_line_is_part_of_the_step():
    target = "Then he loses 4 shells: 14 - 4 = 10.\nThe answer is \\boxed{10}."
    completion = "<think>So far: 14.</think>\n3. " + target
    assert score([completion], target=target).scores == [1.0]


def test_whole_solution_mode():
    previous = ["Sam has 8 shells."]
    action = "Then he finds 6 shells: 8 + 6 = 15."
    completion = "<think>t</think>\n2. " + action
    whole = score([completion], mode="whole_solution", previous=previous).scores[0]
    expected = difflib.SequenceMatcher(
        None, "1. Sam has 8 shells.\n2. " + action, "1. Sam has 8 shells.\n2. " + TARGET).ratio()
    assert whole == pytest.approx(expected)
    assert whole > score([completion]).scores[0]  # the shared prefix raises every score
    # No previous steps: identical to the step mode on the rendered step.
    assert score(["<think>t</think>abxd"], mode="whole_solution", target="abcd", previous=()).scores == [
        pytest.approx(2 * 6 / 14)]  # "1. abxd" vs "1. abcd": 6 of 7 characters match
    assert score(["<think>t</think>2)"], mode="whole_solution").scores == [-1.0]


def test_reward_errors_and_pickling():
    with pytest.raises(RewardError, match="mode must be one of"):
        SrlStepReward(mode="solution")
    with pytest.raises(RewardError, match="unknown reward"):
        build_reward("srl_stepp")
    batch = RewardBatch(["p"], ["<think>t</think>x"], [{"answer": "1"}])
    with pytest.raises(RewardError, match="row 0 has no field 'target'"):
        compute_reward(SrlStepReward(), batch)
    batch = RewardBatch(["p"], ["<think>t</think>x"], [{"target": "x"}])
    with pytest.raises(RewardError, match="no field 'previous_steps'"):
        compute_reward(SrlStepReward(mode="whole_solution"), batch)
    reward = pickle.loads(pickle.dumps(SrlStepReward(mode="whole_solution", name="srl_whole")))
    assert (reward.name, reward.mode) == ("srl_whole", "whole_solution")


def test_parse_action_strips_marker_and_whitespace():
    assert parse_action("  <think>t</think>\n\n**Step 2:** x = 2.\n") == "x = 2."
    assert parse_action("<think>t</think>\n2. x\n   3. indented sub-item") == "x\n   3. indented sub-item"


@pytest.mark.parametrize("solution", [
    ARITH,
    "1. Two cases:\n   1. x > 0\n   2. x < 0\n2. Combine:\n   x != 0.\nFinal answer: x != 0",
    "**Step 1:** Write 2x = 4.\n**Step 2:** Divide.\nSo x = 2.\n**Step 3:** Check: 2 * 2 = 4.",
])
def test_copying_the_expert_step_scores_one(solution):
    # Round trip: each target, written as the model is trained to write it, scores 1.0.
    rows = build_instances("p", split_steps(solution))
    completions = [f"<think>t</think>\n{r['step_index']}. {r['target']}" for r in rows]
    result = compute_reward(SrlStepReward(), RewardBatch(["p"] * len(rows), completions, rows))
    assert result.scores == [1.0] * len(rows)
