"""Means of training metrics over windows of steps, per run: the RESULTS.md figures read from a
run's ``metrics.jsonl`` (pseudo-label accuracy, the difficulty filter's kept share, the KL
controller's coefficient, response length) rather than from its held-out evaluations.

Usage (RESULTS.md, "SeRL's majority vote on the real model")::

    python scripts/metric_windows.py runs/serl_maj_smollm2/seed-{0,1,2} \
        --keys selfplay/pseudo_label_accuracy filter/kept_frac --windows 1-10 31-40
    python scripts/metric_windows.py runs/instruct_serl_smollm2/seed-{0,1,2} \
        --keys reward/judge_accuracy --weight reward/judge_checkable_pairs --windows 1-8 9-16
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def window_means(rows: list[dict], key: str, first: int, last: int, weight: str | None = None) -> float:
    """Mean of ``key`` over the rows with ``first <= step <= last`` that log it (nan if none).

    With ``weight``, each row counts by its value of that metric (rows without it or with a nan
    value are left out): a judge's accuracy weighted by the pairs it was measured on is the
    pooled accuracy of the window, where the plain mean would let a step with one pair count as
    much as a step with twenty.

    >>> rows = [{"step": 1, "a": 0.5, "n": 1}, {"step": 2, "a": 1.0, "n": 3}, {"step": 3}]
    >>> window_means(rows, "a", 1, 3), window_means(rows, "a", 1, 3, weight="n")
    (0.75, 0.875)
    """
    picked = [r for r in rows if key in r and first <= r.get("step", -1) <= last
              and not math.isnan(r[key])]
    if weight is not None:
        pairs = [(r[key], r[weight]) for r in picked if weight in r and not math.isnan(r[weight])]
        total = sum(w for _, w in pairs)
        return sum(v * w for v, w in pairs) / total if total > 0 else math.nan
    return sum(r[key] for r in picked) / len(picked) if picked else math.nan


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run folders with metrics.jsonl")
    p.add_argument("--keys", nargs="+", required=True, help="metric names, as in metrics.jsonl")
    p.add_argument("--windows", nargs="+", default=["1-10"], help="step ranges FIRST-LAST, inclusive")
    p.add_argument("--weight", help="weight each step by this metric (e.g. reward/judge_checkable_pairs)")
    args = p.parse_args()
    windows = [tuple(int(x) for x in w.split("-")) for w in args.windows]
    print("| run | metric | " + " | ".join(f"steps {a}-{b}" for a, b in windows) + " |")
    print("|" + " --- |" * (2 + len(windows)))
    for run in args.runs:
        lines = Path(run, "metrics.jsonl").read_text().splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        for key in args.keys:
            cells = [f"{window_means(rows, key, a, b, args.weight):.4g}" for a, b in windows]
            print(f"| {run} | {key} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
