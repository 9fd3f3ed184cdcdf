"""SERL and SR-R1 recipes end to end on a random tiny model, also on prompts with no answers."""

from __future__ import annotations

import json
import math

import pytest
import torch

from selfrl.config.schema import RunConfig
from selfrl.data.io import write_jsonl
from selfrl.recipes import build_trainer


@pytest.fixture(autouse=True)
def decisive_judge(monkeypatch):
    """A random model never writes \\boxed{1}: let any judge text decide by its length, so
    the plumbing (rewards, judge training) gets real, varied judgments."""
    from selfrl.judging import self_judge

    formats = {name: (build, lambda text, a=answers: a[len(text) % 2])
               for (name, (build, _)), answers in zip(sorted(self_judge.FORMATS.items()),
                                                      [(1, 2), ("A", "B")])}
    monkeypatch.setattr(self_judge, "FORMATS", formats)


def _run(make_config, extra):
    cfg = RunConfig.model_validate(make_config("judge", extra=extra))
    trainer = build_trainer(cfg)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    changed = any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    rows = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    return trainer, changed, rows


@pytest.mark.parametrize("recipe, args, rewards", [
    ("serl_judge", {"judge_samples": 2, "judge_max_new_tokens": 6}, []),
    ("srr1_elo", {"judge_samples": 1, "judge_max_new_tokens": 6}, [{"name": "format"}]),
])
def test_self_judging_recipes_train(make_config, recipe, args, rewards):
    trainer, changed, rows = _run(make_config, {
        "recipe": recipe, "recipe_args": args, "rewards": rewards, "data": {"require_answer": False},
        "train": {"steps": 2, "micro_batch_size": 4}})
    assert changed
    step = [r for r in rows if "reward/mean" in r][-1]
    assert all(math.isfinite(v) for v in step.values() if isinstance(v, float))
    judge_metrics = [k for k in step if "judge" in k]
    assert judge_metrics, step
    if recipe == "serl_judge":
        assert "judge/beta" in step and step["judge/alpha"] == pytest.approx(0.5)  # step 2 of 2


def test_serl_runs_on_prompts_without_answers(make_config, tmp_path):
    prompts = tmp_path / "open.jsonl"
    write_jsonl(prompts, [{"question": f"Write a short note about topic {i}."} for i in range(6)])
    _, changed, _ = _run(make_config, {
        "recipe": "serl_judge", "recipe_args": {"judge_max_new_tokens": 6}, "rewards": [],
        "data": {"train": str(prompts), "eval": None, "require_answer": False}})
    assert changed


def test_judge_recipes_reject_dynamic_sampling(make_config):
    cfg = RunConfig.model_validate(make_config("bad", extra={
        "recipe": "serl_judge", "rewards": [], "filter": {"dynamic_sampling": True},
        "data": {"require_answer": False}}))
    with pytest.raises(ValueError, match="dynamic_sampling"):
        build_trainer(cfg)
