"""Truncated importance sampling (TIS): correcting for a rollout engine that is not the trainer.

The rollout engine (vLLM, or the HF engine with its presence penalty) samples from a
distribution ``q`` that differs slightly from the trainer's ``π_old`` for the same weights:
other kernels, other precision, penalties the trainer does not apply.  The policy gradient
is an expectation under ``π_old``, so each token's loss is reweighted by ``π_old / q``,
truncated at ``cap`` to bound the variance (Yao et al. 2025, "Your efficient RL framework
secretly brings you off-policy RL training"; verl's ``tis_imp_ratio_cap``, TRL's
``vllm_importance_sampling_cap``).  The weight is detached: it rescales the gradient and is
not itself differentiated.

>>> old = torch.log(torch.tensor([[0.5, 0.5, 0.9]]))
>>> rollout = torch.log(torch.tensor([[0.5, 0.1, 0.3]]))  # ratios 1, 5 and 3
>>> truncated_is_weight(old, rollout, torch.tensor([[1, 1, 0]]), cap=2.0)
tensor([[1., 2., 1.]])
"""

from __future__ import annotations

import torch

# exp(20) ~ 5e8: any cap is far below; keeps a garbage logprob from becoming inf or nan.
_MAX_LOG_RATIO = 20.0


def truncated_is_weight(old_logprobs: torch.Tensor, rollout_logprobs: torch.Tensor, mask: torch.Tensor,
                        cap: float) -> torch.Tensor:
    """Per-token ``min(exp(old - rollout), cap)``, detached; 1 outside the mask.

    Args:
        old_logprobs: ``(B, T)`` the trainer's logprobs of the sampled tokens before the update.
        rollout_logprobs: ``(B, T)`` the rollout engine's logprobs of the same tokens.
        mask: ``(B, T)`` nonzero on completion tokens.
        cap: the truncation ``C > 0``.
    """
    if cap <= 0:
        raise ValueError(f"the TIS cap must be > 0, got {cap}")
    if old_logprobs.shape != rollout_logprobs.shape or old_logprobs.shape != mask.shape:
        raise ValueError(f"shapes differ: old {tuple(old_logprobs.shape)}, rollout "
                         f"{tuple(rollout_logprobs.shape)}, mask {tuple(mask.shape)}")
    log_ratio = (old_logprobs - rollout_logprobs).detach().clamp(max=_MAX_LOG_RATIO)  # (B, T)
    weight = log_ratio.exp().clamp(max=cap)  # (B, T)
    return torch.where(mask.bool(), weight, 1.0)
