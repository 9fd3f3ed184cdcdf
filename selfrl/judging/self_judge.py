"""Self-judging as a group-aware reward: the policy judges pairs of its own responses.

:class:`SelfJudgeReward` builds the judge prompts for every scheduled pair of each group
(SERL: both orders, K/2 each; SR-R1: a seeded coin flip per pair), samples the judgments
through a rollout engine (the policy's own by default), parses them, and turns each group's
judgments into rewards with a registered aggregator (``copeland``, ``elo``,
``bradley_terry``).  Each group's judge samples come back with the scores, as
``group_data["judge"]`` (a :class:`JudgedGroup` per group): they travel with their group on the
rollout batch, so that a recipe can train the judge on exactly the groups it trains (SERL).

When rows carry a ground truth (``truth``, a name in :data:`~selfrl.judging.truth.JUDGE_TRUTHS`:
the gold answer of the arith task, the checker of the instruct task), the judge's accuracy is
measured on the pairs the truth ranks apart (``judge_accuracy``; for ``accuracy``, the pairs
where exactly one response is right) and the truth's mean over the responses is logged
(``truth_mean``: how good the answers are by a measure the run never trains on); neither ever
enters the reward.  When pairs are judged in both orders (SERL), ``judge_position_consistency`` is
the share of the two orders' verdicts (the k-th of one order beside the k-th of the other, both
parsed) that pick the same response: a judge that follows the slot rather than the content
scores 0.  ``judge_first_slot_frac`` is the share of verdicts given that pick the response shown
first (0.5 for a judge with no position bias), under either schedule.

With ``simulated_accuracy`` set, no model judges: each verdict follows the truth with that
probability (:func:`~selfrl.judging.truth.simulated_winner`; pairs the truth ranks equal by a
fair coin, or a tie verdict with ``simulated_ties``), through the
same pair schedule and aggregator.  Its samples carry a one-line note instead of a judge's text
and no tokens, so they are never trained.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from selfrl.judging.aggregators import AGGREGATORS, AggregatorParams, Judgment
from selfrl.judging.parse import parse_serl, parse_srr1
from selfrl.judging.rewards import pair_schedule, strip_think, to_judgment, word_count
from selfrl.judging.truth import JUDGE_TRUTHS, simulated_winner
from selfrl.prompts import PromptFormat, serl_judge_messages, srr1_judge_messages
from selfrl.rewards.base import RewardBatch, RewardResult
from selfrl.rollout.base import Completion, SamplingParams

FORMATS = {
    "serl": (serl_judge_messages, parse_serl),
    "srr1": (srr1_judge_messages, parse_srr1),
}


@dataclass
class JudgeSample:
    """One judgment of a group's pair: responses ``judgment.i`` then ``judgment.j`` shown (indices
    within the group), and the judge's completion."""

    judgment: Judgment
    completion: Completion


@dataclass
class JudgedGroup:
    """What the judge did for one group: its samples, and the scores its aggregator gave the
    group's responses from them (before any other reward is added)."""

    samples: list[JudgeSample]
    scores: list[float]

    def to_record(self) -> dict:
        """The group's verdicts and scores as plain JSON (the rollout samples write it).

        >>> done = Completion("Response 2 is right.", [5], [-0.1], "stop")
        >>> JudgedGroup([JudgeSample(Judgment(0, 1, 1), done)], [0.0, 1.0]).to_record()
        {'scores': [0.0, 1.0], 'verdicts': [{'shown': [0, 1], 'winner': 1, 'text': 'Response 2 is right.'}]}
        """
        return {"scores": list(self.scores),
                "verdicts": [{"shown": [s.judgment.i, s.judgment.j], "winner": s.judgment.winner,
                              "text": s.completion.text} for s in self.samples]}


