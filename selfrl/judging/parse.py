"""Parsing pairwise judgments in SERL's and SR-R1's formats.

>>> parse_serl("\\\\boxed{2}")
2
>>> parse_serl("\\\\boxed{1} or \\\\boxed{2}") is None
True
>>> parse_srr1("... so Winner: Response B")
'B'
"""

from __future__ import annotations

import re

_SERL = re.compile(r"\\boxed\{\s*([12])\s*\}")
_SRR1 = re.compile(r"winner: response (a|b)\b")
_SRR1_FALLBACKS = (
    re.compile(r"response (a|b) is better"),
    re.compile(r"response (a|b) wins"),
    re.compile(r"winner is response (a|b)\b"),
    re.compile(r"prefer response (a|b)\b"),
)


def parse_serl(text: str) -> int | None:
    """SERL: exactly one distinct ``\\boxed{1}``/``\\boxed{2}``; anything else is invalid."""
    found = set(_SERL.findall(text))
    return int(found.pop()) if len(found) == 1 else None


def parse_srr1(text: str) -> str | None:
    """SR-R1: lowercase, collapse spaces, ``winner: response a|b``, then fallback phrasings."""
    s = " ".join(text.lower().split())
    for pat in (_SRR1, *_SRR1_FALLBACKS):
        m = pat.findall(s)
        if m:
            return m[-1].upper()
    return None
