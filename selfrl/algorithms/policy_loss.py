"""Clipped policy-gradient losses, as per-token loss matrices.

Every loss has the one signature ``fn(logprobs, old_logprobs, advantages, mask, params) ->
(loss_mat, metrics)`` and is registered by name in :data:`POLICY_LOSSES`.  All tensors are
``(B, T)``.  The loss is *not* reduced here: ``loss_mat`` (zero outside the mask) goes to
:func:`selfrl.algorithms.aggregation.aggregate_loss`, so the choice of reduction stays one
independent knob.  ``metrics`` are detached scalars over valid tokens:

* ``clip_frac``: fraction of valid tokens whose clipped term is the active one;
* ``dual_clip_frac``: fraction where the dual-clip cap is active (0 without dual clip);
* ``approx_kl``: mean of ``old_logprobs - logprobs`` (a k1 estimate of KL(old ‖ new));
* ``ratio_mean``: mean importance ratio.

Names:

* ``ppo_clip`` (Schulman et al. 2017): token ratio ``exp(logp - old)``, clipped to
  ``[1 - clip_low, 1 + clip_high]``; ``clip_high > clip_low`` is DAPO's clip-higher.
* ``gspo`` (Zheng et al. 2025): one ratio per sequence, ``s = exp(mean over valid tokens of
  (logp - old))``, clipped as a whole.  Written in the paper's token-level form
  ``s.detach() * exp(logp - logp.detach())``: its value is ``s`` on every token and its
  gradient is ``s * grad logp_t``, so with ``seq-mean-token-mean`` aggregation the gradient
  is exactly the paper's ``s * mean_t grad logp_t``.  The paper's clip ranges are tiny
  (``clip_low=3e-4``, ``clip_high=4e-4``) because a sequence ratio is a geometric mean and
  moves much less than a token ratio; the PPO defaults of 0.2 barely clip.

Dual clip (Ye et al. 2020, implemented as in verl): for negative advantages the loss is
capped at ``-A * c``, i.e. ``min(max(-A r, -A clip(r)), -A c)``, so a huge ratio on a bad
token cannot blow up the update.  Both losses support it.

>>> lp = torch.tensor([[0.0, 0.0]])
>>> old = torch.log(torch.tensor([[0.5, 2.0]]))  # ratios 2.0 and 0.5
>>> loss, m = ppo_clip(lp, old, torch.ones(1, 2), torch.ones(1, 2), PolicyLossParams())
>>> loss  # -A * min(r, clip(r)): 2.0 is clipped to 1.2, 0.5 is not
tensor([[-1.2000, -0.5000]])
>>> m["clip_frac"]
tensor(0.5000)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from selfrl.algorithms.masked import masked_mean
from selfrl.registry import Registry

# exp(20) ~ 5e8: far past any clip range, yet finite in fp16/bf16/fp32, so an off-policy
# outlier gives a large (clipped or capped) loss rather than inf and nan gradients.
_MAX_LOG_RATIO = 20.0


@dataclass(frozen=True)
class PolicyLossParams:
    """Hyperparameters of the clipped surrogate.

    Args:
        clip_low: the ratio is clipped below at ``1 - clip_low``.
        clip_high: the ratio is clipped above at ``1 + clip_high`` (larger than
            ``clip_low`` = clip-higher, which keeps low-probability tokens exploring).
        dual_clip: ``c > 1`` caps the loss of negative-advantage tokens at ``-A * c``;
            ``None`` turns it off.
    """

    clip_low: float = 0.2
    clip_high: float = 0.2
    dual_clip: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.clip_low < 1.0 or self.clip_high < 0.0:
            raise ValueError(f"need 0 <= clip_low < 1 and clip_high >= 0, "
                             f"got {self.clip_low}, {self.clip_high}")
        if self.dual_clip is not None and self.dual_clip <= 1.0:
            raise ValueError(f"dual_clip must be > 1 (or None), got {self.dual_clip}")


Metrics = dict[str, torch.Tensor]


class PolicyLoss(Protocol):
    def __call__(self, logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                 mask: torch.Tensor, params: PolicyLossParams) -> tuple[torch.Tensor, Metrics]:
        ...


POLICY_LOSSES: Registry[PolicyLoss] = Registry("policy loss", builtins="selfrl.algorithms")


def _check_shapes(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                  mask: torch.Tensor) -> None:
    if logprobs.dim() != 2:
        raise ValueError(f"logprobs must be (B, T), got shape {tuple(logprobs.shape)}")
    for name, t in (("old_logprobs", old_logprobs), ("advantages", advantages), ("mask", mask)):
        if t.shape != logprobs.shape:
            raise ValueError(f"{name} must match logprobs {tuple(logprobs.shape)}, got {tuple(t.shape)}")


def _log_ratio(logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``logp - old`` on valid tokens, 0 on padding (so pads have ratio 1 and zero gradient)."""
    diff = logprobs - old_logprobs.detach()  # (B, T)
    return torch.where(mask.bool(), diff, 0.0)


