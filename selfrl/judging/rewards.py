"""What to ask the judge for a group, and how to prepare responses for it.

* :func:`pair_schedule` — the ordered pairs ``(i, j)`` to judge (``i`` shown first), by mode
  from :data:`PAIR_SCHEDULES`:

  - ``"both_orders"`` (SERL): every unordered pair in both orders, ``k / 2`` times each, so
    position bias cancels; ``k`` must be even.
  - ``"coin_flip"`` (SR-R1): every unordered pair ``k`` times, a seeded coin flip per draw
    deciding which response is shown first (SR-R1 uses ``k = 1``).

* :func:`to_judgment` — a parsed judge answer (SERL ``1``/``2``, SR-R1 ``"A"``/``"B"``) as a
  :class:`~selfrl.judging.aggregators.Judgment`.
* :func:`strip_think` and :func:`word_count` — SERL strips a ``…</think>`` preamble before
  judging and measures length in words.

>>> pair_schedule(3, 2, None, "both_orders")
[(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)]
>>> import random
>>> len(pair_schedule(5, 1, random.Random(0), "coin_flip"))
10
>>> to_judgment(4, 2, 2), to_judgment(4, 2, "A"), to_judgment(4, 2, None)
(Judgment(i=4, j=2, winner=2), Judgment(i=4, j=2, winner=4), Judgment(i=4, j=2, winner=None))
"""

from __future__ import annotations

import random
from collections.abc import Callable
from itertools import combinations

from selfrl.judging.aggregators import Judgment
from selfrl.registry import Registry

PairSchedule = Callable[[int, int, "random.Random | None"], list[tuple[int, int]]]

PAIR_SCHEDULES: Registry[PairSchedule] = Registry("pair schedule")

_THINK_END = "</think>"


@PAIR_SCHEDULES.register("both_orders")
def both_orders(n: int, k: int, rng: random.Random | None = None) -> list[tuple[int, int]]:
    """SERL: for each unordered pair ``a < b``, ``k / 2`` copies of ``(a, b)`` then of ``(b, a)``.

    ``rng`` is unused (the schedule is fixed).  An odd ``k`` cannot be split evenly over the
    two orders, so it raises rather than silently biasing one position.
    """
    if k < 2 or k % 2:
        raise ValueError(f"both_orders needs an even number of judge samples per pair (k >= 2), got {k}")
    half = k // 2
    return [pair for a, b in combinations(range(n), 2) for pair in [(a, b)] * half + [(b, a)] * half]


@PAIR_SCHEDULES.register("coin_flip")
def coin_flip(n: int, k: int, rng: random.Random | None) -> list[tuple[int, int]]:
    """SR-R1: each unordered pair ``a < b`` ``k`` times, shown as ``(a, b)`` or ``(b, a)`` by a
    fair coin from ``rng`` (a seeded :class:`random.Random`, so a schedule can be replayed)."""
    if k < 1:
        raise ValueError(f"coin_flip needs k >= 1 judge samples per pair, got {k}")
    if rng is None:
        raise ValueError("coin_flip needs a random.Random (seed it to make the schedule reproducible)")
    return [(a, b) if rng.random() < 0.5 else (b, a)
            for a, b in combinations(range(n), 2) for _ in range(k)]


def pair_schedule(n: int, k: int, rng: random.Random | None, mode: str) -> list[tuple[int, int]]:
    """The ordered pairs ``(i, j)`` to judge for a group of ``n`` responses (``i`` shown first).

    ``mode`` names a schedule in :data:`PAIR_SCHEDULES`; an unknown one raises
    :class:`~selfrl.registry.UnknownNameError` listing the valid modes.
    """
    if n < 0:
        raise ValueError(f"group size must be >= 0, got {n}")
    return PAIR_SCHEDULES.get(mode)(n, k, rng)


def to_judgment(i: int, j: int, choice: int | str | None) -> Judgment:
    """A parsed answer about ``(i, j)`` (``i`` shown first) as a :class:`Judgment`.

    ``1``/``"A"`` pick ``i`` and ``2``/``"B"`` pick ``j`` (the outputs of
    :func:`~selfrl.judging.parse.parse_serl` and :func:`~selfrl.judging.parse.parse_srr1`);
    ``None`` is a parse failure.  Anything else raises.
    """
    if choice is None:
        return Judgment(i, j, None)
    if choice in (1, "A"):
        return Judgment(i, j, i)
    if choice in (2, "B"):
        return Judgment(i, j, j)
    raise ValueError(f"judge choice must be 1, 2, 'A', 'B' or None, got {choice!r}")


def strip_think(text: str) -> str:
    """The text after the last ``</think>`` (leading whitespace dropped); unchanged without one.

    >>> strip_think("<think>hmm</think>\\n\\nThe answer is 4.")
    'The answer is 4.'
    >>> strip_think("no reasoning block")
    'no reasoning block'
    """
    head, sep, tail = text.rpartition(_THINK_END)
    return tail.lstrip() if sep else text


def word_count(text: str) -> int:
    """Whitespace-separated words, SERL's length ``L``.

    >>> word_count("  two\\nwords ")
    2
    """
    return len(text.split())
