"""Judge evaluation (accuracy, position bias, parse failures) and head-to-head comparison."""

from __future__ import annotations

import doctest
import json

import pytest

from selfrl.cli import main
from selfrl.judging import evaluate as judge_eval
from selfrl.judging.evaluate import head_to_head, judge_metrics, pairs_from_samples


def test_doctests():
    result = doctest.testmod(judge_eval)
    assert result.attempted > 0 and result.failed == 0


def test_judge_metrics_hand_computed():
    # pair 1: right in both orders; pair 2: picks slot 1 twice (position-following, one right);
    # pair 3: picks slot 2 twice; pair 4: one verdict fails to parse, the other is wrong.
    verdicts = [(1, 1), (2, 1), (1, 2), (None, 1)]
    winners = [1, 2, 1, 2]
    m = judge_metrics(verdicts, winners)
    assert m["n_pairs"] == 4
    assert m["accuracy"] == pytest.approx(4 / 8)       # (1,1)->2, (2,1)->1, (1,2)->1, (None,1)->0
    assert m["pair_accuracy"] == pytest.approx(1 / 4)
    assert m["position_inconsistency"] == pytest.approx(2 / 3)  # of the 3 pairs with both verdicts
    # slots picked: pair1 (1, 2), pair2 (2, 2), pair3 (1, 1), pair4 (-, 2) -> slot 1 in 3 of 7
    assert m["first_position_rate"] == pytest.approx(3 / 7)
    assert m["parse_failure_rate"] == pytest.approx(1 / 8)


def test_judge_metrics_all_unparsed_and_bad_lengths():
    m = judge_metrics([(None, None)], [1])
    assert m["accuracy"] == 0 and m["parse_failure_rate"] == 1 and m["position_inconsistency"] == 0
    with pytest.raises(ValueError, match="2 verdicts for 1 pairs"):
        judge_metrics([(1, 1), (2, 2)], [1])
    with pytest.raises(ValueError, match="no pairs"):
        judge_metrics([], [])


def test_head_to_head_counts():
    r = head_to_head([True, True, False, False, True], [False, True, True, False, False])
    assert (r["wins"], r["losses"], r["ties"]) == (2, 1, 2)
    assert r["win_rate"] == pytest.approx((2 + 1) / 5)
    with pytest.raises(ValueError, match="2 answers against 1"):
        head_to_head([True, False], [True])


def test_pairs_from_samples_one_right_one_wrong():
    rows = [{"question": "q1", "samples": ["a", "b", "c"], "correct": [False, True, False]},
            {"question": "q2", "samples": ["x", "y"], "correct": [True, True]},  # no wrong answer
            {"question": "q3", "samples": ["x", "y"], "correct": [False, False]}]
    pairs = pairs_from_samples(rows * 10, seed=1)
    assert len(pairs) == 10 and {p["question"] for p in pairs} == {"q1"}
    for p in pairs:
        assert p[f"response_{p['winner']}"] == "b"
        assert p[f"response_{3 - p['winner']}"] in ("a", "c")
    assert {p["winner"] for p in pairs} == {1, 2}  # the right answer's slot is randomised


def test_eval_judge_cli_on_a_random_model(tiny_model, tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"question": "What is 2 + 3?", "response_1": "2 + 3 = 5. The answer is \\boxed{5}.",
             "response_2": "2 + 3 = 6. The answer is \\boxed{6}.", "winner": 1}] * 3
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "judge"
    for fmt in ("serl", "srr1"):
        assert main(["eval-judge", "--model", str(tiny_model), "--data", str(pairs), "--format", fmt,
                     "--max-new-tokens", "6", "--output", str(out)]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["n_pairs"] == 3
        # A random model almost never writes a verdict; every failure is counted, none crashes.
        assert 0 <= metrics["parse_failure_rate"] <= 1
        verdicts = [json.loads(line) for line in (out / "verdicts.jsonl").read_text().splitlines()]
        assert len(verdicts) == 3 and all(len(v["outputs"]) == 2 for v in verdicts)


def test_eval_judge_cli_bad_winner(tiny_model, tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"question": "q", "response_1": "a", "response_2": "b", "winner": 3}) + "\n")
    assert main(["eval-judge", "--model", str(tiny_model), "--data", str(pairs)]) == 2
    assert "pair 1: 'winner' must be 1 or 2, got 3" in capsys.readouterr().err


def _write_eval(folder, correct: list[bool]):
    folder.mkdir()
    rows = [{"prompt": f"p{i}", "greedy_correct": c, "maj@4_correct": not c} for i, c in enumerate(correct)]
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_compare_cli(tmp_path, capsys):
    _write_eval(tmp_path / "a", [True, True, False, False])
    _write_eval(tmp_path / "b", [False, True, True, False])
    out = tmp_path / "cmp.json"
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--output", str(out)]) == 0
    r = json.loads(out.read_text())
    assert (r["wins"], r["losses"], r["ties"], r["win_rate"]) == (1, 1, 2, 0.5)
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--by", "maj@16"]) == 2
    assert "no 'maj@16_correct' (evaluated with: greedy, maj@4)" in capsys.readouterr().err
    _write_eval(tmp_path / "c", [True])
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "c")]) == 2
    assert "not evaluations of the same problems" in capsys.readouterr().err
