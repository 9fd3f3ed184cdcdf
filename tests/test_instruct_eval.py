"""Issue 25: the ``constraints`` reward, and ``selfrl eval`` / in-training evaluation reporting the
checker's satisfaction, prompt-level and constraint-level, overall and per kind."""

from __future__ import annotations

import json

import pytest

from selfrl.cli import main
from selfrl.config.schema import RunConfig
from selfrl.data.constraints import CONSTRAINTS
from selfrl.data.instruct import InstructSpec, write_instruct
from selfrl.data.io import DataError, write_jsonl
from selfrl.eval.evaluate import EvalSettings, evaluate
from selfrl.models import load_tokenizer
from selfrl.recipes import build_trainer
from selfrl.rewards import RewardBatch, RewardError, build_reward, compute_reward
from selfrl.rollout.base import Completion

ROWS = [
    {"id": "a", "question": "Describe fog. Write in lowercase. No commas.", "group": "single",
     "constraints": [{"kind": "lowercase"}, {"kind": "no_commas"}]},
    {"id": "b", "question": "Describe rain in fewer than 4 words.", "group": "seen_combination",
     "constraints": [{"kind": "max_words", "params": {"n": 4}}]},
]


class Scripted:
    """An engine that answers each prompt with the texts given for it, greedy first, then the samples."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers, self.calls = answers, 0

    def generate(self, prompts, params, generator=None):
        self.calls += 1
        out = []
        for p, key in zip(prompts, self.answers):
            texts = self.answers[key][:1] if params.temperature == 0 else self.answers[key][1:1 + params.n]
            out.append([Completion(t, [], [], "stop", p) for t in texts])
        return out


# ---------------------------------------------------------------------------------------
# the reward


def test_reward_share_and_all_against_a_plain_count():
    completions = ["grey and calm", "Grey, calm", "grey, calm", "it rains", "it rains a lot today"]
    rows = [ROWS[0]] * 3 + [ROWS[1]] * 2
    batch = RewardBatch(["q"] * 5, completions, rows, group_size=1)
    share = compute_reward(build_reward("constraints"), batch)
    strict = compute_reward(build_reward("constraints", mode="all"), batch)
    # by hand: (lowercase, no_commas) = (T, T), (F, F), (T, F); max_words(4): T, F
    assert share.scores == [1.0, 0.0, 0.5, 1.0, 0.0]
    assert strict.scores == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert share.metrics["constraint_level"] == pytest.approx(4 / 8)
    assert share.metrics["prompt_level"] == pytest.approx(2 / 5)
    assert share.metrics["kind/lowercase"] == pytest.approx(2 / 3)
    assert share.metrics["kind/no_commas"] == pytest.approx(1 / 3)
    assert share.metrics["kind/max_words"] == pytest.approx(1 / 2)


def test_reward_refuses_bad_rows_naming_them():
    bad = {"id": "train-7", "constraints": [{"kind": "max_words", "params": {"n": 3}},
                                            {"kind": "bullets", "params": {"n": 5}}]}
    with pytest.raises(RewardError, match=r"reward 'constraints': row 'train-7': constraints\[0\] "
                                          r"\(max_words\) and constraints\[1\] \(bullets\) cannot both"):
        compute_reward(build_reward("constraints"), RewardBatch(["q"], ["x"], [bad]))
    with pytest.raises(RewardError, match="row 'r' has no field 'constraints'"):
        compute_reward(build_reward("constraints"), RewardBatch(["q"], ["x"], [{"id": "r", "answer": "4"}]))
    with pytest.raises(RewardError, match="mode must be 'share' or 'all'"):
        build_reward("constraints", mode="strict")


# ---------------------------------------------------------------------------------------
# evaluation


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("tiny-arith")


def test_evaluate_reports_prompt_and_constraint_level_per_kind(tok):
    engine = Scripted({"a": ["all grey here", "All grey", "grey, calm", "quiet"],
                       "b": ["It rains hard today", "rain", "it rains", "rain falls on us"]})
    metrics, samples = evaluate(None, tok, ROWS, EvalSettings(mode="constraints", n=3, ks=(1, 3)),
                                engine=engine, group_field="group")
    # greedy: a satisfies both, b has 4 words (not fewer than 4)
    assert metrics["greedy_pass@1"] == 0.5
    assert metrics["greedy_constraint_level"] == pytest.approx(2 / 3)
    assert metrics["per_kind"] == {"lowercase": 1.0, "max_words": 0.0, "no_commas": 1.0}
    assert metrics["per_group"] == {"seen_combination": 0.0, "single": 1.0}
    # samples: a -> F (capital), F (comma), T; b -> T, T, F
    assert metrics["avg@3"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert metrics["pass@3"] == 1.0 and "maj@3" not in metrics and "unparsable_answer_frac" not in metrics
    assert set(metrics["stderr"]) >= {"greedy_pass@1", "greedy_constraint_level", "avg@3"}
    assert samples[0]["gold"] == "lowercase; no_commas" and samples[0]["greedy_verdicts"] == [True, True]
    assert samples[1]["verdicts"] == [[True], [True], [False]]


def test_evaluate_checks_rows_before_sampling(tok):
    engine = Scripted({"a": ["x"]})
    bad = [{"id": "q9", "question": "Hi.", "constraints": [{"kind": "bullets", "params": {"n": -1}}]}]
    with pytest.raises(DataError, match="row q9: constraints\\[0\\] \\(bullets\\): parameter 'n'"):
        evaluate(None, tok, bad, EvalSettings(mode="constraints", n=0), engine=engine)
    with pytest.raises(DataError, match="row 1: no 'constraints' field"):
        evaluate(None, tok, [{"question": "Hi.", "answer": "4"}], EvalSettings(mode="constraints", n=0),
                 engine=engine)
    assert engine.calls == 0


@pytest.fixture(scope="module")
def instruct_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("instruct")
    write_instruct(out, InstructSpec(n_train=24, n_validation=6, n_test=6))
    return out


def test_selfrl_eval_on_the_instruct_task(tiny_model, instruct_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    test = str(instruct_dir / "test.jsonl")
    assert main(["eval", "--model", str(tiny_model), "--benchmark", "instruct", "--data", test, "--n", "2",
                 "--max-new-tokens", "4", "--output", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"greedy_pass@1", "greedy_constraint_level", "avg@2", "per_kind", "per_group"} <= set(metrics)
    assert "per_kind/" in capsys.readouterr().out
    # the same rows by mode, without the benchmark
    out2 = tmp_path / "eval2"
    assert main(["eval", "--model", str(tiny_model), "--mode", "constraints", "--data", test, "--n", "0",
                 "--max-new-tokens", "4", "--output", str(out2)]) == 0
    again = json.loads((out2 / "metrics.json").read_text())
    assert again["greedy_constraint_level"] == metrics["greedy_constraint_level"]


def test_a_suite_with_the_instruct_task(tiny_model, instruct_dir, tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"settings: {{n: 0, max_new_tokens: 4}}\nbenchmarks:\n"
                     f"  - {{benchmark: instruct, data: {instruct_dir / 'test.jsonl'}}}\n")
    out = tmp_path / "s"
    assert main(["eval", "--model", str(tiny_model), "--suite", str(suite), "--output", str(out)]) == 0
    table = (tmp_path / "s" / "results.md").read_text()
    assert "| benchmark | problems | greedy pass@1 | greedy constraint level |" in table
    assert "| constraint kind | satisfied |" in table


def test_training_evaluates_with_the_checker(make_config, instruct_dir):
    cfg = RunConfig.model_validate(make_config("instruct", extra={
        "data": {"benchmark": "instruct", "train": str(instruct_dir / "train.jsonl"),
                 "eval": str(instruct_dir / "test.jsonl")},
        "rewards": [{"name": "constraints"}], "eval": {"at_start": True, "limit": 4}}))
    trainer = build_trainer(cfg)
    summary = trainer.fit()
    rows = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    first = rows[0]
    assert {"eval/greedy_pass@1", "eval/greedy_constraint_level"} <= set(first)
    assert any(k.startswith("eval/per_kind/") for k in first)
    assert any(k.startswith("eval/per_group/") for k in first)
    assert "reward/constraints/constraint_level" in rows[1]
    assert "eval/greedy_constraint_level" in summary["after"]
    # no answer key: the rollout samples grade nothing, the held-out samples show the constraints
    records = [json.loads(line) for line in (trainer.run_dir / "rollouts.jsonl").read_text().splitlines()]
    assert records and all(r["gold"] is None for r in records)
    evaluated = [json.loads(line) for line in (trainer.run_dir / "eval" / "step-000001.jsonl").open()]
    assert all(r["gold"].split(";")[0].split("(")[0] in CONSTRAINTS.names() for r in evaluated)


def test_a_plain_file_in_constraints_mode_needs_constraints(tiny_model, tmp_path, capsys):
    path = tmp_path / "plain.jsonl"
    write_jsonl(path, [{"question": "Hi.", "answer": "4"}])
    args = ["--mode", "constraints", "--data", str(path), "--n", "0"]
    assert main(["eval", "--model", str(tiny_model), *args]) == 2
    assert "missing field 'constraints'" in capsys.readouterr().err
