"""Issue 24: rollout samples on disk (``RUN_DIR/rollouts.jsonl``).

Unit tests of the picking, the reward's parts riding on the batch, the size cap and the resume
clean-up against plain computations; then tiny end-to-end runs: the figures written are the ones
the trainer used (rewards as the weighted sum of their parts, GRPO's advantages recomputed by
hand), the recipes' findings are there (SeRL's majority label, SERL's verdicts and scores, SRL's
target and similarity), groups dropped by the filters are marked, and ``--resume`` leaves no
step twice.
"""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

import pytest
import torch
import yaml

from selfrl.cli import main
from selfrl.config.schema import RunConfig
from selfrl.eval.extract import extract_answer, grade
from selfrl.recipes import build_trainer
from selfrl.rewards import RewardBatch, RewardError, RewardResult, WeightedSum, compute_reward
from selfrl.trainer.batch import RolloutBatch
from selfrl.trainer.samples import ROLLOUTS, ROLLOUTS_OLDER, RolloutSampleWriter, spread_groups


def _records(run_dir: Path) -> list[dict]:
    lines = []
    for name in (ROLLOUTS_OLDER, ROLLOUTS):
        if (run_dir / name).is_file():
            lines += (run_dir / name).read_text().splitlines()
    return [json.loads(line) for line in lines]


def _batch(scores: list[float], group_size: int) -> RolloutBatch:
    n = len(scores)
    return RolloutBatch(rows=[{"answer": "4", "i": i} for i in range(n)], prompt_ids=[[1, 2]] * n,
                        completion_ids=[[3] * (i % 3 + 1) for i in range(n)], rollout_logprobs=[[0.0]] * n,
                        completions=[f"The answer is {i}." for i in range(n)], prompts=["2+2?"] * n,
                        finish_reasons=["stop"] * n, group_size=group_size,
                        scores=torch.tensor(scores, dtype=torch.float64),
                        reward_components={"part": [s / 2 for s in scores]})


# --- picking, and the reward's parts on the batch ----------------------------------------------

def test_spread_groups_keeps_the_best_and_the_worst():
    rng = random.Random(0)
    for _ in range(200):
        means = [rng.choice([0.0, 0.25, 0.5, 1.0]) for _ in range(rng.randint(1, 12))]
        k = rng.randint(1, 6)
        picked = spread_groups(means, k)
        assert len(picked) == len(set(picked)) == min(k, len(means))
        ranked = sorted(range(len(means)), key=lambda g: (-means[g], g))  # the plain ranking
        assert picked[0] == ranked[0]
        if k >= 2:
            assert picked[-1] == ranked[-1]
        assert [means[g] for g in picked] == sorted((means[g] for g in picked), reverse=True)


def test_a_weighted_sum_returns_each_parts_scores_and_they_are_checked():
    batch = RewardBatch(["q"] * 2, ["\\boxed{4}", "4"], [{"answer": "4"}] * 2, group_size=2)

    def first(b):
        return [1.0, 0.5]

    def second(b):
        return RewardResult([0.0, 1.0])

    result = compute_reward(WeightedSum([(first, 2.0), (second, 1.0)]), batch)
    assert result.components == {"first": [1.0, 0.5], "second": [0.0, 1.0]}
    assert result.scores == [2.0 * a + b for a, b in zip(*result.components.values())]

    def short(b):
        return RewardResult([0.0, 0.0], components={"part": [1.0]})

    with pytest.raises(RewardError, match="'short/part' returned 1 scores for 2 completions"):
        compute_reward(short, batch)


