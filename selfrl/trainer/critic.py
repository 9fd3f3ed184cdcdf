"""PPO's critic: a separate value model (a transformer backbone with a scalar head).

Why a separate model rather than a value head on the policy: the value loss then cannot
pull the policy's representation, the actor's loss stays exactly the one the policy-loss
functions compute, and the critic can start from another model (the reward model, as
InstructGPT does) — the layout of OpenRLHF and verl.  It costs a second copy of the
backbone, which is small next to the rollout's memory at the sizes this library targets.

Example::

    critic = ValueModel.from_pretrained("tiny-arith")
    values = completion_values(critic, pad_sequences(prompts, completions, pad_id))  # (B, C)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from selfrl.trainer.batch import Sequences


class ValueModel(nn.Module):
    """``backbone`` (a transformers base model) + a linear head: one value per position."""

    def __init__(self, backbone: nn.Module, hidden_size: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.value_head = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.value_head.weight, std=1.0 / math.sqrt(hidden_size + 1))
        nn.init.zeros_(self.value_head.bias)

    @classmethod
    def from_pretrained(cls, path: str) -> ValueModel:
        """The backbone of a causal LM, reward model or base model folder, with a fresh head."""
        from transformers import AutoModel

        from selfrl.models import ModelNotFoundError, resolve_model_path

        resolved = resolve_model_path(path)
        try:
            backbone = AutoModel.from_pretrained(resolved, dtype=torch.float32)
        except OSError as e:
            raise ModelNotFoundError(f"could not load a critic backbone from {resolved!r}: {e}") from None
        return cls(backbone, backbone.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                position_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                               position_ids=position_ids, use_cache=False).last_hidden_state
        return self.value_head(hidden).squeeze(-1)  # (B, T)


def completion_values(critic: ValueModel, seq: Sequences) -> torch.Tensor:
    """Values ``(B, C)`` of the states before each completion token (aligned with logprobs)."""
    P = seq.prompt_len
    values = critic(seq.input_ids, seq.attention_mask, seq.position_ids)  # (B, P + C)
    return values[:, P - 1:-1].float()
