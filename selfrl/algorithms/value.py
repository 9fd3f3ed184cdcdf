"""The critic's side of PPO: the clipped value loss and the adaptive KL controller.

* :func:`clipped_value_loss` — PPO's value loss with clipping (Schulman et al. 2017, as in
  the original RLHF code): the new value may move at most ``clip`` from the value at
  rollout time, and the loss takes the worse of the clipped and unclipped squared errors::

      v_clip = old + clamp(v - old, -clip, clip)
      loss   = 0.5 * max((v - R)^2, (v_clip - R)^2)

* :class:`AdaptiveKLController` — Ziegler et al. (2019): the KL coefficient follows the
  measured KL towards a target; with ``e = clamp(KL / target - 1, -0.2, 0.2)`` it is
  multiplied by ``1 + e * n / horizon`` after ``n`` samples.  KL here is the mean over
  sequences of each sequence's KL *summed* over its tokens, as in the original code and TRL's
  StackExchange PPO (target 6, horizon 10,000); a per-token mean would sit far below any such
  target and drive the coefficient down.

>>> v, old, ret = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 1.0]])
>>> loss_mat, m = clipped_value_loss(v, old, ret, torch.ones(1, 2), clip=0.2)
>>> loss_mat  # token 1: max((1-2)^2, (0.2-2)^2) / 2; token 2: (0-1)^2 / 2
tensor([[1.6200, 0.5000]])
>>> ctl = AdaptiveKLController(init=0.2, target=6.0, horizon=10000)
>>> round(ctl.update(current_kl=18.0, n_samples=1000), 4)  # KL 3x the target: +20% * 0.1
0.204
"""

from __future__ import annotations

import torch

from selfrl.algorithms.masked import masked_mean


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                       mask: torch.Tensor, clip: float | None = 0.2) -> tuple[torch.Tensor, dict]:
    """Per-token value loss ``(B, T)`` and metrics (``clip_frac``, ``mse``).

    Args:
        values: ``(B, T)`` the critic's current values.
        old_values: ``(B, T)`` the values at rollout time.
        returns: ``(B, T)`` the targets (GAE advantages + old values).
        mask: ``(B, T)`` valid tokens (metrics only; aggregate the loss with it).
        clip: the largest move from ``old_values``; ``None`` for the plain squared error.
    """
    unclipped = (values - returns) ** 2
    if clip is None:
        loss = 0.5 * unclipped
        clip_frac = torch.zeros(())
    else:
        clipped_v = old_values + (values - old_values).clamp(-clip, clip)
        clipped = (clipped_v - returns) ** 2
        loss = 0.5 * torch.maximum(unclipped, clipped)
        clip_frac = masked_mean((clipped > unclipped).float(), mask)
    metrics = {"clip_frac": float(clip_frac), "mse": float(masked_mean(unclipped.detach(), mask))}
    return loss, metrics


class AdaptiveKLController:
    """The KL coefficient of Ziegler et al. (2019), steered towards ``target``."""

    def __init__(self, init: float = 0.2, target: float = 6.0, horizon: int = 10000) -> None:
        if init < 0 or target <= 0 or horizon <= 0:
            raise ValueError(f"AdaptiveKLController needs init >= 0, target > 0, horizon > 0; "
                             f"got {init}, {target}, {horizon}")
        self.value, self.target, self.horizon = float(init), float(target), int(horizon)

    def update(self, current_kl: float, n_samples: int) -> float:
        """Move the coefficient after ``n_samples`` sequences whose KL, summed over each sequence's
        tokens, averaged ``current_kl``."""
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_samples / self.horizon
        return self.value

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])
