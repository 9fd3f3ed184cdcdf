"""Issue 23: ``selfrl eval --benchmark`` and ``--suite`` end to end on a tiny model, their bad-input
errors, and ``selfrl compare`` over two suites (per-benchmark deltas with paired standard errors)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from selfrl.cli import main
from selfrl.data.io import write_jsonl
from selfrl.eval.suite import compare_samples

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "benchmarks"
SUITE = EXAMPLES / "suite.yaml"
FAST = ["--max-new-tokens", "4", "--n", "2", "--k", "1,2"]


def _eval(model, *args: str) -> int:
    return main(["eval", "--model", str(model), *args])


def test_eval_benchmark_reads_the_published_schema_prompts_and_scores(tiny_model, tmp_path):
    out = tmp_path / "gsm8k"
    assert _eval(tiny_model, "--benchmark", "gsm8k", "--data", str(EXAMPLES / "gsm8k.jsonl"), *FAST,
                 "--output", str(out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_problems"] == 4
    assert set(metrics["stderr"]) == {"greedy_pass@1", "avg@2", "maj@1", "maj@2", "pass@1", "pass@2"}
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["gold"] for s in samples] == ["26", "1500", "6", "33"] and samples[0]["id"] == "1"
    assert samples[0]["prompt"].endswith("within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n")


def test_eval_mmlu_pro_from_a_folder_a_file_and_zero_shot(tiny_model, tmp_path, capsys):
    out = tmp_path / "mmlu"
    folder = str(EXAMPLES / "mmlu_pro")
    assert _eval(tiny_model, "--benchmark", "mmlu_pro", "--data", folder, "--n", "0", "--max-new-tokens", "2",
                 "--output", str(out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["per_group"]) == {"STEM", "Humanities"}
    assert set(metrics["per_category"]) == {"math", "history"}
    sample = json.loads((out / "samples.jsonl").read_text().splitlines()[0])
    assert sample["prompt"].count("Question:\n") == 6  # five shots and the question
    test_file = str(EXAMPLES / "mmlu_pro" / "test.jsonl")
    assert _eval(tiny_model, "--benchmark", "mmlu_pro", "--data", test_file, "--n", "0") == 2
    assert "give the few-shot file (--fewshot-data)" in capsys.readouterr().err
    quick = ["--benchmark", "mmlu_pro", "--data", test_file, "--n", "0", "--max-new-tokens", "2"]
    assert _eval(tiny_model, *quick, "--fewshot-data", str(EXAMPLES / "mmlu_pro" / "validation.jsonl")) == 0
    assert _eval(tiny_model, *quick, "--shots", "0", "--output", str(tmp_path / "zero")) == 0
    sample = json.loads((tmp_path / "zero" / "samples.jsonl").read_text().splitlines()[0])
    assert sample["prompt"].count("Question:\n") == 1


@pytest.mark.parametrize("args, expected", [
    (["--benchmark", "gsm8k", "--mode", "aime"], "--mode: --benchmark gsm8k is scored in mode math"),
    (["--benchmark", "gsm8k", "--question-field", "problem"], "drop --question-field"),
    (["--benchmark", "gsm8k", "--prompt-template", "{question} ({difficulty})"],
     "--prompt-template: gsm8k rows have no field 'difficulty'"),
    (["--benchmark", "gsm8k", "--chat-template-file", "/no/such.jinja"],
     "--chat-template-file: /no/such.jinja: no such file"),
    (["--benchmark", "gsm8k", "--no-chat-template", "--chat-template-kwargs", '{"enable_thinking": false}'],
     "--no-chat-template, --chat-template-file, --chat-template-kwargs: "),
    (["--benchmark", "gsm8k", "--max-prompt-tokens", "0"], "--max-prompt-tokens: "),
    ([], "give the problems to evaluate: --data FILE"),
])
def test_eval_flag_errors_are_one_line_naming_the_flag(tiny_model, capsys, args, expected):
    data = ["--data", str(EXAMPLES / "gsm8k.jsonl")] if args else []
    assert _eval(tiny_model, *data, *args) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


def test_a_benchmark_file_in_the_wrong_schema_is_one_line(tiny_model, capsys):
    assert _eval(tiny_model, "--benchmark", "gsm8k", "--data", str(EXAMPLES / "math500.jsonl")) == 2
    err = capsys.readouterr().err
    assert "math500.jsonl: row 1: missing field 'question'" in err and "GSM8K rows are {question," in err


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_eval_engine_vllm_without_vllm_names_the_install_command(tiny_model, capsys):
    gsm8k = ["--benchmark", "gsm8k", "--data", str(EXAMPLES / "gsm8k.jsonl")]
    assert _eval(tiny_model, "--engine", "vllm", *gsm8k) == 2
    err = capsys.readouterr().err
    assert "--engine vllm: rollout.engine=vllm needs vLLM" in err and "pip install 'selfrl[vllm]'" in err


# --- suites -------------------------------------------------------------------------------------

def test_a_suite_runs_every_benchmark_with_one_model_load_and_writes_one_table(tiny_model, tmp_path, capsys,
                                                                              monkeypatch):
    import selfrl.models

    loads = []
    load = selfrl.models.load_causal_lm
    monkeypatch.setattr(selfrl.models, "load_causal_lm", lambda *a, **k: loads.append(a) or load(*a, **k))
    out = tmp_path / "suite"
    assert _eval(tiny_model, "--suite", str(SUITE), *FAST, "--system-prompt", "Be exact.", "--limit", "3",
                 "--output", str(out)) == 0
    assert len(loads) == 1
    names = ["gsm8k", "math500", "aime24", "aime25", "amc", "minerva", "olympiadbench", "mmlu_pro"]
    results = json.loads((out / "results.json").read_text())["benchmarks"]
    assert [r["name"] for r in results] == names
    assert [r["metrics"]["n_problems"] for r in results] == [3, 3, 2, 2, 2, 2, 3, 3]  # --limit 3
    table = (out / "results.md").read_text()
    assert table.splitlines()[0] == ("| benchmark | problems | greedy pass@1 | avg@2 | maj@1 | pass@1 | "
                                     "maj@2 | pass@2 | unparsable gold |")
    assert [line.split(" | ")[0].lstrip("| ") for line in table.splitlines()[2:10]] == names
    assert "mmlu_pro by group:" in table and table in capsys.readouterr().out
    for name in names:  # the command line's flags override the suite's settings and prompt
        metrics = json.loads((out / name / "metrics.json").read_text())
        sample = json.loads((out / name / "samples.jsonl").read_text().splitlines()[0])
        assert metrics["n_samples"] == 2 and sample["prompt"].startswith("<|im_start|>system\nBe exact.")
    aime = json.loads((out / "aime24" / "samples.jsonl").read_text().splitlines()[0])
    assert aime["id"] == "2024-I-1" and aime["gold"] == "1"


def test_suite_errors_name_the_key(tiny_model, tmp_path, capsys):
    def run(text: str) -> str:
        path = tmp_path / "s.yaml"
        path.write_text(text)
        assert _eval(tiny_model, "--suite", str(path), "--output", str(tmp_path / "out")) == 2
        return capsys.readouterr().err

    assert "benchmarks.0.benchmark: unknown benchmark 'gsm8' (did you mean 'gsm8k'?)" in \
        run("benchmarks: [{benchmark: gsm8, data: x.jsonl}]")
    assert "benchmarks.1.settings.max_new_token: unknown key; did you mean 'max_new_tokens'?" in run(
        "benchmarks: [{benchmark: gsm8k, data: x}, {benchmark: amc, data: y, settings: {max_new_token: 3}}]")
    assert "settings.mode: each benchmark is scored in its own mode" in \
        run("settings: {mode: mc}\nbenchmarks: [{benchmark: gsm8k, data: x}]")
    assert "aime named twice" in run("benchmarks: [{benchmark: aime, data: x}, {benchmark: aime, data: y}]")
    path = tmp_path / "ok.yaml"
    path.write_text("benchmarks: [{benchmark: gsm8k, data: x}]")
    assert _eval(tiny_model, "--suite", str(path)) == 2
    assert "give --output DIR" in capsys.readouterr().err
    assert _eval(tiny_model, "--suite", str(path), "--output", "x", "--split", "train", "--shots", "0") == 2
    assert "shots, fewshot_data in the suite file): drop --shots, --split" in capsys.readouterr().err


# --- comparing two models ------------------------------------------------------------------------

def _suite_dir(root: Path, per_benchmark: dict[str, list[list[bool]]]) -> Path:
    """A suite output folder whose problems' sampled answers are the given lists."""
    root.mkdir()
    results = []
    for name, correct in per_benchmark.items():
        rows = [{"id": str(i), "question": f"q{i}", "prompt": f"p{i}", "correct": c, "greedy_correct": c[0]}
                for i, c in enumerate(correct)]
        write_jsonl(root / name / "samples.jsonl", rows)
        results.append({"name": name, "benchmark": name, "metrics": {}})
    (root / "results.json").write_text(json.dumps({"benchmarks": results}))
    return root


