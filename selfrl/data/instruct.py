"""The ``instruct`` task: open-ended prompts with instruction-following constraints (IFEval's idea).

Each prompt is a writing task about a topic ("Describe rainy days.") followed by the sentences of
one or more constraints (:mod:`selfrl.data.constraints`): "Answer in fewer than 15 words. Include
the word 'ocean'."  There is no answer key; a response is scored by checking its constraints,
which every row carries as data (``constraints``: kind and parameters), so the checker can score a
run it never took part in (the hidden evaluation of a self-judged run).

Splits (``selfrl data instruct --output DIR``, seeded):

- ``train.jsonl``, ``validation.jsonl``, ``test.jsonl``: disjoint *topics* (so no question text,
  nor any near copy of one, is in two splits);
- held-out *combinations*: the combinations of two (or more) constraint kinds are split, so
  that some appear only in ``test`` and others only in ``validation``, never in ``train``.  Each
  row's ``group`` says which it is: ``single``, ``seen_combination`` or ``held_out_combination``;
- ``info.json``: the seed, the sizes, the kinds and which combinations and topics went where.

Every row is checked with :func:`~selfrl.data.constraints.parse_constraints` as it is written, so
what the generator writes, the loader reads.

>>> splits = make_instruct(InstructSpec(n_train=20, n_validation=10, n_test=10), seed=0)
>>> row = splits.rows["test"][0]
>>> sorted(row)
['combination', 'constraints', 'group', 'id', 'question', 'topic']
>>> {r["group"] for r in splits.rows["train"]} <= {"single", "seen_combination"}
True
"""

from __future__ import annotations

import functools
import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from selfrl.data.constraints import (
    CONSTRAINTS,
    Constraint,
    ConstraintError,
    check_satisfiable,
    parse_constraint,
    parse_constraints,
)
from selfrl.data.io import write_jsonl

TOPICS = (
    "rainy days", "city gardens", "learning to cook", "the night sky", "old bridges", "train journeys",
    "winter mornings", "public libraries", "honey bees", "mountain lakes", "street markets", "paper maps",
    "board games", "lighthouses", "bicycles", "tea", "volcanoes", "coral reefs", "desert plants",
    "handwritten letters", "thunderstorms", "museums", "kites", "forests in autumn", "recycling",
    "owls", "sunflowers", "public parks", "bread baking", "snow", "rivers", "the moon", "jazz",
    "chess", "pottery", "penguins", "clocks", "windmills", "islands", "gardening with children",
    "camping", "fireflies", "bookshops", "the first day of school", "village festivals", "waterfalls",
    "maple trees", "street lamps", "sailing boats", "hot air balloons", "bird songs", "sandcastles",
    "picnics", "rainbows", "candles", "wool sweaters", "apple orchards", "early trains", "fog",
    "puzzles",
)
TASKS = (
    "Write a short paragraph about {topic}.",
    "Describe {topic}.",
    "Tell a friend about {topic}.",
    "Give some advice about {topic}.",
    "Write a short note about {topic}.",
)
SPLITS = ("train", "validation", "test")
GROUPS = ("single", "seen_combination", "held_out_combination")


