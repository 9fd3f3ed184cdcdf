"""Probe whether the embedded model can learn to judge with more training aimed at judging.

Two probes, each a continuation of the shipped model's SFT (TRL's SFTTrainer, the build's
settings except the step count and learning rate), then a greedy measurement on held-out
problems; neither changes the shipped model:

- ``pairwise``: a judge-heavy mix (judge rows 60 % instead of 18 %, solving 30 %), measured
  as the build measures its judge (500 balanced pairs, SERL and SR-R1 formats);
- ``verify``: one solution instead of two, so nothing has to be told apart from a near copy:
  ``Is this solution right?`` → ``Right.`` or ``Wrong at step k.`` (60 % of rows; the rest
  solving), measured on 400 held-out solutions, half of them corrupted as the judge pairs are.

RESULTS.md ("Can the judge reach 60 %?") has the figures and the commands:

    python scripts/probe_judge_skills.py pairwise --steps 600 --lr 5e-4 --output /tmp/probe_pairwise
    python scripts/probe_judge_skills.py verify --steps 500 --lr 5e-4 --output /tmp/probe_verify
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import replace
from pathlib import Path

from selfrl.data.arith import ArithGenerator, ArithProblem, ArithSpec, corrupt_solution
from selfrl.data.arith_files import ArithSplits, judge_rows, make_splits
from selfrl.models import embedded_model_path, load_causal_lm, load_tokenizer
from selfrl.rollout.base import SamplingParams
from selfrl.rollout.hf import HFEngine
from selfrl.tiny.build import TinyBuildConfig, measure_judge, train
from selfrl.tiny.mix import MixWeights, build_mix, solve_row

SEED = 11


def verify_row(p: ArithProblem, rng: random.Random, wrong: bool) -> tuple[dict, int]:
    """One solution to check; returns the row and the first wrong step (0 when right).

    >>> from selfrl.data.arith import ArithGenerator
    >>> p = ArithGenerator(ArithSpec(), seed=3).sample()
    >>> row, k = verify_row(p, random.Random(0), wrong=True)
    >>> k > 0 and row["completion"][0]["content"] == f"Wrong at step {k}."
    True
    """
    if wrong:
        steps, answer = corrupt_solution(p, rng)
        k = next(i for i, (a, b) in enumerate(zip(p.steps, steps)) if a != b) + 1
        text, verdict = ArithProblem(p.question, steps, answer, p.n_ops).solution, f"Wrong at step {k}."
    else:
        k, text, verdict = 0, p.solution, "Right."
    prompt = [{"role": "user",
               "content": f"Is this solution right?\n\nProblem: {p.question}\n\nSolution:\n{text}"}]
    return {"prompt": prompt, "completion": [{"role": "assistant", "content": verdict}]}, k


def pairwise_rows(n: int, spec: ArithSpec, held_out: set[str]) -> list[dict]:
    """The build's mix with judge rows at 60 % (SERL and SR-R1 alike) and solving at 30 %."""
    weights = MixWeights(solve=0.3, self_instruct=0.05, judge_serl=0.3, judge_srr1=0.3, srl_step=0.05)
    return build_mix(n, spec, held_out, SEED, weights)


def verify_rows(n: int, spec: ArithSpec, held_out: set[str]) -> list[dict]:
    """Verification rows (60 %, half of them wrong) and solving rows (40 %)."""
    gen, rng, rows = ArithGenerator(spec, 123), random.Random(5), []
    while len(rows) < n:
        p = gen.sample()
        if p.question not in held_out:
            rows.append(solve_row(p) if rng.random() < 0.4 else verify_row(p, rng, rng.random() < 0.5)[0])
    return rows


def measure_verify(model, tokenizer, problems: list[ArithProblem]) -> dict:
    """Greedy verdicts on ``problems``' solutions, every second one corrupted."""
    rng = random.Random(99)
    tests = [verify_row(p, rng, i % 2 == 1) for i, p in enumerate(problems)]
    prompts = [tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=True,
                                             return_dict=False) for r, _ in tests]
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=48)
    outs = [g[0].text for g in HFEngine(model, tokenizer, batch_size=100).generate(prompts, params)]
    right = sum(("Wrong" in o) == (k > 0) for (_, k), o in zip(tests, outs))
    located = sum(k > 0 and f"step {k}." in o for (_, k), o in zip(tests, outs))
    n_wrong = sum(k > 0 for _, k in tests)
    return {"verify_accuracy": right / len(tests), "located_when_wrong": located / n_wrong,
            "said_wrong": sum("Wrong" in o for o in outs) / len(outs), "n": len(tests)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("probe", choices=["pairwise", "verify"])
    ap.add_argument("--steps", type=int, default=600, help="SFT steps of 8 rows (0: measure only)")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--model", default=str(embedded_model_path()))
    ap.add_argument("--output", type=Path, required=True)
    args = ap.parse_args()

    spec = ArithSpec()
    splits = make_splits(ArithSplits(spec=spec, hard_spec=ArithSpec(min_ops=3, max_ops=4)), seed=0)
    held_out = {p.question for p in splits["test"] + splits["test_hard"]}
    tokenizer, model = load_tokenizer(args.model), load_causal_lm(args.model, "cpu", "fp32")
    if args.steps:
        make = pairwise_rows if args.probe == "pairwise" else verify_rows
        rows = make(args.steps * 8, spec, held_out)
        cfg = replace(TinyBuildConfig(), max_steps=args.steps, learning_rate=args.lr, seed=SEED)
        t0 = time.time()
        train(cfg, args.output, rows, tokenizer, model)
        print(f"trained {args.steps} steps in {(time.time() - t0) / 60:.1f} min")
    model.eval()
    if args.probe == "pairwise":
        report = measure_judge(model, tokenizer, judge_rows(splits["test"][:500], random.Random(7)))
        report.pop("examples")
    else:
        report = measure_verify(model, tokenizer, splits["test"][:400])
    print(json.dumps(report, indent=1))
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "report.json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
