"""Issue 25: the instruct task's real-model configs load as written, and each runs two steps with
everything it sets kept but the model (a tiny random one), the data size and the budgets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfrl.config import load_config
from selfrl.config.schema import RunConfig
from selfrl.data.instruct import InstructSpec, write_instruct
from selfrl.recipes import build_trainer

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ["instruct_rlvr_smollm2.yaml", "instruct_serl_smollm2.yaml", "instruct_srr1_smollm2.yaml"]
# The kinds the configs' data command asks for (where SmolLM2 has a foothold).
KINDS = ("max_words", "include_keyword", "no_commas", "bullets", "lowercase", "end_phrase")


@pytest.mark.parametrize("name", CONFIGS)
def test_the_config_loads_as_written(name):
    cfg = load_config(RunConfig, REPO / "recipes" / name)
    assert cfg.model.path == "smollm2-135m" and cfg.data.benchmark == "instruct"
    assert cfg.eval.at_start and cfg.eval.limit >= 300  # the held-out bar: >= 300 prompts
    text = (REPO / "recipes" / name).read_text()
    assert "--kinds " + ",".join(KINDS) in (REPO / "recipes" / CONFIGS[0]).read_text()
    if cfg.recipe != "rlvr":  # no checker in training: it only measures the judge
        assert cfg.rewards == [] and cfg.recipe_args["judge_truth"] == "constraints"
    assert "data/instruct_smol" in text


@pytest.mark.parametrize("name", CONFIGS)
def test_the_config_runs_two_steps_on_a_tiny_model(name, tiny_model, tmp_path):
    data = tmp_path / "instruct_smol"
    write_instruct(data, InstructSpec(n_train=32, n_validation=4, n_test=8, kinds=KINDS))
    cfg = load_config(RunConfig, REPO / "recipes" / name, [
        f"model.path={tiny_model}", "model.device=cpu", f"data.train={data / 'train.jsonl'}",
        f"data.eval={data / 'test.jsonl'}", "train.steps=2", "rollout.max_new_tokens=8", "eval.limit=3",
        "eval.max_new_tokens=6", f"logging.run_dir={tmp_path / 'run'}", "logging.tensorboard=false",
        "logging.progress=false", "logging.report=false"])
    trainer = build_trainer(cfg)
    summary = trainer.fit()
    for when in ("before", "after"):
        assert {"eval/greedy_pass@1", "eval/greedy_constraint_level"} <= set(summary[when])
        assert any(k.startswith("eval/per_kind/") for k in summary[when])
    rows = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "reward/mean" in r]
    assert len(steps) == 2
    if cfg.recipe != "rlvr":  # the judge measured against the checker it never trains on
        assert any(k.endswith("truth_mean") for k in steps[-1])