class SelfJudgeReward:
    """Rewards from pairwise self-judgments (group-aware).

    Args:
        engine: a rollout engine (``generate(prompt_ids, params, generator)``).
        tokenizer: the judge's tokenizer.
        prompt_format: renders the judge prompts (the run's chat template, its file and kwargs;
            ``None``: the tokenizer's own template).
        fmt: ``serl`` (``\\boxed{1}``/``\\boxed{2}``) or ``srr1`` (``Winner: response A|B``).
        aggregator: a name in :data:`selfrl.judging.aggregators.AGGREGATORS`.
        schedule: ``both_orders`` (SERL) or ``coin_flip`` (SR-R1).
        judge_samples: K, judgments per unordered pair (SERL: 4-8).
        sampling: the judge's sampling settings (default SERL's: temperature 0.9, 2,048 tokens).
        seed: seeds the coin flips.
        generator: a ``torch.Generator`` for the judge's sampling (the trainer's, so that
            resume is exact).
        truth: a name in :data:`~selfrl.judging.truth.JUDGE_TRUTHS` the judge is measured against
            where a row carries it (``None``: not measured).
        simulated_accuracy: judge by the truth instead of a model, right with this probability
            (``None``: a model judges); every row must then carry the truth.
        simulated_ties: the simulated judge may call a pair the truth ranks equal a tie (no
            winner, so no aggregator counts it), with probability ``simulated_accuracy``.
        length_window: ``(low, high)`` of SERL's length control in ``copeland`` (a win over a
            response of ``L_o`` words counts only when ``low * L_o < L < high * L_o``);
            ``None``: no length control, every win counts 1.
    """

    name = "self_judge"

    def __init__(self, engine, tokenizer, fmt: str = "serl", aggregator: str = "copeland",
                 schedule: str = "both_orders", judge_samples: int = 4,
                 sampling: SamplingParams | None = None,
                 seed: int = 0, generator=None, name: str | None = None,
                 prompt_format: PromptFormat | None = None, truth: str | None = "accuracy",
                 simulated_accuracy: float | None = None, simulated_ties: bool = False,
                 length_window: tuple[float, float] | None = (0.8, 1.2)) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"judge format must be one of {sorted(FORMATS)}, got {fmt!r}")
        if simulated_accuracy is not None and (truth is None or not 0.0 <= simulated_accuracy <= 1.0):
            raise ValueError(f"a simulated judge needs a truth to follow and an accuracy in [0, 1]; got "
                             f"truth {truth!r}, accuracy {simulated_accuracy}")
        self.engine, self.tokenizer, self.fmt = engine, tokenizer, fmt
        self.prompt_format = prompt_format or PromptFormat()
        self.aggregate = AGGREGATORS.get(aggregator)
        self.length_control = length_window is not None
        low, high = length_window or (0.8, 1.2)
        self.params = AggregatorParams(judge_samples=judge_samples, length_low=low, length_high=high)
        self.schedule = schedule
        self.sampling = sampling or SamplingParams(temperature=0.9, max_new_tokens=2048)  # SERL's
        self.rng = random.Random(seed)
        self.generator = generator
        self.truth = JUDGE_TRUTHS.get(truth) if truth is not None else None
        self.truth_name = truth
        self.simulated_accuracy = simulated_accuracy
        if simulated_ties and simulated_accuracy is None:
            raise ValueError("simulated_ties is the simulated judge's: set simulated_accuracy too")
        self.simulated_ties = simulated_ties
        self.flips = random.Random(f"{seed}:simulated judge")  # its own stream: the schedule is unchanged
        if name:
            self.name = name

    def __call__(self, batch: RewardBatch) -> RewardResult:
        responses = [strip_think(c) for c in batch.completions]
        plan: list[tuple[int, int, int]] = []  # (group, i, j) in group-local indices
        for g, rng_ in enumerate(batch.groups()):
            for i, j in pair_schedule(len(rng_), self.params.judge_samples, self.rng, self.schedule):
                plan.append((g, i, j))
        truths = [self._truth(batch, g) for g in batch.groups()]
        if self.simulated_accuracy is None:
            samples = self._ask(batch, responses, plan)
        else:
            samples = self._simulate(batch, plan, truths)
        groups: list[JudgedGroup] = [JudgedGroup([], []) for _ in batch.groups()]
        for (g, _, _), sample in zip(plan, samples):
            groups[g].samples.append(sample)
        for g, group in zip(batch.groups(), groups):
            lengths = [word_count(responses[k]) for k in g] if self.length_control else None
            group.scores = self.aggregate(batch.group_size, [s.judgment for s in group.samples], lengths,
                                          self.params)
        scores = [x for group in groups for x in group.scores]
        return RewardResult(scores, self._metrics(groups, truths), {"judge": groups})

    def _truth(self, batch: RewardBatch, group: range) -> list[float] | None:
        """Each response's score by the truth, or ``None`` (no truth, or the row carries none)."""
        if self.truth is None:
            return None
        return self.truth(batch.rows[group.start], batch.completions[group.start:group.stop])

    def _ask(self, batch: RewardBatch, responses: list[str],
             plan: list[tuple[int, int, int]]) -> list[JudgeSample]:
        """The judge model's verdict on every planned pair: prompts rendered, sampled, parsed."""
        build, parse = FORMATS[self.fmt]
        prompts = []
        for g, i, j in plan:
            base = g * batch.group_size
            messages = build(batch.prompts[base], responses[base + i], responses[base + j])
            prompts.append(self.prompt_format.render(self.tokenizer, messages))
        outs = self.engine.generate(prompts, SamplingParams(
            n=1, temperature=self.sampling.temperature, top_p=self.sampling.top_p,
            max_new_tokens=self.sampling.max_new_tokens), self.generator)
        return [JudgeSample(to_judgment(i, j, parse(out[0].text)), out[0])
                for (_, i, j), out in zip(plan, outs)]

    def _simulate(self, batch: RewardBatch, plan: list[tuple[int, int, int]],
                  truths: list[list[float] | None]) -> list[JudgeSample]:
        """The simulated judge's verdict on every planned pair (one independent draw each)."""
        samples = []
        for g, i, j in plan:
            truth = truths[g]
            if truth is None:
                row = batch.rows[g * batch.group_size]
                raise ValueError(f"the simulated judge follows the truth {self.truth_name!r}, which row "
                                 f"{row.get('id', g)!r} does not carry (fields: {', '.join(sorted(row))})")
            winner = simulated_winner(i, j, truth, self.simulated_accuracy, self.flips, self.simulated_ties)
            head = f"[simulated judge] truth {truth[i]:g} vs {truth[j]:g}"
            if winner is None:
                note = f"{head}: a tie"
            else:
                if truth[i] == truth[j]:
                    how = "a coin (equal truth)"
                elif truth[winner] == max(truth[i], truth[j]):
                    how = "the truth"
                else:
                    how = "a flip against the truth"
                note = f"{head}: picked {1 if winner == i else 2} by {how}"
            samples.append(JudgeSample(Judgment(i, j, winner), Completion(note, [], [], "simulated")))
        return samples

    def _metrics(self, groups: list[JudgedGroup], truths: list[list[float] | None]) -> dict[str, float]:
        samples = [(truth, s) for truth, group in zip(truths, groups) for s in group.samples]
        failures = sum(s.judgment.winner is None for _, s in samples)
        if self.simulated_accuracy is None:
            metrics = {"judge_parse_failure_frac": failures / max(1, len(samples))}
        else:  # the simulated judge always answers; its no-winner verdicts are ties
            metrics = {"judge_parse_failure_frac": 0.0, "judge_tie_frac": failures / max(1, len(samples))}
        agree = [a == b for group in groups for a, b in _both_orders(group.samples)]
        if agree:
            metrics["judge_position_consistency"] = sum(agree) / len(agree)
        given = [s.judgment for _, s in samples if s.judgment.winner is not None]
        if given:  # position bias under any schedule (SR-R1's shows each pair in one order only)
            metrics["judge_first_slot_frac"] = sum(jd.winner == jd.i for jd in given) / len(given)
        known = [x for truth in truths if truth is not None for x in truth]
        if known:
            metrics["truth_mean"] = sum(known) / len(known)
        right, seen = 0, 0
        for truth, s in samples:
            jd = s.judgment
            if truth is None or jd.winner is None or truth[jd.i] == truth[jd.j]:
                continue  # no truth here, no verdict, or the truth cannot tell the two apart
            seen += 1
            right += truth[jd.winner] > truth[jd.loser]
        if seen:
            metrics["judge_accuracy"] = right / seen
            metrics["judge_checkable_pairs"] = float(seen)
        return metrics


def _both_orders(samples: list[JudgeSample]) -> list[tuple[int, int]]:
    """The winners of a pair's verdicts in one order beside those in the other (the k-th with the
    k-th), where both parsed.

    >>> done = Completion("", [], [], "stop")
    >>> js = [Judgment(0, 1, 0), Judgment(1, 0, 0), Judgment(0, 2, 0), Judgment(2, 0, 2),
    ...       Judgment(1, 2, None)]
    >>> _both_orders([JudgeSample(j, done) for j in js])
    [(0, 0), (0, 2)]
    """
    by_order: dict[tuple[int, int], list[int | None]] = {}
    for s in samples:
        by_order.setdefault((s.judgment.i, s.judgment.j), []).append(s.judgment.winner)
    return [(a, b) for (i, j), first in by_order.items() if i < j
            for a, b in zip(first, by_order.get((j, i), [])) if a is not None and b is not None]
