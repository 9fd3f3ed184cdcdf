"""Regression tests of the trainer review (issue 19): groups dropped by a filter are never trained
nor pooled; dropout is off for every logprob; a run folder is not silently reused; a signal
exits non-zero; crash leftovers are cleaned up on resume."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
import yaml

from selfrl.cli import main
from selfrl.config.schema import RunConfig
from selfrl.recipes import build_trainer
from selfrl.trainer import checkpoint as ckpt
from selfrl.trainer.trainer import Trainer


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def step_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if "reward/mean" in r]


def snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def keep_first_group_only(trainer: Trainer) -> list[tuple]:
    """Make the recipe's filter keep group 0 of each attempt; returns the list that collects
    every ``on_collected`` call's (trained, dropped) batches."""
    calls: list[tuple] = []
    trainer.recipe.keep_groups = lambda batch: [g == 0 for g in range(batch.num_groups)]
    trainer.recipe.on_collected = lambda trained, dropped: calls.append((trained, dropped))
    return calls


# --- 1. filtered groups -------------------------------------------------------------------


@pytest.mark.parametrize("extra", [
    {"algorithm": {"advantage": "reinforce_pp"}},
    {"algorithm": {"advantage": "grpo", "mini_batches": 2}, "train": {"micro_batch_size": 2}},
])
def test_groups_dropped_when_attempts_run_out_are_not_trained(make_config, extra):
    cfg = make_config(extra={**extra, "filter": {"max_attempts": 1}})
    trainer = build_trainer(RunConfig.model_validate(cfg))
    calls = keep_first_group_only(trainer)
    trained = []
    update = trainer.update
    trainer.update = lambda batch: trained.append(batch) or update(batch)
    trainer.fit()
    (batch,) = trained
    (kept, dropped), = calls
    assert len(batch) == cfg["rollout"]["n"]  # one group of the two: the dropped one is not topped up
    assert kept.num_groups == 1 and dropped.num_groups == 1
    assert batch.completions == kept.completions and batch.rows == kept.rows
    (step,) = step_rows(read_metrics(cfg["logging"]["run_dir"]))
    assert step["filter/unfilled_groups"] == 1
    assert step["filter/kept_frac"] == 0.5
    assert step["update/skipped_empty"] == 0


def test_a_step_without_kept_groups_skips_the_update(make_config):
    cfg = make_config(extra={"filter": {"dynamic_sampling": True, "std_eps": 10.0, "max_attempts": 2},
                             "algorithm": {"advantage": "reinforce_pp"},
                             "train": {"steps": 2}, "checkpoint": {"every": 1}})
    trainer = build_trainer(RunConfig.model_validate(cfg))
    before = snapshot(trainer.model)
    trainer.fit()
    assert trainer.step == 2
    assert all(torch.equal(p.detach(), before[n]) for n, p in trainer.model.named_parameters())
    rows = step_rows(read_metrics(cfg["logging"]["run_dir"]))
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert r["update/skipped_empty"] == 1 and r["filter/unfilled_groups"] == 2
        assert r["filter/kept_frac"] == 0
    assert ckpt.list_checkpoints(cfg["logging"]["run_dir"])[-1].name == "step-000002"


def test_serl_never_records_or_pools_a_filtered_problem(make_config, arith_dir, tmp_path):
    cfg = make_config("serl", extra={
        "recipe": "serl", "data": {"train": str(arith_dir / "seed.jsonl"), "require_answer": False},
        "rewards": [{"name": "majority_vote"}], "algorithm": {"advantage": "reinforce_pp"},
        "filter": {"max_attempts": 1},
        "recipe_args": {"gen_prompts_per_round": 3, "gen_max_rounds": 2, "gen_max_new_tokens": 24,
                        "rouge_threshold": 0.99, "difficulty_bounds": [2.0, 3.0]}})  # nothing passes
    trainer = build_trainer(RunConfig.model_validate(cfg))
    trainer.fit()
    records = [json.loads(line) for line in
               (tmp_path / "serl" / "selfplay" / "step-000001.jsonl").read_text().splitlines()]
    kinds = [r["kind"] for r in records]
    assert "filtered_difficulty" in kinds and "trained" not in kinds
    assert trainer.recipe.generated_pool == []


