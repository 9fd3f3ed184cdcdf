"""The fast paths give the numbers of the plain ones.

The update runs each distinct prompt of a micro-batch through the model once and shares its
key/value cache among its completions (``SharedPromptSequences``), and orders a mini-batch
prompt by prompt before cutting it into micro-batches; the HF engine prefills each distinct
prompt once.  These tests compare each against the plain padded layout: the same per-token
logprobs, the same loss and the same gradients (float tolerance), and the same samples.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from selfrl.algorithms import aggregate_loss
from selfrl.trainer.batch import (
    SharedPromptSequences,
    completion_logprobs,
    distinct_prompts,
    pad_sequences,
    pad_shared_prompts,
)

# Two prompts of different lengths, three completions each (of different lengths, one empty
# but for EOS), and a third prompt seen once: the shape of a GRPO micro-batch cut mid-group.
PROMPTS = [[1, 5, 6, 7]] * 3 + [[1, 8]] * 3 + [[3, 4, 9]]
COMPLETIONS = [[9, 10, 11, 2], [12, 2], [2], [13, 14, 15, 16, 17], [9, 2], [10, 11, 12], [5, 6]]


def _loss(model, seq, advantages: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A token-mean policy-gradient loss over the completions and its logprobs."""
    logprobs, _ = completion_logprobs(model, seq, temperature=0.7)
    mask = seq.response_mask
    ratio = torch.exp(logprobs - logprobs.detach())  # (B, C) on-policy ratio, as in one PPO epoch
    loss = aggregate_loss(-ratio * advantages[:, :logprobs.shape[1]], mask, "token-mean",
                          num_tokens=float(mask.sum()))
    return loss, logprobs


def _grads(model) -> list[torch.Tensor]:
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


@pytest.fixture
def model(tiny_model):
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_pretrained(tiny_model).train()
    with torch.no_grad():  # a random model's logits are near-uniform: make them peaked enough to matter
        for p in m.parameters():
            p.mul_(4.0)
    return m


def test_distinct_prompts_keep_first_appearance_order():
    unique, index = distinct_prompts(PROMPTS)
    assert unique == [[1, 5, 6, 7], [1, 8], [3, 4, 9]]
    assert index == [0, 0, 0, 1, 1, 1, 2]


def test_shared_prompt_layout():
    seq = pad_shared_prompts(PROMPTS, COMPLETIONS, pad_id=0)
    assert isinstance(seq, SharedPromptSequences)
    assert seq.prompt_ids.tolist() == [[1, 5, 6, 7], [0, 0, 1, 8], [0, 3, 4, 9]]
    assert seq.prompt_index.tolist() == [0, 0, 0, 1, 1, 1, 2]
    assert seq.completion_ids.shape == (7, 5)
    assert seq.response_mask.sum(1).tolist() == [4, 2, 1, 5, 2, 3, 2]


def test_shared_prompt_update_gives_the_plain_loss_and_gradients(model):
    advantages = torch.randn(len(PROMPTS), 5, generator=torch.Generator().manual_seed(1))
    plain = pad_sequences(PROMPTS, COMPLETIONS, pad_id=0)
    loss_plain, lp_plain = _loss(model, plain, advantages)
    loss_plain.backward()
    grads_plain = _grads(model)
    model.zero_grad(set_to_none=True)
    shared = pad_shared_prompts(PROMPTS, COMPLETIONS, pad_id=0)
    loss_shared, lp_shared = _loss(model, shared, advantages)
    loss_shared.backward()
    grads_shared = _grads(model)
    mask = plain.response_mask.bool()
    assert torch.allclose(lp_shared[mask], lp_plain[mask], atol=1e-5)
    assert torch.allclose(loss_shared, loss_plain, atol=1e-6, rtol=1e-5)
    assert any(g.abs().sum() > 0 for g in grads_plain)
    for gs, gp in zip(grads_shared, grads_plain):
        assert torch.allclose(gs, gp, atol=1e-6, rtol=1e-4)


def test_shared_prompt_entropy_and_single_token_completions(model):
    completions = [[2]] * len(PROMPTS)  # C == 1: only the prompts' last logits are used
    plain = completion_logprobs(model, pad_sequences(PROMPTS, completions, 0), with_entropy=True)
    shared = completion_logprobs(model, pad_shared_prompts(PROMPTS, completions, 0), with_entropy=True)
    assert torch.allclose(shared[0], plain[0], atol=1e-5)
    assert torch.allclose(shared[1], plain[1], atol=1e-5)


def _trained_weights(make_config, shared: bool, extra: dict) -> tuple[list[torch.Tensor], dict]:
    from selfrl.config.schema import RunConfig
    from selfrl.recipes import build_trainer

    cfg = make_config(f"shared-{shared}", extra={**extra, "train": {**extra.get("train", {}),
                                                                    "shared_prompt_forward": shared}})
    trainer = build_trainer(RunConfig.model_validate(cfg))
    metrics = trainer.train_step()
    return [p.detach().clone() for p in trainer.model.parameters()], metrics


