"""Truncated importance sampling (``algorithm.tis_cap``): the weight on hand-computed numbers,
and its wiring into the trainer's loss (no vLLM needed)."""

from __future__ import annotations

import pytest
import torch

from selfrl.algorithms import truncated_is_weight
from selfrl.config.schema import RunConfig
from selfrl.recipes import build_trainer
from selfrl.trainer.batch import pad_logprobs


def test_weight_on_hand_computed_numbers():
    # trainer (old) probabilities 0.5, 0.2, 0.9, 0.3; rollout engine's 0.25, 0.4, 0.1, 0.3
    old = torch.log(torch.tensor([[0.5, 0.2], [0.9, 0.3]]))
    rollout = torch.log(torch.tensor([[0.25, 0.4], [0.1, 0.3]]))
    mask = torch.tensor([[1, 1], [1, 0]])
    w = truncated_is_weight(old, rollout, mask, cap=3.0)
    # ratios old / rollout: 2.0, 0.5, 9.0 -> capped at 3.0; the padded position is 1
    assert torch.allclose(w, torch.tensor([[2.0, 0.5], [3.0, 1.0]]))
    assert not w.requires_grad


def test_weight_is_detached_and_safe_on_garbage():
    old = torch.tensor([[0.0, -1.0]], requires_grad=True)
    rollout = torch.tensor([[-1000.0, float("nan")]])
    w = truncated_is_weight(old, rollout, torch.tensor([[1, 0]]), cap=2.0)
    assert w.tolist() == [[2.0, 1.0]] and w.grad_fn is None


def test_weight_rejects_bad_inputs():
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="cap"):
        truncated_is_weight(x, x, x, cap=0.0)
    with pytest.raises(ValueError, match="shapes"):
        truncated_is_weight(x, torch.zeros(1, 3), x, cap=2.0)


def test_pad_logprobs():
    out = pad_logprobs([[-1.0, -2.0], [], [-3.0, -4.0, -5.0]], 2)
    assert out.tolist() == [[-1.0, -2.0], [0.0, 0.0], [-3.0, -4.0]]


def _step_metrics(make_config, name: str, tis_cap: float | None) -> dict:
    cfg = make_config(name, extra={"algorithm": {"tis_cap": tis_cap}, "eval": {"at_start": False}})
    cfg["data"]["eval"] = None
    return build_trainer(RunConfig.model_validate(cfg)).train_step()


def test_trainer_multiplies_the_policy_loss_by_the_weight(make_config):
    """With the HF engine the rollout's logprobs are the trainer's (same model, same temperature),
    so every weight is min(1, cap): a cap of 0.5 halves the policy gradient of the same step, a
    cap above 1 leaves it as it was.  (GRPO's loss value itself is ~0 here: equal lengths, ratio 1.)"""
    plain = _step_metrics(make_config, "plain", None)
    capped = _step_metrics(make_config, "capped", 0.5)
    loose = _step_metrics(make_config, "loose", 5.0)
    assert "policy/tis_weight_mean" not in plain
    assert capped["policy/tis_weight_mean"] == pytest.approx(0.5, abs=1e-6)
    assert loose["policy/tis_weight_mean"] == pytest.approx(1.0, abs=1e-4)
    assert plain["grad_norm"] > 0
    assert capped["grad_norm"] == pytest.approx(0.5 * plain["grad_norm"], rel=1e-4)
    assert loose["grad_norm"] == pytest.approx(plain["grad_norm"], rel=1e-3)