def _clipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                       params: PolicyLossParams) -> tuple[torch.Tensor, Metrics]:
    """PPO's pessimistic clipped loss (with optional dual clip) and its clip metrics."""
    adv = advantages.detach()
    unclipped = -adv * ratio  # (B, T)
    clipped = -adv * ratio.clamp(1.0 - params.clip_low, 1.0 + params.clip_high)  # (B, T)
    loss = torch.maximum(unclipped, clipped)  # (B, T) the pessimistic bound
    clip_frac = masked_mean((clipped > unclipped).to(ratio.dtype), mask)
    dual_frac = torch.zeros_like(clip_frac)
    if params.dual_clip is not None:
        cap = -adv * params.dual_clip  # (B, T)
        capped = (adv < 0) & (loss > cap)  # (B, T)
        loss = torch.where(capped, cap, loss)
        dual_frac = masked_mean(capped.to(ratio.dtype), mask)
    loss = torch.where(mask.bool(), loss, 0.0)
    return loss, {"clip_frac": clip_frac.detach(), "dual_clip_frac": dual_frac.detach()}


def _common_metrics(log_ratio: torch.Tensor, ratio: torch.Tensor, mask: torch.Tensor) -> Metrics:
    return {"approx_kl": masked_mean(-log_ratio, mask).detach(),  # mean of old - new
            "ratio_mean": masked_mean(ratio, mask).detach()}


@POLICY_LOSSES.register("ppo_clip")
def ppo_clip(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
             mask: torch.Tensor, params: PolicyLossParams) -> tuple[torch.Tensor, Metrics]:
    """PPO's clipped surrogate with a per-token ratio ``exp(logp - old)`` → ``(B, T)`` loss."""
    _check_shapes(logprobs, old_logprobs, advantages, mask)
    log_ratio = _log_ratio(logprobs, old_logprobs, mask)  # (B, T)
    ratio = log_ratio.clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO).exp()  # (B, T)
    loss, metrics = _clipped_surrogate(ratio, advantages, mask, params)
    return loss, {**metrics, **_common_metrics(log_ratio, ratio, mask)}


@POLICY_LOSSES.register("gspo")
def gspo(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
         mask: torch.Tensor, params: PolicyLossParams) -> tuple[torch.Tensor, Metrics]:
    """GSPO: the clipped surrogate on the sequence ratio ``exp(mean_t(logp - old))`` → ``(B, T)``.

    ``advantages`` should be constant over each sequence's valid tokens (as every
    sequence-level estimator gives); aggregate with ``seq-mean-token-mean`` to match the paper.
    """
    _check_shapes(logprobs, old_logprobs, advantages, mask)
    log_ratio = _log_ratio(logprobs, old_logprobs, mask)  # (B, T)
    lengths = mask.bool().sum(-1).clamp(min=1)  # (B,)
    seq_log_ratio = log_ratio.sum(-1) / lengths  # (B,) log of the geometric-mean ratio
    # value = the sequence ratio on every token; gradient flows through each token's own logp
    # (log_ratio, not logprobs, so that garbage logprobs on padding cannot reach the gradient)
    token_log_ratio = seq_log_ratio.detach()[:, None] + (log_ratio - log_ratio.detach())  # (B, T)
    ratio = token_log_ratio.clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO).exp()  # (B, T)
    loss, metrics = _clipped_surrogate(ratio, advantages, mask, params)
    return loss, {**metrics, **_common_metrics(log_ratio, ratio, mask)}
