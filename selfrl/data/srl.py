"""SRL data: split expert solutions into numbered steps and build one instance per step.

SRL (Supervised Reinforcement Learning) turns an expert solution of N numbered steps into
N-1 instances: for k = 2..N the prompt holds the problem and steps 1..k-1, and the target
is step k.  Solutions that do not parse into steps are dropped and counted.

Parsing rules (:func:`split_steps`):

- A step starts on a line that begins with a marker: ``1.``, ``1)``, ``Step 1:``,
  ``Step 1.``, ``Step 1 -``, ``Step 1`` alone on its line, optionally bold (``**Step 1:**``,
  ``**1.**``) or a markdown heading (``### Step 1``).  A bare number needs ``.`` or ``)``
  followed by a space, so ``3.5 kg`` or ``12 apples`` never start a step.
- When any ``Step k`` marker is present, only ``Step k`` markers start steps, so a numbered
  sub-list inside a ``Step k`` solution stays part of its step.  A marker indented deeper
  than step 1's marker is a continuation too (a nested list).
- Lines after a marker, up to the next marker, belong to that step; blank lines are dropped
  and the others kept with their line breaks.  Text before step 1 is ignored.
- Numbers must run 1, 2, 3, ... and every step must have text; at least two steps are
  needed (SRL needs one step of context).  Otherwise the solution does not parse: ``None``.
- A trailing final-answer line (``The answer is \\boxed{14}.``, ``Final answer: 14``, a lone
  ``\\boxed{14}``) stays attached to the last step by default, because the last step is what
  the model must emit when it finishes the solution; ``keep_final_answer=False`` drops it.

The stored steps carry no number: :func:`selfrl.prompts.srl_messages` numbers the previous
steps, and the reward strips the number the model writes before its step.

>>> split_steps("We add.\\n1. 8 + 6 = 14.\\n2. 14 - 4 = 10.\\nThe answer is \\\\boxed{10}.")
['8 + 6 = 14.', '14 - 4 = 10.\\nThe answer is \\\\boxed{10}.']
>>> split_steps("**Step 1:** Add 8 and 6.\\nThat is 14.\\n**Step 2:** Take 4.", keep_final_answer=False)
['Add 8 and 6.\\nThat is 14.', 'Take 4.']
>>> split_steps("1. a\\n3. b") is None  # skipped number
True
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from selfrl.data.io import DataError, read_jsonl, write_jsonl
from selfrl.prompts import srl_messages

# The start of a step line: indent, optional heading / bold, optional "Step", the number.
_HEAD = re.compile(r"(?P<indent>[ \t]*)(?:#{1,6}[ \t]*)?(?P<bold>\*\*|__)?(?P<word>step[ \t]*)?(?P<num>\d+)",
                   re.IGNORECASE)
# What must follow the number: optional closing bold, a separator, optional closing bold,
# then a space or the end of the line (so "3.5" and "1.Add" are not markers).
_TAIL = re.compile(r"[ \t]*(?P<close1>\*\*|__)?[ \t]*(?P<sep>[.:)]|[-\u2013\u2014](?=\s))?"
                   r"(?P<close2>\*\*|__)?(?P<rest>(?:\s.*)?)$")
_FINAL_ANSWER = re.compile(
    # "The answer is ...", "Final answer: ...", "Therefore, the answer is ..."
    r"^\W*(?:(?:so|thus|hence|therefore)\W+)?(?:the\s+)?(?:final\s+)?answer\b"
    r"|^\W*\\boxed\{.*\}\W*$",  # a lone \boxed{...}
    re.IGNORECASE,
)


@dataclass(frozen=True)
class StepMarker:
    """A line that starts a step: its number, its kind, its indent and the text after the marker."""

    number: int
    word: bool  # "Step k" rather than a bare "k." / "k)"
    indent: int
    rest: str


def step_marker(line: str) -> StepMarker | None:
    """The step marker that ``line`` starts with, or ``None``.

    >>> step_marker("**Step 2:** Take 4.")
    StepMarker(number=2, word=True, indent=0, rest='Take 4.')
    >>> step_marker("3.5 kg of flour") is None, step_marker("Step 2 shows that") is None
    (True, True)
    """
    head = _HEAD.match(line)
    if head is None:
        return None
    tail = _TAIL.match(line, head.end())
    if tail is None:
        return None
    word, sep, rest = bool(head["word"]), tail["sep"], tail["rest"].strip()
    if not word and sep not in (".", ")"):
        return None
    if word and sep is None and rest:  # "Step 2 shows that ..." is prose, "Step 2" alone a heading
        return None
    if head["bold"] and not (tail["close1"] or tail["close2"]):
        rest = rest.replace(head["bold"], "", 1).strip()  # "**Step 1: Add.** Then ..." closes later
    return StepMarker(int(head["num"]), word, len(head["indent"].expandtabs(4)), rest)


def strip_step_marker(text: str) -> str:
    """``text`` without a leading step marker (``2.``, ``Step 2:``, ``**2.**``...).

    >>> strip_step_marker("2. Then he finds 6 more shells: 8 + 6 = 14.")
    'Then he finds 6 more shells: 8 + 6 = 14.'
    >>> strip_step_marker("Step 3: Multiply.\\nSo 42.")
    'Multiply.\\nSo 42.'
    """
    text = text.strip()
    first, _, more = text.partition("\n")
    marker = step_marker(first)
    if marker is None:
        return text
    # Continuation lines keep their indent, as split_steps keeps them.
    return "\n".join(part for part in (marker.rest, more.lstrip("\r\n").rstrip()) if part)


def split_steps(solution: str, keep_final_answer: bool = True) -> list[str] | None:
    """The numbered steps of ``solution`` (numbers removed), or ``None`` if it does not parse.

    See the module docstring for the rules.  ``keep_final_answer=False`` drops trailing
    final-answer lines from the last step instead of keeping them attached.
    """
    lines = solution.splitlines()
    markers = [step_marker(line) for line in lines]
    word_style = any(m is not None and m.word for m in markers)
    steps: list[list[str]] = []
    top_indent = 0
    for line, m in zip(lines, markers):
        starts = m is not None and m.word == word_style and (not steps or m.indent <= top_indent)
        if starts:
            if m.number != len(steps) + 1:
                return None
            if not steps:
                top_indent = m.indent
            steps.append([m.rest] if m.rest else [])
        elif steps and line.strip():
            steps[-1].append(line.rstrip())
    if len(steps) < 2:
        return None
    if not keep_final_answer:
        while len(steps[-1]) > 1 and _FINAL_ANSWER.search(steps[-1][-1].strip()):
            steps[-1].pop()
    texts = ["\n".join(step).strip() for step in steps]
    return texts if all(texts) else None


def build_instances(problem: str, steps: list[str]) -> list[dict]:
    """SRL's instances from one solution: for k = 2..N, steps 1..k-1 as context, step k as target.

    >>> rows = build_instances("Sam has 8 shells...", ["He has 8.", "8 + 6 = 14.", "14 - 4 = 10."])
    >>> [(r["step_index"], r["target"], len(r["previous_steps"])) for r in rows]
    [(2, '8 + 6 = 14.', 1), (3, '14 - 4 = 10.', 2)]
    >>> [m["role"] for m in rows[1]["prompt"]], rows[1]["prompt"][1]["content"].splitlines()[-2:]
    (['system', 'user'], ['1. He has 8.', '2. 8 + 6 = 14.'])
    """
    n = len(steps)
    return [
        {"prompt": srl_messages(problem, steps[: k - 1]), "target": steps[k - 1], "step_index": k,
         "n_steps": n, "problem": problem, "previous_steps": steps[: k - 1]}
        for k in range(2, n + 1)
    ]


def _text_field(row: dict, field: str, where: str) -> str:
    """``row[field]`` as text; a list of strings (s1K's ``thinking_trajectories``) is joined."""
    value = row[field]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = "\n".join(value)
    if not isinstance(value, str):
        raise DataError(f"{where}: field {field!r} must be a string, got {type(value).__name__}")
    return value


def _line_numbers(path: Path) -> list[int]:
    """The 1-based line number of each row :func:`read_jsonl` returns (it skips blank lines)."""
    with open(path, encoding="utf-8") as f:
        return [i for i, line in enumerate(f, start=1) if line.strip()]


def prepare_srl(input_path: str | os.PathLike, output_path: str | os.PathLike,
                problem_field: str = "problem", solution_field: str = "solution",
                answer_field: str | None = None, keep_final_answer: bool = True) -> dict[str, int]:
    """Read expert solutions from JSONL, write SRL instances as JSONL, return the counts.

    Each output row is a :func:`build_instances` row, plus ``answer`` (copied from
    ``answer_field`` when given, so RLVR can train on the same rows).  Solutions that do not
    parse are dropped and counted.

    Returns:
        ``{"solutions", "parsed", "dropped", "instances"}``.

    Raises:
        DataError: naming the file, the line and the field, for a malformed line, a missing
            field or a field that is not text; or when no solution parses (the output would
            be empty, most likely the wrong ``solution_field``).
    """
    input_path = Path(input_path)
    required = (problem_field, solution_field) + ((answer_field,) if answer_field else ())
    rows = read_jsonl(input_path, required)
    rows_out: list[dict] = []
    parsed = 0
    for row, lineno in zip(rows, _line_numbers(input_path)):
        where = f"{input_path}:{lineno}"
        problem = _text_field(row, problem_field, where)
        steps = split_steps(_text_field(row, solution_field, where), keep_final_answer)
        if steps is None:
            continue
        parsed += 1
        for inst in build_instances(problem, steps):
            if answer_field:
                inst["answer"] = row[answer_field]
            rows_out.append(inst)
    if parsed == 0:
        raise DataError(f"{input_path}: none of {len(rows)} solutions in field {solution_field!r} "
                        "parses into 2 or more numbered steps (1., 2., ... or Step 1:, Step 2:, ...)")
    write_jsonl(output_path, rows_out)
    return {"solutions": len(rows), "parsed": parsed, "dropped": len(rows) - parsed,
            "instances": len(rows_out)}