def test_reward_parts_follow_their_groups():
    batch = _batch([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 2)
    kept = batch.select_groups([2, 0])
    assert kept.reward_components == {"part": [2.0, 2.5, 0.0, 0.5]}
    both = RolloutBatch.concat([kept, batch.select_groups([1])])
    assert both.reward_components["part"] == [2.0, 2.5, 0.0, 0.5, 1.0, 1.5]
    with pytest.raises(ValueError, match="different reward parts"):
        RolloutBatch.concat([batch, batch.replace(reward_components={})])


# --- the file: bounded, whole lines, resumed cleanly --------------------------------------------

def test_writer_moves_the_file_aside_past_its_cap(tmp_path):
    writer = RolloutSampleWriter(tmp_path, groups=2, max_bytes=4000)
    line_bytes = []
    for step in range(1, 41):
        assert writer.write(step, _batch([0.0, 1.0, 0.5, 0.5], 2)) == 2
        line_bytes.append((tmp_path / ROLLOUTS).stat().st_size)
    sizes = [(tmp_path / n).stat().st_size for n in (ROLLOUTS, ROLLOUTS_OLDER)]
    step_bytes = max(b - a for a, b in zip(line_bytes, line_bytes[1:]) if b > a)
    assert all(s <= 4000 + step_bytes for s in sizes)  # at most the cap plus one step, twice
    steps = [r["step"] for r in _records(tmp_path)]
    assert steps == sorted(steps) and steps[-1] == 40 and steps[0] > 1  # the oldest went


def test_writer_drops_replayed_steps_and_a_cut_line_on_resume(tmp_path):
    writer = RolloutSampleWriter(tmp_path, groups=1)
    for step in (1, 2, 3):
        writer.write(step, _batch([0.0, 1.0], 2))
    with open(tmp_path / ROLLOUTS, "a") as f:
        f.write('{"version": 1, "step": 4, "completions": [{"te')  # a crash mid-line
    RolloutSampleWriter(tmp_path, groups=1, drop_after=2)
    assert [r["step"] for r in _records(tmp_path)] == [1, 2]


def test_group_records_hold_the_batchs_figures(tmp_path):
    batch = _batch([1.0, 0.0, 0.5, 0.5], 2)
    batch.advantages = torch.tensor([[1.0, 1.0, 0.0], [-1.0, -3.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0]])
    batch.group_data = {"pseudo_label": ["4", None]}
    filtered = _batch([0.0, 0.0], 2)
    RolloutSampleWriter(tmp_path, groups=4, decode=lambda ids: f"ids {ids}").write(7, batch, filtered)
    records = _records(tmp_path)
    trained, dropped = [r for r in records if r["kept"]], [r for r in records if not r["kept"]]
    assert [r["group"] for r in trained] == [0, 1] and len(dropped) == 1
    first = trained[0]
    assert first["prompt"] == "ids [1, 2]" and first["gold"] == "4"
    assert first["row"] == {"answer": "4", "i": 0}
    assert first["group_data"] == {"pseudo_label": "4"} and trained[1]["group_data"] == {"pseudo_label": None}
    c = first["completions"]
    assert [x["advantage"] for x in c] == [1.0, -2.0]  # the mean over each completion's own tokens
    assert [x["length"] for x in c] == [1, 2]
    assert [x["components"] for x in c] == [{"part": 0.5}, {"part": 0.0}]
    assert [x["correct"] for x in c] == [grade(extract_answer(t), "4").correct
                                         for t in batch.completions[:2]]
    assert dropped[0]["completions"][0]["advantage"] is None  # never trained


# --- end to end -------------------------------------------------------------------------------

def _fit(make_config, name: str, extra: dict):
    trainer = build_trainer(RunConfig.model_validate(make_config(name, extra=extra)))
    trainer.fit()
    return trainer, _records(trainer.run_dir)


def test_training_writes_the_rewards_and_advantages_it_used(make_config, reward_file):
    trainer, records = _fit(make_config, "samples", {
        "rewards": [{"name": "python", "args": {"spec": f"{reward_file}:digit_frac", "name": "digits"}},
                    {"name": "format", "weight": 0.5}],
        "train": {"steps": 3}, "logging": {"samples_every": 2, "samples_groups": 1}})
    assert [r["step"] for r in records] == [2, 3]  # every 2nd step and the last
    for rec in records:
        assert rec["version"] == 1 and rec["kept"] and len(rec["completions"]) == 4
        assert rec["question"] in rec["prompt"]  # the prompt as the model saw it, chat template and all
        rewards = [c["reward"] for c in rec["completions"]]
        for c in rec["completions"]:
            assert c["reward"] == pytest.approx(c["components"]["digits"] + 0.5 * c["components"]["format"])
            assert c["finish_reason"] in ("stop", "length") and c["length"] >= 1
        mean, std = statistics.mean(rewards), statistics.stdev(rewards)  # GRPO: unbiased std, eps 1e-6
        for c, r in zip(rec["completions"], rewards):
            assert c["advantage"] == pytest.approx((r - mean) / (std + 1e-6), abs=1e-5)
        assert rec["mean_reward"] == pytest.approx(mean)
    metrics = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [("time/samples" in m) for m in metrics if "reward/mean" in m] == [False, True, True]


def test_filtered_groups_are_written_as_such(make_config):
    _, records = _fit(make_config, "filtered", {
        "filter": {"dynamic_sampling": True, "std_eps": 100.0, "max_attempts": 1},  # drops every group
        "logging": {"samples_every": 1}})
    assert records and all(not r["kept"] for r in records)
    assert all(c["advantage"] is None for r in records for c in r["completions"])


def test_recipes_findings_are_written(make_config, arith_dir, monkeypatch):
    from selfrl.judging import self_judge

    # The random model never writes a verdict: let any judge text decide by its length.
    answers = [(1, 2), ("A", "B")]
    formats = {name: (build, lambda text, a=a: a[len(text) % 2])
               for (name, (build, _)), a in zip(sorted(self_judge.FORMATS.items()), answers)}
    monkeypatch.setattr(self_judge, "FORMATS", formats)
    _, judged = _fit(make_config, "serl_judge", {
        "recipe": "serl_judge", "rewards": [], "data": {"require_answer": False},
        "recipe_args": {"judge_samples": 2, "judge_max_new_tokens": 6}, "logging": {"samples_every": 1}})
    judge = judged[0]["group_data"]["judge"]
    assert len(judge["scores"]) == 4 and len(judge["verdicts"]) == 2 * 6  # 6 pairs, both orders
    ordered_pairs = {(i, j) for i in range(4) for j in range(4) if i != j}
    assert {tuple(v["shown"]) for v in judge["verdicts"]} == ordered_pairs

    _, voted = _fit(make_config, "serl_fixed", {
        "recipe": "serl", "recipe_args": {"mode": "fixed", "difficulty_bounds": [0.0, 1.0]},
        "rewards": [{"name": "majority_vote"}], "data": {"require_answer": False},
        "logging": {"samples_every": 1}})
    assert all("pseudo_label" in r["group_data"] for r in voted)

    _, srl = _fit(make_config, "srl", {
        "data": {"train": str(arith_dir / "srl_train.jsonl")}, "rewards": [{"name": "srl_step"}],
        "logging": {"samples_every": 1}})
    assert all(r["row"]["target"] for r in srl)
    assert all(c["components"]["srl_step"] == c["reward"] for r in srl for c in r["completions"])


def test_resume_writes_no_step_twice(write_config):
    path = write_config("resumed", extra={"train": {"steps": 3}, "checkpoint": {"every": 2},
                                          "logging": {"samples_every": 1, "report": False}})
    run_dir = Path(yaml.safe_load(path.read_text())["logging"]["run_dir"])
    assert main(["train", str(path)]) == 0
    straight = _records(run_dir)
    # A crash after step 3 was logged but before its checkpoint, in the middle of a line.
    import shutil

    shutil.rmtree(run_dir / "checkpoints" / "step-000003")
    with open(run_dir / ROLLOUTS, "a") as f:
        f.write('{"version": 1, "step": 4, "comp')
    assert main(["train", str(path), "--resume", "auto"]) == 0
    resumed = _records(run_dir)
    assert [r["step"] for r in resumed] == [r["step"] for r in straight]
    assert [r["question"] for r in resumed] == [r["question"] for r in straight]  # the same groups again
