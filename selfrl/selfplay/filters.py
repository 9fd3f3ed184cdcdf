"""SeRL's online format filters for self-generated instructions, each a small named function.

Applied in SeRL's order; each returns ``None`` to keep the text or a short reason to drop
it.  ROUGE-L novelty and the difficulty filter live beside these (they need state).

>>> format_reject("Tom has 3 pens and buys 2 more. How many pens does he have?") is None
True
>>> format_reject("Draw a graph of 3 apples.")
'banned_word'
"""

from __future__ import annotations

import re
from collections.abc import Callable

BANNED = ("image", "graph", "picture", "file", "map", "draw", "plot", "go to")
_BANNED_RE = re.compile(r"\b(" + "|".join(re.escape(w) + "s?" for w in BANNED) + r")\b", re.I)


def empty(text: str) -> str | None:
    return "empty" if not " ".join(text.split()) else None


def word_count(text: str, low: int = 4, high: int = 150) -> str | None:
    n = len(text.split())
    return "too_short" if n < low else "too_long" if n > high else None


def banned_word(text: str) -> str | None:
    return "banned_word" if _BANNED_RE.search(text) else None


def write_a_program(text: str) -> str | None:
    return "write_a_program" if text.strip().lower().startswith("write a program") else None


def bad_start(text: str) -> str | None:
    first = text.strip()[:1]
    if not first:
        return "empty"
    if not first.isascii() or not (first.isalnum()):
        return "bad_start"
    return None


FORMAT_FILTERS: tuple[Callable[[str], str | None], ...] = (
    empty, word_count, banned_word, write_a_program, bad_start,
)


def format_reject(text: str) -> str | None:
    """The first format filter that rejects ``text`` (its reason), or ``None``."""
    for f in FORMAT_FILTERS:
        reason = f(text)
        if reason:
            return reason
    return None


def is_well_formed_problem(text: str) -> bool:
    """A generated problem passes every format filter, states a number and asks a question."""
    return format_reject(text) is None and any(c.isdigit() for c in text) and text.rstrip().endswith("?")