def test_compare_two_suites_gives_each_benchmarks_delta_and_its_paired_standard_error(tmp_path, capsys):
    a = _suite_dir(tmp_path / "a", {"gsm8k": [[True, True], [True, False], [False, False], [True, True]],
                                    "aime": [[False, False], [True, False]]})
    b = _suite_dir(tmp_path / "b", {"gsm8k": [[False, True], [True, True], [False, False], [False, False]],
                                    "amc": [[True, True]], "aime": [[False, False], [False, False]]})
    out = tmp_path / "cmp.json"
    assert main(["compare", str(a), str(b), "--by", "avg", "--output", str(out)]) == 0
    rows = {r["benchmark"]: r for r in json.loads(out.read_text())["benchmarks"]}
    assert set(rows) == {"gsm8k", "aime"}  # the benchmarks both hold
    d = [1.0 - 0.5, 0.5 - 1.0, 0.0, 1.0 - 0.0]  # per-problem differences of avg@2, A - B
    mean = sum(d) / 4
    se = math.sqrt(sum((x - mean) ** 2 for x in d) / 3 / 4)
    assert rows["gsm8k"]["delta"] == pytest.approx(mean)
    assert rows["gsm8k"]["delta_stderr"] == pytest.approx(se)
    assert rows["gsm8k"]["a"] == pytest.approx(5 / 8) and rows["gsm8k"]["b"] == pytest.approx(3 / 8)
    assert rows["aime"]["delta"] == pytest.approx(0.25)
    printed = capsys.readouterr().out
    assert "| benchmark (avg) | problems | A | B | A − B |" in printed
    assert f"| gsm8k | 4 | 62.5 ± {100 * rows['gsm8k']['a_stderr']:.1f} |" in printed
    assert main(["compare", str(a), str(b), "--by", "maj@4"]) == 2
    assert "gsm8k: no 'maj@4_correct' (evaluated with: greedy, avg)" in capsys.readouterr().err


def test_compare_single_evaluations_reports_the_delta_too(tmp_path):
    a = [{"id": "1", "question": "q", "prompt": "x", "correct": [True, True], "greedy_correct": True},
         {"id": "2", "question": "r", "prompt": "y", "correct": [False, True], "greedy_correct": False}]
    b = [{**a[0], "prompt": "another template", "correct": [False, False], "greedy_correct": False},
         {**a[1], "prompt": "another template", "correct": [True, True]}]
    result = compare_samples(a, b, "avg")  # same ids and questions: two models' prompts may differ
    assert result["delta"] == pytest.approx(0.25) and result["delta_stderr"] == pytest.approx(0.75)
    write_jsonl(tmp_path / "a" / "samples.jsonl", a)
    write_jsonl(tmp_path / "b" / "samples.jsonl", b)
    out = tmp_path / "cmp.json"
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--output", str(out)]) == 0
    r = json.loads(out.read_text())
    assert (r["wins"], r["losses"], r["delta"], r["a_accuracy"]) == (1, 0, 0.5, 0.5)
