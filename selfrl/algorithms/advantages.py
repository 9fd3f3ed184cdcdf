"""Advantage estimators: sequence scores (and optionally critic values, KL) → per-token advantages.

Every estimator has the one signature ``fn(inp: AdvantageInput, params: AdvantageParams) ->
AdvantageOutput`` and is registered by name in :data:`ADVANTAGE_ESTIMATORS`, declaring there
what it needs (:class:`EstimatorNeeds`: a critic, a least group size).  They run
under ``torch.no_grad``: advantages and returns are constants for the policy loss.

Names and how they follow (or depart from) their papers:

* ``grpo`` (Shao et al. 2024): ``(score - group mean) / (group std + eps)``, the same
  value on every valid token.  The std is the unbiased one (``torch.std``'s default, as in
  verl and TRL); ``norm_by_std=False`` drops the division.
* ``dr_grpo`` (Liu et al. 2025, "Understanding R1-Zero-like training"): ``score - group
  mean``, never divided by the std (which favours too-easy and too-hard prompts).  Dr.GRPO
  also changes the loss aggregation; pair it with ``seq-mean-token-sum-norm``.
* ``rloo`` (Ahmadian et al. 2024): ``score`` minus the mean score of the *other*
  completions of the same prompt, so the baseline is independent of the sample it judges.
* ``reinforce_pp`` (REINFORCE++, Hu 2025): per-token reward ``-kl_coef * kl`` plus the
  score on the last valid token; the return is the discounted reverse sum over valid
  tokens, and the advantage is that return whitened over all valid tokens of the batch.
* ``reinforce_pp_baseline``: the same, but the score first has its group mean subtracted
  (OpenRLHF's ``reinforce_baseline``).
* ``gae`` (Schulman et al. 2016): token rewards as for ``reinforce_pp``, GAE(γ, λ) with the
  critic's values (value after the last valid token is 0), ``returns = advantages +
  values`` (the critic's target), advantages whitened over the batch as in OpenRLHF's and
  TRL's PPO.

Every estimator computes in float64 (rewards a group apart by 1e-4 lose three digits of
their differences in float32) and returns its outputs in the dtype of ``scores`` (the default
float dtype for integer scores): pass float64 scores for float64 advantages.

"Over valid tokens" means masked positions are skipped, not treated as steps: a hole in
the mask (an environment turn that is not trained) neither earns reward nor is discounted.
With right-padded masks this is the same as an ordinary reverse scan.

>>> inp = AdvantageInput(scores=torch.tensor([1.0, 0.0, 0.5, 0.5]),
...                      response_mask=torch.ones(4, 2),
...                      group_index=torch.tensor([0, 0, 1, 1]))
>>> ADVANTAGE_ESTIMATORS.get("dr_grpo")(inp, AdvantageParams()).advantages
tensor([[ 0.5000,  0.5000],
        [-0.5000, -0.5000],
        [ 0.0000,  0.0000],
        [ 0.0000,  0.0000]])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from selfrl.algorithms.masked import masked_whiten
from selfrl.registry import Registry


@dataclass
class AdvantageInput:
    """What an estimator sees about one batch of ``B`` completions padded to ``T`` tokens.

    Args:
        scores: ``(B,)`` sequence-level rewards.
        response_mask: ``(B, T)`` nonzero on trained response tokens (float or bool).
        group_index: ``(B,)`` integer id of each completion's prompt; completions of one
            prompt share an id, and a group need not be contiguous.
        values: ``(B, T)`` critic values, required by ``gae``.
        kl: ``(B, T)`` per-token KL estimate between policy and reference (see
            :mod:`selfrl.algorithms.kl`), folded into the reward by ``reinforce_pp*`` and
            ``gae`` as ``-kl_coef * kl``.
    """

    scores: torch.Tensor
    response_mask: torch.Tensor
    group_index: torch.Tensor
    values: torch.Tensor | None = None
    kl: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.response_mask.dim() != 2:
            raise ValueError(f"response_mask must be (B, T), got shape {tuple(self.response_mask.shape)}")
        B, T = self.response_mask.shape
        if self.scores.shape != (B,):
            raise ValueError(f"scores must be (B,) = ({B},), got shape {tuple(self.scores.shape)}")
        if self.group_index.shape != (B,):
            raise ValueError(f"group_index must be (B,) = ({B},), got shape {tuple(self.group_index.shape)}")
        if self.group_index.is_floating_point() or self.group_index.dtype == torch.bool:
            raise ValueError(f"group_index must be an integer tensor, got {self.group_index.dtype}")
        for name in ("values", "kl"):
            t = getattr(self, name)
            if t is not None and t.shape != (B, T):
                raise ValueError(f"{name} must be (B, T) = ({B}, {T}), got shape {tuple(t.shape)}")


@dataclass(frozen=True)
class AdvantageParams:
    """Hyperparameters of the estimators (each estimator reads only the ones it uses).

    Args:
        norm_by_std: ``grpo`` divides by the group std.
        eps: added to every std before dividing.
        gamma: discount per valid token (``reinforce_pp*``, ``gae``).
        lam: GAE's λ (``gae``).
        kl_coef: weight of the per-token KL penalty folded into the reward
            (``reinforce_pp*``, ``gae``); nonzero requires ``AdvantageInput.kl``.
        whiten: whiten advantages over all valid tokens of the batch (``reinforce_pp*``,
            ``gae``); REINFORCE++ and PPO implementations do.
    """

    norm_by_std: bool = True
    eps: float = 1e-6
    gamma: float = 1.0
    lam: float = 0.95
    kl_coef: float = 0.0
    whiten: bool = True

    def __post_init__(self) -> None:
        if self.eps < 0:
            raise ValueError(f"eps must be >= 0, got {self.eps}")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"need 0 <= gamma <= 1 and 0 <= lam <= 1, got {self.gamma}, {self.lam}")


@dataclass
class AdvantageOutput:
    """``advantages`` and ``returns``, both ``(B, T)`` and zero outside the response mask.

    For the group estimators (``grpo``, ``dr_grpo``, ``rloo``) ``returns`` is the raw
    score on every valid token (the undiscounted return: there are no per-token rewards).
    """

    advantages: torch.Tensor
    returns: torch.Tensor


@dataclass(frozen=True)
class EstimatorNeeds:
    """What an estimator declares when it is registered, read by the trainer and the config
    check instead of its name.

    Args:
        critic: it reads ``AdvantageInput.values``, so the trainer builds a value model.
        min_group_size: completions per prompt it needs (2 for estimators that compare a
            completion with the others of its group).
    """

    critic: bool = False
    min_group_size: int = 1


AdvantageEstimator = Callable[[AdvantageInput, AdvantageParams], AdvantageOutput]
ADVANTAGE_ESTIMATORS: Registry[AdvantageEstimator] = Registry(
    "advantage estimator", builtins="selfrl.algorithms", traits=EstimatorNeeds)


# ---------------------------------------------------------------------------------------
# shared pieces


def _scores(inp: AdvantageInput) -> torch.Tensor:
    return inp.scores.to(torch.float64)  # (B,)


def _out_dtype(inp: AdvantageInput) -> torch.dtype:
    s = inp.scores
    return s.dtype if s.is_floating_point() else torch.get_default_dtype()


def _output(inp: AdvantageInput, advantages: torch.Tensor, returns: torch.Tensor) -> AdvantageOutput:
    """The float64 results in the dtype of ``inp.scores``."""
    dtype = _out_dtype(inp)
    return AdvantageOutput(advantages=advantages.to(dtype), returns=returns.to(dtype))


def _group_stats(scores: torch.Tensor, group_index: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-row group sum, size, mean and unbiased std (std is nan for groups of one)."""
    _, inverse, counts = torch.unique(group_index, return_inverse=True, return_counts=True)  # (B,), (G,)
    sums = torch.zeros(counts.numel(), dtype=scores.dtype, device=scores.device)
    sums = sums.index_add(0, inverse, scores)  # (G,)
    size = counts.to(scores.dtype)[inverse]  # (B,)
    group_sum = sums[inverse]  # (B,)
    mean = group_sum / size  # (B,)
    sq = torch.zeros_like(sums).index_add(0, inverse, (scores - mean) ** 2)  # (G,)
    std = (sq[inverse] / (size - 1)).sqrt()  # (B,); 0/0 = nan for groups of one
    return group_sum, size, mean, std


