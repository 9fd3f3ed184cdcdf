"""Prompt templates (data.prompt_template / system_prompt / chat_template, and the same options of
``selfrl eval``), the answer-form split of greedy accuracy, the evaluation samples a run keeps,
the arith variants written on demand, and the start-up check that a model can be saved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfrl.cli import main
from selfrl.config.schema import RunConfig
from selfrl.eval.evaluate import answer_form_split, prompt_ids
from selfrl.eval.extract import answer_with_source, states_answer
from selfrl.models import load_tokenizer
from selfrl.prompts import PromptFormat

SUFFIX = " Answer with the final number as 'The answer is N.'"


def test_template_fills_fields_and_overrides_the_rows_chat_prompt(tiny_model):
    tok = load_tokenizer(str(tiny_model))
    row = {"question": "Mia has 3 pens.", "prompt": [{"role": "user", "content": "ignored"}], "n": 2}
    fmt = PromptFormat(template="{question} Use {n} steps.")
    text = tok.decode(prompt_ids(tok, row, "question", fmt))
    assert "Mia has 3 pens. Use 2 steps." in text and "ignored" not in text
    assert text.endswith("<|im_start|>assistant\n")  # the chat template's generation prompt
    assert fmt.fields() == ["question", "n"]
    # No template: the row's own chat prompt, as before.
    assert "ignored" in tok.decode(prompt_ids(tok, row, "question"))


def test_system_turn_and_raw_text_without_the_chat_template(tiny_model):
    tok = load_tokenizer(str(tiny_model))
    row = {"question": "2 + 2?"}
    with_system = tok.decode(prompt_ids(tok, row, "question", PromptFormat(system="Be exact.")))
    assert with_system.startswith("<|im_start|>system\nBe exact.<|im_end|>")
    raw = PromptFormat(template="Question: {question}\n\nAnswer: ", chat=False)
    assert tok.decode(prompt_ids(tok, row, "question", raw)) == "Question: 2 + 2?\n\nAnswer: "


def test_answer_sources_and_the_form_split():
    assert answer_with_source("so \\boxed{7}") == ("7", "boxed")
    assert answer_with_source("The answer is 7.") == ("7", "answer_is")
    assert answer_with_source("3 + 4 = 7") == ("7", "last_number")
    assert answer_with_source("no digits") == (None, None)
    assert states_answer("The answer is 12.") and not states_answer("4 + 8 = 12")
    rows = [{"greedy_stated": s, "greedy_correct": c}
            for s, c in [(True, True), (True, False), (False, True), (False, True), (False, False)]]
    split = answer_form_split(rows)
    assert split == {"greedy_stated_share": 0.4, "greedy_acc_stated": 0.5, "greedy_acc_unstated": 2 / 3}
    assert "greedy_acc_unstated" not in answer_form_split(rows[:2])  # an empty side is left out


def test_a_run_uses_the_template_in_training_and_evaluation_and_keeps_its_eval_samples(make_config):
    from selfrl.recipes import build_trainer

    cfg = make_config(extra={"data": {"prompt_template": "{question}" + SUFFIX},
                             "eval": {"at_start": True}})
    trainer = build_trainer(RunConfig.model_validate(cfg))
    batch = trainer.rollout(trainer.prompts.take(1))
    assert SUFFIX.strip() in trainer.tokenizer.decode(batch.prompt_ids[0])
    trainer.fit()
    run = Path(cfg["logging"]["run_dir"])
    files = sorted(p.name for p in (run / "eval").iterdir())
    assert files == ["step-000000.jsonl", "step-000001.jsonl"]
    sample = json.loads((run / "eval" / files[0]).read_text().splitlines()[0])
    assert SUFFIX.strip() in sample["prompt"] and {"greedy", "greedy_correct", "greedy_stated"} <= set(sample)


def test_a_template_naming_a_missing_field_is_a_data_error_with_the_line(make_config, write_config, capsys):
    path = write_config(extra={"data": {"prompt_template": "{question} ({difficulty})"}})
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert "train.jsonl:1" in err and "difficulty" in err


def test_eval_cli_takes_a_prompt_template(tiny_model, arith_dir, tmp_path):
    out = tmp_path / "ev"
    assert main(["eval", "--model", str(tiny_model), "--data", str(arith_dir / "test.jsonl"), "--n", "0",
                 "--limit", "2", "--max-new-tokens", "2", "--prompt-template", "{question}" + SUFFIX,
                 "--system-prompt", "Be exact.", "--output", str(out)]) == 0
    sample = json.loads((out / "samples.jsonl").read_text().splitlines()[0])
    assert "Be exact." in sample["prompt"] and SUFFIX.strip() in sample["prompt"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert "greedy_stated_share" in metrics


def test_arith_variants_are_written_on_demand(tmp_path, monkeypatch):
    from selfrl.data.arith_files import write_arith_if_missing

    path = tmp_path / "arith_1op" / "train.jsonl"
    assert write_arith_if_missing(str(path))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert {r["n_ops"] for r in rows} == {1}
    assert (tmp_path / "arith_1op" / "validation.jsonl").is_file()
    other = tmp_path / "mine" / "train.jsonl"
    assert not write_arith_if_missing(str(other))  # not a variant's folder: nothing written
    assert not other.exists()


def test_data_arith_cli_writes_a_variant(tmp_path, capsys):
    assert main(["data", "arith", "--output", str(tmp_path), "--variant", "arith_1op", "--n-seed", "8",
                 "--n-train", "10", "--n-test", "5", "--n-test-hard", "3", "--n-validation", "6"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "validation.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {r["n_ops"] for r in rows} == {1}
    hard = [json.loads(line) for line in (tmp_path / "test_hard.jsonl").read_text().splitlines()]
    assert min(r["n_ops"] for r in hard) >= 2


def test_a_model_that_would_load_as_quantized_fails_at_start_up(tiny_model, tmp_path):
    """A folder saved from a GGUF-loaded model keeps quantization_config: gguf; training it must
    fail before the first step, not at the final checkpoint."""
    from selfrl.models import ModelError, check_saveable

    class Quantizer:
        quantization_config = type("Q", (), {"quant_method": "gguf"})()

        def is_serializable(self) -> bool:
            return False

    model = type("M", (), {"hf_quantizer": Quantizer()})()
    with pytest.raises(ModelError, match=r"loads as quantized \(gguf\).*selfrl models import-gguf"):
        check_saveable(model, "some/model")
    check_saveable(type("Plain", (), {"hf_quantizer": None})(), "ok")


def test_truncated_completions_get_the_truncated_reward(make_config):
    """rollout.truncated_reward replaces the reward of every completion cut at max_new_tokens."""
    from selfrl.recipes import build_trainer

    cfg = make_config(extra={"rollout": {"truncated_reward": -1.0, "max_new_tokens": 3}})
    trainer = build_trainer(RunConfig.model_validate(cfg))
    batch = trainer.rollout(trainer.prompts.take(2))
    trainer.score(batch)
    cut = [r == "length" for r in batch.finish_reasons]
    assert any(cut)  # 3 tokens: a random model rarely stops
    assert all((s == -1.0) == c for s, c in zip(batch.scores.tolist(), cut))


def test_overrides_may_follow_an_option(write_config, capsys):
    """`selfrl train CFG --overwrite a=b`: argparse alone would reject `a=b` after the option."""
    path = write_config()
    assert main(["config", "show", str(path), "train.seed=3"]) == 0
    assert "seed: 3" in capsys.readouterr().out
    assert main(["train", str(path), "--overwrite", "train.steps=1", "eval.at_start=false"]) == 0
    with pytest.raises(SystemExit):
        main(["train", str(path), "--no-such-flag"])
