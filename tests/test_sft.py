"""`selfrl sft`: row building, bad input, an end-to-end run on a random tiny model, resume."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from selfrl.cli import main
from selfrl.data.io import DataError
from selfrl.sft import SftConfig, SftDataConfig, run_sft, sft_rows


def test_rows_in_each_prompt_format():
    row = {"question": "What is 2 + 3?", "response_j": "5", "problem": "P", "solution": "S"}
    plain = sft_rows([row], SftDataConfig(train="f.jsonl"))[0]
    assert plain == {"prompt": "Question: What is 2 + 3?\n\nAnswer: ", "completion": "5"}
    chat = sft_rows([row], SftDataConfig(train="f.jsonl", prompt="chat"))[0]
    assert chat["prompt"] == [{"role": "user", "content": "What is 2 + 3?"}]
    assert chat["completion"] == [{"role": "assistant", "content": "5"}]
    other = sft_rows([row], SftDataConfig(train="f.jsonl", prompt="chat", question_field="problem",
                                          completion_field="solution"))[0]
    assert other["prompt"][-1]["content"] == "P" and other["completion"][0]["content"] == "S"


def test_empty_answer_and_template_field_errors_name_the_row():
    data = SftDataConfig(train="f.jsonl")
    with pytest.raises(DataError, match=r"f.jsonl:2: field 'response_j' is empty"):
        rows = [{"question": "a", "response_j": "x"}, {"question": "b", "response_j": " "}]
        sft_rows(rows, data, "f.jsonl")
    data = SftDataConfig(train="f.jsonl", prompt_template="Q: {title}\nA: ")
    with pytest.raises(DataError, match=r"f.jsonl:1: prompt_template needs field 'title'"):
        sft_rows([{"question": "a", "response_j": "x"}], data, "f.jsonl")


def _cfg(tiny_model, arith_dir, out, **train) -> SftConfig:
    return SftConfig.model_validate({
        "model": {"path": str(tiny_model), "device": "cpu"},
        "data": {"train": str(arith_dir / "trajectories.jsonl"), "question_field": "problem",
                 "completion_field": "solution", "prompt": "chat"},
        "train": {"max_steps": 2, "batch_size": 4, "lr": 1e-2, "logging_steps": 1, **train},
        "output_dir": str(out), "report_to": []})


def test_sft_end_to_end_changes_weights_and_saves_a_loadable_model(tiny_model, arith_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    report = run_sft(_cfg(tiny_model, arith_dir, tmp_path / "sft"))
    assert report["steps"] == 2 and report["rows"] == 64
    assert report["last_logged_loss"] is not None and report["last_logged_loss"] == report["last_logged_loss"]
    before = load_file(tiny_model / "model.safetensors")
    after = load_file(tmp_path / "sft" / "model" / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    AutoModelForCausalLM.from_pretrained(tmp_path / "sft" / "model")  # plain transformers loads it
    saved = json.loads((tmp_path / "sft" / "sft_report.json").read_text())
    assert saved["steps"] == 2


def test_resume_auto_continues_from_the_last_checkpoint(tiny_model, arith_dir, tmp_path):
    run_sft(_cfg(tiny_model, arith_dir, tmp_path / "sft", save_steps=1))
    report = run_sft(_cfg(tiny_model, arith_dir, tmp_path / "sft", max_steps=3, save_steps=1), resume="auto")
    assert report["resumed_from"].endswith("checkpoint-2") and report["steps"] == 3


def test_resume_auto_without_checkpoints_is_a_clear_error(tiny_model, arith_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint-"):
        run_sft(_cfg(tiny_model, arith_dir, tmp_path / "sft"), resume="auto")


def test_cli_bad_config_key_and_missing_field(tiny_model, arith_dir, tmp_path, capsys):
    config = tmp_path / "sft.yaml"
    config.write_text(f"model:\n  path: {tiny_model}\ndata:\n  train: {arith_dir / 'train.jsonl'}\n"
                      f"output_dir: {tmp_path / 'out'}\nreport_to: []\n")
    assert main(["sft", str(config), "train.max_step=2"]) == 2
    assert "did you mean 'max_steps'" in capsys.readouterr().err
    # train.jsonl has no response_j: the error names the file, the line and the field.
    assert main(["sft", str(config), "train.max_steps=1"]) == 2
    err = capsys.readouterr().err
    assert "train.jsonl:1" in err and "'response_j'" in err
