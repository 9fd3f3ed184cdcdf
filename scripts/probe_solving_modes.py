"""How a model begins its solutions, and what each way of beginning is worth.

Two measurements on the first problems of a held-out file (RESULTS.md, "Answer-only rows: a
switch for RL to flip?"):

- ``sample``: ``--n`` samples per problem at ``--temperature``, split by whether the reply
  begins with ``1.`` (worked, numbered steps) or not (answer-only); count and accuracy of each;
- ``forced``: greedy solutions with ``1.`` forced as the reply's first tokens: accuracy, and how
  often the boxed answer equals the last step's result (``= N.``).

    python scripts/probe_solving_modes.py --model /tmp/m_direct --data /tmp/arith20/test.jsonl
"""

from __future__ import annotations

import argparse
import json
import re

import torch

from selfrl.eval.extract import equivalent, extract_answer
from selfrl.models import load_causal_lm, load_tokenizer
from selfrl.prompts import solve_messages
from selfrl.rollout.base import SamplingParams
from selfrl.rollout.hf import HFEngine

_STEP_RESULT = re.compile(r"= (-?\d+)\.")


def _prompts(tokenizer, rows: list[dict], suffix: list[int]) -> list[list[int]]:
    return [tokenizer.apply_chat_template(solve_messages(r["question"]), add_generation_prompt=True,
                                          tokenize=True, return_dict=False) + suffix for r in rows]


def sample_modes(engine: HFEngine, tokenizer, rows: list[dict], n: int, temperature: float) -> dict:
    """Samples split by how they begin: {mode: (count, accuracy)}."""
    params = SamplingParams(n=n, temperature=temperature, max_new_tokens=128)
    outs = engine.generate(_prompts(tokenizer, rows, []), params, torch.Generator().manual_seed(0))
    seen = {"worked": [0, 0], "answer_only": [0, 0]}
    for row, group in zip(rows, outs):
        for c in group:
            mode = "worked" if c.text.lstrip().startswith("1.") else "answer_only"
            seen[mode][0] += 1
            seen[mode][1] += equivalent(extract_answer(c.text), str(row["answer"]))
    return {m: {"count": k, "accuracy": ok / max(1, k)} for m, (k, ok) in seen.items()}


def forced_worked(engine: HFEngine, tokenizer, rows: list[dict]) -> dict:
    """Greedy with ``1.`` forced: accuracy, and agreement of the boxed answer with the last step."""
    prefix = tokenizer.encode("1.", add_special_tokens=False)
    outs = engine.generate(_prompts(tokenizer, rows, prefix), SamplingParams(n=1, temperature=0.0,
                                                                            max_new_tokens=128))
    right = agree = checked = 0
    for row, group in zip(rows, outs):
        text, boxed = group[0].text, extract_answer(group[0].text)
        right += equivalent(boxed, str(row["answer"]))
        steps = _STEP_RESULT.findall(text)
        if steps and boxed is not None:
            checked += 1
            agree += steps[-1] == boxed
    return {"accuracy": right / len(rows), "boxed_equals_last_step": agree, "checked": checked}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="held-out JSONL with question and answer")
    ap.add_argument("--problems", type=int, default=200, help="forced: this many; sample: 120")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=1.0)
    args = ap.parse_args()
    model, tokenizer = load_causal_lm(args.model, "cpu", "fp32"), load_tokenizer(args.model)
    rows = [json.loads(line) for line in open(args.data)]
    engine = HFEngine(model, tokenizer, batch_size=128)
    report = {"sample": sample_modes(engine, tokenizer, rows[:120], args.n, args.temperature),
              "forced": forced_worked(engine, tokenizer, rows[:args.problems])}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
