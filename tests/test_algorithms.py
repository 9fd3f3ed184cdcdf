"""CPU unit tests of selfrl.algorithms against plain-Python loops and hand-computed numbers."""

from __future__ import annotations

import doctest
import math
import statistics

import pytest
import torch

import selfrl.algorithms as alg
from selfrl import registry as reg_mod
from selfrl.algorithms import (
    ADVANTAGE_ESTIMATORS,
    KL_ESTIMATORS,
    LOSS_AGGREGATIONS,
    POLICY_LOSSES,
    AdvantageInput,
    AdvantageParams,
    PolicyLossParams,
    Registry,
    UnknownNameError,
    aggregate_loss,
    masked_whiten,
)
from selfrl.algorithms import advantages as adv_mod
from selfrl.algorithms import aggregation as agg_mod
from selfrl.algorithms import kl as kl_mod
from selfrl.algorithms import masked as masked_mod
from selfrl.algorithms import policy_loss as pl_mod

DT = torch.float64

# A batch of 8 with non-contiguous groups, right padding, a hole in one mask (row 5) and
# one row with a single valid token.
GROUPS = [2, 0, 1, 0, 2, 1, 2, 0]
SCORES = [1.0, 0.0, 0.5, 1.0, 0.0, 0.25, 1.0, 0.5]
MASK = [
    [1, 1, 1, 0, 0],
    [1, 1, 1, 1, 1],
    [1, 1, 0, 0, 0],
    [1, 1, 1, 1, 0],
    [1, 0, 0, 0, 0],
    [1, 1, 0, 1, 1],
    [1, 1, 1, 1, 1],
    [1, 1, 1, 0, 0],
]


def make_input(values: bool = False, kl: bool = False, seed: int = 0) -> AdvantageInput:
    g = torch.Generator().manual_seed(seed)
    B, T = len(MASK), len(MASK[0])
    return AdvantageInput(
        scores=torch.tensor(SCORES, dtype=DT),
        response_mask=torch.tensor(MASK, dtype=torch.float32),
        group_index=torch.tensor(GROUPS),
        values=torch.rand(B, T, generator=g, dtype=DT) if values else None,
        kl=(torch.rand(B, T, generator=g, dtype=DT) - 0.3) if kl else None,
    )


# ---------------------------------------------------------------------------------------
# plain-Python references (nested loops over lists)


def ref_group(scores, groups, mask, kind, norm_by_std=True, eps=1e-6):
    B = len(scores)
    out = []
    for i in range(B):
        others = [scores[j] for j in range(B) if groups[j] == groups[i] and j != i]
        members = others + [scores[i]]
        mean = sum(members) / len(members)
        if kind == "grpo":
            a = scores[i] - mean
            if norm_by_std:
                a = a / (statistics.stdev(members) + eps)  # stdev is the unbiased one
        elif kind == "dr_grpo":
            a = scores[i] - mean
        elif kind == "rloo":
            a = scores[i] - sum(others) / len(others)
        out.append([a if m else 0.0 for m in mask[i]])
    return out


def ref_whiten(x, mask, eps):
    flat = [x[i][t] for i in range(len(x)) for t in range(len(x[i])) if mask[i][t]]
    mean, std = statistics.mean(flat), statistics.stdev(flat)
    return [[(x[i][t] - mean) / (std + eps) if mask[i][t] else 0.0 for t in range(len(x[i]))]
            for i in range(len(x))]


def ref_token_rewards(scores, mask, kl, kl_coef):
    rewards = []
    for i, row in enumerate(mask):
        valid = [t for t, m in enumerate(row) if m]
        r = [0.0] * len(row)
        for t in valid:
            r[t] = -kl_coef * (kl[i][t] if kl is not None else 0.0)
        r[valid[-1]] += scores[i]
        rewards.append(r)
    return rewards


def ref_reinforce(scores, mask, kl, gamma, kl_coef, eps=1e-6):
    rewards = ref_token_rewards(scores, mask, kl, kl_coef)
    returns = []
    for i, row in enumerate(mask):
        ret, running = [0.0] * len(row), 0.0
        for t in reversed([t for t, m in enumerate(row) if m]):
            running = rewards[i][t] + gamma * running
            ret[t] = running
        returns.append(ret)
    return ref_whiten(returns, mask, eps), returns


