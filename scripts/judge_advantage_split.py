"""Which answers a judged run pays: GRPO advantages split by the hidden truth and by length.

A self-judging run's reward is what its judge and aggregator make of the group; whether that
reward follows the task can be read off the logged rollout groups (``RUN_DIR/rollouts.jsonl``,
a few groups a step, each answer with its reward, advantage, length and finish reason).  For
each run this scores every logged answer by the truth the judge never sees (the instruct task's
constraint checker, or the gold answer) and prints the mean advantage of

- the group's **best** answers (highest truth, in groups where the truth tells answers apart)
  against the **rest** of those groups: a judge and aggregator that follow the truth give the
  best answers a positive mean advantage;
- answers **cut** at the token limit (``finish_reason == "length"``) against answers that
  **ended**: a reward that pays for length (or for having opponents of the same length, as
  SERL's length control does when most answers are cut at the same limit) shows up here.

Usage (RESULTS.md, "Self-judging on the instruct task")::

    python scripts/judge_advantage_split.py runs/judge_sweep_instruct/copeland/p1.00/seed-* \\
        --truth constraints
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Iterable
from pathlib import Path

from selfrl.judging.truth import JUDGE_TRUTHS
from selfrl.report.runs import read_run


def split_advantages(groups: Iterable[dict], truth: str) -> dict[str, list[float]]:
    """The advantages of the logged answers, by truth rank within the group and by finish reason.

    Args:
        groups: rollout groups as ``rollouts.jsonl`` stores them (``row`` and ``completions``
            with ``text``, ``advantage`` and ``finish_reason``).
        truth: a name in :data:`selfrl.judging.truth.JUDGE_TRUTHS` (``constraints``,
            ``accuracy``).

    Returns:
        Lists of advantages under ``best``, ``rest`` (groups the truth tells apart only),
        ``cut`` and ``ended`` (every group).

    >>> g = {"row": {"constraints": [{"kind": "lowercase"}]}, "completions": [
    ...     {"text": "yes", "advantage": 1.0, "finish_reason": "stop"},
    ...     {"text": "No", "advantage": -1.0, "finish_reason": "length"}]}
    >>> split_advantages([g], "constraints")
    {'best': [1.0], 'rest': [-1.0], 'cut': [-1.0], 'ended': [1.0]}
    """
    score = JUDGE_TRUTHS.get(truth)
    out: dict[str, list[float]] = {"best": [], "rest": [], "cut": [], "ended": []}
    for group in groups:
        completions = group["completions"]
        advantages = [float(c["advantage"] or 0.0) for c in completions]  # None: not logged
        for c, adv in zip(completions, advantages):
            out["cut" if c.get("finish_reason") == "length" else "ended"].append(adv)
        scores = score(group["row"], [c["text"] for c in completions])
        if scores is None or max(scores) == min(scores):
            continue
        top = max(scores)
        for s, adv in zip(scores, advantages):
            out["best" if s == top else "rest"].append(adv)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders with rollouts.jsonl")
    p.add_argument("--truth", default="constraints", choices=JUDGE_TRUTHS.names())
    args = p.parse_args()
    print("| run | groups | best answers | rest | cut at the limit | ended |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for run in args.runs:
        groups = read_run(run).rollouts  # both rollout files, cut lines skipped
        split = split_advantages(groups, args.truth)
        cells = [f"{statistics.mean(v):+.2f} ({len(v)})" if v else "—"
                 for v in (split["best"], split["rest"], split["cut"], split["ended"])]
        print(f"| {run} | {len(groups)} | " + " | ".join(cells) + " |")
    print("mean advantage (answers); best / rest: groups the truth tells apart")


if __name__ == "__main__":
    main()
