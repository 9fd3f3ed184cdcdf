"""The recipe plug-in: the hooks a recipe may override in the trainer's step, and what it is given.

A recipe never sees the trainer.  It is built from a :class:`RecipeContext` (the config, the
tokenizer, the rollout engine, the prompt stream, the prompt format, the process group, the
sampling generator, the autocast context, the run folder and the current step) and the trainer
calls its hooks at fixed points of a step:

========================  =======================================================================
hook                      when, and what it returns
========================  =======================================================================
``build_reward``          once, at start-up: the reward callable
``next_prompts(k)``       each rollout round: the next ``k`` prompt rows
``keep_groups``           after scoring a round: which groups the recipe keeps
``on_collected``          once per step, with the groups that will be trained and those filtered
                          out (the recipe updates its own state: pools, records)
``training_batches``      before the advantages: the batches the update trains
``on_step_end``           after the update: metrics to add (and the recipe's artefacts written)
``state_dict``            with every checkpoint (and ``load_state_dict`` on resume)
========================  =======================================================================

Data moves one way, on the batch: what the reward learnt about a group (a pseudo-label, judge
samples) is in ``batch.group_data``, and a hook that changes what is trained returns new
batches (:meth:`~selfrl.trainer.batch.RolloutBatch.replace`) instead of editing the one it got.
The defaults are RLVR's: prompts from the dataset, the configured rewards, no filter of its own.
The recipes themselves live in :mod:`selfrl.recipes`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfrl.config.loader import StrictModel
from selfrl.rewards import WeightedSum, build_reward

if TYPE_CHECKING:  # annotations only: the trainer hands these in
    import torch

    from selfrl.config.schema import RunConfig
    from selfrl.prompts import PromptFormat
    from selfrl.rollout.base import RolloutEngine
    from selfrl.trainer.batch import RolloutBatch
    from selfrl.trainer.data import PromptSource
    from selfrl.trainer.distributed import DistContext


@dataclass
class RecipeContext:
    """What a recipe may use of the run.  ``step`` is the step being run, kept current by the
    trainer; everything else is fixed for the run."""

    config: RunConfig
    tokenizer: Any
    engine: RolloutEngine
    prompts: PromptSource          # the training prompts (the data cursor is checkpointed)
    prompt_format: PromptFormat    # renders every prompt of the run (the recipe's own messages too)
    dist: DistContext              # this process's place among the processes
    generator: torch.Generator     # the trainer's sampling stream (checkpointed: resume is exact)
    autocast: Callable[[], AbstractContextManager]  # wrap model calls in it (bf16 when configured)
    run_dir: Path
    device: torch.device
    step: int = 0


class NoArgs(StrictModel):
    """``recipe_args`` of a recipe that takes none."""


class Recipe:
    """Hooks called by the trainer; the defaults are RLVR's.

    A recipe is one module of :mod:`selfrl.recipes` with ``@RECIPES.register("name")`` on its
    class.  Class attributes declare what the config check needs to know without building it.
    """

    # The schema of ``recipe_args``, checked when the config loads (None: the recipe checks them).
    args_model: type[StrictModel] | None = None
    # Whether the recipe runs with an estimator that needs a critic (PPO's value model).
    supports_critic = False

    def __init__(self, ctx: RecipeContext) -> None:
        self.ctx = ctx
        self.cfg = ctx.config

    def build_reward(self) -> Any:
        """The reward callable: the configured rewards as one weighted sum (each logged)."""
        parts = [(build_reward(spec.name, **spec.args), spec.weight) for spec in self.cfg.rewards]
        return WeightedSum(parts)

    def next_prompts(self, k: int) -> list[dict]:
        """The next ``k`` prompt rows."""
        return self.ctx.prompts.take(k)

    def keep_groups(self, batch: RolloutBatch) -> list[bool]:
        """The recipe's own filter over scored groups (True keeps a group)."""
        return [True] * batch.num_groups

    def training_batches(self, batch: RolloutBatch) -> list[RolloutBatch]:
        """What the update trains, from the step's collected ``batch``: by default the batch itself.
        A recipe may return copies with per-sequence fields set (``fixed_advantages``,
        ``loss_weight``, ``temperatures``) and extra batches trained in the same update (SERL's
        judge samples); the trainer computes each one's advantages, then merges them."""
        return [batch]

    def on_collected(self, trained: RolloutBatch, dropped: RolloutBatch) -> None:
        """Called once per step with the groups that will be trained and those filtered out."""

    def on_step_end(self, step: int, batch: RolloutBatch) -> dict[str, float]:
        """Called after the update (persist recipe artefacts here); returns metrics to log."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
