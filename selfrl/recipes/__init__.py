"""The recipes: one module each, a :class:`~selfrl.trainer.recipe.Recipe` registered by name.

- ``rlvr`` (:mod:`~selfrl.recipes.rlvr`): dataset prompts and the configured rewards, nothing
  else; SRL is this recipe with the ``srl_step`` reward;
- ``serl`` (:mod:`~selfrl.recipes.serl`): SeRL, self-written problems scored by majority vote
  and kept by a difficulty filter;
- ``serl_judge`` and ``srr1_elo`` (:mod:`~selfrl.recipes.self_judge`): SERL (Copeland
  self-judging, the judge samples trained too) and SR-R1 (Elo self-judging added to the rewards).

Adding a recipe is one module here with ``@RECIPES.register("name")`` on its class: the
registry imports this package's modules the first time it is read.  The command line resolves
``cfg.recipe`` here and hands the class to the trainer (:func:`build_trainer`); the trainer
imports no recipe.

>>> {"rlvr", "serl", "serl_judge", "srr1_elo"} <= set(RECIPES.names())
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from selfrl.registry import Registry
from selfrl.trainer.recipe import Recipe

if TYPE_CHECKING:
    from selfrl.config.schema import RunConfig
    from selfrl.trainer.trainer import Trainer

RECIPES: Registry[type[Recipe]] = Registry("recipe", builtins=__name__)


def build_trainer(cfg: RunConfig, resume: str | None = None) -> Trainer:
    """The trainer for ``cfg`` with the recipe it names (``resume``: a checkpoint or ``auto``)."""
    from selfrl.trainer.trainer import Trainer  # the trainer's imports (models, engines) only when used

    return Trainer(cfg, RECIPES.get(cfg.recipe), resume=resume)


__all__ = ["RECIPES", "Recipe", "build_trainer"]
