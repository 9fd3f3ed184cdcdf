"""Can a model answer in SRL's format at all?  SRL's step reward scores -1 unless the completion is
``<think>...</think>`` followed by exactly one step (``selfrl/rewards/srl_step.py``); a model that
never writes that form gives every sample of a group -1, dynamic sampling drops the group, and
SRL has nothing to train on.  This samples the model on SRL step prompts, as written and with
``<think>`` already put at the start of its answer (prefilled), and reports the well-formed share
and the similarity of the well-formed steps to the expert's.

Usage::

    python scripts/probe_srl_format.py --model smollm2-135m --data data/arith_1op/srl_train.jsonl \\
        --limit 50 --n 4 [--out probe.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from selfrl.data.io import read_rows
from selfrl.models import load_causal_lm, load_tokenizer
from selfrl.prompts import PromptFormat
from selfrl.rewards.srl_step import parse_action, similarity
from selfrl.rollout.base import SamplingParams
from selfrl.rollout.hf import HFEngine

PREFIX = "<think>"


def score(texts: list[str], targets: list[str]) -> dict:
    """Well-formed share and mean similarity of the well-formed actions to their targets.

    >>> score(["<think>a</think> 2. 3 + 4 = 7.", "3 + 4 = 7."], ["3 + 4 = 7.", "3 + 4 = 7."])
    {'n': 2, 'well_formed': 0.5, 'similarity_of_well_formed': 1.0}
    """
    actions = [parse_action(t) for t in texts]
    sims = [similarity(a, g) for a, g in zip(actions, targets) if a is not None]
    return {"n": len(texts), "well_formed": len(sims) / len(texts),
            "similarity_of_well_formed": sum(sims) / len(sims) if sims else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--data", default="data/arith_1op/srl_train.jsonl",
                    help="SRL step rows (selfrl data srl)")
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--n", type=int, default=4, help="samples per prompt")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    tokenizer = load_tokenizer(args.model)
    model = load_causal_lm(args.model, device="cpu").eval()
    engine = HFEngine(model, tokenizer, batch_size=64)
    rows = read_rows(args.data, required=["prompt", "target"])[:args.limit]
    fmt = PromptFormat()
    plain = [fmt.ids(tokenizer, r, "question") for r in rows]
    prefix_ids = tokenizer(PREFIX, add_special_tokens=False)["input_ids"]
    params = SamplingParams(n=args.n, temperature=args.temperature, max_new_tokens=args.max_new_tokens)
    targets = [r["target"] for r in rows for _ in range(args.n)]
    report = {"model": args.model, "data": args.data, "prompts": len(rows), "samples_per_prompt": args.n}
    prefilled = [p + prefix_ids for p in plain]
    for name, prompts, lead in (("as written", plain, ""), ("<think> prefilled", prefilled, PREFIX)):
        texts = [lead + c.text for group in engine.generate(prompts, params) for c in group]
        report[name] = {**score(texts, targets), "examples": texts[:3]}
        print(f"{name}: well-formed {report[name]['well_formed']:.1%} of {len(texts)}, similarity of the "
              f"well-formed {report[name]['similarity_of_well_formed']:.2f}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
