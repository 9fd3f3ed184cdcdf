"""The ``arith`` task: seeded multi-step arithmetic word problems with expert solutions.

Every problem tracks one quantity of objects that a person owns through a chain of
operations (add, subtract, multiply).  The expert solution has one numbered step per
operation and ends with ``The answer is \\boxed{N}.`` so that every recipe (RLVR,
SeRL, SRL, self-judging, RLHF) can be fed from the same generator.

>>> gen = ArithGenerator(ArithSpec(min_ops=2, max_ops=2, max_number=9), seed=0)
>>> p = gen.sample()
>>> p.solution.splitlines()[-1].startswith("The answer is \\\\boxed{")
True
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field

NAMES = (
    "Mia", "Leo", "Ava", "Noah", "Emma", "Liam", "Zoe", "Omar", "Lena", "Ravi",
    "Sara", "Ben", "Nina", "Tom", "Yuki", "Ana", "Ivan", "Kira", "Max", "Lucy",
)
PRONOUN = {n: ("she" if n in {"Mia", "Ava", "Emma", "Zoe", "Lena", "Sara", "Nina", "Yuki",
                               "Ana", "Kira", "Lucy"} else "he") for n in NAMES}
OBJECTS = (
    "apples", "pens", "books", "stickers", "marbles", "cards", "coins", "shells",
    "cookies", "stamps", "toys", "rocks", "eggs", "candies", "buttons", "beads",
)
CONTAINERS = ("bags", "boxes", "jars", "baskets", "packs")

# Surface templates.  ``{n}`` is the operand, ``{o}`` the object, ``{p}`` the pronoun,
# ``{c}`` a container.  A solution step restates its sentence, then computes:
# "Then he finds 6 more shells: 8 + 6 = 14."  Restating lets a small model copy the
# operand from the question (an induction head continues the sentence it started), so
# what it must learn is the arithmetic.
ADD_TEMPLATES = (
    "Then {p} buys {n} more {o}.",
    "Then {p} finds {n} more {o}.",
    "Then a friend gives {obj_p} {n} {o}.",
    "Then {p} wins {n} {o} in a game.",
)
SUB_TEMPLATES = (
    "Then {p} gives away {n} {o}.",
    "Then {p} loses {n} {o}.",
    "Then {p} sells {n} {o}.",
    "Then {p} uses {n} {o}.",
)
MUL_TEMPLATES = (
    ("Then the number of {o} {p} has doubles.", 2),
    ("Then the number of {o} {p} has triples.", 3),
)
START_PLAIN = (
    "{N} has {n} {o}.",
    "{N} starts with {n} {o}.",
    "There are {n} {o} in {N}'s room.",
)
START_MUL = (
    "{N} has {k} {c} with {m} {o} in each.",
    "{N} buys {k} {c} of {o} with {m} {o} in each.",
)
QUESTIONS = (
    "How many {o} does {N} have now?",
    "How many {o} does {N} have at the end?",
    "What is the number of {o} {N} has now?",
)


@dataclass(frozen=True)
class ArithSpec:
    """Difficulty of generated problems.

    Args:
        min_ops: fewest operations after the starting quantity.
        max_ops: most operations after the starting quantity.
        max_number: largest operand (and starting quantity) drawn.
        max_value: largest intermediate value allowed (keeps answers small).
        p_mul: probability that an operation (or the start) is a multiplication.
    """

    min_ops: int = 1
    max_ops: int = 2
    max_number: int = 10
    max_value: int = 40
    p_mul: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_mul <= 1.0:
            raise ValueError(f"need 0 <= p_mul <= 1, got {self.p_mul}")
        if not 1 <= self.min_ops <= self.max_ops:
            raise ValueError(f"need 1 <= min_ops <= max_ops, got {self.min_ops}, {self.max_ops}")
        if self.max_number < 2 or self.max_value < self.max_number:
            raise ValueError("need 2 <= max_number <= max_value")


@dataclass
class ArithProblem:
    """One problem: question text, numbered expert steps and the integer answer."""

    question: str
    steps: list[str]
    answer: int
    n_ops: int
    meta: dict = field(default_factory=dict)

    @property
    def solution(self) -> str:
        """The expert solution: numbered steps then ``The answer is \\boxed{N}.``"""
        lines = [f"{i}. {s}" for i, s in enumerate(self.steps, start=1)]
        lines.append(f"The answer is \\boxed{{{self.answer}}}.")
        return "\n".join(lines)

    def to_row(self) -> dict:
        row = asdict(self)
        row["solution"] = self.solution
        row["answer"] = str(self.answer)
        return row


class ArithGenerator:
    """Seeded, deterministic generator of :class:`ArithProblem`.

    The same ``(spec, seed)`` always yields the same sequence of problems.
    """

    def __init__(self, spec: ArithSpec, seed: int) -> None:
        self.spec = spec
        self.rng = random.Random(seed)

    def sample(self) -> ArithProblem:
        """Draw one problem."""
        r, s = self.rng, self.spec
        name, obj = r.choice(NAMES), r.choice(OBJECTS)
        p = PRONOUN[name]
        fmt = {"N": name, "o": obj, "p": p, "P": p.capitalize(),
               "obj_p": "her" if p == "she" else "him"}
        sentences, steps = [], []
        if s.max_value >= 4 and r.random() < s.p_mul:
            # Bounded so that k * m <= max_value (same draws as before when max_value >= 50).
            k = r.randint(2, min(5, s.max_value // 2))
            m = r.randint(2, min(10, s.max_number, s.max_value // k))
            value = k * m
            sentences.append(r.choice(START_MUL).format(k=k, m=m, c=r.choice(CONTAINERS), **fmt))
            steps.append(f"{sentences[-1][:-1]}: {k} * {m} = {value}.")
        else:
            value = r.randint(2, s.max_number)
            sentences.append(r.choice(START_PLAIN).format(n=value, **fmt))
            steps.append(sentences[-1])
        n_ops = r.randint(s.min_ops, s.max_ops)
        for _ in range(n_ops):
            value, sentence, step = self._operation(value, fmt)
            sentences.append(sentence)
            steps.append(step)
        sentences.append(r.choice(QUESTIONS).format(**fmt))
        return ArithProblem(" ".join(sentences), steps, value, n_ops,
                            meta={"name": name, "object": obj})

    def _operation(self, value: int, fmt: dict) -> tuple[int, str, str]:
        r, s = self.rng, self.spec
        kinds = ["add", "sub"]
        if s.p_mul > 0 and value * 2 <= s.max_value:
            kinds += ["mul"] * max(1, round(s.p_mul * 10))
        if value < 3:
            kinds = [k for k in kinds if k != "sub"]
        kind = r.choice(kinds)
        if kind == "mul" and r.random() < 0.6:  # keep mul rarer than the weights alone say
            kind = r.choice([k for k in ("add", "sub") if k in kinds])
        if kind == "add":
            n = r.randint(2, min(s.max_number, s.max_value - value)) if value <= s.max_value - 2 else 0
            if n == 0:
                kind = "sub"
            else:
                q = r.choice(ADD_TEMPLATES)
                new = value + n
                text = q.format(n=n, **fmt)
                return new, text, f"{text[:-1]}: {value} + {n} = {new}."
        if kind == "sub":
            n = r.randint(2, min(s.max_number, value - 1))
            q = r.choice(SUB_TEMPLATES)
            new = value - n
            text = q.format(n=n, **fmt)
            return new, text, f"{text[:-1]}: {value} - {n} = {new}."
        q, factor = r.choice([t for t in MUL_TEMPLATES if value * t[1] <= s.max_value])
        new = value * factor
        text = q.format(**fmt)
        return new, text, f"{text[:-1]}: {value} * {factor} = {new}."


def corrupt_solution(problem: ArithProblem, rng: random.Random) -> tuple[list[str], int]:
    """A plausible wrong solution: one step goes wrong and later steps carry the error.

    Three kinds of mistake, drawn at random: an arithmetic slip (the result is off by a
    little), the wrong operation (``+`` for ``-``), or a misread operand.  Returns the new
    steps and the wrong final answer (always different from the right one).

    >>> gen = ArithGenerator(ArithSpec(), seed=1)
    >>> prob = gen.sample()
    >>> steps, wrong = corrupt_solution(prob, random.Random(0))
    >>> wrong != prob.answer
    True
    """
    for _ in range(20):
        steps, wrong = _try_corrupt(problem, rng)
        if wrong != problem.answer and wrong >= 0:
            return steps, wrong
    # Fall back to a slip in the last step, which always changes the answer.
    *head, last = problem.steps
    delta = rng.choice([-2, -1, 1, 2])
    wrong = max(0, problem.answer + delta)
    if wrong == problem.answer:
        wrong = problem.answer + 1
    fixed = last.rsplit("=", 1)[0] + f"= {wrong}."
    return [*head, fixed], wrong


def _try_corrupt(problem: ArithProblem, rng: random.Random) -> tuple[list[str], int]:
    ops = _parse_steps(problem.steps)
    i = rng.randrange(len(ops))
    kind = rng.choice(["slip", "operation", "operand"])
    new_steps, value = [], None
    for j, (prefix, a, op, b, _res, suffix) in enumerate(ops):
        if value is not None and a is not None:
            a = value
        if j == i and b is not None:
            if kind == "operation" and op in "+-":
                op = "-" if op == "+" else "+"
            elif kind == "operand":
                b = max(1, b + rng.choice([-2, -1, 1, 2]))
        res = _apply(a, op, b) if b is not None else a
        if j == i and (kind == "slip" or b is None):
            res = max(0, res + rng.choice([-2, -1, 1, 2]))
        value = res
        if b is None:
            new_steps.append(f"{prefix}{res}{suffix}")
        else:
            new_steps.append(f"{prefix}{a} {op} {b} = {res}{suffix}")
    return new_steps, value


def _apply(a: int, op: str, b: int) -> int:
    return {"+": a + b, "-": a - b, "*": a * b}[op]


def _parse_steps(steps: list[str]) -> list[tuple]:
    """Split each step into (prefix, a, op, b, result, suffix); plain starts have op None."""
    out = []
    for s in steps:
        m = re.search(r"(\d+) ([-+*]) (\d+) = (\d+)", s)
        if m:
            out.append((s[: m.start()], int(m.group(1)), m.group(2), int(m.group(3)),
                        int(m.group(4)), s[m.end():]))
        else:
            m = re.search(r"(\d+)", s)
            out.append((s[: m.start()], int(m.group(1)), None, None, int(m.group(1)),
                        s[m.end():]))
    return out


def _template_regex(template: str) -> re.Pattern:
    """A template with ``{n}``/``{k}``/``{m}`` numbers and word placeholders as a regex."""
    out, pos = "", 0
    for m in re.finditer(r"\{(\w+)\}", template):
        out += re.escape(template[pos:m.start()])
        name = m.group(1)
        out += rf"(?P<{name}>\d+)" if name in ("n", "k", "m") else r"[\w']+"
        pos = m.end()
    return re.compile("^" + out + re.escape(template[pos:]) + "$")


_START_RES = [_template_regex(t) for t in START_PLAIN + START_MUL]
_ADD_RES = [_template_regex(t) for t in ADD_TEMPLATES]
_SUB_RES = [_template_regex(t) for t in SUB_TEMPLATES]
_MUL_RES = [(_template_regex(t), f) for t, f in MUL_TEMPLATES]
_QUESTION_RES = [_template_regex(t) for t in QUESTIONS]


def solve_arith_text(text: str) -> int | None:
    """The answer of a problem written in the arith task's grammar, or ``None`` if it does not
    parse (used to grade problems a model writes itself, e.g. during self-play).

    >>> solve_arith_text("Tom has 3 pens. Then he buys 4 more pens. How many pens does Tom have now?")
    7
    >>> solve_arith_text("Tom has pens. How many?") is None
    True
    """
    sentences = [s for s in re.split(r"(?<=[.?])\s+", text.strip()) if s]
    if len(sentences) < 2 or not any(r.match(sentences[-1]) for r in _QUESTION_RES):
        return None
    value = None
    for r in _START_RES:
        m = r.match(sentences[0])
        if m:
            d = m.groupdict()
            value = int(d["n"]) if "n" in d else int(d["k"]) * int(d["m"])
            break
    if value is None:
        return None
    for s in sentences[1:-1]:
        step = _apply_sentence(s, value)
        if step is None:
            return None
        value = step
    return value


def _apply_sentence(sentence: str, value: int) -> int | None:
    for r in _ADD_RES:
        m = r.match(sentence)
        if m:
            return value + int(m.group("n"))
    for r in _SUB_RES:
        m = r.match(sentence)
        if m:
            return value - int(m.group("n"))
    for r, factor in _MUL_RES:
        if r.match(sentence):
            return value * factor
    return None