@pytest.mark.parametrize("extra", [
    {},  # one epoch, one micro-batch per group: no old-logprob pass
    {"algorithm": {"ppo_epochs": 2, "mini_batches": 2, "kl_coef": 0.1},  # shuffled mini-batches, reference
     "train": {"prompts_per_step": 4, "micro_batch_size": 4}},
], ids=["one-epoch", "shuffled-epochs-kl"])
def test_trainer_step_is_the_same_with_and_without_prompt_sharing(make_config, extra):
    plain, m_plain = _trained_weights(make_config, False, extra)
    shared, m_shared = _trained_weights(make_config, True, extra)
    assert m_plain["tokens/generated"] == m_shared["tokens/generated"]  # the same samples
    for k in ("loss/policy", "grad_norm"):
        assert m_shared[k] == pytest.approx(m_plain[k], rel=1e-4, abs=1e-6), k
    # Adam's first step is ~lr * g / (|g| + eps): for a weight whose gradient is near eps, float
    # rounding in g moves it by a visible share of lr (1e-2 here), so the tolerance is 0.5% of lr.
    for a, b in zip(shared, plain):
        assert torch.allclose(a, b, atol=5e-5, rtol=1e-4)


def test_hf_engine_samples_the_same_with_a_shared_prefill(tiny_model):
    from selfrl.models import load_tokenizer
    from selfrl.rollout.base import SamplingParams
    from selfrl.rollout.hf import HFEngine

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    engine = HFEngine(model, load_tokenizer(str(tiny_model)))
    prompts = [[1, 5, 6, 7], [1, 8], [3, 4, 9, 10, 11]]
    params = SamplingParams(n=4, temperature=1.0, max_new_tokens=6)
    shared = engine.generate(prompts, params, torch.Generator().manual_seed(0))
    engine.share_prefill = False
    plain = engine.generate(prompts, params, torch.Generator().manual_seed(0))
    for gs, gp in zip(shared, plain):
        for s, p in zip(gs, gp):
            assert s.token_ids == p.token_ids
            assert s.logprobs == pytest.approx(p.logprobs, abs=1e-5)


def test_the_kv_cache_goes_back_in_under_the_name_transformers_expects(tiny_model):
    """transformers 5.24 renamed ``past_key_values`` to ``cache``: the old keyword still works but
    warns (a FutureWarning on every run's log, and it goes in 5.40).  Sampling and the update's
    shared-prompt pass must use the name the installed transformers expects."""
    import warnings

    from selfrl.models import load_tokenizer
    from selfrl.rollout.base import SamplingParams
    from selfrl.rollout.hf import HFEngine

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        HFEngine(model, load_tokenizer(str(tiny_model))).generate(
            [[1, 5, 6, 7], [1, 8]], SamplingParams(n=2, temperature=1.0, max_new_tokens=4),
            torch.Generator().manual_seed(0))
        seq = pad_shared_prompts(PROMPTS, COMPLETIONS, pad_id=0)
        completion_logprobs(model, seq, temperature=1.0)
    assert not [w for w in caught if "past_key_values" in str(w.message)]


# --- the output layer in chunks over completion tokens (selfrl.trainer.lm_head) ------------------


