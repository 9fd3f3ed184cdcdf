"""The algorithm maths of selfrl: pure tensor functions, looked up by name.

Four kinds, each a registry whose functions share one signature:

* :data:`ADVANTAGE_ESTIMATORS` — ``fn(AdvantageInput, AdvantageParams) -> AdvantageOutput``,
  each declaring what it needs (:class:`EstimatorNeeds`)
* :data:`POLICY_LOSSES` — ``fn(logprobs, old_logprobs, advantages, mask, PolicyLossParams)
  -> (loss_mat, metrics)``
* :data:`KL_ESTIMATORS` — ``fn(logprobs, ref_logprobs) -> (B, T)``
* :data:`LOSS_AGGREGATIONS` — used through :func:`aggregate_loss`

Plus :func:`truncated_is_weight`, the TIS correction for a rollout engine that is not the
trainer.  Only ``torch`` is imported, so these can be unit-tested and reused anywhere.

>>> ADVANTAGE_ESTIMATORS.get("grpo") is grpo, "ppo_clip" in POLICY_LOSSES, KL_ESTIMATORS.get("k3") is k3
(True, True, True)
>>> ADVANTAGE_ESTIMATORS.traits("gae")
EstimatorNeeds(critic=True, min_group_size=1)

A new estimator, loss, KL estimator or aggregation is a module of this package that registers
it (the registries import every module here the first time they are read); see the README's
"Contributing" section.
"""

from selfrl.algorithms.advantages import (
    ADVANTAGE_ESTIMATORS,
    AdvantageEstimator,
    AdvantageInput,
    AdvantageOutput,
    AdvantageParams,
    EstimatorNeeds,
    dr_grpo,
    gae,
    grpo,
    reinforce_pp,
    reinforce_pp_baseline,
    rloo,
)
from selfrl.algorithms.aggregation import LOSS_AGGREGATIONS, LossAggregation, aggregate_loss
from selfrl.algorithms.importance import truncated_is_weight
from selfrl.algorithms.kl import KL_ESTIMATORS, KLEstimator, k1, k2, k3
from selfrl.algorithms.masked import masked_mean, masked_sum, masked_whiten
from selfrl.algorithms.policy_loss import POLICY_LOSSES, PolicyLoss, PolicyLossParams, gspo, ppo_clip
from selfrl.algorithms.value import AdaptiveKLController, clipped_value_loss
from selfrl.registry import Registry, UnknownNameError

__all__ = [
    "AdaptiveKLController",
    "clipped_value_loss",
    "ADVANTAGE_ESTIMATORS",
    "KL_ESTIMATORS",
    "LOSS_AGGREGATIONS",
    "POLICY_LOSSES",
    "AdvantageEstimator",
    "AdvantageInput",
    "AdvantageOutput",
    "AdvantageParams",
    "EstimatorNeeds",
    "KLEstimator",
    "LossAggregation",
    "PolicyLoss",
    "PolicyLossParams",
    "Registry",
    "UnknownNameError",
    "aggregate_loss",
    "dr_grpo",
    "gae",
    "grpo",
    "gspo",
    "k1",
    "k2",
    "k3",
    "masked_mean",
    "masked_sum",
    "masked_whiten",
    "ppo_clip",
    "reinforce_pp",
    "reinforce_pp_baseline",
    "rloo",
    "truncated_is_weight",
]
