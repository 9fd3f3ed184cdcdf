"""SRL (Supervised Reinforcement Learning): step-wise rewards from expert trajectories.

- :mod:`selfrl.srl.steps`: split expert solutions into numbered steps and write one
  instance per step k = 2..N (:func:`prepare_srl`, behind ``selfrl data srl``);
- :mod:`selfrl.srl.reward`: the ``srl_step`` reward, −1 for a malformed completion, else the
  ``difflib`` similarity of the model's step to the expert's.

Importing this package registers the ``srl_step`` reward.
"""

from selfrl.srl.reward import SrlStepReward, parse_action, similarity
from selfrl.srl.steps import build_instances, prepare_srl, split_steps, step_marker, strip_step_marker

__all__ = [
    "SrlStepReward",
    "build_instances",
    "parse_action",
    "prepare_srl",
    "similarity",
    "split_steps",
    "step_marker",
    "strip_step_marker",
]
