"""Write the ``arith`` task's splits and the per-recipe views as JSONL files.

Splits never overlap (a question text belongs to one split only):

- ``seed.jsonl``: the labelled seed set (SeRL's few hundred seeds);
- ``train.jsonl``: the labelled pool (RLVR's ground-truth baseline trains on it);
- ``test.jsonl``: held-out problems of the training difficulty;
- ``test_hard.jsonl``: held-out problems with more steps;
- ``validation.jsonl``: held-out problems of the training difficulty for choosing settings, so
  that ``test`` is never tuned on (drawn last: adding it changed no other split).

Named variants (:data:`ARITH_VARIANTS`) are written on demand when a config names a file in a
folder of that name (``data/arith/``, ``data/arith_1op/``: :func:`write_arith_if_missing`), and
by ``selfrl data arith --variant``.

Views, each in the form its paper uses:

- ``trajectories.jsonl``: step-numbered expert trajectories (SRL), and ``srl_train.jsonl``
  their SRL instances;
- ``selfinstruct_prompts.jsonl``: SeRL's few-shot instruction-generation prompts;
- ``judge_{train,test}.jsonl``: a right and a plausible wrong solution, the right side known
  (SERL, SR-R1);
- ``preference_{train,test}.jsonl``: ``question`` / ``response_j`` / ``response_k`` rows
  (RLHF reward model and PPO).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from selfrl.data.arith import ArithGenerator, ArithProblem, ArithSpec, corrupt_solution
from selfrl.data.io import write_jsonl
from selfrl.data.srl import prepare_srl
from selfrl.prompts import self_instruct_messages, solve_messages

N_FEWSHOT = 8


@dataclass(frozen=True)
class ArithSplits:
    """How many problems each split holds, and the difficulty of each."""

    n_seed: int = 500
    n_train: int = 5000
    n_test: int = 500
    n_test_hard: int = 500
    n_validation: int = 500
    spec: ArithSpec = ArithSpec()
    hard_spec: ArithSpec = ArithSpec(min_ops=3, max_ops=4)


#: The task variants a config can name by folder: ``arith`` (1-2 operations, the embedded model's
#: task) and ``arith_1op`` (one operation: the real-model quick start's task, where
#: SmolLM2-135M-Instruct starts at ~15 % greedy with the answer-format instruction).
ARITH_VARIANTS: dict[str, ArithSplits] = {
    "arith": ArithSplits(),
    "arith_1op": ArithSplits(spec=ArithSpec(min_ops=1, max_ops=1), hard_spec=ArithSpec(min_ops=2, max_ops=3)),
}


def make_splits(splits: ArithSplits, seed: int = 0) -> dict[str, list[ArithProblem]]:
    """Draw every split from one seeded stream, so no question text lands in two splits.

    Held-out splits are drawn first: changing the size of ``train`` never changes ``test``.
    """
    seen: set[str] = set()
    normal = _unique(ArithGenerator(splits.spec, seed), seen)
    hard = _unique(ArithGenerator(splits.hard_spec, seed + 1), seen)
    out = {"test": [next(normal) for _ in range(splits.n_test)],
           "test_hard": [next(hard) for _ in range(splits.n_test_hard)]}
    out["seed"] = [next(normal) for _ in range(splits.n_seed)]
    out["train"] = [next(normal) for _ in range(splits.n_train)]
    out["validation"] = [next(normal) for _ in range(splits.n_validation)]
    return out


def _unique(gen: ArithGenerator, seen: set[str]) -> Iterator[ArithProblem]:
    misses = 0
    while True:
        p = gen.sample()
        if p.question in seen:
            misses += 1
            if misses > 100_000:
                raise RuntimeError("the task space is exhausted: raise max_number or the split sizes")
            continue
        seen.add(p.question)
        yield p


def problem_row(p: ArithProblem, split: str, index: int) -> dict:
    """A split row: the problem, its expert solution, the gold answer and the chat prompt."""
    row = p.to_row()
    row["id"] = f"{split}-{index}"
    row["prompt"] = solve_messages(p.question)
    return row


def judge_rows(problems: list[ArithProblem], rng: random.Random) -> list[dict]:
    """Balanced pairs: the right solution sits in position 1 for half of the rows."""
    rows = []
    for i, p in enumerate(problems):
        wrong_steps, wrong = corrupt_solution(p, rng)
        wrong_text = ArithProblem(p.question, wrong_steps, wrong, p.n_ops).solution
        right_first = i % 2 == 0
        a, b = (p.solution, wrong_text) if right_first else (wrong_text, p.solution)
        rows.append({"question": p.question, "response_1": a, "response_2": b,
                     "winner": 1 if right_first else 2, "answer": str(p.answer)})
    return rows


def preference_rows(problems: list[ArithProblem], rng: random.Random) -> list[dict]:
    """StackExchange-style rows: ``response_j`` is right, ``response_k`` plausibly wrong."""
    rows = []
    for p in problems:
        wrong_steps, wrong = corrupt_solution(p, rng)
        rows.append({"question": p.question, "response_j": p.solution,
                     "response_k": ArithProblem(p.question, wrong_steps, wrong, p.n_ops).solution,
                     "answer": str(p.answer)})
    return rows


def selfinstruct_rows(seeds: list[ArithProblem], n: int, rng: random.Random) -> list[dict]:
    """SeRL few-shot prompts built from the seeds only (no generated problems exist yet)."""
    rows = []
    for _ in range(n):
        examples = [p.question for p in rng.sample(seeds, N_FEWSHOT)]
        rows.append({"prompt": self_instruct_messages(examples), "examples": examples})
    return rows


def write_arith(output: str | Path, splits: ArithSplits = ArithSplits(), seed: int = 0) -> dict[str, int]:
    """Write all splits and views under ``output``; returns the number of rows per file."""
    output = Path(output)
    data = make_splits(splits, seed)
    rng = random.Random(seed + 2)
    files: dict[str, list[dict]] = {
        f"{name}.jsonl": [problem_row(p, name, i) for i, p in enumerate(probs)]
        for name, probs in data.items()
    }
    files["trajectories.jsonl"] = [
        {"problem": p.question, "solution": p.solution, "answer": str(p.answer)} for p in data["train"]
    ]
    files["selfinstruct_prompts.jsonl"] = selfinstruct_rows(data["seed"], len(data["seed"]), rng)
    files["judge_train.jsonl"] = judge_rows(data["train"], rng)
    files["judge_test.jsonl"] = judge_rows(data["test"], rng)
    files["preference_train.jsonl"] = preference_rows(data["train"], rng)
    files["preference_test.jsonl"] = preference_rows(data["test"], rng)
    for name, rows in files.items():
        write_jsonl(output / name, rows)
    counts = {name: len(rows) for name, rows in files.items()}
    # SRL's instances (steps 1..k-1 -> step k), as `selfrl data srl` writes them.  The final
    # "The answer is" line is not part of a step: the embedded model learned steps without it.
    srl = prepare_srl(output / "trajectories.jsonl", output / "srl_train.jsonl", answer_field="answer",
                      keep_final_answer=False)
    counts["srl_train.jsonl"] = srl["instances"]
    return counts


def write_arith_if_missing(path: str | Path) -> bool:
    """The README's one command needs no separate data step: write an arith variant's files when
    ``path`` is a missing ``.jsonl`` file in a folder named after the variant (``data/arith/``,
    ``data/arith_1op/``); returns whether it wrote them.

    >>> write_arith_if_missing("nowhere/mine/train.jsonl")  # not a variant's folder: nothing written
    False
    """
    p = Path(path)
    if p.exists() or p.parent.name not in ARITH_VARIANTS or p.suffix != ".jsonl":
        return False
    write_arith(p.parent, ARITH_VARIANTS[p.parent.name])
    return True