def ref_gae(scores, mask, values, kl, gamma, lam, kl_coef):
    rewards = ref_token_rewards(scores, mask, kl, kl_coef)
    advs, rets = [], []
    for i, row in enumerate(mask):
        a, r = [0.0] * len(row), [0.0] * len(row)
        next_value, next_adv = 0.0, 0.0
        for t in reversed([t for t, m in enumerate(row) if m]):
            delta = rewards[i][t] + gamma * next_value - values[i][t]
            next_adv = delta + gamma * lam * next_adv
            next_value = values[i][t]
            a[t], r[t] = next_adv, next_adv + values[i][t]
        advs.append(a)
        rets.append(r)
    return advs, rets


def t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=DT)


# ---------------------------------------------------------------------------------------
# registries


def test_registry_duplicate_and_unknown():
    table = Registry("widget")
    table.register("a")(lambda: 1)
    with pytest.raises(ValueError, match="already registered"):
        table.register("a")(lambda: 2)
    assert table.get("a")() == 1
    table.register("b")(lambda: 3)
    with pytest.raises(KeyError) as err:
        table.get("c")
    assert isinstance(err.value, UnknownNameError)
    assert str(err.value) == "unknown widget 'c'; valid names: a, b"
    assert "a" in table and "c" not in table


def test_builtin_registries_reject_duplicates_and_list_names():
    with pytest.raises(ValueError):
        ADVANTAGE_ESTIMATORS.register("grpo")(adv_mod.grpo)
    with pytest.raises(KeyError, match="grpo, reinforce_pp"):
        ADVANTAGE_ESTIMATORS.get("ppo")
    with pytest.raises(KeyError, match="token-mean"):
        aggregate_loss(torch.ones(1, 1), torch.ones(1, 1), "mean")
    assert ADVANTAGE_ESTIMATORS.names() == (
        "dr_grpo", "gae", "grpo", "reinforce_pp", "reinforce_pp_baseline", "rloo")
    assert POLICY_LOSSES.names() == ("gspo", "ppo_clip")
    assert KL_ESTIMATORS.names() == ("k1", "k2", "k3")
    assert LOSS_AGGREGATIONS.names() == (
        "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm", "token-mean")


@pytest.mark.parametrize("name", ADVANTAGE_ESTIMATORS.names())
def test_every_estimator_shares_the_signature(name):
    inp = make_input(values=True, kl=True)
    out = ADVANTAGE_ESTIMATORS.get(name)(inp, AdvantageParams(kl_coef=0.1))
    pad = inp.response_mask == 0
    for x in (out.advantages, out.returns):
        assert x.shape == inp.response_mask.shape and torch.isfinite(x).all()
        assert (x[pad] == 0).all()


def test_docstring_examples_run():
    for module in (alg, adv_mod, agg_mod, kl_mod, masked_mod, pl_mod, reg_mod):
        result = doctest.testmod(module, extraglobs={"torch": torch})
        assert result.attempted > 0 and result.failed == 0, module.__name__


# ---------------------------------------------------------------------------------------
# group estimators


@pytest.mark.parametrize("norm_by_std", [True, False])
def test_grpo_matches_loop(norm_by_std):
    out = adv_mod.grpo(make_input(), AdvantageParams(norm_by_std=norm_by_std, eps=1e-6))
    expected = ref_group(SCORES, GROUPS, MASK, "grpo", norm_by_std, eps=1e-6)
    torch.testing.assert_close(out.advantages, t(expected))
    # returns are the raw score on valid tokens
    raw = [[s * m for m in row] for s, row in zip(SCORES, MASK, strict=True)]
    torch.testing.assert_close(out.returns, t(raw))


def test_grpo_hand_numbers_unbiased_std():
    inp = AdvantageInput(t([1.0, 0.0, 0.0, 1.0]), torch.ones(4, 1), torch.tensor([0, 0, 1, 1]))
    out = adv_mod.grpo(inp, AdvantageParams(eps=0.0))
    # each group: mean 0.5, unbiased std sqrt(0.5)
    torch.testing.assert_close(out.advantages[:, 0], t([1, -1, -1, 1]) * 0.5 / math.sqrt(0.5))


def test_dr_grpo_matches_loop_and_never_divides():
    out = adv_mod.dr_grpo(make_input(), AdvantageParams(norm_by_std=True))
    torch.testing.assert_close(out.advantages, t(ref_group(SCORES, GROUPS, MASK, "dr_grpo")))


