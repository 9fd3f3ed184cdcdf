"""`selfrl eval` and `selfrl data arith` end to end, and their bad-input errors."""

from __future__ import annotations

import json
import re

import pytest

from selfrl.cli import main
from selfrl.data.io import write_jsonl
from selfrl.models import embedded_model_path
from selfrl.testing import tiny_random_model


@pytest.fixture(scope="module")
def random_model(tmp_path_factory):
    return tiny_random_model(tmp_path_factory.mktemp("model"), hidden_size=16, num_layers=1)


@pytest.fixture()
def problems(tmp_path):
    path = tmp_path / "p.jsonl"
    write_jsonl(path, [{"question": "Tom has 2 pens and buys 3 more. How many pens?", "answer": "5"},
                       {"question": "Ann has 9 cups. She breaks 4. How many cups?", "answer": "5"},
                       {"question": "What is it?", "answer": "???"}])
    return path


def test_eval_end_to_end_on_random_model(random_model, problems, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["eval", "--model", str(random_model), "--data", str(problems), "--n", "4", "--k", "1,4",
               "--max-new-tokens", "8", "--output", str(out)])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("greedy_pass@1", "avg@4", "maj@1", "maj@4", "pass@1", "pass@4"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["n_unparsable_gold"] == 1
    assert metrics["n_problems"] == 3
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 3 and all(len(s["samples"]) == 4 for s in samples)
    assert samples[2]["gold_parsed"] is False and not any(samples[2]["correct"])
    assert "greedy_pass@1" in capsys.readouterr().out


def test_data_arith_writes_every_file(tmp_path):
    rc = main(["data", "arith", "--output", str(tmp_path), "--n-seed", "10", "--n-train", "20",
               "--n-test", "10", "--n-test-hard", "10"])
    assert rc == 0
    for name in ("seed", "train", "test", "test_hard", "trajectories", "selfinstruct_prompts",
                 "judge_train", "judge_test", "preference_train", "preference_test"):
        assert (tmp_path / f"{name}.jsonl").stat().st_size > 0


def test_data_arith_difficulty_options(tmp_path):
    rc = main(["data", "arith", "--output", str(tmp_path), "--n-seed", "10", "--n-train", "200",
               "--n-test", "10", "--n-test-hard", "10", "--max-value", "20", "--p-mul", "0"])
    assert rc == 0
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert not any("*" in r["solution"] for r in rows)
    assert max(int(n) for r in rows for n in re.findall(r"\d+", r["solution"])) <= 20


@pytest.mark.parametrize("content, expected", [
    ('{"question": "q", "answer": "1"}\n{"question": "q2"}\n', [":2", "'answer'"]),
    ('{"question": "q", "answer": "1"}\n{not json\n', [":2", "malformed JSON"]),
    ("", ["empty"]),
])
def test_eval_bad_data_names_file_line_field(random_model, tmp_path, capsys, content, expected):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    rc = main(["eval", "--model", str(random_model), "--data", str(path), "--n", "1", "--k", "1"])
    err = capsys.readouterr().err
    assert rc != 0
    assert str(path) in err
    for piece in expected:
        assert piece in err


def test_eval_missing_model_path_is_clear(problems, tmp_path, capsys):
    rc = main(["eval", "--model", str(tmp_path / "no-such-model"), "--data", str(problems)])
    err = capsys.readouterr().err
    assert rc != 0 and "does not exist" in err and "Traceback" not in err


def test_eval_k_larger_than_n_is_clear(random_model, problems, capsys):
    rc = main(["eval", "--model", str(random_model), "--data", str(problems), "--n", "2", "--k", "4"])
    err = capsys.readouterr().err
    assert rc != 0 and "--k" in err and "--n" in err


def test_shipped_model_loads_with_plain_auto_classes_and_solves_something(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfrl.data.arith_files import ArithSplits, make_splits, problem_row
    from selfrl.eval.evaluate import EvalSettings, evaluate

    model = AutoModelForCausalLM.from_pretrained(embedded_model_path())
    tok = AutoTokenizer.from_pretrained(embedded_model_path())
    assert tok.chat_template and tok.eos_token == "<|im_end|>" and tok.pad_token != tok.eos_token
    rows = [problem_row(p, "test", i) for i, p in enumerate(make_splits(ArithSplits(), seed=0)["test"][:40])]
    metrics, samples = evaluate(model, tok, rows, EvalSettings(n=0, ks=(), max_new_tokens=96))
    assert all("\\boxed{" in s["greedy"] for s in samples[:10])  # it learned the format
    assert metrics["greedy_pass@1"] >= 0.15  # and arithmetic (0.30 on 500 when built)


def test_shipped_tokenizer_loads_as_it_was_trained():
    """AutoTokenizer must tokenise exactly as ``tokenizer.json`` does.  transformers 5 loads
    any ``model_type: qwen2`` checkpoint's tokenizer as Qwen2Tokenizer, which replaces the
    pre-tokenizer (" 12" -> "Ġ", "1", "2" instead of "Ġ1", "2") and wrecked the model."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    raw = Tokenizer.from_file(str(embedded_model_path() / "tokenizer.json"))
    tok = AutoTokenizer.from_pretrained(embedded_model_path())
    text = "Mia has 12 apples. Then she buys 7 more apples: 12 + 7 = 19."
    assert tok(text)["input_ids"] == raw.encode(text, add_special_tokens=False).ids
    assert tok.tokenize(" 12") == ["Ġ1", "2"]


def test_build_tiny_end_to_end_on_a_toy_budget(tmp_path):
    """The whole build (mix, tokenizer, TRL SFT, Llama export, reload, the four figures) at a
    toy size: the saved files load through the Auto classes and tokenise as trained."""
    from tokenizers import Tokenizer
    from transformers import AutoConfig, AutoTokenizer

    from selfrl.tiny.build import TinyBuildConfig, build

    cfg = TinyBuildConfig(vocab_size=400, hidden_size=32, intermediate_size=64, num_layers=1,
                          num_heads=2, num_kv_heads=1, max_steps=2, batch_size=2,
                          report_problems=4, report_n=2)
    report = build(tmp_path / "m", cfg)
    assert AutoConfig.from_pretrained(tmp_path / "m").model_type == "llama"
    raw = Tokenizer.from_file(str(tmp_path / "m" / "tokenizer.json"))
    text = "Mia has 12 apples."
    assert AutoTokenizer.from_pretrained(tmp_path / "m")(text)["input_ids"] == raw.encode(text).ids
    assert report["steps"] == 2 and report["eval"]["n_problems"] == 4 and report["judge"]["n"] == 4
    assert set(report) >= {"eval", "self_instruct", "judge", "train_minutes", "n_parameters"}
    assert (tmp_path / "m" / "build_report.json").is_file()
