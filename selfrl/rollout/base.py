"""The rollout interface: prompts in, ``n`` completions each out, with token ids and logprobs.

Rollout code never computes rewards; it only samples.  Engines (Hugging Face, and vLLM in
:mod:`selfrl.rollout.vllm` behind the same interface) return :class:`Completion` objects grouped per prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class SamplingParams:
    """How to sample.  ``temperature == 0`` means greedy.

    Args:
        n: completions per prompt.
        temperature: softmax temperature (0 → greedy).
        top_p: nucleus mass kept (1.0 keeps all).
        top_k: keep the k most likely tokens (0 keeps all).
        presence_penalty: subtracted once from the logit of every token already generated.
        max_new_tokens: most tokens generated per completion.
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    presence_penalty: float = 0.0
    max_new_tokens: int = 128

    def __post_init__(self) -> None:
        if self.n < 1 or self.max_new_tokens < 1:
            raise ValueError("n and max_new_tokens must be >= 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ValueError("need temperature >= 0, 0 < top_p <= 1, top_k >= 0")


@dataclass
class Completion:
    """One sampled completion.

    ``token_ids`` include the EOS token when the model stopped (the model must learn to
    stop, so EOS is trained); ``logprobs[i]`` is the sampling-distribution log-probability
    (after temperature, before top-p/top-k truncation) of ``token_ids[i]``.
    """

    text: str
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str  # "stop" (EOS) or "length"
    prompt_ids: list[int] = field(default_factory=list)


class RolloutEngine(Protocol):
    """Anything that turns prompt token ids into groups of completions: the HF engine
    (:mod:`selfrl.rollout.hf`) and vLLM's (:mod:`selfrl.rollout.vllm`)."""

    def generate(self, prompts: list[list[int]], params: SamplingParams,
                 generator: torch.Generator | None = None) -> list[list[Completion]]:
        """Return ``len(prompts)`` groups of ``params.n`` completions each, drawn from ``generator``
        (the trainer's, so that a resumed run samples what the uninterrupted one would)."""
        ...

    def sync_weights(self, model) -> None:
        """Load the trainer's current weights (a no-op for an engine that samples from them)."""
        ...

    def verify_sync(self, model, probe_ids: list[int]) -> float:
        """The largest per-token gap between the engine's and ``model``'s logprobs of ``probe_ids``
        (0 for an engine that samples from ``model`` itself); the trainer checks it every
        ``rollout.verify_sync_every``-th sync."""
        ...


def distinct_prompts(prompts: list[list[int]]) -> tuple[list[list[int]], list[int]]:
    """The distinct prompts in order of first appearance, and each prompt's index among them.

    >>> distinct_prompts([[1, 2], [3], [1, 2]])
    ([[1, 2], [3]], [0, 1, 0])
    """
    first: dict[tuple[int, ...], int] = {}
    index = [first.setdefault(tuple(p), len(first)) for p in prompts]
    return [list(p) for p in first], index