def test_rloo_hand_numbers():
    inp = AdvantageInput(t([1.0, 0.0, 0.0, 1.0]), torch.ones(4, 2), torch.zeros(4, dtype=torch.long))
    out = adv_mod.rloo(inp, AdvantageParams())
    # 1 - (0+0+1)/3 = 2/3 ; 0 - (1+0+1)/3 = -2/3
    torch.testing.assert_close(out.advantages, t([[2 / 3] * 2, [-2 / 3] * 2, [-2 / 3] * 2, [2 / 3] * 2]))


def test_rloo_matches_loop():
    out = adv_mod.rloo(make_input(), AdvantageParams())
    torch.testing.assert_close(out.advantages, t(ref_group(SCORES, GROUPS, MASK, "rloo")))


@pytest.mark.parametrize("name", ["grpo", "rloo"])
def test_group_of_one_raises(name):
    inp = AdvantageInput(t([1.0, 0.0, 1.0]), torch.ones(3, 2), torch.tensor([0, 0, 7]))
    with pytest.raises(ValueError, match="group size >= 2"):
        ADVANTAGE_ESTIMATORS.get(name)(inp, AdvantageParams())


def test_group_of_one_without_std_is_zero_advantage():
    inp = AdvantageInput(t([1.0, 0.0, 1.0]), torch.ones(3, 2), torch.tensor([0, 0, 7]))
    out = adv_mod.dr_grpo(inp, AdvantageParams())
    assert (out.advantages[2] == 0).all()


# ---------------------------------------------------------------------------------------
# REINFORCE++ and GAE


def test_reinforce_pp_hand_numbers():
    # score 1, kl [0.1, 0.2, 0.3], kl_coef 1, gamma 0.5: rewards [-0.1, -0.2, 0.7]
    inp = AdvantageInput(t([1.0]), torch.tensor([[1, 1, 1, 0]]), torch.tensor([0]),
                         kl=t([[0.1, 0.2, 0.3, 99.0]]))
    out = adv_mod.reinforce_pp(inp, AdvantageParams(gamma=0.5, kl_coef=1.0, whiten=False))
    torch.testing.assert_close(out.returns, t([[-0.025, 0.15, 0.7, 0.0]]))
    torch.testing.assert_close(out.advantages, out.returns)


@pytest.mark.parametrize("gamma,kl_coef", [(1.0, 0.0), (0.9, 0.1), (0.5, 1.0)])
def test_reinforce_pp_matches_loop(gamma, kl_coef):
    inp = make_input(kl=True)
    out = adv_mod.reinforce_pp(inp, AdvantageParams(gamma=gamma, kl_coef=kl_coef))
    adv, ret = ref_reinforce(SCORES, MASK, inp.kl.tolist(), gamma, kl_coef)
    torch.testing.assert_close(out.advantages, t(adv))
    torch.testing.assert_close(out.returns, t(ret))


def test_reinforce_pp_baseline_matches_loop():
    inp = make_input(kl=True)
    out = adv_mod.reinforce_pp_baseline(inp, AdvantageParams(gamma=0.9, kl_coef=0.2))
    centred = [s - statistics.mean(SCORES[j] for j in range(len(SCORES)) if GROUPS[j] == GROUPS[i])
               for i, s in enumerate(SCORES)]
    adv, ret = ref_reinforce(centred, MASK, inp.kl.tolist(), 0.9, 0.2)
    torch.testing.assert_close(out.advantages, t(adv))
    torch.testing.assert_close(out.returns, t(ret))


def test_gae_hand_numbers():
    # rewards [0, 0, 1], values [0.5, 0.6, 0.7], gamma 0.9, lam 0.8, a padded 4th token
    #   d2 = 1 - 0.7 = 0.3                      A2 = 0.3
    #   d1 = 0.9 * 0.7 - 0.6 = 0.03             A1 = 0.03 + 0.72 * 0.3 = 0.246
    #   d0 = 0.9 * 0.6 - 0.5 = 0.04             A0 = 0.04 + 0.72 * 0.246 = 0.21712
    inp = AdvantageInput(t([1.0]), torch.tensor([[1, 1, 1, 0]]), torch.tensor([0]),
                         values=t([[0.5, 0.6, 0.7, 5.0]]))
    out = adv_mod.gae(inp, AdvantageParams(gamma=0.9, lam=0.8, whiten=False))
    torch.testing.assert_close(out.advantages, t([[0.21712, 0.246, 0.3, 0.0]]))
    torch.testing.assert_close(out.returns, t([[0.71712, 0.846, 1.0, 0.0]]))


