"""Evaluation: greedy pass@1, avg@n, maj@k and unbiased pass@k over a set of problems.

The same code runs from ``selfrl eval``, at the end of ``selfrl build-tiny`` and during
training (periodic held-out evaluation).

Modes:
- ``math``: answers extracted by :func:`selfrl.eval.extract.extract_answer`, compared
  with math-verify;
- ``aime``: integer answers 0–999;
- ``mc``: multiple choice A–J with MMLU-Pro's extraction order and per-category accuracy;
- ``constraints``: no answer key; each row's instruction-following constraints (its
  ``constraints`` field, :mod:`selfrl.data.constraints`) are checked, as IFEval scores: a
  completion is right (``greedy_pass@1``, ``avg@n``, ``pass@k``: prompt-level) when it satisfies
  all of them; ``greedy_constraint_level`` is the share of all constraints satisfied
  (constraint-level) and ``per_kind`` that share per kind.  There is no majority vote over
  open-ended answers, so no ``maj@k``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from pydantic import ConfigDict, Field, model_validator

from selfrl.config.loader import StrictModel
from selfrl.data.constraints import Constraint, describe, parse_constraints, satisfied
from selfrl.data.io import DataError
from selfrl.eval.extract import (
    answer_parses,
    equivalent,
    extract_aime,
    extract_answer,
    extract_choice,
    gold_parses,
    states_answer,
)
from selfrl.eval.metrics import majority_answer, mean_and_stderr, pass_at_k
from selfrl.prompts import PromptFormat
from selfrl.rollout.base import RolloutEngine, SamplingParams
from selfrl.rollout.hf import HFEngine

MODES = ("math", "aime", "mc", "constraints")  # EvalSettings.mode


class EvalSettings(StrictModel):
    """What an evaluation measures.  Each option is written here once: ``selfrl eval`` builds its
    flags from these fields and a training run's ``eval`` section reuses them."""

    model_config = ConfigDict(frozen=True)

    n: int = Field(16, ge=0, description="samples per problem for avg@n, maj@k and pass@k (0: greedy only)")
    ks: tuple[int, ...] = Field(None, description="k values for maj@k and pass@k, each at most n "
                                                  "(default: 1, 4 and 16, those up to n)")
    temperature: float = Field(1.0, ge=0, description="sampling temperature of the n samples")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling mass of the n samples")
    max_new_tokens: int = Field(256, ge=1, description="tokens per evaluated answer")
    batch_size: int = Field(128, ge=1, description="sequences decoded together")
    mode: Literal["math", "aime", "mc", "constraints"] = Field(
        "math", description="answer checking: math (math-verify), aime (integers 0-999), mc (A-J), "
                            "constraints (each row's instruction-following constraints checked; no answers)")
    greedy: bool = Field(True, description="measure greedy pass@1 too")
    seed: int = Field(0, description="seed of the sampled answers")

    @model_validator(mode="before")
    @classmethod
    def _default_ks(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("ks") is None:
            n = data.get("n", cls.model_fields["n"].default)
            data = {**data, "ks": tuple(k for k in (1, 4, 16) if isinstance(n, int) and k <= n)}
        return data

    @model_validator(mode="after")
    def _check_ks(self) -> EvalSettings:
        bad = [k for k in self.ks if k > self.n or k < 1]
        if bad:
            raise ValueError(f"k values {list(bad)} larger than n={self.n} (or < 1): maj@k and pass@k need "
                             f"k <= n samples")
        return self


def _mode_fns(mode: str) -> tuple[Callable[[str], str | None], Callable[[str | None, str], bool]]:
    if mode == "aime":
        return extract_aime, lambda a, b: a is not None and extract_aime(f"\\boxed{{{b}}}") == a
    if mode == "mc":
        return extract_choice, lambda a, b: a is not None and a == str(b).strip().upper()
    return extract_answer, equivalent


def can_vote(answer: str | None, mode: str) -> bool:
    """Whether an extracted answer votes in maj@k: in ``math`` mode only a readable answer
    (:func:`~selfrl.eval.extract.answer_parses`; a truncated ``\\boxed{`` does not), in the other
    modes any answer, since their extractors already return ``None`` for what they cannot read."""
    return answer_parses(answer) if mode == "math" else answer is not None


def gold_ok(gold: str, mode: str) -> bool:
    if mode == "aime":
        return extract_aime(f"\\boxed{{{gold}}}") is not None
    if mode == "mc":
        return str(gold).strip().upper() in list("ABCDEFGHIJ")
    return gold_parses(gold)


def prompt_ids(tokenizer, row: dict, question_field: str, fmt: PromptFormat | None = None) -> list[int]:
    """Token ids of a row's prompt (see :class:`selfrl.prompts.PromptFormat`; by default its
    chat ``prompt`` if present, else the question as a user turn through the chat template)."""
    return (fmt or PromptFormat()).ids(tokenizer, row, question_field)


def evaluate(model, tokenizer, rows: Sequence[dict], settings: EvalSettings | None = None,
             question_field: str = "question", answer_field: str = "answer",
             category_field: str | None = None, progress: bool = False,
             prompt_format: PromptFormat | None = None, engine: RolloutEngine | None = None,
             group_field: str | None = None) -> tuple[dict, list[dict]]:
    """Evaluate ``model`` on ``rows``; returns ``(metrics, samples)``.

    ``engine`` samples instead of an HF engine over ``model`` (which may then be ``None``): the
    trainer's own engine, or vLLM's.  A prompt longer than the format's ``max_tokens`` is left out
    or cut, and counted (``n_prompts_too_long``; the ids of those left out in
    ``skipped_prompt_ids``).  Rows are named by their ``id`` field, else their 1-based number.

    >>> from selfrl.models import load_tokenizer
    >>> from selfrl.rollout.base import Completion
    >>> class Says4:  # an engine whose every answer is 4
    ...     def generate(self, prompts, params, generator=None):
    ...         return [[Completion("The answer is 4.", [], [], "stop", p)] * params.n for p in prompts]
    >>> rows = [{"question": "2 + 2?", "answer": "4"}, {"question": "2 + 3?", "answer": "5"}]
    >>> tok = load_tokenizer("tiny-arith")
    >>> metrics, samples = evaluate(None, tok, rows, EvalSettings(n=2), engine=Says4())
    >>> metrics["greedy_pass@1"], metrics["avg@2"], metrics["maj@1"], samples[1]["id"]
    (0.5, 0.5, 0.5, '2')
    """
    settings = settings or EvalSettings()
    fmt = prompt_format or PromptFormat()
    extract, equal = _mode_fns(settings.mode)
    if engine is None:
        engine = HFEngine(model, tokenizer, batch_size=settings.batch_size, progress=progress)
    all_ids = [str(r.get("id", i)) for i, r in enumerate(rows, start=1)]
    fitted = fmt.fit(tokenizer, list(rows), question_field)
    if not fitted.kept:
        raise DataError(f"every one of the {len(rows)} prompts is longer than the limit of {fmt.max_tokens} "
                        f"tokens: nothing to evaluate")
    rows, ids, prompts = [rows[i] for i in fitted.kept], [all_ids[i] for i in fitted.kept], fitted.ids
    if settings.mode == "constraints":  # read before any sampling: a bad row fails at once
        checks = [row_constraints(r, i) for r, i in zip(rows, ids)]
    else:
        golds = [str(r[answer_field]) for r in rows]
        usable = [gold_ok(g, settings.mode) for g in golds]
    gen = torch.Generator().manual_seed(settings.seed)
    greedy = []
    if settings.greedy:
        params = SamplingParams(n=1, temperature=0.0, max_new_tokens=settings.max_new_tokens)
        greedy = [g[0].text for g in engine.generate(prompts, params, gen)]
    sampled: list[list[str]] = [[] for _ in rows]
    if settings.n:
        params = SamplingParams(n=settings.n, temperature=settings.temperature,
                                top_p=settings.top_p, max_new_tokens=settings.max_new_tokens)
        sampled = [[c.text for c in g] for g in engine.generate(prompts, params, gen)]
    samples = []
    for i, row in enumerate(rows):
        greedy_text = greedy[i] if greedy else None
        if settings.mode == "constraints":
            sample = _score_constraints(row, prompts[i], tokenizer, checks[i], greedy_text, sampled[i],
                                        question_field)
        else:
            sample = _score_row(row, prompts[i], tokenizer, golds[i], usable[i], greedy_text, sampled[i],
                                settings, extract, equal, question_field)
        if category_field:
            sample["category"] = row.get(category_field, "unknown")
        if group_field:
            sample["group"] = row.get(group_field, "unknown")
        samples.append({"id": ids[i], **sample})
    metrics = _aggregate(samples, settings)
    if fmt.max_tokens is not None:
        metrics.update(n_prompts_too_long=len(fitted.too_long), long_prompts=fmt.long_prompts)
        if fmt.long_prompts == "skip" and fitted.too_long:
            metrics["skipped_prompt_ids"] = [all_ids[i] for i in fitted.too_long]
    return metrics, samples


def row_constraints(row: dict, name: str) -> list[Constraint]:
    """A ``constraints``-mode row's constraints; a :class:`DataError` names the row.

    >>> row_constraints({"question": "Hi."}, "7")
    Traceback (most recent call last):
    ...
    selfrl.data.io.DataError: row 7: no 'constraints' field (fields: question); constraints mode checks each \
row's constraints
    """
    if "constraints" not in row:
        raise DataError(f"row {name}: no 'constraints' field (fields: {', '.join(sorted(row))}); constraints "
                        f"mode checks each row's constraints")
    return parse_constraints(row["constraints"], where=f"row {name}")


def _score_constraints(row, prompt, tokenizer, constraints, greedy_text, texts, question_field) -> dict:
    """A row of ``constraints`` mode: every completion's verdict on each constraint; it is right
    (``correct``, ``greedy_correct``) when it satisfies them all."""
    verdicts = [satisfied(t, constraints) for t in texts]
    out = {"prompt": tokenizer.decode(prompt), "question": row.get(question_field),
           "gold": describe(constraints), "gold_parsed": True, "kinds": [c.kind for c in constraints],
           "samples": texts, "verdicts": verdicts, "correct": [all(v) for v in verdicts], "n_unparsable": 0}
    if greedy_text is not None:
        greedy_verdicts = satisfied(greedy_text, constraints)
        out.update(greedy=greedy_text, greedy_verdicts=greedy_verdicts, greedy_correct=all(greedy_verdicts))
    return out


def _score_row(row, prompt, tokenizer, gold, usable, greedy_text, texts, settings,
               extract, equal, question_field) -> dict:
    answers = [extract(t) for t in texts]
    correct = [usable and equal(a, gold) for a in answers]
    votes = [a if can_vote(a, settings.mode) else None for a in answers]  # unreadable: no vote
    out = {"prompt": tokenizer.decode(prompt), "question": row.get(question_field), "gold": gold,
           "gold_parsed": usable,
           "samples": texts, "answers": answers, "correct": correct,
           "n_unparsable": sum(v is None for v in votes)}
    if greedy_text is not None:
        ga = extract(greedy_text)
        out.update(greedy=greedy_text, greedy_answer=ga, greedy_correct=usable and equal(ga, gold),
                   greedy_stated=states_answer(greedy_text))
    for k in settings.ks:
        maj = majority_answer(votes[:k], lambda a, b: equal(a, b)) if texts else None
        out[f"maj@{k}_correct"] = usable and maj is not None and equal(maj, gold)
    return out


def constraint_level(samples: list[dict], greedy: bool = True) -> tuple[tuple[float, float], dict]:
    """``constraints`` mode: the share of all constraints satisfied (IFEval's instruction level)
    with its standard error over constraints, and that share per kind; of the greedy completions,
    else of all the samples.

    >>> rows = [{"kinds": ["lowercase", "title"], "greedy_verdicts": [True, False]},
    ...         {"kinds": ["title"], "greedy_verdicts": [True]}]
    >>> (level, _), per_kind = constraint_level(rows)
    >>> round(level, 3), per_kind
    (0.667, {'lowercase': 1.0, 'title': 0.5})
    """
    by_kind: dict[str, list[float]] = defaultdict(list)
    for x in samples:
        for verdicts in [x["greedy_verdicts"]] if greedy else x["verdicts"]:
            for kind, ok in zip(x["kinds"], verdicts):
                by_kind[kind].append(float(ok))
    pooled = [ok for oks in by_kind.values() for ok in oks]
    return mean_and_stderr(pooled), {kind: sum(oks) / len(oks) for kind, oks in sorted(by_kind.items())}


def answer_form_split(samples: list[dict]) -> dict:
    """How much of greedy accuracy is answer format and how much correctness: the share of greedy
    completions that state their answer in a requested form (``\\boxed{}`` / "The answer is"), and
    the accuracy among those that do and those that do not (left out for an empty side).

    >>> answer_form_split([{"greedy_stated": True, "greedy_correct": True},
    ...                    {"greedy_stated": False, "greedy_correct": False}])["greedy_stated_share"]
    0.5
    """
    stated = [x["greedy_correct"] for x in samples if x["greedy_stated"]]
    other = [x["greedy_correct"] for x in samples if not x["greedy_stated"]]
    out = {"greedy_stated_share": len(stated) / max(1, len(samples))}
    for key, xs in (("greedy_acc_stated", stated), ("greedy_acc_unstated", other)):
        if xs:
            out[key] = sum(xs) / len(xs)
    return out


def problem_scores(samples: list[dict], s: EvalSettings) -> dict[str, list[float]]:
    """Each metric's score per problem (their means are the metrics): ``greedy_pass@1``, ``avg@n``
    (the share of the n samples that are right), ``maj@k`` and the unbiased ``pass@k``."""
    scores: dict[str, list[float]] = {}
    if s.greedy:
        scores["greedy_pass@1"] = [float(x["greedy_correct"]) for x in samples]
    if s.n:
        scores[f"avg@{s.n}"] = [sum(x["correct"]) / s.n for x in samples]
        for k in s.ks:
            if s.mode != "constraints":  # no majority vote over open-ended answers
                scores[f"maj@{k}"] = [float(x[f"maj@{k}_correct"]) for x in samples]
            scores[f"pass@{k}"] = [pass_at_k(s.n, sum(x["correct"]), k) for x in samples]
    return scores


def _aggregate(samples: list[dict], s: EvalSettings) -> dict:
    n_rows = len(samples)
    m: dict = {"n_problems": n_rows, "n_samples": s.n,
               "n_unparsable_gold": sum(not x["gold_parsed"] for x in samples)}
    scores = problem_scores(samples, s)
    stderr = {}
    for key, values in scores.items():
        m[key], stderr[key] = mean_and_stderr(values)
    if s.mode == "constraints":
        key = "greedy_constraint_level" if s.greedy else "sampled_constraint_level"
        (m[key], stderr[key]), m["per_kind"] = constraint_level(samples, s.greedy)
    elif s.greedy:
        m.update(answer_form_split(samples))
    if s.n and s.mode != "constraints":
        # sampled answers that could not be read (none found, or cut off): they never vote in maj@k
        m["unparsable_answer_frac"] = sum(x["n_unparsable"] for x in samples) / (n_rows * s.n)
    m["stderr"] = stderr  # of each mean over problems (the spread of the problems, not of the sampling)
    if m["n_unparsable_gold"]:
        m["unparsable_gold_ids"] = [x["id"] for x in samples if not x["gold_parsed"]]
    for key, name in (("category", "per_category"), ("group", "per_group")):
        if samples and key in samples[0]:
            main = scores["greedy_pass@1"] if s.greedy else scores[f"avg@{s.n}"]
            by: dict[str, list[float]] = defaultdict(list)
            for x, ok in zip(samples, main):
                by[str(x[key])].append(ok)
            m[name] = {c: sum(v) / len(v) for c, v in sorted(by.items())}
    return m