@dataclass(frozen=True)
class InstructSpec:
    """What the task's files hold.

    Args:
        n_train, n_validation, n_test: rows per split.
        kinds: the constraint kinds drawn (default: every registered kind).
        max_constraints: the most constraints a row combines (1: single constraints only).
        single_share: the share of rows with one constraint, in every split.
        held_out_share: the share of the kind combinations kept out of ``train`` (half of them for
            ``test``, half for ``validation``).
        held_out_rows: of the ``validation`` and ``test`` rows that combine constraints, the share
            with a held-out combination.
        test_topics, validation_topics: the share of the topics each held-out split gets.
    """

    n_train: int = 2000
    n_validation: int = 200
    n_test: int = 300
    kinds: tuple[str, ...] | None = None
    max_constraints: int = 2
    single_share: float = 0.4
    held_out_share: float = 0.3
    held_out_rows: float = 0.5
    test_topics: float = 0.2
    validation_topics: float = 0.15

    def __post_init__(self) -> None:
        checks = [
            (min(self.n_train, self.n_validation, self.n_test) >= 0, "split sizes must be >= 0"),
            (self.max_constraints >= 1, f"max_constraints must be >= 1, got {self.max_constraints}"),
            (0 <= self.single_share <= 1, f"single_share must be in [0, 1], got {self.single_share}"),
            (0 <= self.held_out_share < 1, f"held_out_share must be in [0, 1), got {self.held_out_share}"),
            (0 <= self.held_out_rows <= 1, f"held_out_rows must be in [0, 1], got {self.held_out_rows}"),
            (min(self.test_topics, self.validation_topics) > 0
             and self.test_topics + self.validation_topics < 1,
             "test_topics and validation_topics must be > 0 and leave topics for train"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        for kind in self.kinds or ():
            CONSTRAINTS.get(kind)  # an unknown kind names the valid ones


@dataclass
class InstructSplits:
    """The rows of every split and what went where (``info.json``)."""

    rows: dict[str, list[dict]]
    info: dict = field(default_factory=dict)


def possible_combinations(kinds: tuple[str, ...], max_size: int) -> list[tuple[str, ...]]:
    """The kind sets of 2 to ``max_size`` kinds that some choice of their parameters can satisfy.

    >>> ["+".join(c) for c in possible_combinations(("lowercase", "no_commas", "title"), 3)]
    ['lowercase+no_commas', 'lowercase+title', 'no_commas+title', 'lowercase+no_commas+title']
    >>> possible_combinations(("bullets", "json_keys"), 2)  # a JSON object has no bullet lines
    []
    """
    out = []
    for size in range(2, max_size + 1):
        for combo in itertools.combinations(sorted(kinds), size):
            if any(_satisfiable(params) for params in _parameter_choices(combo)):
                out.append(combo)
    return out


def _parameter_choices(combo: tuple[str, ...]) -> Iterator[tuple[Constraint, ...]]:
    """Every way to give each kind of ``combo`` one of its generator choices."""
    return itertools.product(*[_choices(k) for k in combo])


@functools.cache
def _choices(kind: str) -> tuple[Constraint, ...]:
    """The kind's generator choices as constraints, each checked as a row's would be."""
    return tuple(parse_constraint({"kind": kind, "params": p}, f"{kind} choice")
                 for p in CONSTRAINTS.get(kind).choices)


def _satisfiable(constraints) -> bool:
    try:
        check_satisfiable(constraints)
    except ConstraintError:
        return False
    return True


def make_instruct(spec: InstructSpec = InstructSpec(), seed: int = 0) -> InstructSplits:
    """Draw every split from one seeded stream (see the module docstring)."""
    rng = random.Random(seed)
    kinds = tuple(sorted(spec.kinds or CONSTRAINTS.names()))
    combos = possible_combinations(kinds, spec.max_constraints)
    if spec.single_share < 1 and not combos:
        raise ValueError(f"no two of the kinds {', '.join(kinds)} can hold together: set single_share=1 or "
                         f"add kinds")
    rng.shuffle(combos)
    n_held = round(len(combos) * spec.held_out_share)
    held = {"test": combos[:n_held][0::2], "validation": combos[:n_held][1::2]}
    seen = combos[n_held:]
    if spec.single_share < 1 and not seen:
        raise ValueError(f"held_out_share={spec.held_out_share} leaves no combination for train")
    topics = list(TOPICS)
    rng.shuffle(topics)
    n_test, n_val = round(len(topics) * spec.test_topics), round(len(topics) * spec.validation_topics)
    split_topics = {"test": topics[:n_test], "validation": topics[n_test:n_test + n_val],
                    "train": topics[n_test + n_val:]}
    sizes = {"train": spec.n_train, "validation": spec.n_validation, "test": spec.n_test}
    rows = {}
    for split in SPLITS:  # a stream per split: the size of one never changes another's rows
        split_rng = random.Random(f"{seed}:{split}")
        rows[split] = _split_rows(split, sizes[split], kinds, seen, held.get(split, []), split_topics[split],
                                  spec, split_rng)
    info = {"seed": seed, "spec": asdict(spec), "kinds": list(kinds),
            "seen_combinations": ["+".join(c) for c in sorted(seen)],
            "held_out_combinations": {s: ["+".join(c) for c in sorted(held[s])] for s in held},
            "topics": split_topics, "rows": {s: len(r) for s, r in rows.items()}}
    return InstructSplits(rows, info)


def _split_rows(split: str, n: int, kinds: tuple[str, ...], seen: list, held: list, topics: list[str],
                spec: InstructSpec, rng: random.Random) -> list[dict]:
    shares = {"single": spec.single_share, "seen_combination": 1 - spec.single_share,
              "held_out_combination": 0.0}
    if split != "train" and held:
        shares["held_out_combination"] = (1 - spec.single_share) * spec.held_out_rows
        shares["seen_combination"] -= shares["held_out_combination"]
    pools = {"single": [(k,) for k in kinds], "seen_combination": seen, "held_out_combination": held}
    groups = [g for g in GROUPS if shares[g] > 0 and pools[g]]
    out, questions, misses = [], set(), 0
    while len(out) < n:
        group = rng.choices(groups, weights=[shares[g] for g in groups])[0]
        combo = rng.choice(pools[group])
        row = _draw_row(combo, rng.choice(topics), rng)
        if row is None or row["question"] in questions:
            misses += 1
            if misses > 100 * max(n, 100):
                raise ValueError(f"{split}: cannot draw {n} distinct prompts from {len(topics)} topics; "
                                 f"ask for fewer rows")
            continue
        questions.add(row["question"])
        out.append({"id": f"{split}-{len(out)}", **row, "group": group})
    return out


def _draw_row(combo: tuple[str, ...], topic: str, rng: random.Random) -> dict | None:
    """A prompt about ``topic`` with one constraint of each kind of ``combo`` (parameters drawn
    until they can all hold; ``None`` when 20 draws fail)."""
    for _ in range(20):
        constraints = [rng.choice(_choices(k)) for k in combo]
        if _satisfiable(constraints):
            break
    else:
        return None
    rng.shuffle(constraints)
    task = rng.choice(TASKS).format(topic=topic)
    stored = [c.to_dict() for c in constraints]
    parse_constraints(stored)  # what is written must load
    return {"question": " ".join([task, *(c.instruction() for c in constraints)]), "topic": topic,
            "constraints": stored, "combination": "+".join(sorted(combo))}


def write_instruct(output: str | Path, spec: InstructSpec = InstructSpec(), seed: int = 0) -> dict[str, int]:
    """Write ``train.jsonl``, ``validation.jsonl``, ``test.jsonl`` and ``info.json`` under ``output``;
    returns the number of rows per file."""
    output = Path(output)
    splits = make_instruct(spec, seed)
    for name, rows in splits.rows.items():
        write_jsonl(output / f"{name}.jsonl", rows)
    (output / "info.json").write_text(json.dumps(splits.info, indent=2) + "\n")
    return {f"{name}.jsonl": len(rows) for name, rows in splits.rows.items()}
