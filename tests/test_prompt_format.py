"""Prompt templates (data.prompt_template / system_prompt / chat_template, and the same options of
``selfrl eval``), the answer-form split of greedy accuracy, the evaluation samples a run keeps,
the arith variants written on demand, and the start-up check that a model can be saved."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from selfrl.cli import main
from selfrl.config.schema import RunConfig
from selfrl.data.io import DataError
from selfrl.eval.evaluate import EvalSettings, answer_form_split, evaluate, prompt_ids
from selfrl.eval.extract import answer_with_source, states_answer
from selfrl.models import load_tokenizer
from selfrl.prompts import PromptFormat, PromptOptions, fill_template

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


def test_an_eval_template_measures_step_prompts_training_on_whole_problems(make_config, arith_dir):
    """SRL: the training rows carry their own step prompts (no ``question`` field), the held-out
    problems are asked as RLVR asks them (``eval.prompt_template``)."""
    from selfrl.recipes import build_trainer

    cfg = make_config(extra={"data": {"train": str(arith_dir / "srl_train.jsonl")},
                             "eval": {"at_start": True, "prompt_template": "{question}" + SUFFIX}})
    trainer = build_trainer(RunConfig.model_validate(cfg))
    batch = trainer.rollout(trainer.prompts.take(1))
    train_prompt = trainer.tokenizer.decode(batch.prompt_ids[0])
    assert "Previous steps" in train_prompt or "next step" in train_prompt
    assert SUFFIX.strip() not in train_prompt
    trainer.fit()
    run = Path(cfg["logging"]["run_dir"])
    sample = json.loads((run / "eval" / "step-000000.jsonl").read_text().splitlines()[0])
    assert sample["prompt"].count(SUFFIX.strip()) == 1
    # data.prompt_template would apply to the step rows too, which have no question: named, with the line
    with pytest.raises(DataError, match="srl_train.jsonl:1: missing field 'question'"):
        bad = make_config(extra={"data": {"train": str(arith_dir / "srl_train.jsonl"),
                                          "prompt_template": "{question}"}})
        build_trainer(RunConfig.model_validate(bad))


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


# --- issue 23: chat-template control, for training and evaluation alike -----------------------

LLAMA_TEMPLATE = (  # Llama-2's layout, reduced
    "{% for m in messages %}{% if m['role'] == 'system' %}<<SYS>>{{ m['content'] }}<</SYS>>"
    "{% else %}[INST] {{ m['content'] }} [/INST]{% endif %}{% endfor %}")
THINKING_TEMPLATE = (  # Qwen3's switch, reduced: enable_thinking=false writes an empty think block
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% if enable_thinking is defined and "
    "enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}")


@pytest.fixture(scope="module")
def foreign_models(tmp_path_factory, tiny_model) -> dict[str, Path]:
    """A GPT-2 without a chat template (as GPT-2 ships) and the tiny Llama with Llama-2's layout,
    both with the tiny BPE vocabulary."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel

    root = tmp_path_factory.mktemp("foreign")
    tok = AutoTokenizer.from_pretrained(tiny_model)
    torch.manual_seed(0)
    gpt2 = GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    GPT2LMHeadModel(gpt2).save_pretrained(root / "gpt2")
    tok.chat_template = None
    tok.save_pretrained(root / "gpt2")
    AutoModelForCausalLM.from_pretrained(tiny_model).save_pretrained(root / "llama")
    tok.chat_template = LLAMA_TEMPLATE
    tok.save_pretrained(root / "llama")
    return {"gpt2": root / "gpt2", "llama": root / "llama"}


def test_the_chat_template_file_kwargs_system_and_raw_mode_with_foreign_tokenizers(foreign_models, tmp_path):
    gpt2, llama = (load_tokenizer(str(foreign_models[k])) for k in ("gpt2", "llama"))
    assert not gpt2.chat_template and "[INST]" in llama.chat_template
    row = {"question": "2 + 2?"}

    def text(tok, **options) -> str:
        return tok.decode(PromptOptions(**options).prompt_format().ids(tok, row, "question"))

    assert text(gpt2) == "2 + 2?"  # no template: the text as it stands
    assert text(llama) == "[INST] 2 + 2? [/INST]"
    assert text(llama, system_prompt="Be exact.") == "<<SYS>>Be exact.<</SYS>>[INST] 2 + 2? [/INST]"
    assert text(llama, prompt_template="Question: {question}\n\nAnswer: ", chat_template=False) == \
        "Question: 2 + 2?\n\nAnswer: "
    template = tmp_path / "thinking.jinja"
    template.write_text(THINKING_TEMPLATE)
    for tok in (gpt2, llama):  # the file replaces whatever template the tokenizer has
        plain = text(tok, chat_template_file=str(template))
        assert plain == "<|im_start|>user\n2 + 2?<|im_end|>\n<|im_start|>assistant\n"
        off = {"enable_thinking": False}
        thinking_off = text(tok, chat_template_file=str(template), chat_template_kwargs=off)
        assert thinking_off == plain + "<think>\n\n</think>\n\n"


def test_prompt_options_refuse_what_cannot_work(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="chat_template_file\n.*nope.jinja: no such file"):
        PromptOptions(chat_template_file=str(tmp_path / "nope.jinja"))
    with pytest.raises(ValidationError, match="which chat_template=false turns off"):
        PromptOptions(chat_template=False, chat_template_kwargs={"enable_thinking": False})
    with pytest.raises(ValidationError, match="kwargs\n.*add_generation_prompt is set by selfrl"):
        PromptOptions(chat_template_kwargs={"add_generation_prompt": False})
    with pytest.raises(ValidationError, match="long_prompts"):
        PromptOptions(long_prompts="truncate")