def _require_pairs(size: torch.Tensor, what: str) -> None:
    if bool((size < 2).any()):
        raise ValueError(f"{what} needs group size >= 2, but some group has a single completion")


def _broadcast(per_seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Put a per-sequence value ``(B,)`` on every valid token; zero elsewhere → ``(B, T)``."""
    return torch.where(mask.bool(), per_seq[:, None], 0.0)


def _last_valid(mask: torch.Tensor) -> torch.Tensor:
    """One-hot ``(B, T)`` bool of each row's last valid token (all False for an empty row)."""
    valid = mask.bool()
    counts = valid.long().cumsum(-1)  # (B, T)
    return valid & (counts == counts[:, -1:])  # only the last valid token reaches the row total


def _token_rewards(scores: torch.Tensor, inp: AdvantageInput, params: AdvantageParams) -> torch.Tensor:
    """``-kl_coef * kl`` on every valid token plus the score on the last one → ``(B, T)``."""
    mask = inp.response_mask.bool()
    rewards = _last_valid(mask).to(scores.dtype) * scores[:, None]  # (B, T)
    if params.kl_coef != 0.0:
        if inp.kl is None:
            raise ValueError("kl_coef != 0 needs AdvantageInput.kl (a per-token KL estimate)")
        rewards = rewards - params.kl_coef * torch.where(mask, inp.kl.to(scores.dtype), 0.0)  # (B, T)
    return rewards


def _discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """``G_t = r_t + gamma * G_next`` scanning valid tokens right to left → ``(B, T)``."""
    valid = mask.bool()
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])  # (B,)
    for t in reversed(range(rewards.shape[1])):
        # a masked position leaves the running return untouched, so holes are skipped
        running = torch.where(valid[:, t], rewards[:, t] + gamma * running, running)
        returns[:, t] = torch.where(valid[:, t], running, 0.0)
    return returns


