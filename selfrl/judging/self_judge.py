"""Self-judging as a group-aware reward: the policy judges pairs of its own responses.

:class:`SelfJudgeReward` builds the judge prompts for every scheduled pair of each group
(SERL: both orders, K/2 each; SR-R1: a seeded coin flip per pair), samples the judgments
through a rollout engine (the policy's own by default), parses them, and turns each group's
judgments into rewards with a registered aggregator (``copeland``, ``elo``,
``bradley_terry``).  It keeps the judge samples of its last call in ``last_samples`` so that
a recipe can train the judge too (SERL).

When rows carry a gold ``answer`` (the arith task), the judge's accuracy is measured on the
pairs where exactly one response is right; it never enters the reward.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from selfrl.eval.extract import extract_answer, grade
from selfrl.judging.aggregators import AGGREGATORS, AggregatorParams, Judgment
from selfrl.judging.parse import parse_serl, parse_srr1
from selfrl.judging.rewards import pair_schedule, strip_think, to_judgment, word_count
from selfrl.prompts import serl_judge_messages, srr1_judge_messages
from selfrl.rewards.base import RewardBatch, RewardResult
from selfrl.rollout.base import Completion, SamplingParams

FORMATS = {
    "serl": (serl_judge_messages, parse_serl),
    "srr1": (srr1_judge_messages, parse_srr1),
}


@dataclass
class JudgeSample:
    """One judgment: group ``group``, responses ``i`` then ``j`` shown, the judge's completion."""

    group: int
    judgment: Judgment
    completion: Completion


class SelfJudgeReward:
    """Rewards from pairwise self-judgments (group-aware).

    Args:
        engine: a rollout engine (``generate(prompt_ids, params, generator)``).
        tokenizer: renders judge prompts with its chat template.
        fmt: ``serl`` (``\\boxed{1}``/``\\boxed{2}``) or ``srr1`` (``Winner: response A|B``).
        aggregator: a name in :data:`selfrl.judging.aggregators.AGGREGATORS`.
        schedule: ``both_orders`` (SERL) or ``coin_flip`` (SR-R1).
        judge_samples: K, judgments per unordered pair (SERL: 4-8).
        sampling: the judge's sampling settings (default SERL's: temperature 0.9, 2,048 tokens).
        seed: seeds the coin flips.
        generator: a ``torch.Generator`` for the judge's sampling (the trainer's, so that
            resume is exact).
    """

    name = "self_judge"

    def __init__(self, engine, tokenizer, fmt: str = "serl", aggregator: str = "copeland",
                 schedule: str = "both_orders", judge_samples: int = 4,
                 sampling: SamplingParams | None = None,
                 seed: int = 0, generator=None, name: str | None = None) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"judge format must be one of {sorted(FORMATS)}, got {fmt!r}")
        self.engine, self.tokenizer, self.fmt = engine, tokenizer, fmt
        self.aggregate = AGGREGATORS.get(aggregator)
        self.params = AggregatorParams(judge_samples=judge_samples)
        self.schedule = schedule
        self.sampling = sampling or SamplingParams(temperature=0.9, max_new_tokens=2048)  # SERL's
        self.rng = random.Random(seed)
        self.generator = generator
        if name:
            self.name = name
        self.last_samples: list[JudgeSample] = []
        self.last_rewards: list[float] = []

    def __call__(self, batch: RewardBatch) -> RewardResult:
        build, parse = FORMATS[self.fmt]
        responses = [strip_think(c) for c in batch.completions]
        plan: list[tuple[int, int, int]] = []  # (group, i, j) in group-local indices
        for g, rng_ in enumerate(batch.groups()):
            for i, j in pair_schedule(len(rng_), self.params.judge_samples, self.rng, self.schedule):
                plan.append((g, i, j))
        prompts = []
        for g, i, j in plan:
            base = g * batch.group_size
            messages = build(batch.prompts[base], responses[base + i], responses[base + j])
            prompts.append(self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=False))
        outs = self.engine.generate(prompts, SamplingParams(
            n=1, temperature=self.sampling.temperature, top_p=self.sampling.top_p,
            max_new_tokens=self.sampling.max_new_tokens), self.generator)
        samples = []
        for (g, i, j), group in zip(plan, outs):
            choice = parse(group[0].text)
            samples.append(JudgeSample(g, to_judgment(i, j, choice), group[0]))
        scores: list[float] = []
        for g in range(len(batch) // batch.group_size):
            lengths = [word_count(r) for r in responses[g * batch.group_size:(g + 1) * batch.group_size]]
            judgments = [s.judgment for s in samples if s.group == g]
            scores += self.aggregate(batch.group_size, judgments, lengths, self.params)
        self.last_samples, self.last_rewards = samples, scores
        return RewardResult(scores, self._metrics(batch, samples))

    def _metrics(self, batch: RewardBatch, samples: list[JudgeSample]) -> dict[str, float]:
        failures = sum(s.judgment.winner is None for s in samples)
        metrics = {"judge_parse_failure_frac": failures / max(1, len(samples))}
        right, seen = 0, 0
        for s in samples:
            base = s.group * batch.group_size
            gold = batch.rows[base].get("answer")
            if gold is None or s.judgment.winner is None:
                continue
            ok_i = grade(extract_answer(batch.completions[base + s.judgment.i]), str(gold)).correct
            ok_j = grade(extract_answer(batch.completions[base + s.judgment.j]), str(gold)).correct
            if ok_i != ok_j:  # exactly one is right: the judge has a ground truth here
                seen += 1
                right += (s.judgment.winner == s.judgment.i) == ok_i
        if seen:
            metrics["judge_accuracy"] = right / seen
            metrics["judge_checkable_pairs"] = float(seen)
        return metrics