def test_templates_fill_names_only_so_boxed_braces_stay():
    filled = fill_template("{question} Put it in \\boxed{}. {{x}}", {"question": "Q"})
    assert filled == "Q Put it in \\boxed{}. {x}"
    assert PromptFormat("{question} ({n} steps)").fields() == ["question", "n"]


def test_a_prompt_longer_than_the_limit_is_skipped_or_cut_and_counted(tiny_model):
    tok = load_tokenizer(str(tiny_model))
    rows = [{"id": "short", "question": "2 + 2?", "answer": "4"},
            {"id": "long", "question": "Tom has 3 pens. " * 20 + "How many?", "answer": "60"}]
    limit = len(PromptFormat().ids(tok, rows[0], "question")) + 2
    skip = PromptFormat(max_tokens=limit)
    fitted = skip.fit(tok, rows, "question")
    assert fitted.kept == [0] and fitted.too_long == [1]
    cut = PromptFormat(max_tokens=limit, long_prompts="truncate_left")
    full, kept = PromptFormat().ids(tok, rows[1], "question"), cut.ids(tok, rows[1], "question")
    assert len(kept) == limit and kept == full[-limit:]  # the end stays: the question's, the assistant turn
    assert cut.fit(tok, rows, "question").kept == [0, 1]

    engine = Says("The answer is 4.")
    metrics, samples = evaluate(None, tok, rows, EvalSettings(n=0), prompt_format=skip, engine=engine)
    counts = metrics["n_problems"], metrics["n_prompts_too_long"], metrics["skipped_prompt_ids"]
    assert counts == (1, 1, ["long"])
    assert [s["id"] for s in samples] == ["short"]
    metrics, samples = evaluate(None, tok, rows, EvalSettings(n=0), prompt_format=cut, engine=engine)
    counts = metrics["n_problems"], metrics["n_prompts_too_long"], metrics["long_prompts"]
    assert counts == (2, 1, "truncate_left")
    assert "skipped_prompt_ids" not in metrics
    with pytest.raises(DataError, match="every one of the 2 prompts is longer than the limit of 3 tokens"):
        evaluate(None, tok, rows, EvalSettings(n=0), prompt_format=PromptFormat(max_tokens=3), engine=engine)


class Says:
    """An engine whose every completion is ``text``."""

    def __init__(self, text: str) -> None:
        self.text = text

    def generate(self, prompts, params, generator=None):
        from selfrl.rollout.base import Completion

        return [[Completion(self.text, [], [], "stop", p)] * params.n for p in prompts]


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_a_run_renders_every_prompt_with_the_configured_template(make_config, foreign_models, arith_dir,
                                                                 tmp_path, arch):
    """Training, its evaluation and the recipe's own prompts (SeRL's) go through one PromptFormat:
    the template file, its kwargs, the system turn and the length limit (logged at step 0)."""
    from selfrl.data.io import read_jsonl
    from selfrl.recipes import build_trainer

    template = tmp_path / "thinking.jinja"
    template.write_text(THINKING_TEMPLATE)
    data = {"chat_template_file": str(template), "chat_template_kwargs": {"enable_thinking": False},
            "system_prompt": "Be exact."}
    tok, fmt = load_tokenizer(str(foreign_models[arch])), PromptOptions(**data).prompt_format()
    lengths = sorted(len(fmt.ids(tok, r, "question")) for r in read_jsonl(arith_dir / "train.jsonl"))
    limit = lengths[len(lengths) // 2]  # the median: some prompts are longer
    cfg = make_config(f"foreign-{arch}", extra={
        "model": {"path": str(foreign_models[arch])}, "data": {**data, "max_prompt_tokens": limit},
        "eval": {"at_start": True, "limit": 0}})
    trainer = build_trainer(RunConfig.model_validate(cfg))
    prompt = trainer.tokenizer.decode(trainer.rollout(trainer.prompts.take(1)).prompt_ids[0])
    assert prompt.startswith("<|im_start|>system\nBe exact.<|im_end|>") and prompt.endswith("</think>\n\n")
    kept = len(trainer.prompts.rows)
    assert kept == sum(n <= limit for n in lengths) < len(lengths)
    trainer.fit()
    run = Path(cfg["logging"]["run_dir"])
    first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert first["step"] == 0 and first["data/train_prompts_too_long"] == len(lengths) - kept
    assert first["data/eval_prompts_too_long"] == 16 - len(trainer.eval_rows) < 16
    assert "eval/greedy_pass@1" in first
    sample = json.loads((run / "eval" / "step-000000.jsonl").read_text().splitlines()[0])
    assert sample["prompt"].endswith("</think>\n\n")
    seen = []
    trainer.ctx.engine.generate = lambda prompts, params, gen=None: seen.extend(prompts) or []
    from selfrl.recipes.serl import SeRL

    serl = SeRL.__new__(SeRL)
    serl.ctx = trainer.ctx
    serl.args = SimpleNamespace(self_instruct_system="Write one.", gen_prompts_per_round=1,
                                gen_temperature=1.0, gen_top_p=1.0, gen_presence_penalty=0.0,
                                gen_max_new_tokens=4)
    serl.fewshot_examples = lambda: ["A?", "B?"]
    serl.generate_problems()
    assert trainer.tokenizer.decode(seen[0]).startswith("<|im_start|>system\nWrite one.<|im_end|>")
    assert trainer.tokenizer.decode(seen[0]).endswith("</think>\n\n")


def test_every_training_prompt_over_the_limit_is_an_error(make_config, write_config, capsys):
    path = write_config(extra={"data": {"max_prompt_tokens": 2}})
    assert main(["train", str(path)]) == 2
    assert "every prompt is longer than max_prompt_tokens=2 (the shortest has" in capsys.readouterr().err
