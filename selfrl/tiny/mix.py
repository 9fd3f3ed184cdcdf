"""The embedded model's supervised multi-task mix, drawn from the ``arith`` task.

Four skills, one per recipe that needs the policy to do more than solve:

- ``solve``: the problem → numbered steps ending ``The answer is \\boxed{N}.`` (every recipe);
- ``self_instruct``: SeRL's few-shot prompt → one new problem (self-play);
- ``judge_serl`` / ``judge_srr1``: a right and a wrong solution → the right side, in SERL's
  ``\\boxed{1}`` and SR-R1's ``Winner: response A`` formats (self-judging);
- ``srl_step``: the problem and the first k-1 steps → ``<think>…</think>`` then step k (SRL);
- ``solve_direct``: the problem → only ``The answer is \\boxed{N}.``, no working (the
  answer-only solutions that fill real corpora; off in the shipped build,
  ``TinyBuildConfig.direct_share`` turns it on);
- ``facts``: a drill of the ``a op b`` calculations the solutions use → each with its result
  (a curriculum row, not a recipe skill: about twenty facts for the tokens of one solution).

Rows are TRL prompt-completion conversations, so the loss falls on the completion only.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace

from selfrl.data.arith import ArithGenerator, ArithProblem, ArithSpec, corrupt_solution
from selfrl.data.arith_files import N_FEWSHOT
from selfrl.prompts import (
    self_instruct_messages,
    serl_judge_messages,
    solve_messages,
    srl_messages,
    srr1_judge_messages,
)


@dataclass(frozen=True)
class MixWeights:
    """Share of each skill in the mix (normalised)."""

    solve: float = 0.67
    self_instruct: float = 0.05
    judge_serl: float = 0.09
    judge_srr1: float = 0.09
    srl_step: float = 0.10
    facts: float = 0.0  # off in the shipped build (RESULTS.md: the drill did not help)
    solve_direct: float = 0.0


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def solve_row(p: ArithProblem) -> dict:
    return {"prompt": solve_messages(p.question), "completion": _assistant(p.solution)}


def direct_row(p: ArithProblem) -> dict:
    """The problem answered without working: the last line of the expert solution only."""
    return {"prompt": solve_messages(p.question),
            "completion": _assistant(f"The answer is \\boxed{{{p.answer}}}.")}


def self_instruct_row(pool: list[ArithProblem], target: ArithProblem, rng: random.Random) -> dict:
    examples = [q.question for q in rng.sample(pool, N_FEWSHOT)]
    return {"prompt": self_instruct_messages(examples), "completion": _assistant(target.question)}


JUDGE_STYLES = ("none", "first_diff", "walk", "solve_step", "walk_solve_step", "solve")

_CALC = re.compile(r"(\d+) ([-+*]) (\d+) = (\d+)")


def facts_row(problems: list[ArithProblem]) -> dict:
    """A drill row: the calculations in ``problems``' solutions, each then its result.

    >>> from selfrl.data.arith import ArithGenerator
    >>> row = facts_row([ArithGenerator(ArithSpec(), seed=3).sample() for _ in range(4)])
    >>> q, a = row["prompt"][0]["content"].splitlines(), row["completion"][0]["content"].splitlines()
    >>> len(q) == len(a) and all(x.startswith(y + " = ") for x, y in zip(a, q))
    True
    """
    calcs = [m.groups() for p in problems for step in p.steps for m in _CALC.finditer(step)]
    question = "\n".join(f"{a} {op} {b}" for a, op, b, _ in calcs)
    answer = "\n".join(f"{a} {op} {b} = {r}" for a, op, b, r in calcs)
    return {"prompt": [{"role": "user", "content": question}], "completion": _assistant(answer)}


def judge_rows(p: ArithProblem, rng: random.Random, style: str = "first_diff") -> tuple[dict, dict]:
    """One SERL-format and one SR-R1-format judging example on the same pair.

    ``style`` is the check written before the verdict: ``none`` (verdict alone, as SERL's
    prompt asks); ``first_diff`` (the question's sentence for the first step where the two
    solutions differ, then each side's version of that step); ``walk`` (the same, preceded
    by one ``k. same: …`` line per agreeing step, so the model finds the differing step by
    walking the two solutions in order instead of jumping to it); ``solve`` (the judge
    solves the problem itself, then names each side's final answer: the verdict is the side
    that matches, so a judge is right whenever its own solution is).  The comparison comes
    *before* the verdict, so a small model decides on one step it can check rather than
    on two whole solutions (the parsers read the single box or winner line after it).

    >>> from selfrl.data.arith import ArithGenerator
    >>> serl, _ = judge_rows(ArithGenerator(ArithSpec(), seed=3).sample(), random.Random(0))
    >>> serl["completion"][0]["content"].splitlines()[-1][-3:] in ("{1}", "{2}")
    True
    """
    wrong_steps, wrong = corrupt_solution(p, rng)
    wrong_text = ArithProblem(p.question, wrong_steps, wrong, p.n_ops).solution
    bad = next(i for i, (s, w) in enumerate(zip(p.steps, wrong_steps)) if s != w)
    sentence = p.steps[bad].split(": ", 1)[0].rstrip(".")
    right, wrong_eq = _equation(p.steps[bad]), _equation(wrong_steps[bad])

    if style not in JUDGE_STYLES:
        raise ValueError(f"judge style {style!r}: expected one of {JUDGE_STYLES}")
    walked = "".join(f"{i + 1}. same: {_equation(s)}.\n" for i, s in enumerate(p.steps[:bad]))

    # solve_step: the judge writes step k as it would solve it, so the verdict is a match.
    own = p.steps[bad] if style.endswith("solve_step") else f"{sentence}."

    def check(first: bool, labels: tuple[str, str]) -> str:
        if style == "none":
            return ""
        if style == "solve":
            a, b = (p.answer, wrong) if first else (wrong, p.answer)
            mine = "".join(f"{i}. {s}\n" for i, s in enumerate(p.steps, start=1))
            return f"{mine}My answer: {p.answer}.\n{labels[0]}: {a}.\n{labels[1]}: {b}.\n"
        a, b = (right, wrong_eq) if first else (wrong_eq, right)
        head = walked if style.startswith("walk") else ""
        return f"{head}Step {bad + 1}: {own}\n{labels[0]}: {a}.\n{labels[1]}: {b}.\n"

    first = rng.random() < 0.5
    a, b = (p.solution, wrong_text) if first else (wrong_text, p.solution)
    verdict = "\\boxed{1}" if first else "\\boxed{2}"
    serl = {"prompt": serl_judge_messages(p.question, a, b),
            "completion": _assistant(check(first, ("(1)", "(2)")) + verdict)}
    first = rng.random() < 0.5
    a, b = (p.solution, wrong_text) if first else (wrong_text, p.solution)
    srr1 = {"prompt": srr1_judge_messages(p.question, a, b),
            "completion": _assistant(check(first, ("A", "B")) + f"Winner: response {'A' if first else 'B'}")}
    return serl, srr1


def _equation(step: str) -> str:
    """The ``a op b = c`` part of a step (the whole step, less its period, when it has none)."""
    return step.split(": ", 1)[-1].rstrip(".") if ": " in step else step.rstrip(".")


def srl_think(p: ArithProblem, k: int) -> str:
    """The thought before step k (1-based, k ≥ 2): the running total that step k starts from."""
    total = re.findall(r"\d+", p.steps[k - 2])[-1]
    return f"So far: {total}."


def srl_row(p: ArithProblem, rng: random.Random) -> dict:
    k = rng.randint(2, len(p.steps))
    target = f"<think>{srl_think(p, k)}</think>\n{k}. {p.steps[k - 1]}"
    return {"prompt": srl_messages(p.question, p.steps[: k - 1]), "completion": _assistant(target)}


def build_mix(n_rows: int, spec: ArithSpec, exclude: set[str], seed: int,
              weights: MixWeights = MixWeights(), judge_style: str = "first_diff") -> list[dict]:
    """Draw ``n_rows`` training rows; no question in ``exclude`` (the held-out sets) appears."""
    rng = random.Random(seed)
    gen = ArithGenerator(spec, seed)
    hard = ArithGenerator(replace(spec, min_ops=1, max_ops=spec.max_ops + 1), seed + 1)

    def fresh() -> ArithProblem:
        # Mostly the training difficulty, sometimes shorter or longer chains.
        g = hard if rng.random() < 0.2 else gen
        while True:
            p = g.sample()
            if p.question not in exclude:
                return p

    pool = [fresh() for _ in range(500)]
    names = list(vars(weights))
    probs = [getattr(weights, n) for n in names]
    rows: list[dict] = []
    while len(rows) < n_rows:
        kind = rng.choices(names, probs)[0]
        p = fresh()
        if kind == "solve":
            rows.append(solve_row(p))
        elif kind == "solve_direct":
            rows.append(direct_row(p))
        elif kind == "self_instruct":
            rows.append(self_instruct_row(pool, p, rng))
        elif kind == "srl_step":
            rows.append(srl_row(p, rng))
        elif kind == "facts":
            rows.append(facts_row([p] + [fresh() for _ in range(11)]))
        else:
            serl, srr1 = judge_rows(p, rng, judge_style)
            rows.append(serl if kind == "judge_serl" else srr1)
    return rows[:n_rows]
