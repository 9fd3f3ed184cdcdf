"""What SeRL's self-instruction wrote in a run: the problems generated, what the online filters did
with them, and how many of the accepted ones are well-formed problems (state a number and ask a
question: ``selfrl.selfplay.filters.is_well_formed_problem``, the check behind the embedded
model's build report).

Reads ``RUN/selfplay/step-*.jsonl`` (one line per generated problem, with the filter's decision)
of each run and prints a table; ``--examples K`` prints K accepted problems per run.

Usage::

    python scripts/selfplay_stats.py runs/serl_smollm2/seed-{0,1,2} [--steps 1-20] [--examples 5]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from selfrl.selfplay.filters import is_well_formed_problem


def stats(run: Path, first: int = 1, last: int | None = None) -> dict:
    """Counts of the generated problems by decision, and the well-formed share of the accepted.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()) / "selfplay"; d.mkdir()
    >>> rows = [{"kind": "generated", "problem": "Sara has 8 candies", "decision": "accepted"},
    ...         {"kind": "generated", "problem": "Tom has 3 pens. How many pens?", "decision": "accepted"},
    ...         {"kind": "generated", "problem": "A", "decision": "too_short"}]
    >>> _ = (d / "step-000001.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
    >>> s = stats(d.parent)
    >>> s["generated"], s["decisions"], s["accepted_well_formed"]
    (3, {'accepted': 2, 'too_short': 1}, 0.5)
    """
    decisions: Counter = Counter()
    accepted: list[str] = []
    for path in sorted((run / "selfplay").glob("step-*.jsonl")):
        step = int(path.stem.split("-")[1])
        if step < first or (last is not None and step > last):
            continue
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row.get("kind") != "generated":
                continue
            decisions[row["decision"]] += 1
            if row["decision"] == "accepted":
                accepted.append(row["problem"])
    well = sum(is_well_formed_problem(p) for p in accepted)
    return {"run": str(run), "generated": sum(decisions.values()), "decisions": dict(decisions),
            "accepted_well_formed": well / len(accepted) if accepted else float("nan"), "accepted": accepted}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--steps", default="1-", help="a step range, e.g. 1-20 (default: all)")
    ap.add_argument("--examples", type=int, default=0, help="accepted problems to print per run")
    args = ap.parse_args()
    lo, _, hi = args.steps.partition("-")
    first, last = int(lo or 1), int(hi) if hi else None
    rows = [stats(run, first, last) for run in args.runs]
    kinds = sorted({k for r in rows for k in r["decisions"]})
    print("| run | generated | " + " | ".join(kinds) + " | accepted and well-formed |")
    print("|" + " --- |" * (len(kinds) + 3))
    for r in rows:
        cells = [str(r["decisions"].get(k, 0)) for k in kinds]
        well = f"{r['accepted_well_formed']:.1%}"
        print(f"| {r['run']} | {r['generated']} | " + " | ".join(cells) + f" | {well} |")
    for r in rows:
        for p in r["accepted"][:args.examples]:
            print(f"{r['run']}: {p!r}")


if __name__ == "__main__":
    main()
