"""The advantage step, in one place: per-token advantages (and the critic's targets) of a batch.

A recipe may have fixed each sequence's advantage itself (SERL's group normalisation); then it
is put on every completion token.  Otherwise the configured estimator runs on the batch
*gathered from every process* (scores, masks, KL and values: a few floats per token), so that
batch-wide statistics (the whitening of ``reinforce_pp`` and ``gae``) are those of one process
holding the whole batch, and each process keeps its own rows.  Group-wise estimators give the
same numbers either way.  Estimators compute in float64; the loss takes float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from selfrl.algorithms import ADVANTAGE_ESTIMATORS, AdvantageInput, AdvantageOutput, AdvantageParams
from selfrl.trainer.distributed import DistContext

if TYPE_CHECKING:
    from selfrl.trainer.batch import RolloutBatch


def compute_advantages(batch: RolloutBatch, mask: torch.Tensor, kl: torch.Tensor | None, estimator: str,
                       params: AdvantageParams,
                       dist: DistContext) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, float]]:
    """``(advantages (B, C), returns (B, C) or None, metrics)`` of ``batch`` for the completion-token
    ``mask`` ``(B, C)``; ``kl`` ``(B, C)`` when the KL is folded into the reward."""
    if batch.fixed_advantages is not None:
        return batch.fixed_advantages[:, None] * mask, None, {}  # (B, C)
    groups = torch.arange(batch.num_groups).repeat_interleave(batch.group_size)  # (B,)
    inp = AdvantageInput(scores=batch.scores, response_mask=mask, group_index=groups, kl=kl,
                         values=batch.values)
    out = global_advantages(ADVANTAGE_ESTIMATORS.get(estimator), inp, params, dist)
    abs_mean = float(dist.sum_tensor((out.advantages.abs() * mask).sum()) / dist.sum_tensor(mask.sum()))
    returns = None if out.returns is None else out.returns.float()
    return out.advantages.float(), returns, {"advantage/abs_mean": abs_mean}


def global_advantages(estimator: Callable, inp: AdvantageInput, params: AdvantageParams | None,
                      dist: DistContext) -> AdvantageOutput:
    """Run an advantage estimator on the batch gathered from every process, so that
    batch-wide statistics (whitening) are global; returns this process's rows.

    ``inp.group_index`` counts from 0 in each process (offset here so that groups from
    different processes stay apart)."""
    if not dist.enabled:
        return estimator(inp, params)
    B, T = inp.response_mask.shape
    mask, first = dist.gather_rows(inp.response_mask.float())
    offsets = dist.gather_objects(int(inp.group_index.max()) + 1 if B else 0)
    groups, _ = dist.gather_rows(inp.group_index + sum(offsets[:dist.rank]))
    scores, _ = dist.gather_rows(inp.scores)
    kl = None if inp.kl is None else dist.gather_rows(inp.kl)[0]
    values = None if inp.values is None else dist.gather_rows(inp.values)[0]
    out = estimator(AdvantageInput(scores=scores, response_mask=mask, group_index=groups, kl=kl,
                                   values=values), params)
    rows = slice(first, first + B)
    out.advantages = out.advantages[rows, :T]
    if out.returns is not None:
        out.returns = out.returns[rows, :T]
    return out
