"""Turning rollouts into training tensors, and per-token logprobs of completions.

Layout: prompts left-padded to the longest prompt, completions right-padded to the longest
completion, so that completion tokens sit in one aligned block ``[P, P + C)`` and every
per-token tensor is ``(B, C)``.  EOS stays inside the completion (it is trained).

A GRPO batch holds ``n`` completions of each prompt, so the plain layout runs every prompt
``n`` times through the model.  :class:`SharedPromptSequences` runs each distinct prompt once
and lends its key/value cache to its completions; backward adds the copies' gradients back
into the one prompt pass, so the logprobs and gradients are those of the plain layout (up to
float rounding) at ``1/n`` of the prompt's cost.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from selfrl.models import kv_cache
from selfrl.rollout.base import distinct_prompts
from selfrl.trainer.lm_head import OutputHead, linear_logprobs


@dataclass
class RolloutBatch:
    """One step's sequences, flattened group-major (``group_size`` completions per prompt).

    The batch is the only carrier of a step's data: what the reward found out about a group
    (SeRL's pseudo-label, SERL's judge samples) rides in ``group_data`` and follows its group
    through :meth:`select_groups` and :meth:`concat` (and so do the reward's parts' scores,
    ``reward_components``); recipes return changed copies (:meth:`replace`) rather than editing a
    batch in place.
    """

    rows: list[dict]               # dataset row of each sequence's prompt
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    rollout_logprobs: list[list[float]]
    completions: list[str]         # the completions' text (RewardBatch.completions)
    prompts: list[str]             # the question each completion answers (RewardBatch.prompts)
    finish_reasons: list[str]
    group_size: int
    scores: torch.Tensor | None = None          # (B,)
    group_data: dict[str, list] = field(default_factory=dict)  # name -> one value per group, from
    #   the reward (RewardResult.group_data)
    reward_components: dict[str, list[float]] = field(default_factory=dict)  # part name -> one score
    #   per sequence, before its weight (RewardResult.components)
    filtered: RolloutBatch | None = None        # collect()'s output only: the groups the filters
    #   dropped this step, never trained (the rollout samples show them)
    advantages: torch.Tensor | None = None      # (B, C)
    old_logprobs: torch.Tensor | None = None    # (B, C)
    ref_logprobs: torch.Tensor | None = None    # (B, C)
    loss_weight: torch.Tensor | None = None     # (B,) recipes may weight sequences (SERL)
    fixed_advantages: torch.Tensor | None = None  # (B,) set by a recipe: no estimator runs
    values: torch.Tensor | None = None          # (B, C) critic values at rollout time (gae)
    returns: torch.Tensor | None = None         # (B, C) the critic's targets (gae)
    temperatures: torch.Tensor | None = None    # (B,) each sequence's sampling temperature when
    #   they differ (SERL's judge samples); None: all at rollout.temperature
    metrics: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.completion_ids)

    @property
    def num_groups(self) -> int:
        return len(self) // self.group_size

    def replace(self, **changes) -> RolloutBatch:
        """A copy with ``changes`` (and its own metrics dict); the lists are shared, not copied."""
        return dataclasses.replace(self, **{"metrics": dict(self.metrics), **changes})

    def select_groups(self, groups: list[int]) -> RolloutBatch:
        """A new batch holding only the listed groups (in that order), with their scores and
        group data."""
        idx = [g * self.group_size + j for g in groups for j in range(self.group_size)]
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        out = RolloutBatch(pick(self.rows), pick(self.prompt_ids), pick(self.completion_ids),
                           pick(self.rollout_logprobs), pick(self.completions), pick(self.prompts),
                           pick(self.finish_reasons), self.group_size,
                           group_data={k: [v[g] for g in groups] for k, v in self.group_data.items()},
                           reward_components={k: pick(v) for k, v in self.reward_components.items()})
        if self.scores is not None:
            out.scores = self.scores[torch.tensor(idx, dtype=torch.long)]
        return out

    @staticmethod
    def concat(batches: list[RolloutBatch]) -> RolloutBatch:
        """The batches one after the other, with their scores and group data (which must name the
        same things in every batch)."""
        first = batches[0]
        for name, what in (("group_data", "group data"), ("reward_components", "reward parts")):
            if any(getattr(b, name).keys() != getattr(first, name).keys() for b in batches):
                raise ValueError(f"cannot concatenate batches with different {what}: "
                                 f"{sorted({k for b in batches for k in getattr(b, name)})}")
        cat = lambda name: [x for b in batches for x in getattr(b, name)]  # noqa: E731
        out = RolloutBatch(cat("rows"), cat("prompt_ids"), cat("completion_ids"),
                           cat("rollout_logprobs"), cat("completions"), cat("prompts"),
                           cat("finish_reasons"), first.group_size,
                           group_data={k: [x for b in batches for x in b.group_data[k]]
                                       for k in first.group_data},
                           reward_components={k: [x for b in batches for x in b.reward_components[k]]
                                              for k in first.reward_components})
        if all(b.scores is not None for b in batches):
            out.scores = torch.cat([b.scores for b in batches])  # (B,)
        return out


def merge_prepared(batches: list[RolloutBatch]) -> RolloutBatch:
    """Concatenate batches whose advantages (and old/ref logprobs) are already computed,
    padding the per-token tensors to the widest completion.  The result is for the update
    only: its groups (and their group data) are not kept."""
    out = RolloutBatch.concat([b.replace(group_data={}, reward_components={}) for b in batches])
    width = max(b.advantages.shape[1] for b in batches)

    def cat(name: str) -> torch.Tensor | None:
        parts = [getattr(b, name) for b in batches]
        if all(p is None for p in parts):
            return None
        if any(p is None for p in parts):
            raise ValueError(f"cannot merge batches where only some have {name}")
        return torch.cat([torch.nn.functional.pad(p, (0, width - p.shape[1])) for p in parts])

    out.advantages, out.old_logprobs, out.ref_logprobs = cat("advantages"), cat("old_logprobs"), \
        cat("ref_logprobs")
    temps = [b.temperatures for b in batches]
    if any(t is not None for t in temps):
        if any(t is None for t in temps):
            raise ValueError("cannot merge batches where only some have temperatures")
        out.temperatures = torch.cat(temps)  # (B,)
    weights = [b.loss_weight if b.loss_weight is not None else torch.ones(len(b)) for b in batches]
    out.loss_weight = torch.cat(weights)  # (B,)
    out.metrics = {k: v for b in batches for k, v in b.metrics.items()}
    return out


@dataclass
class Sequences:
    """Padded tensors of a set of sequences; completion tokens at ``[:, P:P+C]``."""

    input_ids: torch.Tensor       # (B, P + C)
    attention_mask: torch.Tensor  # (B, P + C)
    position_ids: torch.Tensor    # (B, P + C)
    response_mask: torch.Tensor   # (B, C) 1 on completion tokens
    prompt_len: int               # P


def pad_sequences(prompts: list[list[int]], completions: list[list[int]], pad_id: int,
                  device: torch.device | str = "cpu") -> Sequences:
    """Left-pad prompts and right-pad completions into one tensor."""
    B = len(prompts)
    P = max(len(p) for p in prompts)
    C = max(1, max(len(c) for c in completions))
    ids = torch.full((B, P + C), pad_id, dtype=torch.long)
    attn = torch.zeros((B, P + C), dtype=torch.long)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        ids[i, P - len(p):P] = torch.tensor(p, dtype=torch.long)
        attn[i, P - len(p):P] = 1
        if c:
            ids[i, P:P + len(c)] = torch.tensor(c, dtype=torch.long)
            attn[i, P:P + len(c)] = 1
    position_ids = (attn.cumsum(-1) - 1).clamp(min=0)  # (B, P + C)
    return Sequences(ids.to(device), attn.to(device), position_ids.to(device),
                     attn[:, P:].float().to(device), P)


def pad_logprobs(logprobs: list[list[float]], width: int) -> torch.Tensor:
    """Per-token logprobs right-padded with 0 (or cut) to ``(B, width)``.

    >>> pad_logprobs([[-0.5], [-1.0, -2.0, -3.0]], 2)
    tensor([[-0.5000,  0.0000],
            [-1.0000, -2.0000]])
    """
    out = torch.zeros(len(logprobs), width)  # (B, width)
    for i, lp in enumerate(logprobs):
        n = min(len(lp), width)
        out[i, :n] = torch.tensor(lp[:n], dtype=torch.float32)
    return out


@dataclass
class SharedPromptSequences:
    """Sequences that continue a few distinct prompts: each prompt is stored (and run) once."""

    prompt_ids: torch.Tensor      # (G, P) distinct prompts, left-padded
    prompt_mask: torch.Tensor     # (G, P)
    prompt_index: torch.Tensor    # (B,) the distinct prompt each sequence continues
    completion_ids: torch.Tensor  # (B, C) right-padded
    response_mask: torch.Tensor   # (B, C) 1 on completion tokens


def pad_shared_prompts(prompts: list[list[int]], completions: list[list[int]], pad_id: int,
                       device: torch.device | str = "cpu") -> SharedPromptSequences:
    """Distinct prompts left-padded once, completions right-padded, and which prompt each continues."""
    unique, index = distinct_prompts(prompts)
    G, B = len(unique), len(completions)
    P = max(len(p) for p in unique)
    C = max(1, max(len(c) for c in completions))
    ids = torch.full((G, P), pad_id, dtype=torch.long)
    mask = torch.zeros((G, P), dtype=torch.long)
    for g, p in enumerate(unique):
        ids[g, P - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[g, P - len(p):] = 1
    comp = torch.full((B, C), pad_id, dtype=torch.long)
    resp = torch.zeros((B, C))
    for i, c in enumerate(completions):
        comp[i, :len(c)] = torch.tensor(c, dtype=torch.long)
        resp[i, :len(c)] = 1
    return SharedPromptSequences(ids.to(device), mask.to(device), torch.tensor(index, device=device),
                                 comp.to(device), resp.to(device))


def completion_logprobs(model, seq: Sequences | SharedPromptSequences,
                        temperature: float | torch.Tensor = 1.0, with_entropy: bool = False,
                        head: OutputHead | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token logprobs ``(B, C)`` of the completion tokens (and their entropy, detached).

    Logits are divided by the sampling temperature, so the logprobs are those of the
    distribution the rollout sampled from: one for all, or a ``(B,)`` tensor of each sequence's
    own (SERL's judge samples are drawn at the judge's temperature).  With ``head``
    (:meth:`OutputHead.probe` of ``model``) the output layer runs in chunks over completion
    tokens only (:mod:`selfrl.trainer.lm_head`); padded positions then hold 0.
    """
    if head is not None:
        hidden = _completion_hidden(head.decoder, seq)  # (B, C, H)
        target = seq.completion_ids if isinstance(seq, SharedPromptSequences) \
            else seq.input_ids[:, seq.prompt_len:]
        keep = seq.response_mask.bool()  # (B, C)
        lp, ent = _head_logprobs(head, hidden[keep], target[keep], _token_temperatures(temperature, keep),
                                 with_entropy)  # (N,)
        scatter = lambda x: torch.zeros(keep.shape, device=x.device).masked_scatter(keep, x)  # noqa: E731
        return scatter(lp), (scatter(ent) if ent is not None else None)
    if isinstance(seq, SharedPromptSequences):
        return _token_logprobs(_shared_prompt_logits(model, seq), seq.completion_ids, temperature,
                               with_entropy)
    P = seq.prompt_len
    C = seq.input_ids.shape[1] - P
    # Only the last C + 1 positions' logits are needed: skip the LM head on the prompt.
    out = model(input_ids=seq.input_ids, attention_mask=seq.attention_mask,
                position_ids=seq.position_ids, use_cache=False, logits_to_keep=C + 1)
    logits = out.logits[:, :-1, :]  # (B, C, V) position t predicts token t + 1
    return _token_logprobs(logits, seq.input_ids[:, P:], temperature, with_entropy)


