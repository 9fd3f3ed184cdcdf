"""Recipe plug-ins: what a recipe may change in the trainer's step, without forking the loop.

The default recipe is RLVR: prompts from the dataset, the configured rewards, no filter of
its own.  Later recipes (self-play, self-judging, step-wise imitation) override hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from selfrl.config.loader import StrictModel
from selfrl.rewards import WeightedSum, build_reward

if TYPE_CHECKING:
    from selfrl.trainer.batch import RolloutBatch
    from selfrl.trainer.trainer import Trainer

RECIPES: dict[str, type[Recipe]] = {}


def register_recipe(name: str) -> Callable[[type[Recipe]], type[Recipe]]:
    """Class decorator: make a recipe available as ``recipe: NAME`` in configs."""

    def decorate(cls: type[Recipe]) -> type[Recipe]:
        if name in RECIPES:
            raise ValueError(f"recipe {name!r} is already registered")
        RECIPES[name] = cls
        cls.name = name
        return cls

    return decorate


# Recipes shipped in other modules, imported when first asked for (keeps imports light).
BUILTIN_MODULES = {"serl": "selfrl.selfplay.recipe", "serl_judge": "selfrl.judging.recipes",
                   "srr1_elo": "selfrl.judging.recipes"}


def get_recipe(name: str) -> type[Recipe]:
    if name not in RECIPES and name in BUILTIN_MODULES:
        import importlib

        importlib.import_module(BUILTIN_MODULES[name])
    if name not in RECIPES:
        valid = ", ".join(sorted(set(RECIPES) | set(BUILTIN_MODULES)))
        raise ValueError(f"unknown recipe {name!r}; valid recipes: {valid}")
    return RECIPES[name]


class NoArgs(StrictModel):
    """``recipe_args`` of a recipe that takes none."""


class Recipe:
    """Hooks called by :class:`~selfrl.trainer.trainer.Trainer`; the defaults are RLVR's."""

    name = "base"
    # The schema of ``recipe_args``, checked when the config loads (None: the recipe checks them).
    args_model: type[StrictModel] | None = None

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.cfg = trainer.cfg

    def build_reward(self) -> Any:
        """The reward callable: the configured rewards as one weighted sum (each logged)."""
        parts = [(build_reward(spec.name, **spec.args), spec.weight) for spec in self.cfg.rewards]
        return WeightedSum(parts)

    def next_prompts(self, k: int) -> list[dict]:
        """The next ``k`` prompt rows."""
        return self.trainer.prompts.take(k)

    def keep_groups(self, batch: RolloutBatch) -> list[bool]:
        """The recipe's own filter over scored groups (True keeps a group)."""
        return [True] * batch.num_groups

    def extra_batch(self, batch: RolloutBatch) -> RolloutBatch | None:
        """Extra sequences trained in the same update, with ``fixed_advantages`` and
        ``loss_weight`` set by the recipe (SERL trains its judge samples this way)."""
        return None

    def on_collected(self, trained: RolloutBatch, dropped: RolloutBatch) -> None:
        """Called once per step with the groups that will be trained and those filtered out."""

    def on_step_end(self, step: int, batch: RolloutBatch, metrics: dict) -> None:
        """Called after the update (persist recipe artefacts here)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@register_recipe("rlvr")
class RLVR(Recipe):
    """Reinforcement learning with verifiable rewards: the ground-truth baseline."""

    args_model = NoArgs
