"""`selfrl pipeline`: SFT → merge → RM → merge → PPO → merge on a random tiny model, then a
re-run that skips every stage."""

from __future__ import annotations

import pytest
import yaml

from selfrl.cli import main
from selfrl.config import ConfigError
from selfrl.pipeline import run_pipeline


def _write(path, data) -> None:
    path.write_text(yaml.safe_dump(data))


def test_rlhf_pipeline_end_to_end_then_skips_what_is_done(tiny_model, arith_dir, make_config, tmp_path):
    out = tmp_path / "out"
    lora = {"r": 4, "alpha": 8, "dropout": 0.0}
    _write(tmp_path / "sft.yaml", {
        "model": {"path": str(tiny_model), "device": "cpu", "lora": lora},
        "data": {"train": str(arith_dir / "preference_train.jsonl"), "prompt": "chat"},
        "train": {"max_steps": 2, "batch_size": 4, "lr": 1e-2}, "output_dir": str(out / "sft"),
        "report_to": []})
    _write(tmp_path / "rm.yaml", {
        "model": {"path": str(out / "sft_merged"), "device": "cpu", "lora": lora},
        "data": {"train": str(arith_dir / "preference_train.jsonl"),
                 "eval": str(arith_dir / "preference_test.jsonl")},
        "train": {"max_steps": 2, "batch_size": 4, "lr": 1e-2}, "output_dir": str(out / "rm"),
        "report_to": []})
    ppo = make_config("ppo", extra={
        "model": {"path": str(out / "sft_merged"), "lora": lora},
        "algorithm": {"advantage": "gae", "ppo_epochs": 2, "kl_coef": 0.2, "kl_in_reward": True,
                      "kl_target": 0.1},
        "critic": {"init": str(out / "rm_merged")},
        "train": {"steps": 2}, "logging": {"run_dir": str(out / "ppo")}})
    ppo["rewards"] = [{"name": "reward_model", "args": {"model": str(out / "rm_merged")}}]
    _write(tmp_path / "ppo.yaml", ppo)
    _write(tmp_path / "pipeline.yaml", {"stages": [
        {"name": "sft", "kind": "sft", "config": "sft.yaml", "output": str(out / "sft" / "model")},
        {"name": "sft_merge", "kind": "merge", "adapter": str(out / "sft" / "model"),
         "output": str(out / "sft_merged")},
        {"name": "rm", "kind": "rm", "config": "rm.yaml", "output": str(out / "rm" / "model")},
        {"name": "rm_merge", "kind": "merge", "adapter": str(out / "rm" / "model"),
         "output": str(out / "rm_merged")},
        {"name": "ppo", "kind": "train", "config": "ppo.yaml", "output": str(out / "ppo_merged")},
    ]})
    assert run_pipeline(tmp_path / "pipeline.yaml", log=lambda _: None) == [
        "sft", "sft_merge", "rm", "rm_merge", "ppo"]
    assert (out / "ppo_merged" / "config.json").is_file()
    assert not (out / "ppo_merged" / "adapter_config.json").exists()  # merged, plain model
    assert run_pipeline(tmp_path / "pipeline.yaml", log=lambda _: None) == []
    assert main(["pipeline", str(tmp_path / "pipeline.yaml")]) == 0


def test_pipeline_config_errors(tmp_path, capsys):
    _write(tmp_path / "p.yaml", {"stages": [{"name": "m", "kind": "merge", "output": "x"}]})
    with pytest.raises(ConfigError, match="needs 'adapter'"):
        run_pipeline(tmp_path / "p.yaml")
    _write(tmp_path / "q.yaml", {"stages": [{"name": "s", "kind": "sfft", "config": "a", "output": "x"}]})
    assert main(["pipeline", str(tmp_path / "q.yaml")]) == 2
    assert "kind" in capsys.readouterr().err


def test_an_interrupted_train_stage_leaves_no_output_so_a_rerun_resumes(make_config, tmp_path, monkeypatch):
    from selfrl.pipeline import PipelineStopped
    from selfrl.trainer.trainer import Trainer

    _write(tmp_path / "train.yaml", make_config("t", extra={"train": {"steps": 1}}))
    _write(tmp_path / "p.yaml", {"stages": [
        {"name": "rl", "kind": "train", "config": "train.yaml", "output": str(tmp_path / "final")}]})
    monkeypatch.setattr(Trainer, "fit", lambda self: {"stopped_by_signal": "SIGTERM"})
    with pytest.raises(PipelineStopped, match="run the pipeline again"):
        run_pipeline(tmp_path / "p.yaml", log=lambda _: None)
    assert not (tmp_path / "final").exists()
