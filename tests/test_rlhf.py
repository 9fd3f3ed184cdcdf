"""Classic RLHF parts: the pairwise reward model, scoring, and LoRA merging."""

from __future__ import annotations

import json
import math

import pytest
import torch

from selfrl.cli import main
from selfrl.data.io import write_jsonl
from selfrl.models import ModelNotFoundError
from selfrl.rlhf.merge import merge_adapter
from selfrl.rlhf.rm import (
    RmConfig,
    RmDataConfig,
    load_reward_model,
    pairwise_loss_and_accuracy,
    preference_pairs,
    run_rm,
    score_texts,
)


def test_pairwise_loss_and_accuracy_by_hand():
    r_j, r_k = torch.tensor([1.0, 0.0, 2.0, 0.5]), torch.tensor([0.0, 0.0, 3.0, -1.5])
    loss, acc = pairwise_loss_and_accuracy(r_j, r_k)
    by_hand = [math.log(1 + math.exp(-d)) for d in (1.0, 0.0, -1.0, 2.0)]
    assert loss.item() == pytest.approx(sum(by_hand) / 4, abs=1e-6)
    assert acc == 0.5  # the tie (0.0 vs 0.0) counts as wrong


def test_preference_pairs_drop_and_count_bad_rows(tiny_model):
    from selfrl.models import load_tokenizer

    tok = load_tokenizer(tiny_model)
    rows = [{"question": "Q?", "response_j": "good", "response_k": "bad"},
            {"question": "Q?", "response_j": "same", "response_k": "same"},
            {"question": "Q?", "response_j": " ", "response_k": "bad"},
            {"question": "Q?", "response_j": "long " * 200, "response_k": "bad"}]
    pairs, counts = preference_pairs(rows, RmDataConfig(train="x"), tok, max_length=64)
    assert counts == {"rows": 4, "empty_or_identical": 2, "too_long": 1, "kept": 1}
    assert pairs[0]["chosen_ids"][-1] == tok.eos_token_id


def _rm_cfg(tiny_model, arith_dir, out, **model) -> RmConfig:
    return RmConfig.model_validate({
        "model": {"path": str(tiny_model), "device": "cpu", **model},
        "data": {"train": str(arith_dir / "preference_train.jsonl"),
                 "eval": str(arith_dir / "preference_test.jsonl")},
        "train": {"max_steps": 3, "batch_size": 4, "lr": 1e-3, "logging_steps": 1},
        "output_dir": str(out), "report_to": []})


def test_reward_model_trains_saves_and_scores(tiny_model, arith_dir, tmp_path):
    report = run_rm(_rm_cfg(tiny_model, arith_dir, tmp_path / "rm"))
    assert report["steps"] == 3 and report["pairs"]["kept"] == 64
    assert 0.0 <= report["eval"]["accuracy"] <= 1.0 and math.isfinite(report["eval"]["loss"])
    model, tok = load_reward_model(str(tmp_path / "rm" / "model"))
    assert model.config.num_labels == 1
    texts = ["Question: 1+1?\n\nAnswer: 2", "Question: 1+1?\n\nAnswer: 3"]
    a, b = score_texts(model, tok, texts, batch_size=1)
    together = score_texts(model, tok, texts)
    assert (a, b) == pytest.approx(tuple(together), abs=1e-5)  # padding does not change a score
    # the CLI scorer writes one score per row
    texts_file = tmp_path / "texts.jsonl"
    write_jsonl(texts_file, [{"text": texts[0]}, {"text": "x"}])
    assert main(["rm", "score", "--model", str(tmp_path / "rm" / "model"), "--data", str(texts_file),
                 "--output", str(tmp_path / "scored.jsonl")]) == 0
    scored = [json.loads(line) for line in open(tmp_path / "scored.jsonl")]
    assert scored[0]["score"] == pytest.approx(a, abs=1e-5) and len(scored) == 2


def test_a_model_with_two_outputs_is_not_a_reward_model(tiny_model, capsys, tmp_path):
    texts = tmp_path / "t.jsonl"
    write_jsonl(texts, [{"text": "x"}])
    # a causal LM loaded as a classifier gets transformers' default of two labels
    assert main(["rm", "score", "--model", str(tiny_model), "--data", str(texts),
                 "--output", str(tmp_path / "o.jsonl")]) == 2
    assert "one output" in capsys.readouterr().err


