"""The two supervised data files of SRL's table on the real model (RESULTS.md, "SRL on the real
model"), written from the quick start's expert data:

- ``--warmup``: SRL's answer format taught by example.  SmolLM2-135M-Instruct writes
  ``<think>...</think>`` + one step on 0 % of SRL's step prompts, so every SRL reward is -1 and SRL
  has nothing to learn from (``scripts/probe_srl_format.py``).  A short SFT on these rows fixes the
  form: the step prompt, then ``<think>`` with a fixed-pattern note (the last number so far and
  which step comes next; no reasoning of the expert's, which the trajectories do not have), then
  the expert's step.  A departure from the paper, which starts from a model that already follows
  the format; the rows come from the end of the step file and the warm-up model is a row of the
  table, so its own share of any gain is shown.
- ``--sft``: the SFT baseline's rows, the whole expert solutions asked as the quick start asks
  (the problem + "Answer with the final number as 'The answer is N.'").

Usage::

    python scripts/srl_smollm2_data.py --steps data/arith_1op/srl_train.jsonl --last 200 \\
        --warmup data/arith_1op/srl_warmup.jsonl \\
        --trajectories data/arith_1op/trajectories.jsonl --sft data/arith_1op/sft_quickstart.jsonl
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from selfrl.data.io import read_rows

QUICKSTART = "{question} Answer with the final number as 'The answer is N.'"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def warmup_completion(previous_steps: list[str], step_index: int, target: str) -> str:
    """``<think>`` note ``</think>`` then the expert's step, numbered.

    >>> warmup_completion(["Nina buys 5 boxes of 4 pens: 5 * 4 = 20."], 2, "She finds 8 more: 20 + 8 = 28.")
    '<think>So far: 20. Step 2 comes next.</think>\\n2. She finds 8 more: 20 + 8 = 28.'
    >>> warmup_completion([], 1, "Tom has 4 apples.")
    '<think>Nothing computed yet. Step 1 comes next.</think>\\n1. Tom has 4 apples.'
    """
    numbers = _NUMBER.findall(" ".join(previous_steps))
    so_far = f"So far: {numbers[-1]}." if numbers else "Nothing computed yet."
    return f"<think>{so_far} Step {step_index} comes next.</think>\n{step_index}. {target}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=Path, default=Path("data/arith_1op/srl_train.jsonl"))
    ap.add_argument("--last", type=int, default=200, help="warm-up rows, from the end of --steps")
    ap.add_argument("--warmup", type=Path, default=Path("data/arith_1op/srl_warmup.jsonl"))
    ap.add_argument("--trajectories", type=Path, default=Path("data/arith_1op/trajectories.jsonl"))
    ap.add_argument("--sft", type=Path, default=Path("data/arith_1op/sft_quickstart.jsonl"))
    args = ap.parse_args()
    steps = read_rows(str(args.steps), required=["prompt", "target", "step_index", "previous_steps"])
    with args.warmup.open("w") as f:
        for row in steps[-args.last:]:
            f.write(json.dumps({"question": row["prompt"][-1]["content"],
                                "completion": warmup_completion(row["previous_steps"], row["step_index"],
                                                                row["target"])}) + "\n")
    trajectories = read_rows(str(args.trajectories), required=["problem", "solution"])
    with args.sft.open("w") as f:
        for row in trajectories:
            f.write(json.dumps({"question": QUICKSTART.format(question=row["problem"]),
                                "solution": row["solution"], "answer": row.get("answer")}) + "\n")
    print(f"{args.warmup}: {min(args.last, len(steps))} rows; {args.sft}: {len(trajectories)} rows")


if __name__ == "__main__":
    main()
