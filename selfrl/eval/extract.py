"""Answer extraction and equivalence.

Extraction order for math: the last ``\\boxed{…}`` (nested braces kept), then
"The answer is …", then the last number in the text.  Equivalence uses math-verify with
its timeout, after a fast exact path for plain numbers.

>>> extract_answer("so \\\\boxed{\\\\frac{1}{2}} and then")
'\\\\frac{1}{2}'
>>> extract_answer("The answer is 1,234.")
'1,234'
>>> grade("0.5", "\\\\frac{1}{2}").correct
True
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?(?:/\d+)?")
_ANSWER_IS = re.compile(r"answer is[:\s]*\$?([^\n$]+?)\$?\s*(?:\.\s|\.$|$|\n)", re.IGNORECASE)
_PLAIN = re.compile(r"^-?\d+(?:\.\d+)?$")
_SCIENTIFIC = re.compile(r"^(-?\d+(?:\.\d+)?)[eE]([-+]?\d+)$")  # 1.3e-3, as Minerva's answers write some
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{…}`` (or ``\\fbox{…}``), nested braces balanced."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth, j = 1, i
    while j < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        j += 1
    return text[i:j - 1].strip() if depth == 0 else None


def extract_answer(text: str) -> str | None:
    """The model's final answer as a string, or ``None`` when nothing can be found."""
    return answer_with_source(text)[0]


def answer_with_source(text: str) -> tuple[str | None, str | None]:
    """The final answer and where it was found: ``"boxed"``, ``"answer_is"`` (both a stated
    answer, the form prompts ask for), ``"last_number"`` (a fallback), or ``None``.

    >>> answer_with_source("3 + 4 = 7. The answer is 7.")
    ('7', 'answer_is')
    >>> answer_with_source("3 + 4 = 7")
    ('7', 'last_number')
    """
    boxed = last_boxed(text)
    if boxed:
        return boxed, "boxed"
    m = list(_ANSWER_IS.finditer(text))
    if m:
        return m[-1].group(1).strip().rstrip("."), "answer_is"
    nums = _NUMBER.findall(text)
    return (nums[-1], "last_number") if nums else (None, None)


def states_answer(text: str) -> bool:
    """Whether a completion states its answer in a requested form (``\\boxed{}`` or "The answer
    is ..."), rather than leaving it to be read from its last number."""
    return answer_with_source(text)[1] in ("boxed", "answer_is")


def _normalise(ans: str) -> str:
    s = ans.strip().strip("$").strip()
    s = re.sub(r"^\\text\{(.*)\}$", r"\1", s)
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    return s


def _as_number(s: str) -> float | None:
    return float(s) if _PLAIN.match(s) or _SCIENTIFIC.match(s) else None


@dataclass(frozen=True)
class Grade:
    """``correct`` is never True when ``gold_parsed`` is False."""

    correct: bool
    gold_parsed: bool


def parse_math(ans: str):
    """math-verify's parse of an answer string (an empty list when it cannot parse)."""
    from math_verify import parse

    s = _normalise(ans)
    sci = _SCIENTIFIC.match(s)
    if sci:  # math-verify would read the e as Euler's number
        s = f"{sci.group(1)} \\times 10^{{{sci.group(2)}}}"
    return parse(f"${s}$", parsing_timeout=5) or parse(s, parsing_timeout=5)


def equivalent(a: str | None, b: str | None) -> bool:
    """Whether two answers are mathematically equal (math-verify; plain numbers fast)."""
    if a is None or b is None:
        return False
    na, nb = _normalise(a), _normalise(b)
    if na == nb:
        return True
    fa, fb = _as_number(na), _as_number(nb)
    if fa is not None and fb is not None:
        return math.isclose(fa, fb, rel_tol=1e-12, abs_tol=1e-9)
    from math_verify import verify

    pa, pb = parse_math(a), parse_math(b)
    if not pa or not pb:
        return False
    return bool(verify(pa, pb, timeout_seconds=5) or verify(pb, pa, timeout_seconds=5))


def answer_parses(ans: str | None) -> bool:
    """Whether an answer is a readable math answer: a plain number, or a string math-verify
    parses to a (non-string) object.  Only such answers vote in a majority, and only such gold
    answers are graded; a truncated ``\\boxed{`` or a lone ``\\`` is not one.

    >>> answer_parses("1,234"), answer_parses("\\\\frac{1}{2}"), answer_parses("\\\\boxed{")
    (True, True, False)
    """
    if ans is None or not str(ans).strip():
        return False
    if _as_number(_normalise(str(ans))) is not None:
        return True
    # math-verify hands back the raw string alone when it cannot parse: only a parsed
    # (non-string) object means the answer is readable.
    return any(not isinstance(x, str) for x in parse_math(str(ans)))


def gold_parses(gold: str | None) -> bool:
    """A gold answer is usable when math-verify (or the plain-number path) can read it."""
    return answer_parses(gold)


def grade(pred: str | None, gold: str | None) -> Grade:
    """Grade one extracted prediction against the gold answer."""
    if not gold_parses(gold):
        return Grade(False, False)
    return Grade(equivalent(pred, str(gold)), True)


# --- AIME-style integers and MMLU-Pro multiple choice -------------------------------

_AIME_INT = re.compile(r"^\d{1,3}$")


def extract_aime(text: str) -> str | None:
    """An integer answer in 0–999 (leading zeros dropped), or ``None``."""
    ans = extract_answer(text)
    if ans is None:
        return None
    s = _normalise(ans).lstrip("0") or "0"
    return s if _AIME_INT.match(s) else None


_MC_PATTERNS = (
    re.compile(r"answer is \(?([A-J])\)?"),
    re.compile(r"[aA]nswer:\s*\(?([A-J])\)?"),
)
_MC_LAST = re.compile(r"\b([A-J])\b")


def extract_choice(text: str) -> str | None:
    """MMLU-Pro's order: ``answer is (X)``, then ``Answer: X``, then the last standalone A–J."""
    for pat in _MC_PATTERNS:
        m = pat.findall(text)
        if m:
            return m[-1]
    m = _MC_LAST.findall(text)
    return m[-1] if m else None
