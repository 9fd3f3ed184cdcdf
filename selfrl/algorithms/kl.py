"""Per-token estimators of KL(π ‖ π_ref) from tokens sampled from π (Schulman's k1/k2/k3).

Every estimator has the one signature ``fn(logprobs, ref_logprobs) -> (B, T)`` and is
registered by name in :data:`KL_ESTIMATORS`.  With ``d = ref_logprobs - logprobs``:

* ``k1 = -d``: unbiased, high variance, can be negative per token;
* ``k2 = d² / 2``: biased, low variance, always >= 0; its gradient is the gradient of the
  true KL (which is why GRPO-style losses are sometimes written with it);
* ``k3 = exp(d) - d - 1``: unbiased and always >= 0 (GRPO's choice).

Two ways to use them (the caller chooses; masking is the caller's):

* as a **loss term**: ``loss_mat + beta * k3(logprobs, ref_logprobs)``, reduced with
  :func:`~selfrl.algorithms.aggregation.aggregate_loss` like any other per-token loss
  (gradients flow through ``logprobs``);
* as a **reward penalty**: compute it without gradients and pass it as
  ``AdvantageInput.kl`` with ``AdvantageParams.kl_coef`` (``reinforce_pp*``, ``gae``), which
  subtract ``kl_coef * kl`` from each token's reward.  ``k1`` is the usual choice there.

>>> lp, ref = torch.tensor([[-1.0, -2.0]]), torch.tensor([[-1.0, -1.0]])
>>> k1(lp, ref), k2(lp, ref)
(tensor([[ 0., -1.]]), tensor([[0.0000, 0.5000]]))
>>> k3(lp, ref)  # e - 1 - 1
tensor([[0.0000, 0.7183]])
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from selfrl.registry import Registry

KLEstimator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
KL_ESTIMATORS: Registry[KLEstimator] = Registry("KL estimator", builtins="selfrl.algorithms")


def _check(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> None:
    if logprobs.shape != ref_logprobs.shape:
        raise ValueError(f"logprobs {tuple(logprobs.shape)} and ref_logprobs "
                         f"{tuple(ref_logprobs.shape)} must have the same shape")


@KL_ESTIMATORS.register("k1")
def k1(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """``logp - ref``: unbiased, high variance."""
    _check(logprobs, ref_logprobs)
    return logprobs - ref_logprobs


@KL_ESTIMATORS.register("k2")
def k2(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """``(logp - ref)² / 2``: biased, low variance, >= 0."""
    _check(logprobs, ref_logprobs)
    return 0.5 * (logprobs - ref_logprobs) ** 2


@KL_ESTIMATORS.register("k3")
def k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """``exp(ref - logp) - (ref - logp) - 1``: unbiased, >= 0."""
    _check(logprobs, ref_logprobs)
    d = ref_logprobs - logprobs  # (B, T)
    # expm1(d) - d rather than exp(d) - d - 1: no cancellation when the policies are close
    return torch.expm1(d) - d
