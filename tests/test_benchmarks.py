"""Issue 23: the seeds' benchmarks read as published.  Every loader on hand-written rows in the
exact published schema (the committed ``examples/benchmarks`` files and the awkward rows below),
their prompts, their scoring through a scripted engine, and the errors for a file in the wrong
schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfrl.data.io import DataError, write_jsonl
from selfrl.eval.benchmarks import (
    BENCHMARKS,
    GROUP_OF,
    MATH_PROMPT,
    SERL_GROUPS,
    load_benchmark,
    mmlu_pro_fewshot,
)
from selfrl.eval.evaluate import EvalSettings, evaluate
from selfrl.models import load_tokenizer
from selfrl.prompts import PromptFormat, PromptOptions, fill_template
from selfrl.rollout.base import Completion

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "benchmarks"


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("tiny-arith")


class Scripted:
    """An engine that answers each prompt with the text of the first key found in it."""

    def __init__(self, answers: dict[str, str], tokenizer=None) -> None:
        self.answers = answers
        self.tokenizer = tokenizer or load_tokenizer("tiny-arith")

    def generate(self, prompts, params, generator=None):
        out = []
        for p in prompts:
            text = self.tokenizer.decode(p)
            reply = next((a for key, a in self.answers.items() if key in text), "no idea")
            out.append([Completion(reply, [], [], "stop", p)] * params.n)
        return out


def _write(tmp_path: Path, rows: list[dict], name: str = "rows.jsonl") -> Path:
    path = tmp_path / name
    write_jsonl(path, rows)
    return path


# --- loaders on the published schemas ---------------------------------------------------------

def test_gsm8k_gold_is_the_number_after_the_hashes_without_commas():
    rows = load_benchmark("gsm8k", EXAMPLES / "gsm8k.jsonl")
    assert [r["answer"] for r in rows] == ["26", "1500", "6", "33"]  # "#### 1,500" in the file
    assert rows[0]["question"].startswith("Tom has 3 boxes") and rows[0]["id"] == "1"
    assert "<<3*12=36>>" in json.loads((EXAMPLES / "gsm8k.jsonl").read_text().splitlines()[0])["answer"]


def test_math500_and_math_golds_ids_and_categories():
    rows = load_benchmark("math500", EXAMPLES / "math500.jsonl")
    matrix = "\\begin{pmatrix} 3 \\\\ 8 \\end{pmatrix}"
    golds = ["\\frac{3}{4}", "4", "(-2, 2)", matrix, "5\\text{ cm}", "\\text{Ann}"]
    assert [r["answer"] for r in rows] == golds
    assert rows[0]["id"] == "test/prealgebra/1001.json" and rows[0]["category"] == "Prealgebra"
    assert rows[0]["level"] == 1  # the published fields stay beside the evaluation's
    old = load_benchmark("math", EXAMPLES / "math.jsonl")  # no answer field: the solution's last box
    assert [r["answer"] for r in old] == ["\\dfrac{3}{4}", "15", ""]
    assert old[0]["category"] == "Prealgebra"


def test_aime_amc_minerva_olympiadbench():
    aime24 = load_benchmark("aime", EXAMPLES / "aime24.jsonl")  # Problem, Answer (an int)
    assert [(r["id"], r["answer"]) for r in aime24] == [("2024-I-1", "1"), ("2024-I-2", "24")]
    aime25 = load_benchmark("aime", EXAMPLES / "aime25.jsonl")
    assert [(r["id"], r["answer"]) for r in aime25] == [("0", "16"), ("1", "24")]
    assert [r["answer"] for r in load_benchmark("amc", EXAMPLES / "amc.jsonl")] == ["142", "0.25"]  # 142.0
    minerva = load_benchmark("minerva", EXAMPLES / "minerva.jsonl")
    assert [r["answer"] for r in minerva] == ["60", "1.3e-3"]
    assert minerva[1]["category"].startswith("Introduction to Astronomy")
    olympiad = load_benchmark("olympiadbench", EXAMPLES / "olympiadbench.jsonl")
    assert [r["answer"] for r in olympiad] == ["3, -3", "[1,4)", "\\frac{1}{2}"]  # a list, joined; no $
    assert olympiad[2]["question"] == "Simplify fractions fully.\nCompute $\\frac{3}{6}$."  # context first
    assert olympiad[0]["id"] == "2001" and olympiad[0]["category"] == "Algebra"


def test_mmlu_pro_rows_options_groups_and_fewer_than_ten_options():
    rows = load_benchmark("mmlu_pro", EXAMPLES / "mmlu_pro")  # a folder: test, with validation's 5 shots
    assert [(r["id"], r["answer"], r["category"], r["group"]) for r in rows] == [
        ("1", "C", "math", "STEM"), ("2", "B", "math", "STEM"), ("3", "B", "history", "Humanities")]
    assert rows[0]["options"].splitlines()[-1] == "J. 22"
    assert rows[1]["options"] == "A. 4\nB. 5\nC. 6\nD. 7\n"  # 4 options only
    assert load_benchmark("mmlu_pro", EXAMPLES / "mmlu_pro" / "test.jsonl", shots=0)[1]["answer"] == "B"


def test_serl_groups_cover_mmlu_pros_fourteen_categories():
    categories = ["biology", "business", "chemistry", "computer science", "economics", "engineering",
                  "health", "history", "law", "math", "other", "philosophy", "physics", "psychology"]
    assert sorted(GROUP_OF) == categories
    assert set(SERL_GROUPS) == {"STEM", "Humanities", "Social Sciences", "Other"}


# --- prompts ------------------------------------------------------------------------------------

def test_the_math_prompt_and_an_override(tok):
    rows = load_benchmark("gsm8k", EXAMPLES / "gsm8k.jsonl")
    fmt = BENCHMARKS.get("gsm8k")
    text = tok.decode(PromptOptions().prompt_format(fmt.prompt).ids(tok, rows[2], "question"))
    assert text == ("<|im_start|>user\nMia reads 15 pages every day. How many days does she need to read a "
                    "book of 90 pages?\nPlease reason step by step, and put your final answer within "
                    "\\boxed{}.<|im_end|>\n<|im_start|>assistant\n")
    assert MATH_PROMPT.endswith("\\boxed{}.")
    own = PromptOptions(prompt_template="Q{id}: {question}", chat_template=False).prompt_format(fmt.prompt)
    assert tok.decode(own.ids(tok, rows[2], "question")) == "Q3: " + rows[2]["question"]


def test_mmlu_pros_five_shot_prompt_takes_the_categorys_validation_examples(tok):
    rows = load_benchmark("mmlu_pro", EXAMPLES / "mmlu_pro")
    history = rows[2]["fewshot"]
    assert history.startswith("The following are multiple choice questions (with answers) about history. "
                              "Think step by step and then finish your answer with \"the answer is (X)\"")
    assert history.count("Question:\n") == 5 and "What is 2 + 3?" not in history  # its own category only
    assert history.count("Answer: Let's think step by step.") == 5 and "A: Let's think" not in history
    prompt = BENCHMARKS.get("mmlu_pro").prompt
    text = fill_template(prompt, rows[2])
    assert text.endswith("Question:\nWhich came first, the printing press or the steam engine?\nOptions:\n"
                         "A. The steam engine\nB. The printing press\nC. Both at once\n"
                         "Answer: Let's think step by step.")
    zero = load_benchmark("mmlu_pro", EXAMPLES / "mmlu_pro" / "test.jsonl", shots=0)
    assert "Question:" not in zero[0]["fewshot"] and zero[0]["fewshot"].startswith("The following are")


def test_mmlu_pro_fewshot_needs_enough_examples_and_their_cot():
    example = {"question": "q", "options": ["a", "b"], "category": "law", "question_id": 7,
               "cot_content": "A: Let's think step by step. The answer is (A)."}
    with pytest.raises(ValueError, match="1 examples of category 'law', 2 needed"):
        mmlu_pro_fewshot([example], 2, {"category": "law"})
    with pytest.raises(ValueError, match="few-shot example 7 has no 'cot_content'"):
        mmlu_pro_fewshot([{**example, "cot_content": ""}], 1, {"category": "law"})


# --- bad input ----------------------------------------------------------------------------------

def test_a_file_in_the_wrong_schema_names_row_field_and_expected_schema(tmp_path):
    path = _write(tmp_path, [{"problem": "What is 1 + 1?", "solution": "\\boxed{2}", "answer": "2"}])
    with pytest.raises(DataError) as err:
        load_benchmark("gsm8k", path)
    msg = str(err.value)
    assert f"{path}: row 1: missing field 'question' (fields present: answer, problem, solution)" in msg
    assert "GSM8K rows are {question, answer: the worked solution ending '#### N'} (openai/gsm8k)" in msg
    no_hashes = _write(tmp_path, [{"question": "q", "answer": "12"}], "gsm.jsonl")
    with pytest.raises(DataError, match="row 1: field 'answer' has no '#### N' final line"):
        load_benchmark("gsm8k", no_hashes)
    with pytest.raises(DataError, match=r"missing field 'problem' \(or 'Problem'\)"):
        load_benchmark("aime", _write(tmp_path, [{"question": "q", "answer": 3}], "aime.jsonl"))


def test_an_mmlu_pro_answer_outside_its_options_names_the_row(tmp_path):
    good = {"question_id": 1, "question": "q", "options": ["x", "y", "z"], "answer": "B", "answer_index": 1,
            "cot_content": "", "category": "math", "src": "s"}
    path = _write(tmp_path, [good, {**good, "question_id": 2, "answer": "E", "answer_index": 4}])
    with pytest.raises(DataError, match=r"row 2: answer 'E' is not one of its 3 options \(A-C\)"):
        load_benchmark("mmlu_pro", path, shots=0)
    path = _write(tmp_path, [{**good, "answer_index": 2}], "mismatch.jsonl")
    with pytest.raises(DataError, match="row 1: answer 'B' and answer_index 2 name different options"):
        load_benchmark("mmlu_pro", path, shots=0)
    path = _write(tmp_path, [{**good, "options": [str(i) for i in range(11)]}], "eleven.jsonl")
    with pytest.raises(DataError, match="'options' must be a list of 1 to 10 options"):
        load_benchmark("mmlu_pro", path, shots=0)


def test_mmlu_pro_from_a_file_asks_for_its_fewshot_rows(tmp_path):
    with pytest.raises(DataError, match="validation split: give the few-shot file"):
        load_benchmark("mmlu_pro", EXAMPLES / "mmlu_pro" / "test.jsonl")
    rows = load_benchmark("mmlu_pro", EXAMPLES / "mmlu_pro" / "test.jsonl",
                          fewshot_source=EXAMPLES / "mmlu_pro" / "validation.jsonl")
    assert rows[0]["fewshot"].count("Question:") == 5
    with pytest.raises(DataError, match="gsm8k is zero-shot"):
        load_benchmark("gsm8k", EXAMPLES / "gsm8k.jsonl", shots=2)


def test_an_unknown_benchmark_names_the_close_one():
    with pytest.raises(KeyError, match="did you mean 'math500'"):
        load_benchmark("math-500", EXAMPLES / "math500.jsonl")


# --- scoring ------------------------------------------------------------------------------------

def test_awkward_golds_are_scored_right_and_an_unparsable_gold_is_listed_by_id(tok):
    rows = load_benchmark("math500", EXAMPLES / "math500.jsonl")
    rows += load_benchmark("math", EXAMPLES / "math.jsonl")
    engine = Scripted({"frac{1}{2} +": "So it is \\boxed{0.75}.", "2x + 3": "\\boxed{x = 4}",
                       "interval": "\\boxed{(-2,2)}",
                       "pmatrix": "\\boxed{\\begin{pmatrix}3\\\\8\\end{pmatrix}}",
                       "perimeter": "\\boxed{5}", "alphabetical": "\\boxed{\\text{Bob}}",
                       "dfrac{6}{8}": "\\boxed{\\frac{3}{4}}", "3 \\cdot 5": "\\boxed{15}",
                       "forgot": "\\boxed{7}"})
    metrics, samples = evaluate(None, tok, rows, EvalSettings(n=0), engine=engine, category_field="category")
    assert [s["greedy_correct"] for s in samples] == [True, True, True, True, True, False, True, True, False]
    assert metrics["n_unparsable_gold"] == 1 and metrics["unparsable_gold_ids"] == ["3"]


def test_each_benchmark_is_scored_in_its_own_mode(tok):
    def run(name, source, answers, **kw):
        rows = load_benchmark(name, EXAMPLES / source, **kw)
        bench = BENCHMARKS.get(name)
        _, samples = evaluate(None, tok, rows, EvalSettings(n=0, mode=bench.mode),
                              engine=Scripted(answers), prompt_format=PromptFormat(bench.prompt))
        return [s["greedy_correct"] for s in samples]

    gsm8k = {"Tom": "\\boxed{26}", "eggs": "The answer is 1,500.", "Mia": "6 days", "apples": "\\boxed{32}"}
    assert run("gsm8k", "gsm8k.jsonl", gsm8k) == [True, True, True, False]
    aime = {"remainder": "\\boxed{001}", "divisors": "\\boxed{24.5}"}
    assert run("aime", "aime24.jsonl", aime) == [True, False]
    assert run("amc", "amc.jsonl", {"12 \\cdot": "\\boxed{142}", "half": "\\boxed{\\frac14}"}) == [True, True]
    minerva = {"speed": "\\boxed{60}", "wavelength": "\\boxed{0.0013}"}
    assert run("minerva", "minerva.jsonl", minerva) == [True, True]
    olympiad = {"x^2 = 9": "\\boxed{-3, 3}", "interval": "\\boxed{[1, 4)}", "frac{3}{6}": "\\boxed{0.5}"}
    assert run("olympiadbench", "olympiadbench.jsonl", olympiad) == [True, True, True]
    assert run("mmlu_pro", "mmlu_pro", {"7 + 8": "... so the answer is (C).", "9 - 4": "Answer: B",
                                        "printing press or": "the answer is (A)"}) == [True, True, False]


def test_mmlu_pro_accuracy_per_category_and_per_serl_group_pools_the_questions(tok):
    rows = load_benchmark("mmlu_pro", EXAMPLES / "mmlu_pro")
    rows = rows + [{**rows[2], "id": "4", "category": "law", "group": "Humanities"}]
    engine = Scripted({"7 + 8": "the answer is (C)", "9 - 4": "the answer is (A)",
                       "printing press or": "the answer is (B)"})
    metrics, _ = evaluate(None, tok, rows, EvalSettings(n=0, mode="mc"), engine=engine,
                          prompt_format=PromptFormat("{question}"),
                          category_field="category", group_field="group")
    assert metrics["per_category"] == {"history": 1.0, "law": 1.0, "math": 0.5}
    assert metrics["per_group"] == {"Humanities": 1.0, "STEM": 0.5}  # over questions: 2 of 2, 1 of 2


# --- training on a benchmark's files ---------------------------------------------------------------

def test_a_run_reads_train_and_eval_in_a_benchmarks_schema(make_config):
    from selfrl.config.schema import RunConfig
    from selfrl.recipes import build_trainer

    cfg = make_config("gsm8k-run", extra={
        "data": {"benchmark": "gsm8k", "train": str(EXAMPLES / "gsm8k.jsonl"),
                 "eval": str(EXAMPLES / "gsm8k.jsonl")},
        "eval": {"at_start": True}})
    trainer = build_trainer(RunConfig.model_validate(cfg))
    assert sorted(r["answer"] for r in trainer.prompts.rows) == ["1500", "26", "33", "6"]
    prompt = trainer.tokenizer.decode(trainer.rollout(trainer.prompts.take(1)).prompt_ids[0])
    assert prompt.endswith("put your final answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n")
    trainer.fit()
    samples = [json.loads(line) for line in
               (Path(cfg["logging"]["run_dir"]) / "eval" / "step-000000.jsonl").read_text().splitlines()]
    assert [s["gold"] for s in samples][:2] == ["26", "1500"] and samples[0]["id"] == "1"


def test_in_training_evaluation_scores_a_benchmark_in_its_own_mode(make_config):
    from selfrl.config.schema import RunConfig
    from selfrl.recipes import build_trainer

    folder = str(EXAMPLES / "mmlu_pro")
    cfg = make_config("mmlu-run", extra={
        "data": {"benchmark": "mmlu_pro", "train": folder, "train_split": "validation", "eval": folder},
        "eval": {"limit": 0}})
    trainer = build_trainer(RunConfig.model_validate(cfg))
    answers = {"7 + 8": "the answer is (C)", "9 - 4": "the answer is (C)",
               "printing press or": "the answer is (B)"}
    trainer.engine.generate = Scripted(answers, trainer.tokenizer).generate
    metrics = trainer.evaluate()
    assert metrics["eval/greedy_pass@1"] == pytest.approx(2 / 3)  # letters, as MMLU-Pro is scored
    samples = (Path(cfg["logging"]["run_dir"]) / "eval" / "step-000000.jsonl").read_text().splitlines()
    sample = json.loads(samples[2])
    assert (sample["category"], sample["group"], sample["greedy_answer"]) == ("history", "Humanities", "B")


def test_data_benchmark_is_checked_when_the_config_loads(make_config):
    from pydantic import ValidationError

    from selfrl.config.schema import RunConfig

    with pytest.raises(ValidationError, match="unknown benchmark 'gsm8'.*did you mean 'gsm8k'"):
        RunConfig.model_validate(make_config(extra={"data": {"benchmark": "gsm8"}}))
    with pytest.raises(ValidationError, match="leave question_field and answer_field unset"):
        RunConfig.model_validate(make_config(extra={"data": {"benchmark": "gsm8k", "question_field": "q"}}))