@pytest.mark.parametrize("layout", ["plain", "shared"])
def test_chunked_output_layer_gives_the_plain_logprobs_entropy_and_gradients(model, layout):
    from selfrl.trainer.lm_head import OutputHead

    head = OutputHead.probe(model)
    assert head is not None
    pad = pad_sequences if layout == "plain" else pad_shared_prompts
    seq = pad(PROMPTS, COMPLETIONS, 0)
    advantages = torch.randn(len(PROMPTS), 5, generator=torch.Generator().manual_seed(2))
    results = []
    for h in (None, head):
        model.zero_grad(set_to_none=True)
        lp, ent = completion_logprobs(model, seq, temperature=0.7, with_entropy=True, head=h)
        mask = seq.response_mask
        loss = aggregate_loss(-torch.exp(lp - lp.detach()) * advantages[:, :lp.shape[1]] + 0.1 * lp,
                              mask, "token-mean", num_tokens=float(mask.sum()))
        loss.backward()
        results.append((lp, ent, loss, _grads(model)))
    (lp0, ent0, loss0, g0), (lp1, ent1, loss1, g1) = results
    keep = seq.response_mask.bool()
    assert torch.allclose(lp1[keep], lp0[keep], atol=1e-5)
    assert torch.allclose(ent1[keep], ent0[keep], atol=1e-5)
    assert (lp1[~keep] == 0).all()  # padding is not computed
    assert torch.allclose(loss1, loss0, atol=1e-6, rtol=1e-5)
    assert any(g.abs().sum() > 0 for g in g0)
    for a, b in zip(g1, g0):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_chunked_output_layer_in_small_chunks_with_a_bias():
    from selfrl.trainer.lm_head import linear_logprobs

    g = torch.Generator().manual_seed(0)
    h = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(11, 5, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(11, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 11, (7,), generator=g)
    assert torch.autograd.gradcheck(lambda h, w, b: linear_logprobs(h, w, b, t, 0.7, chunk_rows=3)[0],
                                    (h, w, b))


def test_output_head_probe_refuses_a_model_whose_logits_are_more_than_the_linear_layer(tiny_model):
    from selfrl.trainer.lm_head import OutputHead

    class Scaled(AutoModelForCausalLM.from_pretrained(tiny_model).__class__):
        def forward(self, *args, **kwargs):  # e.g. a logit scale or soft-capping
            out = super().forward(*args, **kwargs)
            out.logits = out.logits * 2.0
            return out

    assert OutputHead.probe(Scaled.from_pretrained(tiny_model)) is None
    assert OutputHead.probe(AutoModelForCausalLM.from_pretrained(tiny_model)) is not None


def test_hf_engine_samples_from_the_distribution_it_reports():
    """The inverse-CDF sampler draws each token with its probability, never a filtered-out one."""
    from selfrl.rollout.base import SamplingParams
    from selfrl.rollout.hf import _sample

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 12, generator=g) * 2  # (B, V)
    params = SamplingParams(n=1, temperature=0.8, top_p=0.9, top_k=8, max_new_tokens=1)
    counts = torch.zeros(3, 12)
    for _ in range(6000):
        tok, logp = _sample(logits, params, g)
        counts[torch.arange(3), tok] += 1
    # The filtered distribution, computed independently: temperature, top-k, then top-p.
    probs = torch.softmax(logits / 0.8, -1)
    want = torch.zeros_like(probs)
    for b in range(3):
        order = probs[b].argsort(descending=True)[:8]
        mass, kept = 0.0, []
        for i in order.tolist():
            if mass > 0.9:
                break
            kept.append(i)
            mass += probs[b, i].item()
        want[b, kept] = probs[b, kept] / probs[b, kept].sum()
    assert (counts[want == 0] == 0).all()
    assert torch.allclose(counts / 6000, want, atol=0.025)



def _weights_with_zeroed_advantages(make_config, skip: bool) -> tuple[list[list[torch.Tensor]], list[dict]]:
    """Two steps, the weights after each: the first with half its sequences' advantages set to 0
    (a group all wrong, or all judged equal), the second with all of them 0."""
    from selfrl.config.schema import RunConfig
    from selfrl.recipes import build_trainer

    cfg = make_config(f"skip-{skip}", extra={"train": {"prompts_per_step": 4, "micro_batch_size": 4,
                                                        "skip_zero_advantage": skip}})
    trainer = build_trainer(RunConfig.model_validate(cfg))
    prepare, share = trainer.prepare_all, [0.5, 1.0]

    def zeroed(parts):
        batch = prepare(parts)
        cut = int(len(batch) * share[trainer.step - 1])
        batch.advantages[:cut] = 0.0
        batch.advantages[cut:] += 0.5  # no sequence of the rest is left at 0 by chance
        return batch

    trainer.prepare_all = zeroed
    weights, metrics = [], []
    for _ in share:
        metrics.append(trainer.train_step())
        weights.append([p.detach().clone() for p in trainer.model.parameters()])
    return weights, metrics


def test_skipping_zero_advantage_sequences_gives_the_same_update(make_config):
    """Sequences whose advantage is 0 everywhere add nothing to the surrogate's gradient and the
    normalisers count them anyway: the update without them is the same, down to AdamW's step on
    an all-zero batch (its moments still move the weights)."""
    plain, m_plain = _weights_with_zeroed_advantages(make_config, skip=False)
    skipped, m_skipped = _weights_with_zeroed_advantages(make_config, skip=True)
    assert [m["update/zero_advantage_skipped"] for m in m_plain] == [0.0, 0.0]
    assert [m["update/zero_advantage_skipped"] for m in m_skipped] == [0.5, 1.0]
    assert m_skipped[0]["tokens/generated"] == m_plain[0]["tokens/generated"]  # the same samples
    assert m_skipped[0]["grad_norm"] == pytest.approx(m_plain[0]["grad_norm"], rel=1e-4)
    assert m_skipped[1]["grad_norm"] == m_plain[1]["grad_norm"] == 0.0
    for step in range(2):
        for a, b in zip(skipped[step], plain[step]):
            assert torch.allclose(a, b, atol=5e-5, rtol=1e-4)
    # the all-zero second step still moved the weights (AdamW's momentum), in both runs alike
    assert any(not torch.equal(a, b) for a, b in zip(plain[0], plain[1]))