def _token_temperatures(temperature: float | torch.Tensor, keep: torch.Tensor) -> float | torch.Tensor:
    """``temperature`` as is, or a per-sequence ``(B,)`` one repeated over each kept token ``(N,)``."""
    if not isinstance(temperature, torch.Tensor):
        return temperature
    return temperature.to(keep.device)[:, None].expand(keep.shape)[keep]  # (N,)


def _head_logprobs(head: OutputHead, hidden: torch.Tensor, target: torch.Tensor,
                   temperature: float | torch.Tensor,
                   with_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`linear_logprobs` of ``hidden`` ``(N, H)``; with per-token temperatures ``(N,)``,
    one call per distinct temperature (a batch holds one or two)."""
    w, b = head.linear.weight, head.linear.bias
    if not isinstance(temperature, torch.Tensor):
        return linear_logprobs(hidden, w, b, target, temperature, with_entropy)
    lp = torch.zeros(len(target), device=hidden.device)  # (N,)
    ent = torch.zeros_like(lp) if with_entropy else None
    for t in temperature.unique().tolist():
        sel = temperature == t  # (N,) the tokens sampled at t
        lp_t, ent_t = linear_logprobs(hidden[sel], w, b, target[sel], t, with_entropy)
        lp = lp.to(lp_t.dtype).masked_scatter(sel, lp_t)
        if ent is not None:
            ent = ent.to(ent_t.dtype).masked_scatter(sel, ent_t)
    return lp, ent


def _completion_hidden(decoder, seq: Sequences | SharedPromptSequences) -> torch.Tensor:
    """The decoder's hidden states ``(B, C, H)`` at the positions that predict each completion
    token (the prompt's last position, then every completion token but the last)."""
    if isinstance(seq, Sequences):
        P, C = seq.prompt_len, seq.input_ids.shape[1] - seq.prompt_len
        hidden = decoder(input_ids=seq.input_ids, attention_mask=seq.attention_mask,
                         position_ids=seq.position_ids, use_cache=False).last_hidden_state  # (B, P+C, H)
        return hidden[:, P - 1:P + C - 1]
    C = seq.completion_ids.shape[1]
    prompt_pos = (seq.prompt_mask.cumsum(-1) - 1).clamp(min=0)  # (G, P)
    out = decoder(input_ids=seq.prompt_ids, attention_mask=seq.prompt_mask, position_ids=prompt_pos,
                  use_cache=True)
    first = out.last_hidden_state[:, -1:][seq.prompt_index]  # (B, 1, H)
    if C == 1:
        return first
    key, cache = kv_cache(out)
    cache.batch_select_indices(seq.prompt_index)  # (G, ...) -> (B, ...) in every layer
    mask = torch.cat([seq.prompt_mask[seq.prompt_index], seq.response_mask[:, :-1].long()], 1)  # (B, P+C-1)
    pos = prompt_pos[seq.prompt_index, -1:] + 1 + torch.arange(C - 1, device=mask.device)  # (B, C-1)
    rest = decoder(input_ids=seq.completion_ids[:, :-1], attention_mask=mask, position_ids=pos,
                   use_cache=True, **{key: cache}).last_hidden_state  # (B, C-1, H)
    return torch.cat([first, rest], 1)


def _shared_prompt_logits(model, seq: SharedPromptSequences) -> torch.Tensor:
    """Logits ``(B, C, V)`` predicting each completion token: the distinct prompts go through the
    model once, then every completion attends to its prompt's gathered key/value cache."""
    C = seq.completion_ids.shape[1]
    prompt_pos = (seq.prompt_mask.cumsum(-1) - 1).clamp(min=0)  # (G, P)
    out = model(input_ids=seq.prompt_ids, attention_mask=seq.prompt_mask, position_ids=prompt_pos,
                use_cache=True, logits_to_keep=1)
    first = out.logits[seq.prompt_index]  # (B, 1, V) the prompt's last position predicts token 0
    if C == 1:
        return first
    key, cache = kv_cache(out)
    cache.batch_select_indices(seq.prompt_index)  # every layer's keys/values: (G, ...) -> (B, ...)
    # The last completion token predicts nothing: feed tokens 0 .. C-2 only.
    mask = torch.cat([seq.prompt_mask[seq.prompt_index], seq.response_mask[:, :-1].long()], 1)  # (B, P+C-1)
    pos = prompt_pos[seq.prompt_index, -1:] + 1 + torch.arange(C - 1, device=mask.device)  # (B, C-1)
    rest = model(input_ids=seq.completion_ids[:, :-1], attention_mask=mask, position_ids=pos,
                 use_cache=True, **{key: cache}).logits  # (B, C-1, V)
    return torch.cat([first, rest], 1)  # (B, C, V)


def _token_logprobs(logits: torch.Tensor, target: torch.Tensor, temperature: float | torch.Tensor,
                    with_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logprobs ``(B, C)`` of ``target`` under ``logits / temperature`` ``(B, C, V)``, and the entropy
    (``temperature``: one, or ``(B,)`` one per sequence)."""
    logits = logits.float()
    if isinstance(temperature, torch.Tensor):
        logits = logits / temperature.to(logits.device, logits.dtype)[:, None, None]  # (B, C, V)
    elif temperature and temperature != 1.0:
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, dim=-1)  # (B, C, V)
    logprobs = logp_all.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (B, C)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(logp_all.exp() * logp_all).sum(-1)  # (B, C)
    return logprobs, entropy
