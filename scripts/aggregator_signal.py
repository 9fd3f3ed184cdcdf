"""How much of RLVR's advantage does a judge + aggregator deliver, and how much noise with it?

No model: groups of ``n`` answers with ``k`` right ones (the truth), a simulated judge of
accuracy ``p`` (:func:`~selfrl.judging.truth.simulated_winner`, ties optional) over the recipe's
pair schedule, an aggregator's rewards, and GRPO's advantage of them, beside RLVR's advantage of
the truth (1 right, 0 wrong).  For each (aggregator, p), over groups drawn with ``k ~
Binomial(n, q)`` and the right answers at random positions:

* ``signal``: the regression coefficient of the aggregator's advantage on RLVR's,
  ``E[A . A_rlvr] / E[|A_rlvr|^2]`` — the share of RLVR's expected update it delivers;
* ``noise``: the mean squared residual per answer, ``E[|A - signal * A_rlvr|^2] / n``
  (RLVR's own is 0): what the aggregator adds that the truth does not ask for;
* ``snr``: ``signal^2 * E[|A_rlvr|^2] / n / noise``, the update's share against the noise;
* ``noise_equal``: the share of that noise from groups the truth cannot rank (all right or all
  wrong), where RLVR's advantage is 0;
* ``within_class``: the mean spread (max - min) of the advantages within a class of equal truth
  (the right answers, the wrong ones) of two or more (RLVR: 0) — an order artefact shows here
  even at ``p = 1``.

Example (the simulated-judge sweep's settings: SERL's schedule, 8 answers, ties allowed)::

    python scripts/aggregator_signal.py --p 0.5 0.6 0.7 0.8 0.9 1.0 \\
        --aggregators copeland elo bradley_terry --ties --q 0.2 --out runs/aggregator_signal.json
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import torch

from selfrl.algorithms.advantages import ADVANTAGE_ESTIMATORS, AdvantageInput, AdvantageParams
from selfrl.judging.aggregators import AGGREGATORS, AggregatorParams, Judgment
from selfrl.judging.rewards import pair_schedule
from selfrl.judging.truth import simulated_winner


def grpo_advantage(scores: np.ndarray) -> np.ndarray:
    """The trainer's GRPO advantage (``selfrl.algorithms.advantages.grpo``) of one group.

    >>> grpo_advantage(np.array([1.0, 0.0])).round(3).tolist()
    [0.707, -0.707]
    """
    n = len(scores)
    inp = AdvantageInput(scores=torch.tensor(scores, dtype=torch.float64), response_mask=torch.ones(n, 1),
                         group_index=torch.zeros(n, dtype=torch.long))
    return ADVANTAGE_ESTIMATORS.get("grpo")(inp, AdvantageParams()).advantages[:, 0].numpy()


def group_advantages(truth: list[float], aggregator: str, p: float, ties: bool, schedule: str,
                     judge_samples: int, rng: random.Random) -> np.ndarray:
    """One group's GRPO advantages from the simulated judge's verdicts through ``aggregator``."""
    n = len(truth)
    judgments = []
    for i, j in pair_schedule(n, judge_samples, rng, schedule):
        judgments.append(Judgment(i, j, simulated_winner(i, j, truth, p, rng, ties)))
    rewards = AGGREGATORS.get(aggregator)(n, judgments, None, AggregatorParams(judge_samples=judge_samples))
    return grpo_advantage(np.asarray(rewards, dtype=float))


def measure(aggregator: str, p: float, *, n: int, q: float, groups: int, ties: bool, schedule: str,
            judge_samples: int, seed: int) -> dict[str, float]:
    """The signal / noise figures of one (aggregator, p) over ``groups`` random groups."""
    rng = random.Random(seed)
    dot = norm = 0.0
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    spreads: list[float] = []
    for _ in range(groups):
        k = sum(rng.random() < q for _ in range(n))
        right = set(rng.sample(range(n), k))
        truth = [1.0 if i in right else 0.0 for i in range(n)]
        adv = group_advantages(truth, aggregator, p, ties, schedule, judge_samples, rng)
        ref = grpo_advantage(np.asarray(truth)) if 0 < k < n else np.zeros(n)
        dot += float(adv @ ref)
        norm += float(ref @ ref)
        pairs.append((adv, ref))
        for cls in (sorted(right), sorted(set(range(n)) - right)):
            if len(cls) >= 2:
                spreads.append(float(adv[cls].max() - adv[cls].min()))
    signal = dot / norm if norm else 0.0
    residual = [float(((a - signal * r) ** 2).sum()) for a, r in pairs]
    equal = [res for res, (_, r) in zip(residual, pairs) if not r.any()]
    total = sum(residual)
    rlvr_power = norm / (groups * n)  # RLVR's own mean squared advantage per answer
    noise = total / (groups * n)
    return {"signal": signal, "noise": noise, "rlvr_power": rlvr_power,
            "snr": signal ** 2 * rlvr_power / noise if noise > 1e-9 else float("inf"),
            "noise_equal": sum(equal) / total if total else 0.0,
            "within_class": float(np.mean(spreads)) if spreads else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--p", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    ap.add_argument("--aggregators", nargs="+", default=["copeland", "elo", "bradley_terry"])
    ap.add_argument("--n", type=int, default=8, help="answers a group")
    ap.add_argument("--q", type=float, default=0.2, help="chance that an answer is right")
    ap.add_argument("--groups", type=int, default=2000)
    ap.add_argument("--ties", action="store_true", help="the judge may call a tie (recipe_args.judge_ties)")
    ap.add_argument("--schedule", default="both_orders", help="pair schedule (SERL: both_orders)")
    ap.add_argument("--judge-samples", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the table as JSON here")
    args = ap.parse_args()

    rows = []
    for agg in args.aggregators:
        for p in args.p:
            m = measure(agg, p, n=args.n, q=args.q, groups=args.groups, ties=args.ties,
                        schedule=args.schedule, judge_samples=args.judge_samples, seed=args.seed)
            rows.append({"aggregator": agg, "p": p, **m})
    print(f"n={args.n} q={args.q} ties={args.ties} schedule={args.schedule} K={args.judge_samples} "
          f"groups={args.groups}\n")
    print("| aggregator | p | signal | noise | signal/noise | noise from equal groups | spread in a class |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['aggregator']} | {r['p']:.2f} | {r['signal']:.3f} | {r['noise']:.4f} | {r['snr']:.2f} | "
              f"{100 * r['noise_equal']:.0f} % | {r['within_class']:.3f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"settings": {k: (str(v) if isinstance(v, Path) else v)
                                                     for k, v in vars(args).items()}, "rows": rows},
                                       indent=2) + "\n")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
