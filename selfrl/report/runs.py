"""Reading a run folder for the report: whatever is there, and a line for whatever is not.

A run that is still going, one that crashed mid-line, one with no metrics yet, or one whose
``rollouts.jsonl`` was written by an older selfrl is read as far as it can be; each gap becomes a
note that the report shows.  A folder that holds none of a run's files is a :class:`NotARunError`.

>>> import tempfile
>>> run = Path(tempfile.mkdtemp())
>>> _ = (run / "metrics.jsonl").write_text('{"step": 1, "reward/mean": 0.5}\\n{"step": 2, "rew')
>>> data = read_run(run)
>>> data.metrics
[{'step': 1, 'reward/mean': 0.5}]
>>> for note in data.notes:
...     print(note)
no config.yaml: the configuration is not shown
metrics.jsonl: line 2 is cut short or not JSON (a crash mid-line, or the run is still writing it); skipped
no rollouts.jsonl: no samples (logging.samples_every=0, or a run from before samples were written)
>>> read_run(run / "nowhere")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
selfrl.report.runs.NotARunError: ... no such folder
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from selfrl.trainer.samples import FORMAT_VERSION, ROLLOUTS, ROLLOUTS_OLDER

# Any of these makes a folder a run (one that has just started holds only config.yaml).
RUN_FILES = ("metrics.jsonl", "config.yaml", ROLLOUTS, ROLLOUTS_OLDER, "checkpoints")

# What a rollout record holds (trainer/samples.py), with what stands in when it is missing.
GROUP_FIELDS = {"version": 0, "group": None, "kept": True, "question": "", "prompt": None, "gold": None,
                "row": {}, "mean_reward": None, "group_data": {}}
COMPLETION_FIELDS = {"text": "", "reward": None, "components": {}, "advantage": None, "length": None,
                     "finish_reason": None, "correct": None}


class NotARunError(ValueError):
    """The folder given is not a run folder (or does not exist)."""


@dataclass
class RunData:
    """What the report shows of one run."""

    name: str
    path: Path
    config: str | None = None                           # config.yaml as written
    metrics: list[dict] = field(default_factory=list)   # metrics.jsonl rows, each with an int "step"
    rollouts: list[dict] = field(default_factory=list)  # rollout records, every field present
    notes: list[str] = field(default_factory=list)      # what is missing or was skipped, a line each


def read_run(path: str | Path, name: str | None = None) -> RunData:
    """Everything of the run at ``path`` that can be read; see the module docstring."""
    path = Path(path)
    if not path.is_dir():
        raise NotARunError(f"{path}: no such folder")
    if not any((path / f).exists() for f in RUN_FILES):
        raise NotARunError(f"{path} is not a run folder (it holds none of {', '.join(RUN_FILES)})")
    run = RunData(name or path.name, path)
    config = path / "config.yaml"
    if config.is_file():
        run.config = config.read_text(encoding="utf-8", errors="replace")
    else:
        run.notes.append("no config.yaml: the configuration is not shown")
    run.metrics = _read_metrics(path / "metrics.jsonl", run.notes)
    run.rollouts = _read_rollouts(path, run.notes)
    return run


def read_jsonl(path: Path, notes: list[str]) -> list[dict]:
    """The JSON objects of ``path``, one a line; lines that are not one are skipped, with a note."""
    rows, bad = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad.append(n)
    if bad:
        where = f"line {bad[0]}" if len(bad) == 1 else f"{len(bad)} lines (the first: {bad[0]})"
        verb = "is" if len(bad) == 1 else "are"
        notes.append(f"{path.name}: {where} {verb} cut short or not JSON (a crash mid-line, or the run is "
                     f"still writing it); skipped")
    return rows


def _read_metrics(path: Path, notes: list[str]) -> list[dict]:
    if not path.is_file():
        notes.append("no metrics.jsonl: no curves and no evaluation table")
        return []
    rows, stepless = [], 0
    for row in read_jsonl(path, notes):
        if not isinstance(row.get("step"), int):
            stepless += 1
            continue
        rows.append({k: _number(v) if k != "step" else v for k, v in row.items()})
    if stepless:
        notes.append(f"metrics.jsonl: {stepless} rows without a step; skipped")
    if not rows:
        notes.append("metrics.jsonl holds no step yet: no curves")
    return rows


def _number(value):
    """A metric's value as a finite float, or ``None`` (the logger writes non-finite ones as text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        x = float(value)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _read_rollouts(path: Path, notes: list[str]) -> list[dict]:
    files = [path / name for name in (ROLLOUTS_OLDER, ROLLOUTS) if (path / name).is_file()]
    if not files:
        notes.append(f"no {ROLLOUTS}: no samples (logging.samples_every=0, or a run from before samples "
                     f"were written)")
        return []
    records, unreadable, lacking, newer = [], 0, set(), set()
    for f in files:
        for raw in read_jsonl(f, notes):
            rec = normalise_record(raw, lacking)
            if rec is None:
                unreadable += 1
                continue
            if rec["version"] > FORMAT_VERSION:
                newer.add(rec["version"])
            records.append(rec)
    if unreadable:
        notes.append(f"{ROLLOUTS}: {unreadable} records without a step or completions; skipped")
    if lacking:
        notes.append(f"{ROLLOUTS}: some records lack {', '.join(sorted(lacking))} (written by an older "
                     f"selfrl?); shown without them")
    if newer:
        notes.append(f"{ROLLOUTS}: written by a newer selfrl (format {max(newer)}, this one reads "
                     f"{FORMAT_VERSION}); shown as far as it is understood")
    return records


def normalise_record(raw: dict, lacking: set[str]) -> dict | None:
    """A rollout record with every field the report reads (missing ones filled, and named in
    ``lacking``), or ``None`` when it has no step or no completions.

    >>> lacking = set()
    >>> rec = normalise_record({"step": 2, "completions": [{"text": "4", "reward": 1}]}, lacking)
    >>> rec["mean_reward"], rec["completions"][0]["advantage"], "advantage" in lacking
    (1.0, None, True)
    """
    if not isinstance(raw.get("step"), int) or not isinstance(raw.get("completions"), list):
        return None
    rec = {"step": raw["step"]}
    for key, default in GROUP_FIELDS.items():
        if key not in raw and key not in ("version", "mean_reward", "prompt"):
            lacking.add(key)
        rec[key] = raw.get(key, default)
    rec["version"] = rec["version"] if isinstance(rec["version"], int) else 0
    rec["completions"] = []
    for c in raw["completions"]:
        c = c if isinstance(c, dict) else {"text": str(c)}
        lacking.update(k for k in COMPLETION_FIELDS if k not in c)
        done = {k: c.get(k, default) for k, default in COMPLETION_FIELDS.items()}
        done["reward"] = _number(done["reward"])
        done["advantage"] = _number(done["advantage"])
        done["text"] = str(done["text"])
        done["components"] = done["components"] if isinstance(done["components"], dict) else {}
        rec["completions"].append(done)
    rewards = [c["reward"] for c in rec["completions"] if c["reward"] is not None]
    if _number(rec["mean_reward"]) is None:
        rec["mean_reward"] = sum(rewards) / len(rewards) if rewards else None
    for key in ("row", "group_data"):
        rec[key] = rec[key] if isinstance(rec[key], dict) else {}
    return rec
