"""RLVR: reinforcement learning with verifiable rewards, the ground-truth baseline.

Prompts come from ``data.train`` and the configured rewards score them (``accuracy``, ``format``,
a ``reward_model``, a user's ``python`` function, ...); the trainer's defaults are the whole
recipe.  It is also the recipe of:

- SRL (step-wise imitation): RLVR on the instances of ``selfrl data srl`` with the ``srl_step``
  reward (:mod:`selfrl.data.srl`, :mod:`selfrl.rewards.srl_step`: how it departs from the paper);
- classic RLHF's PPO stage: ``algorithm.advantage=gae`` (a critic) with the ``reward_model``
  reward; RLVR is the one recipe that runs with a critic.
"""

from __future__ import annotations

from selfrl.recipes import RECIPES
from selfrl.trainer.recipe import NoArgs, Recipe


@RECIPES.register("rlvr")
class RLVR(Recipe):
    """The trainer's defaults: dataset prompts, the configured rewards, no filter of its own."""

    args_model = NoArgs
    supports_critic = True
