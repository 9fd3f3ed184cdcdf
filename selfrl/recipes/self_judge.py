"""Self-judging recipes: SERL (Copeland + a trained judge) and SR-R1 (Elo self-reward).

SERL (``recipe: serl_judge``): the policy answers each prompt n times, then judges every
unordered pair of its answers in both orders (K/2 each) with SERL's ``\\boxed{1}|{2}`` prompt.
Actor reward: Copeland with length control.  The judge's own samples are trained too (they
ride on the rollout batch with their group, so those of filtered groups are not): each
gets SERL's self-consistency reward (+1 when it picked the answer with the higher actor
reward, -1 when lower or unparsable, 0 on a tie), normalised within its pair's K samples.
Both sides' advantages are SERL's group normalisation, (r − mean) / (std + 1e-4): the actor's
within each prompt's n answers (so ``algorithm.advantage`` must be grpo), the judge's within a
pair's K samples.  The loss is α·L_actor + β·L_judge with α = min(progress, 0.5),
β = max(1 − α, 0.5), where progress = step / steps (the authors' epoch / epochs), built as
per-sequence loss weights under token-mean aggregation (the only ``loss_agg`` accepted).  Judge
tokens are scored at the judge's sampling temperature, actor tokens at the rollout's.

SR-R1 (``recipe: srr1_elo``): each pair judged once with a seeded coin flip for the order,
SR-R1's rubric prompt, ratings by sequential Elo scaled to [0, 3]; the Elo self-reward is
added, with its weight, to the configured rewards (accuracy, format, … each weight 1.0).

Departures: the judge is the live policy through the same rollout engine (a separate frozen
judge model is an option); SERL's story-continuation prompt wrapper is not copied.  Both run
on a plain prompt file with no answers: rows need only the question field.

Not in the papers: ``judge: simulated`` replaces the judge by the ground truth (``judge_truth``:
the gold answer, or the instruct task's constraint checker) flipped with probability
``1 - judge_accuracy``, each verdict independently (ties in the truth: a fair coin, or with
``judge_ties`` a tie verdict that no aggregator counts), through the same pair schedule and
aggregator; it calibrates how accurate a judge an aggregator needs
(``scripts/judge_sweep.py``).  A simulated judge writes no tokens, so it is never trained, as a
separate ``judge_model`` is not.  With a model judge, ``judge_truth`` only measures it
(``judge_accuracy``, ``truth_mean`` in the reward's metrics): the truth never enters a reward.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, field_validator, model_validator

from selfrl.config import StrictModel, validate_section
from selfrl.judging.aggregators import group_normalise, serl_judge_rewards
from selfrl.judging.self_judge import JudgedGroup, SelfJudgeReward
from selfrl.judging.truth import JUDGE_TRUTHS
from selfrl.recipes import RECIPES
from selfrl.rewards import WeightedSum
from selfrl.rollout.base import SamplingParams
from selfrl.trainer.batch import RolloutBatch
from selfrl.trainer.recipe import Recipe, RecipeContext


class JudgeArgs(StrictModel):
    """``recipe_args`` of the self-judging recipes."""

    judge_samples: int = Field(4, ge=1, description="K: judgments per unordered pair (SERL: 4-8; SR-R1: 1)")
    judge_temperature: float = Field(0.9, ge=0, description="judge sampling temperature (SR-R1: 0.5)")
    judge_max_new_tokens: int = Field(
        2048, ge=1, description="tokens per judgment (SERL 2,048, SR-R1 500): a judge that reasons first "
                                "and is cut off before its verdict counts as unparsable")
    aggregator: str = Field("copeland", description="copeland, elo or bradley_terry")
    length_window: tuple[float, float] | None = Field(
        (0.8, 1.2), description="copeland: a win counts only against an opponent whose word count L_o "
                                "has low*L_o < L < high*L_o, weighted L_o/L (SERL's length control); "
                                "null: every win counts 1 (for short-answer tasks, where the right "
                                "answer's length rarely lies within 20 % of a wrong one's)")
    judge_weight: float = Field(1.0, description="weight of the self-judge reward in the sum (srr1)")
    judge_model: str | None = Field(None, description="a separate, frozen judge model (default: the policy)")
    train_judge: bool = Field(True, description="serl: train the judge samples (mixed loss; a separate "
                                                "judge_model or a simulated judge is never trained)")
    judge: Literal["policy", "simulated"] = Field(
        "policy", description="who judges: policy (the policy itself, or judge_model) or simulated (the "
                              "judge_truth, right with probability judge_accuracy: a judge of known skill)")
    judge_accuracy: float | None = Field(
        None, ge=0, le=1, description="judge=simulated: the probability that a verdict follows the truth "
                                      "(ties in the truth: a fair coin)")
    judge_ties: bool = Field(
        False, description="judge=simulated: a pair the truth ranks equal gets a tie verdict (no winner) "
                           "with probability judge_accuracy, a fair coin otherwise; not in SERL or SR-R1, "
                           "whose judges must pick one")
    judge_truth: str | None = Field(
        "accuracy", description="the ground truth the judge is measured against where rows carry it (and "
                                "that a simulated judge follows): accuracy (the gold answer) or constraints "
                                "(the instruct task's checker); null: none.  Never part of a reward")

    @field_validator("judge_truth")
    @classmethod
    def _known_truth(cls, name: str | None) -> str | None:
        if name is not None and name not in JUDGE_TRUTHS:
            raise ValueError(f"unknown judge truth {name!r}; valid: {', '.join(JUDGE_TRUTHS.names())}")
        return name

    @model_validator(mode="after")
    def _check_simulated(self) -> JudgeArgs:
        simulated = self.judge == "simulated"
        if simulated and (self.judge_accuracy is None or self.judge_truth is None or self.judge_model):
            raise ValueError("judge=simulated needs judge_accuracy (0 to 1) and judge_truth, and no "
                             "judge_model")
        if not simulated and (self.judge_accuracy is not None or self.judge_ties):
            raise ValueError("judge_accuracy and judge_ties are the simulated judge's: set judge=simulated, "
                             "or drop them")
        return self

    @property
    def trains_judge(self) -> bool:
        """SERL's mixed loss trains the judge samples: only the policy's own, when asked."""
        return self.train_judge and self.judge == "policy" and not self.judge_model


class _SelfJudgeRecipe(Recipe):
    args_model = JudgeArgs
    fmt, schedule = "serl", "both_orders"
    defaults: dict = {}

    def __init__(self, ctx: RecipeContext) -> None:
        super().__init__(ctx)
        self.args = validate_section(JudgeArgs, {**self.defaults, **self.cfg.recipe_args}, "recipe_args")
        if self.cfg.filter.dynamic_sampling:
            raise ValueError(f"recipe {self.cfg.recipe}: judge samples belong to one rollout round; "
                             "set filter.dynamic_sampling=false")

    def _judge(self) -> SelfJudgeReward:
        engine, tokenizer, prompt_format = self.ctx.engine, self.ctx.tokenizer, self.ctx.prompt_format
        if self.args.judge_model:
            from selfrl.models import load_causal_lm, load_tokenizer
            from selfrl.rollout.hf import HFEngine

            prompt_format = None  # another model: its own tokenizer and chat template
            tokenizer = load_tokenizer(self.args.judge_model)
            model = load_causal_lm(self.args.judge_model, device=str(self.ctx.device)).eval()
            engine = HFEngine(model, tokenizer, batch_size=self.cfg.rollout.batch_size)
        return SelfJudgeReward(
            engine, tokenizer, fmt=self.fmt, aggregator=self.args.aggregator, schedule=self.schedule,
            judge_samples=self.args.judge_samples, length_window=self.args.length_window,
            sampling=SamplingParams(temperature=self.args.judge_temperature,
                                    max_new_tokens=self.args.judge_max_new_tokens),
            seed=self.ctx.dist.rank_seed(self.cfg.train.seed), generator=self.ctx.generator,
            name=f"{self.fmt}_judge", prompt_format=prompt_format, truth=self.args.judge_truth,
            simulated_accuracy=self.args.judge_accuracy, simulated_ties=self.args.judge_ties)


SERL_STD_EPS = 1e-4  # SERL's group normalisation: (r - mean) / (std + 1e-4), actor and judge alike


@RECIPES.register("serl_judge")
class SERLJudge(_SelfJudgeRecipe):
    """SERL: Copeland actor reward, and the judge trained on its self-consistency reward."""

    def __init__(self, ctx: RecipeContext) -> None:
        super().__init__(ctx)
        a = self.cfg.algorithm
        if a.advantage != "grpo" or not a.norm_by_std:
            raise ValueError(f"recipe {self.cfg.recipe} normalises the actor's rewards within each group "
                             f"as SERL does, (r - mean) / (std + {SERL_STD_EPS:g}): set "
                             f"algorithm.advantage=grpo and algorithm.norm_by_std=true (got {a.advantage}, "
                             f"norm_by_std={a.norm_by_std})")
        if self.args.trains_judge and a.loss_agg != "token-mean":
            raise ValueError(f"recipe {self.cfg.recipe}: the mixed loss α·L_actor + β·L_judge is built as "
                             f"loss weights that are exact under token-mean aggregation only; set "
                             f"algorithm.loss_agg=token-mean (got {a.loss_agg!r}) or "
                             f"recipe_args.train_judge=false")

    def build_reward(self):
        return self._judge()

    def training_batches(self, batch: RolloutBatch) -> list[RolloutBatch]:
        """The actor's sequences with SERL's advantages, and (``train_judge``) the judge samples of
        the very groups being trained (they ride on the batch: ``group_data["judge"]``), with the
        loss weights and temperatures of the mixed loss."""
        groups = [k // batch.group_size for k in range(len(batch))]
        actor = batch.replace(fixed_advantages=torch.tensor(  # (B,) the actor's, SERL's eps
            group_normalise(batch.scores.tolist(), groups, SERL_STD_EPS), dtype=torch.float32))
        if not self.args.trains_judge:
            return [actor]
        judged = batch.group_data["judge"]
        if not self.ctx.dist.any_true(any(g.samples for g in judged)):
            return [actor]  # no process has a judge sample to train this step
        judge = self._judge_batch(judged)
        alpha = min(self.ctx.step / self.cfg.train.steps, 0.5)
        beta = max(1.0 - alpha, 0.5)
        # token-mean over the merged batch: weights make it α·mean_actor + β·mean_judge (token
        # counts over every process, as the update's normaliser is).
        n_a = self.ctx.dist.sum_scalar(sum(len(c) for c in batch.completion_ids))
        n_j = self.ctx.dist.sum_scalar(sum(len(c) for c in judge.completion_ids))
        # Each side's logprobs at the temperature it was sampled at (0: greedy, scored at 1).
        t_actor, t_judge = self.cfg.rollout.temperature or 1.0, self.args.judge_temperature or 1.0
        actor = actor.replace(temperatures=torch.full((len(actor),), t_actor),  # (B,)
                              loss_weight=torch.full((len(actor),), alpha * (n_a + n_j) / max(1, n_a)))
        judge = judge.replace(temperatures=torch.full((len(judge),), t_judge),  # (J,)
                              loss_weight=torch.full((len(judge),), beta * (n_a + n_j) / max(1, n_j)))
        judge.metrics.update({"judge/alpha": alpha, "judge/beta": beta})
        return [actor, judge]

    def _judge_batch(self, judged: list[JudgedGroup]) -> RolloutBatch:
        """The judge samples of ``judged`` (a :class:`JudgedGroup` per trained group; none on a
        process whose filters kept no group) as a batch with SERL's self-consistency rewards,
        normalised within each pair's K samples."""
        rewards: list[float] = []
        keys: list[tuple[int, int, int]] = []  # (group, the pair's smaller index, its larger)
        samples = [s for group in judged for s in group.samples]
        for g, group in enumerate(judged):
            rewards += serl_judge_rewards([s.judgment for s in group.samples], group.scores)
            keys += [(g, min(s.judgment.i, s.judgment.j), max(s.judgment.i, s.judgment.j))
                     for s in group.samples]
        sizes = {k: keys.count(k) for k in keys}
        # A pair judged once has no group to normalise in: its advantage is 0.
        adv = group_normalise(rewards, keys, SERL_STD_EPS) if all(n > 1 for n in sizes.values()) \
            else [0.0] * len(rewards)
        dist = self.ctx.dist
        mean_reward = dist.sum_scalar(sum(rewards)) / max(1, dist.sum_scalar(len(rewards)))  # all processes
        return RolloutBatch(  # group_size 1: advantages are fixed, no estimator groups them
            rows=[{"judge": True}] * len(samples), prompt_ids=[s.completion.prompt_ids for s in samples],
            completion_ids=[s.completion.token_ids for s in samples],
            rollout_logprobs=[s.completion.logprobs for s in samples],
            completions=[s.completion.text for s in samples], prompts=[""] * len(samples),
            finish_reasons=[s.completion.finish_reason for s in samples], group_size=1,
            scores=torch.tensor(rewards), fixed_advantages=torch.tensor(adv, dtype=torch.float32),
            metrics={"judge/reward_mean": mean_reward})


@RECIPES.register("srr1_elo")
class SRR1Elo(_SelfJudgeRecipe):
    """SR-R1: Elo-ranked self-judgments added to the configured rewards."""

    fmt, schedule = "srr1", "coin_flip"
    defaults = {"judge_samples": 1, "judge_temperature": 0.5, "judge_max_new_tokens": 500,
                "aggregator": "elo", "train_judge": False}

    def build_reward(self):
        parts = super().build_reward().components if self.cfg.rewards else []
        return WeightedSum([*parts, (self._judge(), self.args.judge_weight)])