def _gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
         gamma: float, lam: float) -> torch.Tensor:
    """GAE(γ, λ) over valid tokens; the value after the last valid token is 0 → ``(B, T)``."""
    valid = mask.bool()
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])  # (B,) value of the next *valid* token
    next_adv = torch.zeros_like(rewards[:, 0])  # (B,)
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # (B,)
        adv = delta + gamma * lam * next_adv  # (B,)
        next_value = torch.where(valid[:, t], values[:, t], next_value)
        next_adv = torch.where(valid[:, t], adv, next_adv)
        advantages[:, t] = torch.where(valid[:, t], adv, 0.0)
    return advantages


def _reinforce_output(scores: torch.Tensor, inp: AdvantageInput, params: AdvantageParams) -> AdvantageOutput:
    rewards = _token_rewards(scores, inp, params)  # (B, T)
    returns = _discounted_returns(rewards, inp.response_mask, params.gamma)  # (B, T)
    advantages = masked_whiten(returns, inp.response_mask, params.eps) if params.whiten else returns
    return _output(inp, advantages, returns)


# ---------------------------------------------------------------------------------------
# the estimators


@ADVANTAGE_ESTIMATORS.register("grpo", min_group_size=2)
@torch.no_grad()
def grpo(inp: AdvantageInput, params: AdvantageParams) -> AdvantageOutput:
    """``(score - group mean) / (group std + eps)`` on every valid token (unbiased std).

    With ``norm_by_std=False`` only the mean is subtracted.  Raises ``ValueError`` for a
    group of one when ``norm_by_std`` (its std is undefined).
    """
    scores = _scores(inp)
    _, size, mean, std = _group_stats(scores, inp.group_index)
    centred = scores - mean  # (B,)
    if params.norm_by_std:
        _require_pairs(size, "group-normalised estimator 'grpo'")
        centred = centred / (std + params.eps)
    return _output(inp, _broadcast(centred, inp.response_mask), _broadcast(scores, inp.response_mask))


