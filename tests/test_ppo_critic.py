"""PPO with a critic: the clipped value loss, the adaptive KL controller, and a few PPO steps
on a random tiny model that update both the actor and the critic (and resume)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from selfrl.algorithms import AdaptiveKLController, clipped_value_loss
from selfrl.config.schema import RunConfig
from selfrl.recipes import build_trainer


def test_clipped_value_loss_by_hand():
    values = torch.tensor([[0.5, 3.0, -1.0]])
    old = torch.tensor([[0.0, 2.0, 0.0]])
    returns = torch.tensor([[1.0, 1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, m = clipped_value_loss(values, old, returns, mask, clip=0.2)
    # token 1: v moved 0.5 > 0.2 -> clipped 0.2: max(0.25, 0.64) / 2; token 2: clipped 2.2:
    # max(4, 1.44) / 2; token 3: masked out in the metrics (loss still computed)
    assert loss[0, :2].tolist() == pytest.approx([0.32, 2.0])
    assert m["clip_frac"] == pytest.approx(0.5) and m["mse"] == pytest.approx((0.25 + 4.0) / 2)
    plain, _ = clipped_value_loss(values, old, returns, mask, clip=None)
    assert plain[0, :2].tolist() == pytest.approx([0.125, 2.0])


def test_adaptive_kl_controller_moves_towards_the_target_and_caps_each_move():
    ctl = AdaptiveKLController(init=0.2, target=0.1, horizon=100)
    assert ctl.update(current_kl=0.1, n_samples=50) == pytest.approx(0.2)  # on target
    assert ctl.update(current_kl=0.12, n_samples=50) == pytest.approx(0.2 * 1.1)  # +20% error * 0.5
    assert ctl.update(current_kl=10.0, n_samples=100) == pytest.approx(0.22 * 1.2)  # error capped
    assert ctl.update(current_kl=0.0, n_samples=100) == pytest.approx(0.264 * 0.8)
    again = AdaptiveKLController(init=1.0, target=0.1)
    again.load_state_dict(ctl.state_dict())
    assert again.value == ctl.value
    with pytest.raises(ValueError):
        AdaptiveKLController(init=0.2, target=0.0)


def _ppo(make_config, name, **train):
    return make_config(name, extra={
        "algorithm": {"advantage": "gae", "gamma": 1.0, "lam": 0.95, "ppo_epochs": 2, "kl_coef": 0.2,
                      "kl_in_reward": True, "kl_target": 0.1, "kl_horizon": 10, "value_clip": 0.2},
        "critic": {"lr": 1e-2},
        "rollout": {"max_new_tokens_min": 3},
        "train": {"steps": 2, **train}, "checkpoint": {"every": 1}})


def test_a_few_ppo_steps_update_actor_and_critic(make_config, tmp_path):
    cfg = RunConfig.model_validate(_ppo(make_config, "ppo"))
    trainer = build_trainer(cfg)
    actor0 = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    critic0 = {k: v.clone() for k, v in trainer.critic.state_dict().items()}
    trainer.fit()
    assert any(not torch.equal(actor0[k], v) for k, v in trainer.model.state_dict().items())
    assert any(not torch.equal(critic0[k], v) for k, v in trainer.critic.state_dict().items())
    rows = [json.loads(line) for line in open(tmp_path / "ppo" / "metrics.jsonl")]
    steps = [r for r in rows if "critic/loss" in r]
    assert len(steps) == 2
    for r in steps:
        assert all(math.isfinite(v) for v in r.values() if isinstance(v, float))
        assert 3 <= r["response_length/max"] <= 8  # the sampled budget stays in [min, max]
    assert steps[0]["kl/coef"] != 0.2  # the adaptive controller moved


def test_ppo_resume_restores_the_critic_and_the_kl_coefficient(make_config, tmp_path):
    first = build_trainer(RunConfig.model_validate(_ppo(make_config, "ppo_resume")))
    first.fit()
    resumed = build_trainer(RunConfig.model_validate(_ppo(make_config, "ppo_resume", steps=3)), resume="auto")
    assert resumed.step == 2 and resumed.kl_coef == pytest.approx(first.kl_coef)
    for k, v in first.critic.state_dict().items():
        assert torch.equal(v, resumed.critic.state_dict()[k])


def test_gae_with_a_recipe_that_builds_its_own_advantages_is_a_config_error(make_config):
    cfg = make_config("bad", extra={"algorithm": {"advantage": "gae"}})
    cfg["recipe"] = "serl_judge"
    with pytest.raises(ValueError, match="gae"):
        RunConfig.model_validate(cfg)
    cfg = make_config("bad2", extra={"rollout": {"max_new_tokens_min": 99}})
    with pytest.raises(ValueError, match="max_new_tokens_min"):
        RunConfig.model_validate(cfg)


def test_early_stop_on_kl_skips_the_remaining_epochs(make_config):
    cfg = _ppo(make_config, "ppo_stop")
    cfg["algorithm"].update(ppo_epochs=4, early_stop_kl=1e-9)
    cfg["train"]["steps"] = 1
    trainer = build_trainer(RunConfig.model_validate(cfg))
    metrics = trainer.train_step()
    # epoch 1 runs at ratio 1 (KL 0); after its update the KL exceeds the threshold
    assert metrics["ppo/epochs_run"] == 2