# --- 2. dropout ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dropout_models(tmp_path_factory, tiny_model) -> dict[str, Path]:
    """The tiny model's tokenizer with a GPT-2 (dropout 0.1 everywhere) and with the tiny Llama
    given ``attention_dropout=0.1``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tok = AutoTokenizer.from_pretrained(tiny_model)
    root = tmp_path_factory.mktemp("dropout")
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=len(tok),
                                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                      pad_token_id=tok.pad_token_id))
    gpt2.save_pretrained(root / "gpt2")
    tok.save_pretrained(root / "gpt2")
    llama = AutoModelForCausalLM.from_pretrained(tiny_model)
    llama.config.attention_dropout = 0.1
    llama.save_pretrained(root / "llama")
    tok.save_pretrained(root / "llama")
    return {"gpt2": root / "gpt2", "llama": root / "llama"}


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("lora", [False, True])
def test_dropout_is_off_for_every_logprob(make_config, dropout_models, arch, lora):
    # kl_in_reward makes the trainer compute old logprobs in a separate pass: with dropout on
    # in the update, the first ratio and the KL to the (identical) reference were not 1 and 0.
    extra = {"model": {"path": str(dropout_models[arch])},
             "algorithm": {"kl_coef": 0.1, "kl_in_reward": True, "kl_estimator": "k1"}}
    if lora:
        targets = ["c_attn"] if arch == "gpt2" else ["q_proj", "v_proj"]
        extra["model"]["lora"] = {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": targets}
    cfg = make_config(f"dropout-{arch}", extra=extra)
    trainer = build_trainer(RunConfig.model_validate(cfg))
    for module in (trainer.model, trainer.ref_model):
        if module is not None:
            assert not [n for n, m in module.named_modules()
                        if isinstance(m, torch.nn.Dropout) and m.p > 0]
            assert all(getattr(m, "attention_dropout", 0.0) == 0.0 for m in module.modules())
    trainer.fit()
    (step,) = step_rows(read_metrics(cfg["logging"]["run_dir"]))
    assert step["policy/ratio_mean"] == 1.0
    assert step["kl"] == 0.0


# --- 3. an existing run folder ------------------------------------------------------------


def test_train_into_an_existing_run_is_refused_unless_resumed_or_overwritten(write_config, capsys):
    path = write_config("taken")
    run_dir = Path(yaml.safe_load(path.read_text())["logging"]["run_dir"])
    assert main(["train", str(path)]) == 0
    capsys.readouterr()
    first = read_metrics(run_dir)

    assert main(["train", str(path), "train.lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err and "--resume" in err and str(run_dir) in err
    assert read_metrics(run_dir) == first  # untouched
    assert "lr: 0.01" in (run_dir / "config.yaml").read_text()

    assert main(["train", str(path), "train.steps=2", "--resume", "auto"]) == 0
    assert [r["step"] for r in step_rows(read_metrics(run_dir))] == [1, 2]

    (run_dir / "checkpoints" / ".tmp-step-000009-1").mkdir()
    assert main(["train", str(path), "--overwrite"]) == 0
    assert [r["step"] for r in step_rows(read_metrics(run_dir))] == [1]
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["step-000001"]


def test_overwrite_and_resume_together_are_refused(write_config, capsys):
    assert main(["train", str(write_config()), "--overwrite", "--resume", "auto"]) == 2
    assert "--overwrite" in capsys.readouterr().err


# --- 4. signals, crash leftovers, --resume auto without a checkpoint -------------------------


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_then_exits_non_zero(write_config, capsys, monkeypatch, sig, code):
    path = write_config("sig")
    run_dir = Path(yaml.safe_load(path.read_text())["logging"]["run_dir"])
    step = Trainer.train_step

    def step_then_signal(self):
        metrics = step(self)
        os.kill(os.getpid(), sig)
        return metrics

    monkeypatch.setattr(Trainer, "train_step", step_then_signal)
    assert main(["train", str(path), "train.steps=5"]) == code
    assert f"stopped by {signal.Signals(sig).name} at step 1" in capsys.readouterr().out
    assert ckpt.list_checkpoints(run_dir)[-1].name == "step-000001"


def test_eval_with_zero_new_tokens_is_a_one_line_error(tiny_model, arith_dir, capsys):
    rc = main(["eval", "--model", str(tiny_model), "--data", str(arith_dir / "test.jsonl"), "--n", "0",
               "--limit", "1", "--max-new-tokens", "0"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "--max-new-tokens" in err and "Traceback" not in err


def test_resume_after_a_crash_drops_replayed_rows_and_temp_folders(write_config, capsys):
    path = write_config("crash", extra={"checkpoint": {"every": 2}, "eval": {"every": 1}})
    run_dir = Path(yaml.safe_load(path.read_text())["logging"]["run_dir"])
    assert main(["train", str(path), "train.steps=2"]) == 0
    # The crash: step 3 was logged (and evaluated), then the process died while saving it.
    with open(run_dir / "metrics.jsonl", "a") as f:
        for row in ({"step": 3, "reward/mean": 0.5}, {"step": 3, "eval/x": 1}):
            f.write(json.dumps(row) + "\n")
    (run_dir / "checkpoints" / ".tmp-step-000003-4242" / "model").mkdir(parents=True)
    (run_dir / "checkpoints" / ".old-step-000002-4242").mkdir()
    capsys.readouterr()
    assert main(["train", str(path), "train.steps=3", "--resume", "auto"]) == 0
    rows = read_metrics(run_dir)
    assert [r["step"] for r in step_rows(rows)] == [1, 2, 3]
    assert [r["step"] for r in rows if "eval/greedy_pass@1" in r or "eval/x" in r] == [1, 2, 3]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-000002", "step-000003"]


def test_a_crash_between_the_two_renames_of_a_resave_keeps_the_checkpoint(tmp_path):
    root = ckpt.checkpoint_dir(tmp_path)
    (root / ".old-step-000004-17").mkdir(parents=True)  # the complete step 4, moved aside
    (root / ".tmp-step-000004-17").mkdir()  # its replacement, maybe half-written
    removed = ckpt.remove_partial_saves(tmp_path)
    assert [p.name for p in removed] == [".tmp-step-000004-17"]
    assert [p.name for p in root.iterdir()] == ["step-000004"]


def test_resume_auto_without_a_checkpoint_says_so(write_config, capsys):
    path = write_config("fresh")
    assert main(["train", str(path), "--resume", "auto"]) == 0
    out = capsys.readouterr().out
    assert "no checkpoint" in out and "step 0" in out


RANK_REWARD = '''
import os


def rank1_constant(batch):
    """Constant on process 1 (dynamic sampling drops all its groups), varied on process 0."""
    if os.environ.get("RANK") == "1":
        return [0.5] * len(batch.completions)
    return [sum(ch.isdigit() for ch in c) / max(1, len(c)) + 0.01 * (len(c) % 7) for c in batch.completions]
'''


def test_two_processes_when_one_keeps_no_group(make_config, launch_two, tmp_path):
    """Process 1's filters drop every group while process 0 keeps its own: process 1 takes part
    in every collective with an empty batch, and the update trains process 0's group alone."""
    reward = tmp_path / "rank_reward.py"
    reward.write_text(RANK_REWARD)
    cfg = make_config("uneven", extra={
        "rewards": [{"name": "python", "args": {"spec": f"{reward}:rank1_constant"}}],
        "filter": {"dynamic_sampling": True, "std_eps": 0.0, "max_attempts": 2},
        "algorithm": {"mini_batches": 2, "ppo_epochs": 2, "kl_coef": 0.1},
        "train": {"steps": 2, "micro_batch_size": 2}})
    done = launch_two(cfg)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = step_rows(read_metrics(cfg["logging"]["run_dir"]))
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert r["filter/unfilled_groups"] == 1 and r["update/skipped_empty"] == 0
        assert r["filter/attempts"] == 2 and "loss/policy" in r and "grad_norm" in r
