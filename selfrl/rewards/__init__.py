"""Rewards: callables over a batch of completions that return one float per completion.

A reward is any callable ``(batch: RewardBatch) -> RewardResult | list[float]`` with a
``name``; call it through :func:`compute_reward`, which checks what it returns.  The
shipped rewards are registered by name for configs (:func:`build_reward`):

=================  ==================  ====================================================
name               class               scores
=================  ==================  ====================================================
``accuracy``       AccuracyReward      1.0 when the extracted math answer equals the gold
``format``         FormatReward        1.0 for a final ``\\boxed{…}`` (or a regex match)
``tag_count``      TagCountReward      0.25 per SR-R1 think/answer tag seen exactly once
``length_penalty`` LengthPenalty       DAPO's soft overlong penalty, 0 down to -1
``python``         PythonFileReward    the user's function from a file (runs user code)
``http``           HttpReward          scores from a JSON endpoint, with retries
``weighted_sum``   WeightedSum         Σ weight · score of other rewards
``majority_vote``  MajorityVoteReward  1.0 when the answer agrees with the group's majority
``reward_model``   RewardModelReward   a trained pairwise reward model's score
``srl_step``       SrlStepReward       SRL: similarity of the next step to the expert's
``constraints``    ConstraintsReward   the share (or all) of the row's instruction constraints met
=================  ==================  ====================================================

A new reward is one module of this package with ``@register_reward("name")`` (see the
README's "Contributing" section); :data:`REWARDS` finds it the first time it is read.

Importing this package does not import math-verify; grading loads it on first use.
"""

from selfrl.rewards.accuracy import AccuracyReward
from selfrl.rewards.base import (
    Reward,
    RewardBatch,
    RewardError,
    RewardResult,
    check_scores,
    compute_reward,
    reward_name,
)
from selfrl.rewards.constraints import ConstraintsReward
from selfrl.rewards.formatting import THINK_ANSWER, THINK_ANSWER_TAGS, FormatReward, TagCountReward
from selfrl.rewards.length import LengthPenalty
from selfrl.rewards.majority import MajorityVoteReward
from selfrl.rewards.python_file import PythonFileReward, load_function
from selfrl.rewards.registry import REWARDS, available_rewards, build_reward, register_reward
from selfrl.rewards.remote import HttpReward
from selfrl.rewards.reward_model import RewardModelReward
from selfrl.rewards.srl_step import SrlStepReward
from selfrl.rewards.weighted import WeightedSum, weighted_sum

__all__ = [
    "REWARDS",
    "THINK_ANSWER",
    "THINK_ANSWER_TAGS",
    "AccuracyReward",
    "ConstraintsReward",
    "FormatReward",
    "HttpReward",
    "LengthPenalty",
    "MajorityVoteReward",
    "PythonFileReward",
    "Reward",
    "RewardBatch",
    "RewardError",
    "RewardModelReward",
    "RewardResult",
    "SrlStepReward",
    "TagCountReward",
    "WeightedSum",
    "available_rewards",
    "build_reward",
    "check_scores",
    "compute_reward",
    "load_function",
    "register_reward",
    "reward_name",
    "weighted_sum",
]
