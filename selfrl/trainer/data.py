"""The training prompts and held-out rows of a run, and the prompt stream: seeded epoch shuffles
and a cursor that a checkpoint can restore.

>>> src = PromptSource([{"q": i} for i in range(3)], shuffle=False, seed=0)
>>> [r["q"] for r in src.take(4)]
[0, 1, 2, 0]
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from selfrl.data.arith_files import write_arith_if_missing
from selfrl.data.io import DataError, read_rows
from selfrl.eval.benchmarks import BENCHMARKS, load_benchmark
from selfrl.prompts import PromptFormat

if TYPE_CHECKING:
    from selfrl.config.schema import DataConfig


def training_rows(data: DataConfig, fmt: PromptFormat) -> list[dict]:
    """``data.train``'s rows, each with what its prompt needs (and its answer when
    ``data.require_answer``); an arith variant's files are written first when missing."""
    if data.arith_if_missing:
        write_arith_if_missing(data.train)
    required = _answer(data) if data.require_answer else []
    rows = _read(data, data.train, data.train_split, required + fmt.fields())
    for i, row in enumerate(rows, start=1):
        if not isinstance(row.get("prompt"), list) and data.question_field not in row:
            raise ValueError(f"{data.train}:{i}: missing field {data.question_field!r} "
                             f"(and no chat 'prompt' field)")
    return rows


def eval_rows(data: DataConfig, fmt: PromptFormat, limit: int) -> list[dict]:
    """The first ``limit`` (0: all) of ``data.eval``'s rows, each with its answer (where the
    benchmark has answers)."""
    if data.arith_if_missing:
        write_arith_if_missing(data.eval)
    rows = _read(data, data.eval, data.eval_split, [*_answer(data), *fmt.fields()])
    return rows[:limit] if limit else rows


def _answer(data: DataConfig) -> list[str]:
    """The answer field rows must hold: none for a benchmark without answers (``instruct``)."""
    if data.benchmark is not None and not BENCHMARKS.get(data.benchmark).answers:
        return []
    return [data.answer_field]


def _read(data: DataConfig, source: str, split: str, required: list[str]) -> list[dict]:
    """Rows as they stand, or in ``data.benchmark``'s schema turned into evaluation rows (whose
    fields are then checked against what the prompt template reads)."""
    if data.benchmark is None:
        return read_rows(source, required=required, split=split, subset=data.subset)
    rows = load_benchmark(data.benchmark, source, split=split, subset=data.subset)
    for i, row in enumerate(rows, start=1):
        missing = [f for f in required if f not in row]
        if missing:
            raise DataError(f"{source}: row {i}: the prompt template reads {missing[0]!r}, which a "
                            f"{data.benchmark} row does not have (fields: {', '.join(sorted(row))})")
    return rows


def within_prompt_limit(rows: list[dict], fmt: PromptFormat, tokenizer, question_field: str,
                        source: str) -> tuple[list[dict], int]:
    """The training rows whose prompt fits ``fmt.max_tokens`` (under ``truncate_left``, all of
    them: their prompts are cut when built), and how many were longer."""
    if fmt.max_tokens is None:
        return rows, 0
    fitted = fmt.fit(tokenizer, rows, question_field)
    if not fitted.kept:
        shortest = min(len(fmt.ids(tokenizer, r, question_field)) for r in rows)
        raise DataError(f"{source}: every prompt is longer than max_prompt_tokens={fmt.max_tokens} (the "
                        f"shortest has {shortest} tokens)")
    kept = rows if fmt.long_prompts == "truncate_left" else [rows[i] for i in fitted.kept]
    return kept, len(fitted.too_long)


class PromptSource:
    """Yields rows in a seeded order, reshuffled each epoch; ``state_dict`` is the cursor."""

    def __init__(self, rows: list[dict], shuffle: bool = True, seed: int = 0) -> None:
        if not rows:
            raise ValueError("the training set is empty")
        self.rows, self.shuffle, self.seed = rows, shuffle, seed
        self.epoch, self.position = 0, 0
        self._order = self._make_order()

    def _make_order(self) -> list[int]:
        order = list(range(len(self.rows)))
        if self.shuffle:
            random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        return order

    def take(self, k: int) -> list[dict]:
        """The next ``k`` rows, wrapping into a new (reshuffled) epoch when needed."""
        out = []
        while len(out) < k:
            if self.position == len(self._order):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._make_order()
            out.append(self.rows[self._order[self.position]])
            self.position += 1
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
        self._order = self._make_order()