@ADVANTAGE_ESTIMATORS.register("dr_grpo")
@torch.no_grad()
def dr_grpo(inp: AdvantageInput, params: AdvantageParams) -> AdvantageOutput:
    """``score - group mean`` on every valid token; never divides by the std."""
    scores = _scores(inp)
    _, _, mean, _ = _group_stats(scores, inp.group_index)
    return _output(inp, _broadcast(scores - mean, inp.response_mask), _broadcast(scores, inp.response_mask))


@ADVANTAGE_ESTIMATORS.register("rloo", min_group_size=2)
@torch.no_grad()
def rloo(inp: AdvantageInput, params: AdvantageParams) -> AdvantageOutput:
    """``score`` minus the mean score of the other completions of its group (leave-one-out).

    >>> inp = AdvantageInput(scores=torch.tensor([1.0, 0.0, 0.0]), response_mask=torch.ones(3, 1),
    ...                      group_index=torch.zeros(3, dtype=torch.long))
    >>> rloo(inp, AdvantageParams()).advantages.squeeze(1)
    tensor([ 1.0000, -0.5000, -0.5000])
    """
    scores = _scores(inp)
    group_sum, size, _, _ = _group_stats(scores, inp.group_index)
    _require_pairs(size, "leave-one-out estimator 'rloo'")
    baseline = (group_sum - scores) / (size - 1)  # (B,) mean of the others
    return _output(inp, _broadcast(scores - baseline, inp.response_mask),
                   _broadcast(scores, inp.response_mask))


@ADVANTAGE_ESTIMATORS.register("reinforce_pp")
@torch.no_grad()
def reinforce_pp(inp: AdvantageInput, params: AdvantageParams) -> AdvantageOutput:
    """REINFORCE++: discounted return of KL-penalised token rewards, whitened over the batch."""
    return _reinforce_output(_scores(inp), inp, params)


@ADVANTAGE_ESTIMATORS.register("reinforce_pp_baseline")
@torch.no_grad()
def reinforce_pp_baseline(inp: AdvantageInput, params: AdvantageParams) -> AdvantageOutput:
    """REINFORCE++ with the group-mean score subtracted before the return is built."""
    scores = _scores(inp)
    _, _, mean, _ = _group_stats(scores, inp.group_index)
    return _reinforce_output(scores - mean, inp, params)


@ADVANTAGE_ESTIMATORS.register("gae", critic=True)
@torch.no_grad()
def gae(inp: AdvantageInput, params: AdvantageParams) -> AdvantageOutput:
    """PPO's GAE(γ, λ) with the critic's ``values``; ``returns = advantages + values``.

    >>> inp = AdvantageInput(torch.tensor([1.0]), torch.ones(1, 2), torch.zeros(1, dtype=torch.long),
    ...                      values=torch.tensor([[0.5, 0.5]]))
    >>> out = gae(inp, AdvantageParams(gamma=1.0, lam=1.0, whiten=False))
    >>> out.advantages, out.returns
    (tensor([[0.5000, 0.5000]]), tensor([[1., 1.]]))
    """
    if inp.values is None:
        raise ValueError("'gae' needs AdvantageInput.values (critic values, shape (B, T))")
    scores = _scores(inp)
    values = torch.where(inp.response_mask.bool(), inp.values.to(scores.dtype), 0.0)  # (B, T)
    rewards = _token_rewards(scores, inp, params)  # (B, T)
    advantages = _gae(rewards, values, inp.response_mask, params.gamma, params.lam)  # (B, T)
    returns = advantages + values  # (B, T), zero outside the mask since both terms are
    if params.whiten:
        advantages = masked_whiten(advantages, inp.response_mask, params.eps)
    return _output(inp, advantages, returns)