def test_merged_causal_lm_matches_the_adapter_model(tiny_model, arith_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from selfrl.sft import SftConfig, run_sft

    cfg = SftConfig.model_validate({
        "model": {"path": str(tiny_model), "device": "cpu", "lora": {"r": 4, "alpha": 8}},
        "data": {"train": str(arith_dir / "trajectories.jsonl"), "question_field": "problem",
                 "completion_field": "solution", "prompt": "chat"},
        "train": {"max_steps": 2, "batch_size": 4, "lr": 5e-2}, "output_dir": str(tmp_path / "sft"),
        "report_to": []})
    adapter = tmp_path / "sft" / "model"
    run_sft(cfg)
    assert (adapter / "adapter_config.json").is_file()
    merge_adapter(adapter, tmp_path / "merged")
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    with torch.no_grad():
        peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), str(adapter))
        expected = peft(input_ids=ids).logits
        merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_model)(input_ids=ids).logits
    assert torch.allclose(merged, expected, atol=1e-5)
    assert not torch.allclose(base, expected, atol=1e-5)  # the adapter did learn something


def test_merged_reward_model_scores_like_the_adapter(tiny_model, arith_dir, tmp_path):
    report = run_rm(_rm_cfg(tiny_model, arith_dir, tmp_path / "rm", lora={"r": 4, "alpha": 8}))
    merge_adapter(tmp_path / "rm" / "model", tmp_path / "merged")
    model, tok = load_reward_model(str(tmp_path / "merged"))
    rows = [json.loads(line) for line in open(arith_dir / "preference_test.jsonl")]
    from selfrl.rlhf.rm import pair_accuracy

    again = pair_accuracy(model, tok, rows, RmDataConfig(train="x"))
    assert again["accuracy"] == report["eval"]["accuracy"]
    assert again["loss"] == pytest.approx(report["eval"]["loss"], abs=1e-4)


def test_merge_errors_name_what_is_missing(tmp_path, capsys):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps(
        {"base_model_name_or_path": str(tmp_path / "gone"), "task_type": "CAUSAL_LM"}))
    with pytest.raises(ModelNotFoundError, match="gone"):
        merge_adapter(adapter, tmp_path / "out")
    assert main(["merge", "--adapter", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    assert "no adapter_config.json" in capsys.readouterr().err


def test_reward_model_reward_drives_a_training_step(tiny_model, arith_dir, make_config, tmp_path):
    from selfrl.config.schema import RunConfig
    from selfrl.recipes import build_trainer
    from selfrl.rewards import RewardBatch, build_reward

    run_rm(_rm_cfg(tiny_model, arith_dir, tmp_path / "rm"))
    rm_path = str(tmp_path / "rm" / "model")
    reward = build_reward("reward_model", model=rm_path, baseline=1.5)
    batch = RewardBatch(["p", "p"], ["The answer is 3.", "no"], [{"question": "1+2?"}] * 2, 2)
    model, tok = load_reward_model(rm_path)
    raw = score_texts(model, tok, ["Question: 1+2?\n\nAnswer: The answer is 3.",
                                   "Question: 1+2?\n\nAnswer: no"])
    assert reward(batch).scores == pytest.approx([r - 1.5 for r in raw], abs=1e-5)

    cfg = make_config("rm_run", extra={"train": {"steps": 2}})
    cfg["rewards"] = [{"name": "reward_model", "args": {"model": rm_path}}]
    trainer = build_trainer(RunConfig.model_validate(cfg))
    trainer.fit()
    rows = [json.loads(line) for line in open(tmp_path / "rm_run" / "metrics.jsonl")]
    assert all(math.isfinite(r["reward/reward_model/raw_mean"]) for r in rows if "reward/mean" in r)


def test_reward_model_reward_with_a_missing_model_is_a_reward_error(tmp_path):
    from selfrl.rewards import RewardBatch, RewardError, build_reward

    reward = build_reward("reward_model", model=str(tmp_path / "nope"))
    with pytest.raises(RewardError, match="nope"):
        reward(RewardBatch(["p"], ["c"], [{}], 1))
