"""The seeds' benchmarks as published: each file's own schema, its prompt and its answer checking.

A benchmark reads rows in the schema its authors publish, from a local JSONL or Parquet file or
dataset folder (or a hub name where the hub is reachable), and turns each into an evaluation row:
``id``, ``question``, ``answer`` (the gold answer alone, e.g. GSM8K's number after ``####``), and
where the benchmark has them ``category`` and ``group``; the published fields stay beside them,
so a prompt template may use any of them.  Each benchmark names its answer checking
(:class:`~selfrl.eval.evaluate.EvalSettings` ``mode``) and its default prompt, a template the user
may override like any other (``--prompt-template``, ``data.prompt_template``).  ``instruct`` is
selfrl's own task (:mod:`selfrl.data.instruct`): no answer key, its rows' constraints checked when
the file is read and scored in the ``constraints`` mode.

>>> row = {"question": "Ann has 1,200 cups and buys 34. How many?", "answer": "1200 + 34 = 1234\\n#### 1,234"}
>>> BENCHMARKS.get("gsm8k").to_row(row)["answer"]
'1234'
>>> BENCHMARKS.get("gsm8k").to_row({"question": "?"})
Traceback (most recent call last):
...
selfrl.eval.benchmarks.SchemaError: missing field 'answer'

How it departs from the seeds' own evaluation code (Qwen2.5-Math's, MMLU-Pro's):

* the math prompt puts the instruction after the question in the user turn (DeepSeek's and
  Mistral's wording); SeRL's own ``pure`` prompt is the bare question (``--prompt-template
  '{question}'``), Qwen2.5-Math's puts the instruction in the system turn (``--system-prompt``);
* answers are compared with math-verify (:mod:`selfrl.eval.extract`), not each repository's
  own normaliser, so a handful of borderline answers may be graded differently;
* MMLU-Pro's few-shot examples are the first ``shots`` validation rows of the question's category
  (as its ``evaluate_from_local.py`` takes them), put in the user turn of the chat template.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from selfrl.data.constraints import ConstraintError, parse_constraints
from selfrl.data.io import DataError, read_rows
from selfrl.eval.extract import last_boxed
from selfrl.registry import Registry

MATH_PROMPT = "{question}\nPlease reason step by step, and put your final answer within \\boxed{}."

MMLU_PRO_HEADER = ("The following are multiple choice questions (with answers) about {category}. Think step "
                   "by step and then finish your answer with \"the answer is (X)\" where X is the correct "
                   "letter choice.\n\n\n")
MMLU_PRO_PROMPT = "{fewshot}Question:\n{question}\nOptions:\n{options}Answer: Let's think step by step."
LETTERS = "ABCDEFGHIJ"
# The published schemas' row ids (MATH-500, MMLU-Pro, most, AIME 2024, Qwen2.5-Math); else the row number.
ID_FIELDS = ("unique_id", "question_id", "id", "ID", "idx")

# SeRL's four groups of MMLU-Pro's 14 categories (its evaluation/data_utils.py, mmlu_pro_acc); a
# group's accuracy is over all its questions, so larger categories weigh more, as there.
SERL_GROUPS = {
    "STEM": ("biology", "chemistry", "computer science", "engineering", "math", "physics"),
    "Humanities": ("history", "law", "philosophy"),
    "Social Sciences": ("business", "economics", "health", "psychology"),
    "Other": ("other",),
}
GROUP_OF = {category: group for group, categories in SERL_GROUPS.items() for category in categories}


class SchemaError(ValueError):
    """A row that does not fit its benchmark's published schema (the loader adds file and row)."""


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: how its published rows read, how it is prompted and how it is scored.

    Args:
        title: the name people know it by.
        schema: the published fields, for error messages.
        mode: answer checking (``math``, ``aime`` or ``mc``; see :mod:`selfrl.eval.evaluate`).
        prompt: the default user turn (``{field}`` placeholders of the evaluation row).
        to_row: one published row → the evaluation row's own fields; raises :class:`SchemaError`.
        shots: few-shot examples by default (only a benchmark with ``fewshot`` takes any).
        fewshot: ``(examples, shots, row) -> text`` put in the row's ``fewshot`` field, from
            the rows of the benchmark's validation split (``None``: a zero-shot benchmark).
        answers: whether its rows carry a gold ``answer`` (``instruct``'s do not: its constraints
            are checked instead), so that a loader asks for one only where there is one.
    """

    title: str
    schema: str
    mode: str
    prompt: str
    to_row: Callable[[dict], dict]
    shots: int = 0
    fewshot: Callable[[list[dict], int, dict], str] | None = None
    answers: bool = True


BENCHMARKS: Registry[Benchmark] = Registry("benchmark")


def _field(row: dict, *names: str):
    """The value of the first of ``names`` that the row has (a published schema's spellings)."""
    for name in names:
        if name in row and row[name] is not None:
            return row[name]
    raise SchemaError(f"missing field {names[0]!r}" + (f" (or {', '.join(map(repr, names[1:]))})"
                                                      if len(names) > 1 else ""))


def _number_text(value) -> str:
    """A gold number as text: ``142.0`` → ``'142'``; strings as they stand."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


# --- math ---------------------------------------------------------------------------------

def gsm8k_row(row: dict) -> dict:
    """GSM8K: ``question``; ``answer`` is the worked solution ending ``#### N``: the gold is N."""
    question, answer = _field(row, "question"), str(_field(row, "answer"))
    if "####" not in answer:
        raise SchemaError("field 'answer' has no '#### N' final line")
    return {"question": question, "answer": answer.rsplit("####", 1)[1].strip().replace(",", "").rstrip(".")}


def math_row(row: dict) -> dict:
    """MATH and MATH-500: ``problem``; ``answer`` (MATH-500), else the last ``\\boxed{}`` of the
    ``solution`` (MATH); ``type`` or ``subject`` as the category, ``level`` kept."""
    if row.get("answer") not in (None, ""):
        gold = str(row["answer"])
    else:
        gold = last_boxed(str(_field(row, "solution", "answer"))) or ""  # "": no gold, listed by id
    out = {"question": _field(row, "problem"), "answer": gold}
    category = row.get("subject") or row.get("type")
    return {**out, "category": category} if category else out


def aime_row(row: dict) -> dict:
    """AIME 2024/2025: ``problem`` (``Problem`` in Maxwell-Jia/AIME_2024), an integer ``answer``
    (``Answer``)."""
    gold = _number_text(_field(row, "answer", "Answer"))
    return {"question": _field(row, "problem", "Problem"), "answer": gold}


def amc_row(row: dict) -> dict:
    """AMC (AI-MO/aimo-validation-amc): ``problem`` and a numeric ``answer`` (stored as 142.0)."""
    return {"question": _field(row, "problem", "question"), "answer": _number_text(_field(row, "answer"))}


def minerva_row(row: dict) -> dict:
    """Minerva Math: ``problem`` (or ``question``); ``answer``, else the last ``\\boxed{}`` of the
    ``solution`` (Qwen2.5-Math's copy); ``type`` (the course) as the category."""
    if row.get("answer") not in (None, ""):
        gold = _number_text(row["answer"])
    else:
        gold = last_boxed(str(_field(row, "solution", "answer"))) or ""
    out = {"question": _field(row, "problem", "question"), "answer": gold}
    return {**out, "category": row["type"]} if row.get("type") else out


def olympiadbench_row(row: dict) -> dict:
    """OlympiadBench (text-only, open-ended): ``question`` (after its ``context`` when there is
    one); ``final_answer`` is a list of LaTeX strings, several when ``is_multiple_answer``: the
    gold is them joined by ", " (without their ``$``); ``subfield`` as the category."""
    answers = _field(row, "final_answer", "answer")
    answers = [answers] if isinstance(answers, str) else list(answers)
    if not answers:
        raise SchemaError("field 'final_answer' is an empty list")
    gold = ", ".join(str(a).strip().strip("$").strip() for a in answers)
    question = str(_field(row, "question", "problem"))
    if row.get("context"):
        question = f"{row['context']}\n{question}"
    out = {"question": question, "answer": gold}
    return {**out, "category": row["subfield"]} if row.get("subfield") else out


# --- MMLU-Pro -------------------------------------------------------------------------------

def mmlu_pro_row(row: dict) -> dict:
    """MMLU-Pro: ``question``, ``options`` (a list of up to 10), ``answer`` (a letter) and
    ``answer_index``, ``category``; ``options`` becomes the lettered lines of the prompt and
    ``group`` SeRL's group of the category."""
    options = _field(row, "options")
    if not isinstance(options, list) or not 1 <= len(options) <= len(LETTERS):
        raise SchemaError(f"field 'options' must be a list of 1 to {len(LETTERS)} options, got {options!r}")
    letter = str(_field(row, "answer")).strip().upper()
    valid = LETTERS[:len(options)]
    if len(letter) != 1 or letter not in valid:
        raise SchemaError(f"answer {letter!r} is not one of its {len(options)} options "
                          f"({valid[0]}-{valid[-1]})")
    index = row.get("answer_index")
    if index is not None and int(index) != valid.index(letter):
        raise SchemaError(f"answer {letter!r} and answer_index {index} name different options")
    category = str(_field(row, "category"))
    return {"question": _field(row, "question"), "answer": letter, "options": format_options(options),
            "category": category, "group": GROUP_OF.get(category, "Other")}


def format_options(options: list) -> str:
    """MMLU-Pro's option lines: ``A. first``, one per line.

    >>> format_options(["4", "5"])
    'A. 4\\nB. 5\\n'
    """
    return "".join(f"{LETTERS[i]}. {option}\n" for i, option in enumerate(options))


def mmlu_pro_fewshot(examples: list[dict], shots: int, row: dict) -> str:
    """MMLU-Pro's chain-of-thought few-shot block for ``row``'s category: the instruction, then the
    first ``shots`` validation examples of that category, each with its ``cot_content`` (whose
    ``A: Let's think step by step.`` becomes ``Answer: ...``, as MMLU-Pro's own code writes it)."""
    category = row["category"]
    text = MMLU_PRO_HEADER.format(category=category)
    chosen = [e for e in examples if e.get("category") == category][:shots]
    if len(chosen) < shots:
        raise SchemaError(f"the few-shot rows hold {len(chosen)} examples of category {category!r}, "
                          f"{shots} needed (fewer with --shots)")
    for e in chosen:
        if not e.get("cot_content"):
            raise SchemaError(f"few-shot example {e.get('question_id', '?')} has no 'cot_content'")
        cot = str(e["cot_content"]).replace("A: Let's think step by step.",
                                            "Answer: Let's think step by step.")
        text += f"Question:\n{e['question']}\nOptions:\n{format_options(e['options'])}{cot}\n\n"
    return text


# --- instruction following ---------------------------------------------------------------------

def instruct_row(row: dict) -> dict:
    """The ``instruct`` task (``selfrl data instruct``): ``question`` and ``constraints`` (a list of
    ``{"kind", "params"}``), checked here, when the file is read: an unknown kind, a malformed
    parameter or constraints that cannot all hold stop the load.  There is no ``answer``: an
    evaluation shows the constraints as the row's ``gold``.  ``group`` (single, seen or held-out
    combination) is kept.

    >>> instruct_row({"question": "Describe fog. Answer in fewer than 9 words.",
    ...               "constraints": [{"kind": "max_words", "params": {"n": 9}}]})["constraints"]
    [{'kind': 'max_words', 'params': {'n': 9}}]
    """
    try:
        constraints = parse_constraints(_field(row, "constraints"))
    except ConstraintError as e:
        raise SchemaError(str(e)) from None
    out = {"question": _field(row, "question"), "constraints": [c.to_dict() for c in constraints]}
    return {**out, "group": row["group"]} if row.get("group") else out


# --- the table --------------------------------------------------------------------------------

MATH_SCHEMA = ("{problem, solution with \\boxed{...}, answer (MATH-500; MATH reads it from the solution), "
               "level, type or subject} (hendrycks/competition_math, HuggingFaceH4/MATH-500)")
BENCHMARKS.register("math")(Benchmark("MATH", MATH_SCHEMA, "math", MATH_PROMPT, math_row))
BENCHMARKS.register("math500")(Benchmark("MATH-500", MATH_SCHEMA, "math", MATH_PROMPT, math_row))
BENCHMARKS.register("gsm8k")(Benchmark(
    "GSM8K", "{question, answer: the worked solution ending '#### N'} (openai/gsm8k)", "math", MATH_PROMPT,
    gsm8k_row))
BENCHMARKS.register("aime")(Benchmark(
    "AIME", "{problem or Problem, answer or Answer: an integer 0-999} (Maxwell-Jia/AIME_2024, "
    "yentinglin/aime_2025, AI-MO/aimo-validation-aime)", "aime", MATH_PROMPT, aime_row))
BENCHMARKS.register("amc")(Benchmark(
    "AMC", "{problem, answer: a number} (AI-MO/aimo-validation-amc)", "math", MATH_PROMPT, amc_row))
BENCHMARKS.register("minerva")(Benchmark(
    "Minerva Math", "{problem or question, answer, or solution with \\boxed{...}} (Qwen2.5-Math's "
    "minerva_math, math-ai/minervamath)", "math", MATH_PROMPT, minerva_row))
BENCHMARKS.register("olympiadbench")(Benchmark(
    "OlympiadBench", "{question, final_answer: a list of LaTeX answers, optional context and subfield} "
    "(Hothan/OlympiadBench, OE_TO_maths_en_COMP)", "math", MATH_PROMPT, olympiadbench_row))
BENCHMARKS.register("mmlu_pro")(Benchmark(
    "MMLU-Pro", "{question, options: a list of up to 10, answer: a letter, answer_index, category; "
    "cot_content in the validation split} (TIGER-Lab/MMLU-Pro)", "mc", MMLU_PRO_PROMPT, mmlu_pro_row,
    shots=5, fewshot=mmlu_pro_fewshot))
BENCHMARKS.register("instruct")(Benchmark(
    "instruct", "{question, constraints: a list of {kind, params}, optional group} (selfrl data instruct)",
    "constraints", "{question}", instruct_row, answers=False))


# --- loading ----------------------------------------------------------------------------------

def load_benchmark(name: str, source: str | os.PathLike, split: str = "test", subset: str | None = None,
                   shots: int | None = None, fewshot_source: str | os.PathLike | None = None) -> list[dict]:
    """The evaluation rows of benchmark ``name`` read from ``source`` (see the module docstring).

    Args:
        name: a registered benchmark (``gsm8k``, ``math500``, ``mmlu_pro``, ...).
        source: a JSONL or Parquet file, a dataset folder or a hub name (:func:`selfrl.data.io.read_rows`).
        split: a dataset's split to evaluate.
        subset: a dataset's config name or a folder inside it.
        shots: few-shot examples (``None``: the benchmark's own number, MMLU-Pro's 5).
        fewshot_source: where the few-shot examples are (their ``validation`` split when a dataset;
            ``None``: ``source``'s own ``validation`` split when it is a dataset).

    Raises:
        DataError: naming the file, the row, the missing field and the benchmark's schema.
    """
    bench = BENCHMARKS.get(name)
    rows = read_rows(source, split=split, subset=subset)
    shots = bench.shots if shots is None else shots
    examples = _fewshot_examples(name, bench, source, subset, shots, fewshot_source)
    out = []
    for i, row in enumerate(rows, start=1):
        try:
            std = bench.to_row(row)
            if bench.fewshot is not None:
                std["fewshot"] = bench.fewshot(examples, shots, {**row, **std})
        except SchemaError as e:
            have = ", ".join(sorted(row)) or "none"
            raise DataError(f"{source}: row {i}: {e} (fields present: {have}); {bench.title} rows are "
                            f"{bench.schema}") from None
        ident = next((row[f] for f in ID_FIELDS if row.get(f) is not None), i)
        out.append({**row, **std, "id": str(ident)})
    return out


def _fewshot_examples(name: str, bench: Benchmark, source, subset, shots: int, fewshot_source) -> list[dict]:
    if shots == 0:
        return []
    if bench.fewshot is None:
        raise DataError(f"benchmark {name} is zero-shot: it takes no few-shot examples (shots={shots})")
    if fewshot_source is None:
        if not Path(source).is_dir():
            raise DataError(f"{source}: {bench.title}'s {shots}-shot prompt takes its examples from the "
                            f"validation split: give the few-shot file (--fewshot-data), a dataset folder "
                            f"holding both splits, or 0 shots")
        fewshot_source = source
    return read_rows(fewshot_source, required=("question", "options", "category", "cot_content"),
                     split="validation", subset=subset)
