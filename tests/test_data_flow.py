"""Issue 20, data moves one way on the batch: what a reward learns about a group (a pseudo-label,
judge samples) is returned with its scores, rides on the rollout batch through the filters, and
recipes return the batches they train instead of editing the one they were given."""

from __future__ import annotations

import pytest
import torch

from selfrl.config.schema import RunConfig
from selfrl.judging.aggregators import Judgment
from selfrl.judging.self_judge import JudgedGroup, JudgeSample
from selfrl.recipes import build_trainer
from selfrl.rewards import (
    MajorityVoteReward,
    RewardBatch,
    RewardError,
    RewardResult,
    WeightedSum,
    compute_reward,
)
from selfrl.rollout.base import Completion
from selfrl.trainer.batch import RolloutBatch


def _batch(scores: list[float], group_size: int, group_data: dict | None = None) -> RolloutBatch:
    n = len(scores)
    return RolloutBatch(rows=[{}] * n, prompt_ids=[[1, 2]] * n, completion_ids=[[3, 4]] * n,
                        rollout_logprobs=[[0.0, 0.0]] * n, completions=[f"c{i}" for i in range(n)],
                        prompts=["q"] * n, finish_reasons=["stop"] * n, group_size=group_size,
                        scores=torch.tensor(scores, dtype=torch.float64), group_data=group_data or {})


def _judged(group: int, winners: list[int], scores: list[float]) -> JudgedGroup:
    """Judge samples of pair (0, 1) of a group of two, each naming ``winners[k]``; the judge's
    completion token ids say which group they belong to (``[100 + group]``)."""
    samples = [JudgeSample(Judgment(k % 2, 1 - k % 2, w),
                           Completion(f"judge {group}", [100 + group], [-0.5], "stop", prompt_ids=[7]))
               for k, w in enumerate(winners)]
    return JudgedGroup(samples, scores)


# --- rewards return group data -----------------------------------------------------------

def test_majority_vote_returns_each_groups_pseudo_label():
    batch = RewardBatch(["q"] * 4, ["\\boxed{3}", "\\boxed{3}", "\\boxed{5}", "none"], [{}] * 4, 2)
    result = compute_reward(MajorityVoteReward(), batch)
    assert result.group_data == {"pseudo_label": ["3", "5"]}
    assert not hasattr(MajorityVoteReward(), "last_labels")  # nothing is left on the reward


def test_group_data_is_checked_and_passed_on_by_a_weighted_sum():
    batch = RewardBatch(["q"] * 4, ["\\boxed{3}"] * 4, [{}] * 4, 2)

    def per_group(values):
        def reward(b):
            return RewardResult([0.0] * len(b), {}, {"note": values})
        return reward

    with pytest.raises(RewardError, match=r"group_data\[.note.\] must be a list of one value per group"):
        compute_reward(per_group(["only one"]), batch)
    total = WeightedSum([(MajorityVoteReward(), 1.0), (per_group(["a", "b"]), 1.0)])
    assert compute_reward(total, batch).group_data == {"pseudo_label": ["3", "3"], "note": ["a", "b"]}
    with pytest.raises(RewardError, match="group data \\['pseudo_label'\\] that another component returns"):
        WeightedSum([(MajorityVoteReward(), 1.0), (MajorityVoteReward(name="again"), 1.0)])(batch)


# --- the batch carries it through the filters ------------------------------------------------

def test_group_data_follows_its_group_through_select_and_concat():
    batch = _batch([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 2, {"pseudo_label": ["a", "b", "c"]})
    kept = batch.select_groups([2, 0])
    assert kept.group_data == {"pseudo_label": ["c", "a"]} and kept.scores.tolist() == [4.0, 5.0, 0.0, 1.0]
    both = RolloutBatch.concat([kept, batch.select_groups([1])])
    assert both.group_data == {"pseudo_label": ["c", "a", "b"]}
    assert RolloutBatch.concat([batch.select_groups([])]).group_data == {"pseudo_label": []}
    with pytest.raises(ValueError, match="different group data"):
        RolloutBatch.concat([batch, _batch([0.0, 1.0], 2)])


# --- SERL trains the judge samples of the groups it trains ----------------------------------

def _serl(make_config, name):
    return build_trainer(RunConfig.model_validate(make_config(name, extra={
        "recipe": "serl_judge", "rewards": [], "data": {"require_answer": False},
        "recipe_args": {"judge_samples": 2, "judge_max_new_tokens": 6}})))


def test_serl_judge_batch_is_the_kept_groups_own(make_config):
    """The bug of issue 20: the judge samples were read from the reward's last call, whose group
    indices were those of the last scored attempt, not of the kept batch."""
    trainer = _serl(make_config, "serl_kept")
    trainer.step = 1
    # Group 0: response 0 scored higher; group 1: response 1 did.  Each judge names response 0.
    scored = _batch([1.0, 0.0, 0.0, 1.0], 2, {"judge": [_judged(0, [0, 0], [1.0, 0.0]),
                                                         _judged(1, [0, 0], [0.0, 1.0])]})
    kept = scored.select_groups([1])  # a filter dropped group 0
    actor, judge = trainer.recipe.training_batches(kept)
    assert judge.completion_ids == [[101], [101]]  # group 1's judge samples only
    assert judge.scores.tolist() == [-1.0, -1.0]  # judged against group 1's actor scores
    assert actor.completions == kept.completions and actor.loss_weight is not None
    # Nothing was written on the batch the recipe was given.
    assert kept.fixed_advantages is None and kept.loss_weight is None and kept.temperatures is None


def test_serl_with_no_kept_group_trains_no_judge_and_divides_by_nothing(make_config):
    trainer = _serl(make_config, "serl_empty")
    empty = _batch([1.0, 0.0], 2, {"judge": [_judged(0, [0, 1], [1.0, 0.0])]}).select_groups([])
    (actor,) = trainer.recipe.training_batches(empty)
    assert len(actor) == 0 and actor.fixed_advantages.shape == (0,)
    judge = trainer.recipe._judge_batch([])  # a process that kept nothing while others did
    assert len(judge) == 0 and judge.metrics["judge/reward_mean"] == 0.0
