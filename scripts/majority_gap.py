"""Where majority voting can teach: maj@k against avg@k of a base model, read from the
``samples.jsonl`` that ``selfrl eval --n N --k ...,K`` writes, with what the majority picks when
it is wrong.

SeRL's reward is the majority answer of a group, so it can only lift a model whose majority is
right more often than a single sample is (the self-rewarding issue asks for maj@8 - avg@8 >= 10
points before comparing SeRL with RLVR).  Per eval run this prints avg@K, maj@K, the gap with its
paired standard error over problems, and, of the problems whose majority answer is wrong, the
share where that answer is a number copied from the question (an operand) and the share where
the right answer was sampled but lost the vote.

Usage::

    python scripts/majority_gap.py runs/probe_b/*.json/samples.jsonl [--k 8] [--out gap.json]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from selfrl.eval.evaluate import can_vote
from selfrl.eval.extract import equivalent
from selfrl.eval.metrics import majority_answer, mean_and_stderr

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def gap_of(rows: list[dict], k: int) -> dict:
    """avg@k, maj@k, their gap (points, paired SE) and how the wrong majorities are wrong.

    >>> rows = [{"question": "Tom has 3. He wins 4.", "gold": "7", "answers": ["7", "3", "3", "7", "7"],
    ...          "correct": [True, False, False, True, True]},
    ...         {"question": "Ann has 2. She wins 2.", "gold": "4", "answers": ["2", "2", "4", "5", "2"],
    ...          "correct": [False, False, True, False, False]}]
    >>> g = gap_of(rows, 5)
    >>> g["avg"], g["maj"], g["wrong_majority_copies_operand"], g["wrong_majority_right_was_sampled"]
    (40.0, 50.0, 100.0, 100.0)
    """
    per_gap, avgs, majs = [], [], []
    wrong = copies = sampled = 0
    for r in rows:
        answers, correct = r["answers"][:k], r["correct"][:k]
        votes = [a if can_vote(a, "math") else None for a in answers]
        maj = majority_answer(votes, equivalent)
        maj_right = maj is not None and equivalent(maj, r["gold"])
        avg = sum(correct) / len(correct)
        avgs.append(avg)
        majs.append(float(maj_right))
        per_gap.append(float(maj_right) - avg)
        if maj is not None and not maj_right:
            wrong += 1
            operands = set(NUMBER.findall(r["question"] or ""))
            copies += any(equivalent(maj, o) for o in operands)
            sampled += any(correct)
    gap, gap_se = mean_and_stderr(per_gap)
    return {"n_problems": len(rows), "k": k, "avg": 100 * sum(avgs) / len(avgs),
            "maj": 100 * sum(majs) / len(majs), "gap": 100 * gap, "gap_se": 100 * gap_se,
            "wrong_majorities": wrong,
            "wrong_majority_copies_operand": 100 * copies / wrong if wrong else float("nan"),
            "wrong_majority_right_was_sampled": 100 * sampled / wrong if wrong else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("samples", nargs="+", type=Path, help="samples.jsonl files of selfrl eval runs")
    ap.add_argument("--k", type=int, default=8, help="the vote's size (at most the eval's --n)")
    ap.add_argument("--out", type=Path, help="write the rows as JSON here too")
    args = ap.parse_args()
    out = []
    print(f"| run | avg@{args.k} | maj@{args.k} | gap ± SE | wrong majority: an operand | "
          "wrong majority: right answer sampled |\n| --- | ---: | ---: | ---: | ---: | ---: |")
    for path in args.samples:
        rows = [json.loads(line) for line in path.open() if line.strip()]
        g = {"run": str(path.parent), **gap_of(rows, args.k)}
        out.append(g)
        print(f"| {path.parent.name} | {g['avg']:.1f} | {g['maj']:.1f} | "
              f"{g['gap']:+.1f} ± {g['gap_se']:.1f} | {g['wrong_majority_copies_operand']:.0f} % | "
              f"{g['wrong_majority_right_was_sampled']:.0f} % |")
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
