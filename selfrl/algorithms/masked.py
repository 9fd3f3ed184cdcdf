"""Reductions over the valid (mask != 0) entries of a tensor.

Padding positions are *selected away* with ``torch.where`` rather than multiplied by zero:
a pad position may hold ``inf`` or ``nan`` (garbage logprobs, an overflowing ratio), and
``nan * 0`` is still ``nan``.

>>> x = torch.tensor([[1.0, 3.0, float("nan")]])
>>> m = torch.tensor([[1, 1, 0]])
>>> masked_mean(x, m)
tensor(2.)
"""

from __future__ import annotations

import torch


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of ``x`` over entries where ``mask`` is nonzero (over ``dim``, or everything)."""
    kept = torch.where(mask.bool(), x, 0.0)
    return kept.sum() if dim is None else kept.sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over valid entries; 0 where there are none (not ``nan``)."""
    count = mask.bool().sum() if dim is None else mask.bool().sum(dim)
    return masked_sum(x, mask, dim) / count.clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float) -> torch.Tensor:
    """``(x - mean) / (std + eps)`` over all valid entries; zero outside the mask.

    The std is the unbiased (Bessel-corrected) one, as in verl's ``masked_whiten``.

    >>> masked_whiten(torch.tensor([[1.0, 3.0, 9.0]]), torch.tensor([[1, 1, 0]]), eps=0.0)
    tensor([[-0.7071,  0.7071,  0.0000]])
    """
    valid = mask.bool()
    count = int(valid.sum())
    if count < 2:
        raise ValueError(f"whitening needs at least 2 valid tokens in the batch, got {count}")
    mean = masked_sum(x, valid) / count  # ()
    var = masked_sum((x - mean) ** 2, valid) / (count - 1)  # ()
    white = (x - mean) / (var.sqrt() + eps)  # same shape as x
    return torch.where(valid, white, 0.0)
