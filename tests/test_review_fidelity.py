"""Issue 19, fidelity to the papers: each test pins one constant or behaviour of RECIPES.md that
the recipes once got wrong (SERL's eps, judge defaults and judge-token temperature; the RLHF
KL controller and prompt format; SRL's two-turn prompt; SeRL's configurable teacher brief)."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
import torch
import yaml

from selfrl.config import load_config, validate_section
from selfrl.config.schema import RunConfig
from selfrl.recipes import build_trainer
from selfrl.trainer.batch import RolloutBatch, merge_prepared

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def _serl(make_config, name, **recipe_args):
    return build_trainer(RunConfig.model_validate(make_config(name, extra={
        "recipe": "serl_judge", "rewards": [], "data": {"require_answer": False},
        "recipe_args": {"judge_samples": 2, "judge_max_new_tokens": 6, **recipe_args}})))


def _batch(scores: list[float], group_size: int) -> RolloutBatch:
    n = len(scores)
    return RolloutBatch(rows=[{}] * n, prompt_ids=[[1, 2]] * n, completion_ids=[[3, 4]] * n,
                        rollout_logprobs=[[0.0, 0.0]] * n, completions=["x"] * n, prompts=["q"] * n,
                        finish_reasons=["stop"] * n, group_size=group_size,
                        scores=torch.tensor(scores, dtype=torch.float64))


# --- SERL --------------------------------------------------------------------------------

def test_serl_actor_advantages_use_the_papers_eps(make_config):
    trainer = _serl(make_config, "serl_eps", train_judge=False)
    scores = [0.0, 0.0, 0.0, 2e-4]  # unbiased std 1e-4: eps 1e-4 halves the advantage, 1e-6 does not
    batch = _batch(scores, group_size=4)
    (batch,) = trainer.recipe.training_batches(batch)
    trainer.prepare(batch)
    mean, std = statistics.fmean(scores), statistics.stdev(scores)
    expected = [(s - mean) / (std + 1e-4) for s in scores]
    assert batch.advantages[:, 0].tolist() == pytest.approx(expected, rel=1e-5)


def test_judge_defaults_are_the_papers_and_tiny_recipes_set_their_own():
    from selfrl.recipes.self_judge import JudgeArgs, SRR1Elo

    serl = JudgeArgs()
    assert (serl.judge_samples, serl.judge_max_new_tokens, serl.judge_temperature) == (4, 2048, 0.9)
    srr1 = validate_section(JudgeArgs, SRR1Elo.defaults, "recipe_args")
    assert (srr1.judge_samples, srr1.judge_max_new_tokens, srr1.judge_temperature) == (1, 500, 0.5)
    for name in ("serl_judge_tiny.yaml", "srr1_elo_tiny.yaml"):  # tiny values, explicit
        args = yaml.safe_load((RECIPES / name).read_text())["recipe_args"]
        assert args["judge_max_new_tokens"] == 48 and "judge_samples" in args, name


def test_serl_judge_tokens_are_scored_at_the_judge_temperature(make_config):
    trainer = _serl(make_config, "serl_temp", judge_temperature=0.5)
    trainer.cfg.algorithm.ppo_epochs = 2  # so that prepare computes the old logprobs
    trainer.step = 1
    batch = trainer.collect()
    batch, extra = trainer.recipe.training_batches(batch)
    trainer.prepare(batch)
    trainer.prepare(extra)
    for i, sampled in enumerate(extra.rollout_logprobs):  # the engine's, at temperature 0.5
        assert extra.old_logprobs[i, :len(sampled)].tolist() == pytest.approx(sampled, abs=1e-3)
    merged = merge_prepared([batch, extra])
    judge_rows = list(range(len(batch), len(merged)))
    n_tok = float(sum(len(merged.completion_ids[i]) for i in judge_rows))
    _, metrics = trainer._micro_loss(merged, judge_rows, n_tok, len(judge_rows))
    assert abs(metrics["policy/approx_kl"]) < 1e-4  # before any update: ratio 1 on judge tokens


@pytest.mark.parametrize("layout, chunked", [("plain", False), ("shared", False), ("plain", True),
                                             ("shared", True)])
def test_per_sequence_temperatures_give_each_sequences_own_logprobs(tiny_model, layout, chunked):
    from transformers import AutoModelForCausalLM

    from selfrl.trainer.batch import completion_logprobs, pad_sequences, pad_shared_prompts
    from selfrl.trainer.lm_head import OutputHead

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    head = OutputHead.probe(model) if chunked else None
    prompts, completions = [[1, 5, 6]] * 2 + [[1, 8]] * 2, [[9, 10, 2], [12, 2], [13, 14], [9]]
    seq = (pad_sequences if layout == "plain" else pad_shared_prompts)(prompts, completions, 0)
    temps = torch.tensor([1.0, 0.5, 0.5, 1.0])  # (B,) actor, judge, judge, actor
    mixed, _ = completion_logprobs(model, seq, temps, head=head)  # (B, C)
    mixed.sum().backward()  # differentiable through the per-temperature pieces
    for t in (1.0, 0.5):
        alone, _ = completion_logprobs(model, seq, t, head=head)
        rows = temps == t
        assert torch.allclose(mixed[rows].detach(), alone[rows].detach(), atol=1e-5)


def test_serl_refuses_what_its_loss_and_advantages_cannot_honour(make_config):
    for extra, match in [({"algorithm": {"loss_agg": "seq-mean-token-mean"}}, "token-mean"),
                         ({"algorithm": {"advantage": "rloo"}}, "grpo")]:
        cfg = make_config("serl_bad", extra={"recipe": "serl_judge", "rewards": [],
                                             "data": {"require_answer": False}, **extra})
        with pytest.raises(ValueError, match=match):
            build_trainer(RunConfig.model_validate(cfg))


# --- classic RLHF ------------------------------------------------------------------------

def test_adaptive_kl_controller_is_fed_the_per_sequence_kl_sum(make_config):
    cfg = make_config("ppo_kl", extra={
        "algorithm": {"advantage": "gae", "kl_coef": 0.2, "kl_estimator": "k1", "kl_in_reward": True,
                      "kl_target": 6.0},
        "train": {"lr": 0.1}})
    trainer = build_trainer(RunConfig.model_validate(cfg))
    trainer.train_step()  # step 1 samples the reference policy itself: KL 0
    fed: list[float] = []
    update = trainer.kl_ctl.update
    trainer.kl_ctl.update = lambda kl, n: fed.append(kl) or update(kl, n)
    metrics = trainer.train_step()
    per_token, length = metrics["kl/rollout"], metrics["response_length/mean"]
    assert length > 1 and per_token != 0
    assert fed == [pytest.approx(per_token * length)]  # the mean over sequences of each one's sum


def test_rlhf_ppo_recipe_follows_the_stackexchange_setup():
    from selfrl.prompts import PromptFormat
    from selfrl.rlhf.rm import TEMPLATE

    cfg = load_config(RunConfig, RECIPES / "rlhf_tiny" / "ppo.yaml", [])
    a = cfg.algorithm
    assert (a.kl_target, a.kl_horizon, a.early_stop_kl, a.kl_estimator, a.kl_in_reward) == \
        (6.0, 10000, 0.1, "k1", True)
    row = {"question": "What is 2 + 3?"}
    fmt = PromptFormat(template=cfg.data.prompt_template, chat=cfg.data.chat_template)
    assert not fmt.chat
    assert fmt.text(row, "question") == TEMPLATE.format(question=row["question"], response="")
    sft = yaml.safe_load((RECIPES / "rlhf_tiny" / "sft.yaml").read_text())["data"]  # SFT on the same text
    assert sft["prompt"] == "template" and sft["prompt_template"] == cfg.data.prompt_template


# --- SRL, SeRL -----------------------------------------------------------------------------

def test_srl_prompt_is_a_system_turn_then_a_user_turn():
    from selfrl.data.srl import build_instances
    from selfrl.prompts import srl_messages

    system, user = srl_messages("Sam has 8 shells.", ["He has 8.", "8 + 6 = 14."])
    assert (system["role"], user["role"]) == ("system", "user")
    assert "<think>" in system["content"] and "Sam has 8 shells." not in system["content"]
    assert "Sam has 8 shells." in user["content"] and "2. 8 + 6 = 14." in user["content"]
    rows = build_instances("Sam has 8 shells.", ["He has 8.", "8 + 6 = 14.", "14 - 4 = 10."])
    assert all([m["role"] for m in r["prompt"]] == ["system", "user"] for r in rows)


def test_serl_self_instruction_system_prompt_is_configurable(make_config, arith_dir):
    from selfrl.prompts import SELF_INSTRUCT_SYSTEM
    from selfrl.recipes.serl import SerlArgs

    assert SerlArgs().self_instruct_system == SELF_INSTRUCT_SYSTEM
    brief = "You are a teacher. Write one new riddle."
    trainer = build_trainer(RunConfig.model_validate(make_config("serl_brief", extra={
        "recipe": "serl", "data": {"train": str(arith_dir / "seed.jsonl"), "require_answer": False},
        "rewards": [{"name": "majority_vote"}],
        "recipe_args": {"self_instruct_system": brief, "gen_prompts_per_round": 1,
                        "gen_max_new_tokens": 2}})))
    seen: list[list[int]] = []
    generate = trainer.engine.generate
    trainer.engine.generate = lambda prompts, *a: seen.extend(prompts) or generate(prompts, *a)
    trainer.recipe.generate_problems()
    assert seen and brief in trainer.tokenizer.decode(seen[0])
