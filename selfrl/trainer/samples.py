"""Rollout samples on disk: a few groups of a step in ``RUN_DIR/rollouts.jsonl``, so that a run can be
read by looking at what the model wrote, what each completion earned, and what it was trained with.

Every ``logging.samples_every`` steps (and at the last step) the trainer hands the writer the
batch it already holds: the collected groups with their scores, the reward's parts
(``reward_components``) and what the reward found out about each group (``group_data``: SeRL's
majority label, SERL's and SR-R1's judge verdicts and Copeland/Elo scores), the advantages
the update used, and the groups the filters dropped.  The writer keeps ``logging.samples_groups``
trained groups spread over the step's range of mean rewards (the best and the worst always among
them) and as many filtered-out ones.  Nothing is recomputed but a grade of each kept completion's
answer against the row's gold answer, when the row has one.

One JSON line per group (``"version": 1``)::

    {"version": 1, "step": 3, "group": 0, "kept": true, "question": "...", "prompt": "<the prompt
     as the model saw it>", "gold": "14", "row": {the dataset row: SRL's target step, ...},
     "mean_reward": 0.5, "group_data": {"pseudo_label": "14", ...},
     "completions": [{"text": "...", "reward": 1.0, "components": {"accuracy": 1.0}, "advantage": 0.87,
                      "length": 23, "finish_reason": "stop", "correct": true}, ...]}

Each line is written with one ``write`` to a file opened for appending, so a crash leaves at most
one cut line (readers skip it).  When ``rollouts.jsonl`` passes ``logging.samples_max_mb`` it is
moved to ``rollouts.1.jsonl`` (replacing the older one): a run keeps at most twice that on disk.
A resumed run first drops the lines of steps after its checkpoint, which the resume replays.
With several processes, rank 0 writes its own groups.

>>> import tempfile, torch
>>> from selfrl.trainer.batch import RolloutBatch
>>> batch = RolloutBatch(rows=[{"answer": "4"}] * 2, prompt_ids=[[1], [1]], completion_ids=[[7, 8], [9]],
...                      rollout_logprobs=[[0.0, 0.0], [0.0]], completions=["The answer is 4.", "5"],
...                      prompts=["2+2?"] * 2, finish_reasons=["stop", "length"], group_size=2,
...                      scores=torch.tensor([1.0, 0.0]), reward_components={"accuracy": [1.0, 0.0]})
>>> run = Path(tempfile.mkdtemp())
>>> RolloutSampleWriter(run, groups=4).write(1, batch)
1
>>> line = json.loads((run / ROLLOUTS).read_text())
>>> [(c["reward"], c["components"], c["correct"], c["length"]) for c in line["completions"]]
[(1.0, {'accuracy': 1.0}, True, 2), (0.0, {'accuracy': 0.0}, False, 1)]
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfrl.trainer.logger import drop_rows_after

if TYPE_CHECKING:  # annotations only: the report reads this module's names without torch
    from selfrl.trainer.batch import RolloutBatch

ROLLOUTS = "rollouts.jsonl"
ROLLOUTS_OLDER = "rollouts.1.jsonl"  # where rollouts.jsonl goes when it passes its size cap
FORMAT_VERSION = 1


def spread_groups(means: list[float], k: int) -> list[int]:
    """``k`` group indices spread evenly over the groups ranked by mean reward, best first: the
    best and the worst are always among them (for ``k >= 2``).

    >>> spread_groups([0.1, 0.9, 0.5, 0.3, 0.7], 3)
    [1, 2, 0]
    >>> spread_groups([0.5, 0.2], 4), spread_groups([0.5, 0.2], 0)
    ([0, 1], [])
    """
    ranked = sorted(range(len(means)), key=lambda g: (-means[g], g))
    if k <= 1 or k >= len(ranked):
        return ranked[:max(k, 0)]
    return [ranked[round(i * (len(ranked) - 1) / (k - 1))] for i in range(k)]


def to_json(value: Any) -> Any:
    """``value`` as plain JSON: objects with a ``to_record()`` (a judge's verdicts) through it,
    tensors as lists, non-finite floats and anything else as strings.

    >>> to_json({"a": (1, float("nan")), 2: None})
    {'a': [1, 'nan'], '2': None}
    """
    if hasattr(value, "to_record"):
        return to_json(value.to_record())
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if hasattr(value, "tolist"):  # a tensor or a numpy value
        return to_json(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def group_records(step: int, batch: RolloutBatch, groups: list[int], kept: bool, answer_field: str = "answer",
                  decode: Callable[[list[int]], str] | None = None) -> list[dict]:
    """One record (the module docstring's line) for each of ``groups`` of ``batch``."""
    n = batch.group_size
    records = []
    for g in groups:
        first = g * n
        row = batch.rows[first]
        gold = row.get(answer_field)
        completions = [_completion(batch, i, None if gold is None else str(gold))
                       for i in range(first, first + n)]
        rewards = [c["reward"] for c in completions if c["reward"] is not None]
        records.append({
            "version": FORMAT_VERSION, "step": step, "group": g, "kept": kept,
            "question": batch.prompts[first],
            "prompt": decode(batch.prompt_ids[first]) if decode is not None else None,
            "gold": None if gold is None else str(gold), "row": to_json(row),
            "mean_reward": sum(rewards) / len(rewards) if rewards else None,
            "group_data": {k: to_json(v[g]) for k, v in batch.group_data.items()},
            "completions": completions})
    return records


def _completion(batch: RolloutBatch, i: int, gold: str | None) -> dict:
    from selfrl.eval.extract import extract_answer, grade  # math-verify: only when samples are written

    length = len(batch.completion_ids[i])
    advantage = None
    if batch.advantages is not None and length:  # per token: their mean (one value but under gae)
        advantage = float(batch.advantages[i, :length].mean())
    return {"text": batch.completions[i],
            "reward": None if batch.scores is None else float(batch.scores[i]),
            "components": {k: float(v[i]) for k, v in batch.reward_components.items()},
            "advantage": advantage, "length": length, "finish_reason": batch.finish_reasons[i],
            "correct": None if gold is None else grade(extract_answer(batch.completions[i]), gold).correct}


class RolloutSampleWriter:
    """Appends a step's sampled groups to ``RUN_DIR/rollouts.jsonl`` (see the module docstring).

    Args:
        run_dir: the run folder.
        groups: trained groups kept per step (and as many filtered-out ones).
        max_bytes: past this size ``rollouts.jsonl`` becomes ``rollouts.1.jsonl``.
        answer_field: the rows' gold answer, for each completion's ``correct``.
        decode: token ids -> text, for the prompt as the model saw it (None: not written).
        drop_after: a resumed run's step: lines of later steps are dropped first.
    """

    def __init__(self, run_dir: str | Path, groups: int = 4, max_bytes: int = 32 << 20,
                 answer_field: str = "answer", decode: Callable[[list[int]], str] | None = None,
                 drop_after: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / ROLLOUTS
        self.groups, self.max_bytes = groups, max_bytes
        self.answer_field, self.decode = answer_field, decode
        if drop_after is not None:
            for name in (ROLLOUTS_OLDER, ROLLOUTS):
                drop_rows_after(self.run_dir / name, drop_after)

    def write(self, step: int, trained: RolloutBatch, filtered: RolloutBatch | None = None) -> int:
        """Append the sampled groups of ``trained`` (and of ``filtered``); returns how many."""
        records = []
        for batch, kept in ((trained, True), (filtered, False)):
            if batch is None or not batch.num_groups or batch.scores is None:
                continue
            means = batch.scores.view(-1, batch.group_size).mean(dim=1).tolist()  # (G,)
            records += group_records(step, batch, spread_groups(means, self.groups), kept,
                                     self.answer_field, self.decode)
        if not records:
            return 0
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.path.is_file() and self.path.stat().st_size > self.max_bytes:
            os.replace(self.path, self.run_dir / ROLLOUTS_OLDER)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            for record in records:
                _write_all(fd, (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        finally:
            os.close(fd)
        return len(records)


def _write_all(fd: int, data: bytes) -> None:
    """``data`` in one ``write`` (the whole line lands, or a crash cuts it); a short write (rare, on
    a regular file) is finished by more."""
    while data:
        data = data[os.write(fd, data):]
