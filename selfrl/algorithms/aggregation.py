"""Reducing a per-token loss matrix ``(B, T)`` to the scalar that is back-propagated.

The reduction is a choice of its own (it changes how much each token and each sequence
weighs), so it is one function with named modes, registered in :data:`LOSS_AGGREGATIONS`:

* ``token-mean``: sum over all valid tokens / number of valid tokens (DAPO): every token
  weighs the same, long answers weigh more.
* ``seq-mean-token-mean``: mean over each sequence's tokens, summed / number of
  sequences (the original GRPO): every sequence weighs the same.
* ``seq-mean-token-sum``: sum over each sequence's tokens, summed / number of sequences.
* ``seq-mean-token-sum-norm``: as above but divided by ``num_seqs * max_len`` with
  ``max_len`` a constant (Dr.GRPO), so no length-dependent normaliser biases the gradient.

Every mode is a *sum over sequences* divided by a batch-level constant.  A caller that
splits a batch into micro-batches (and accumulates gradients) passes the counts of the
whole batch — ``num_tokens``, ``num_seqs``, and for the last mode ``max_len`` — and then
the micro-batch losses add up exactly to the full-batch loss, however the batch is split.
Left to default, they are the counts of the tensors given.

>>> loss = torch.tensor([[1.0, 1.0, 1.0], [4.0, 0.0, 0.0]])
>>> mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
>>> aggregate_loss(loss, mask, "token-mean"), aggregate_loss(loss, mask, "seq-mean-token-mean")
(tensor(1.7500), tensor(2.5000))
"""

from __future__ import annotations

from typing import Protocol

import torch

from selfrl.algorithms.masked import masked_sum
from selfrl.registry import Registry


class LossAggregation(Protocol):
    def __call__(self, loss_mat: torch.Tensor, mask: torch.Tensor, *, num_tokens: float,
                 num_seqs: float, max_len: int) -> torch.Tensor:
        ...


LOSS_AGGREGATIONS: Registry[LossAggregation] = Registry("loss aggregation", builtins="selfrl.algorithms")


@LOSS_AGGREGATIONS.register("token-mean")
def token_mean(loss_mat: torch.Tensor, mask: torch.Tensor, *, num_tokens: float,
               num_seqs: float, max_len: int) -> torch.Tensor:
    """Sum over valid tokens / ``num_tokens``."""
    return masked_sum(loss_mat, mask) / num_tokens


@LOSS_AGGREGATIONS.register("seq-mean-token-mean")
def seq_mean_token_mean(loss_mat: torch.Tensor, mask: torch.Tensor, *, num_tokens: float,
                        num_seqs: float, max_len: int) -> torch.Tensor:
    """Per-sequence token mean, summed / ``num_seqs``."""
    lengths = mask.bool().sum(-1).clamp(min=1)  # (B,); an empty row sums to 0 anyway
    return (masked_sum(loss_mat, mask, dim=-1) / lengths).sum() / num_seqs


@LOSS_AGGREGATIONS.register("seq-mean-token-sum")
def seq_mean_token_sum(loss_mat: torch.Tensor, mask: torch.Tensor, *, num_tokens: float,
                       num_seqs: float, max_len: int) -> torch.Tensor:
    """Per-sequence token sum, summed / ``num_seqs``."""
    return masked_sum(loss_mat, mask) / num_seqs


@LOSS_AGGREGATIONS.register("seq-mean-token-sum-norm")
def seq_mean_token_sum_norm(loss_mat: torch.Tensor, mask: torch.Tensor, *, num_tokens: float,
                            num_seqs: float, max_len: int) -> torch.Tensor:
    """Per-sequence token sum, summed / ``(num_seqs * max_len)`` (Dr.GRPO)."""
    return masked_sum(loss_mat, mask) / (num_seqs * max_len)


def aggregate_loss(loss_mat: torch.Tensor, mask: torch.Tensor, mode: str, *,
                   num_tokens: float | None = None, num_seqs: float | None = None,
                   max_len: int | None = None) -> torch.Tensor:
    """Reduce ``loss_mat`` ``(B, T)`` over the valid tokens of ``mask`` to a scalar.

    Args:
        loss_mat: per-token loss; values outside the mask are ignored (even ``nan``).
        mask: ``(B, T)``, nonzero on valid tokens.
        mode: one of :data:`LOSS_AGGREGATIONS` (see the module docstring).
        num_tokens: valid tokens in the whole batch (default: in ``mask``).
        num_seqs: sequences with at least one valid token in the whole batch (default: in
            ``mask``; rows with no valid token, e.g. filtered ones, do not dilute the mean).
        max_len: the constant of ``seq-mean-token-sum-norm``, normally the generation
            budget (default: ``T``; pass it when micro-batches are padded differently).

    An all-padding batch gives 0 rather than ``nan`` with the default counts.
    """
    if loss_mat.dim() != 2 or mask.shape != loss_mat.shape:
        raise ValueError(f"loss_mat and mask must both be (B, T), got {tuple(loss_mat.shape)} "
                         f"and {tuple(mask.shape)}")
    fn = LOSS_AGGREGATIONS.get(mode)
    valid = mask.bool()
    num_tokens = max(int(valid.sum()), 1) if num_tokens is None else num_tokens
    num_seqs = max(int(valid.any(-1).sum()), 1) if num_seqs is None else num_seqs
    max_len = loss_mat.shape[1] if max_len is None else max_len
    if num_tokens <= 0 or num_seqs <= 0 or max_len <= 0:
        raise ValueError(f"num_tokens, num_seqs and max_len must be > 0, "
                         f"got {num_tokens}, {num_seqs}, {max_len}")
    return fn(loss_mat, mask, num_tokens=num_tokens, num_seqs=num_seqs, max_len=max_len)