@pytest.mark.parametrize("gamma,lam,kl_coef", [(1.0, 0.95, 0.0), (0.9, 0.8, 0.1)])
def test_gae_matches_loop(gamma, lam, kl_coef):
    inp = make_input(values=True, kl=True)
    params = AdvantageParams(gamma=gamma, lam=lam, kl_coef=kl_coef)
    out = adv_mod.gae(inp, params)
    adv, ret = ref_gae(SCORES, MASK, inp.values.tolist(), inp.kl.tolist(), gamma, lam, kl_coef)
    torch.testing.assert_close(out.advantages, t(ref_whiten(adv, MASK, params.eps)))
    torch.testing.assert_close(out.returns, t(ret))


def test_masked_whiten_matches_loop():
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(1), dtype=DT)
    expected = ref_whiten(x.tolist(), MASK, 1e-6)
    torch.testing.assert_close(masked_whiten(x, torch.tensor(MASK), 1e-6), t(expected))


def test_advantage_input_errors():
    with pytest.raises(ValueError, match="scores must be"):
        AdvantageInput(torch.zeros(3, 1), torch.ones(3, 2), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="group_index must be"):
        AdvantageInput(torch.zeros(3), torch.ones(3, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        AdvantageInput(torch.zeros(3), torch.ones(3, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="values must be"):
        AdvantageInput(torch.zeros(3), torch.ones(3, 2), torch.zeros(3, dtype=torch.long),
                       values=torch.ones(3, 3))
    inp = make_input()
    with pytest.raises(ValueError, match="needs AdvantageInput.values"):
        adv_mod.gae(inp, AdvantageParams())
    with pytest.raises(ValueError, match="needs AdvantageInput.kl"):
        adv_mod.reinforce_pp(inp, AdvantageParams(kl_coef=0.1))
    with pytest.raises(ValueError):
        AdvantageParams(gamma=1.5)


# ---------------------------------------------------------------------------------------
# policy losses


def _ratios_to_logprobs(ratios):
    logprobs = torch.zeros(1, len(ratios), dtype=DT, requires_grad=True)
    old = -torch.log(t([ratios]))  # logp - old = log(ratio)
    return logprobs, old


def test_ppo_clip_both_sides_asymmetric():
    ratios = [1.5, 0.5, 1.5, 0.5, 1.1, 1.25]
    advantages = t([[1.0, 1.0, -1.0, -1.0, 1.0, 1.0]])
    logprobs, old = _ratios_to_logprobs(ratios)
    params = PolicyLossParams(clip_low=0.1, clip_high=0.3)
    loss, metrics = pl_mod.ppo_clip(logprobs, old, advantages, torch.ones(1, 6), params)
    # A>0: -min(r, 1.3); A<0: max(r, 0.9).  1.25 is inside the clip-higher range.
    expected = [-1.3, -0.5, 1.5, 0.9, -1.1, -1.25]
    torch.testing.assert_close(loss, t([expected]))
    assert metrics["clip_frac"].item() == pytest.approx(2 / 6)
    loss.sum().backward()
    # clipped tokens get no gradient; the others get d(-A r)/d logp = -A r
    torch.testing.assert_close(logprobs.grad, t([[0.0, -0.5, 1.5, 0.0, -1.1, -1.25]]))
    # with the symmetric 0.2 range, 1.25 is clipped to 1.2
    sym, _ = pl_mod.ppo_clip(logprobs, old, advantages, torch.ones(1, 6), PolicyLossParams())
    assert sym[0, 5].item() == pytest.approx(-1.2)


def test_ppo_dual_clip():
    ratios = [5.0, 2.0, 5.0]
    advantages = t([[-1.0, -1.0, 1.0]])
    logprobs, old = _ratios_to_logprobs(ratios)
    params = PolicyLossParams(dual_clip=3.0)
    loss, metrics = pl_mod.ppo_clip(logprobs, old, advantages, torch.ones(1, 3), params)
    # A<0: min(max(-A r, -A clip(r)), -A c) = min(5, 3) = 3 and min(2, 3) = 2; A>0 unaffected
    torch.testing.assert_close(loss, t([[3.0, 2.0, -1.2]]))
    assert metrics["dual_clip_frac"].item() == pytest.approx(1 / 3)
    loss.sum().backward()
    torch.testing.assert_close(logprobs.grad, t([[0.0, 2.0, 0.0]]))
    with pytest.raises(ValueError, match="dual_clip"):
        PolicyLossParams(dual_clip=0.5)


def test_ppo_metrics_and_padding_is_ignored():
    logprobs = t([[-1.0, -2.0, float("nan")]]).requires_grad_()
    old = t([[-1.5, -1.0, 0.0]])
    mask = torch.tensor([[1, 1, 0]])
    loss, m = pl_mod.ppo_clip(logprobs, old, torch.ones(1, 3, dtype=DT), mask, PolicyLossParams())
    assert m["approx_kl"].item() == pytest.approx(((-1.5 + 1.0) + (-1.0 + 2.0)) / 2)
    assert m["ratio_mean"].item() == pytest.approx((math.exp(0.5) + math.exp(-1.0)) / 2)
    assert loss[0, 2].item() == 0.0
    aggregate_loss(loss, mask, "token-mean").backward()
    assert torch.isfinite(logprobs.grad).all() and logprobs.grad[0, 2] == 0


def test_gspo_sequence_ratio_and_gradient():
    g = torch.Generator().manual_seed(0)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    old = torch.randn(2, 4, generator=g, dtype=DT)
    logprobs = (old + 0.01 * torch.randn(2, 4, generator=g, dtype=DT)).requires_grad_()
    advantages = t([[1.0] * 4, [-2.0] * 4])
    loss, _ = pl_mod.gspo(logprobs, old, advantages, mask, PolicyLossParams(clip_low=0.5, clip_high=0.5))
    s = [math.exp(statistics.mean((logprobs[b, i] - old[b, i]).item() for i in range(4) if mask[b, i]))
         for b in range(2)]
    # value: -A * s on every valid token of the sequence
    torch.testing.assert_close(loss, t([[-1.0 * s[0]] * 3 + [0.0], [2.0 * s[1]] * 4]))
    # gradient: -A * s * d logp_t (the sequence ratio's value, each token's own gradient)
    loss.sum().backward()
    torch.testing.assert_close(logprobs.grad, t([[-s[0]] * 3 + [0.0], [2.0 * s[1]] * 4]))


def test_gspo_clips_the_sequence_ratio():
    # token log ratios +0.01 and -0.005; only the sequence ratio exp(0.0025) is clipped,
    # and it lies above GSPO's 1 + 4e-4, so both tokens take the clipped value
    logprobs = t([[0.01, -0.005]]).requires_grad_()
    old = torch.zeros(1, 2, dtype=DT)
    params = PolicyLossParams(clip_low=3e-4, clip_high=4e-4)
    loss, m = pl_mod.gspo(logprobs, old, torch.ones(1, 2, dtype=DT), torch.ones(1, 2), params)
    torch.testing.assert_close(loss, t([[-(1 + 4e-4)] * 2]))
    assert m["clip_frac"].item() == 1.0
    loss.sum().backward()
    assert (logprobs.grad == 0).all()


def test_gspo_equals_ppo_for_one_token_sequences():
    g = torch.Generator().manual_seed(3)
    old = torch.randn(6, 1, generator=g, dtype=DT)
    logprobs = old + 0.3 * torch.randn(6, 1, generator=g, dtype=DT)
    advantages = torch.randn(6, 1, generator=g, dtype=DT)
    params = PolicyLossParams(clip_low=0.1, clip_high=0.2, dual_clip=2.0)
    args = (logprobs, old, advantages, torch.ones(6, 1))
    torch.testing.assert_close(pl_mod.gspo(*args, params)[0], pl_mod.ppo_clip(*args, params)[0])


def test_policy_loss_shape_error():
    with pytest.raises(ValueError, match="advantages must match"):
        pl_mod.ppo_clip(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2), torch.ones(2, 3),
                        PolicyLossParams())


# ---------------------------------------------------------------------------------------
# KL estimators


def test_kl_numbers():
    lp, ref = t([[-1.0, -2.0, -0.5]]), t([[-1.5, -1.0, -0.5]])
    torch.testing.assert_close(kl_mod.k1(lp, ref), t([[0.5, -1.0, 0.0]]))
    torch.testing.assert_close(kl_mod.k2(lp, ref), t([[0.125, 0.5, 0.0]]))
    # d = ref - lp = [-0.5, 1, 0]: exp(d) - d - 1
    torch.testing.assert_close(kl_mod.k3(lp, ref), t([[math.exp(-0.5) - 0.5, math.e - 2, 0.0]]))


def test_k3_nonnegative_and_unbiased():
    g = torch.Generator().manual_seed(0)
    lp, ref = torch.randn(50, 50, generator=g) * 3, torch.randn(50, 50, generator=g) * 3
    assert (kl_mod.k3(lp, ref) >= 0).all() and (kl_mod.k2(lp, ref) >= 0).all()
    # Monte-Carlo: the mean of k1 and k3 over samples from p approaches KL(p || q)
    p, q = t([0.5, 0.3, 0.15, 0.05]), t([0.25, 0.25, 0.25, 0.25])
    true_kl = (p * (p / q).log()).sum()
    x = torch.multinomial(p, 200_000, replacement=True, generator=g)
    for est in (kl_mod.k1, kl_mod.k3):
        assert est(p.log()[x], q.log()[x]).mean().item() == pytest.approx(true_kl.item(), abs=5e-3)


# ---------------------------------------------------------------------------------------
# loss aggregation


def test_aggregation_hand_numbers():
    loss = t([[1.0, 2.0, 3.0, float("nan")], [4.0, 0.0, 0.0, 0.0], [7.0, 7.0, 7.0, 7.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])  # last row: all padding
    assert aggregate_loss(loss, mask, "token-mean").item() == pytest.approx(10 / 4)
    assert aggregate_loss(loss, mask, "seq-mean-token-mean").item() == pytest.approx((2 + 4) / 2)
    assert aggregate_loss(loss, mask, "seq-mean-token-sum").item() == pytest.approx((6 + 4) / 2)
    assert aggregate_loss(loss, mask, "seq-mean-token-sum-norm").item() == pytest.approx(10 / (2 * 4))
    assert aggregate_loss(loss, mask, "seq-mean-token-sum-norm", max_len=10).item() == pytest.approx(10 / 20)
    for mode in LOSS_AGGREGATIONS.names():
        assert aggregate_loss(loss, torch.zeros_like(mask), mode).item() == 0.0


def _random_batch(seed=0, B=8, T=12):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, T + 1, (B,), generator=g)
    lengths[0] = 0  # one fully padded row
    mask = (torch.arange(T)[None, :] < lengths[:, None]).float()  # (B, T)
    return torch.randn(B, T, generator=g, dtype=DT), mask


SPLITS = {"1": [8], "2": [4, 4], "4": [2, 2, 2, 2], "uneven": [3, 1, 4]}


@pytest.mark.parametrize("mode", LOSS_AGGREGATIONS.names())
@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("trim", [False, True])
def test_aggregation_microbatch_invariance(mode, split, trim):
    loss, mask = _random_batch()
    full = aggregate_loss(loss, mask, mode, max_len=12)
    counts = {"num_tokens": mask.sum().item(), "num_seqs": (mask.sum(-1) > 0).sum().item(), "max_len": 12}
    total = torch.zeros((), dtype=DT)
    for chunk_loss, chunk_mask in zip(loss.split(SPLITS[split]), mask.split(SPLITS[split]), strict=True):
        if trim:  # dynamic batching pads each micro-batch only to its own longest row
            width = max(int(chunk_mask.sum(-1).max()), 1)
            chunk_loss, chunk_mask = chunk_loss[:, :width], chunk_mask[:, :width]
        total = total + aggregate_loss(chunk_loss, chunk_mask, mode, **counts)
    torch.testing.assert_close(total, full, rtol=1e-12, atol=1e-12)


def test_aggregation_errors():
    with pytest.raises(ValueError, match="must both be"):
        aggregate_loss(torch.zeros(2, 3), torch.ones(2, 4), "token-mean")
    with pytest.raises(ValueError, match="> 0"):
        aggregate_loss(torch.zeros(2, 3), torch.ones(2, 3), "token-mean", num_tokens=0)
