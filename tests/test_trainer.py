"""The RL trainer end to end on a tiny random model (CPU, ~1 s per run): every advantage
estimator x loss aggregation, KL, PPO epochs, GSPO, dynamic sampling, LoRA; bit-identical
resume in a fresh process; checkpoints; config and reward errors; NaN losses; SIGTERM;
``selfrl plot`` and ``selfrl config show``."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from selfrl.algorithms import ADVANTAGE_ESTIMATORS, LOSS_AGGREGATIONS, POLICY_LOSSES
from selfrl.cli import main
from selfrl.config.schema import RunConfig
from selfrl.recipes import build_trainer
from selfrl.rewards import RewardError
from selfrl.trainer import checkpoint as ckpt
from selfrl.trainer.trainer import Trainer, TrainingStopped

REPO = Path(__file__).resolve().parents[1]
ESTIMATORS = [name for name in ADVANTAGE_ESTIMATORS.names() if name != "gae"]
AGGREGATIONS = list(LOSS_AGGREGATIONS.names())
NAN_LOSS = "test_trainer_nan_loss"



def _nan_loss(logprobs, old_logprobs, advantages, mask, params):
    """A policy loss that is always NaN (but connected to the graph)."""
    return logprobs * float("nan"), {}


@pytest.fixture
def nan_loss():
    """Register the NaN loss for one test only, so other modules see the built-ins alone."""
    POLICY_LOSSES.register(NAN_LOSS)(_nan_loss)
    yield NAN_LOSS
    POLICY_LOSSES.unregister(NAN_LOSS)


# --- helpers --------------------------------------------------------------------------


def train(cfg: dict, resume: str | None = None) -> tuple[Trainer, dict, dict]:
    """Build a trainer from a config dict, run it; returns it, its summary and the initial
    parameters (after any resume)."""
    trainer = build_trainer(RunConfig.model_validate(cfg), resume=resume)
    before = snapshot(trainer.model)
    summary = trainer.fit()
    return trainer, summary, before


def snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def changed(model, before: dict[str, torch.Tensor]) -> list[str]:
    return [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def assert_all_finite(rows: list[dict]) -> None:
    """Every value is a finite number (the logger writes NaN/inf as strings)."""
    assert rows
    for row in rows:
        for key, value in row.items():
            assert isinstance(value, (int, float)) and math.isfinite(value), (key, value, row["step"])


def step_rows(rows: list[dict]) -> list[dict]:
    """The training-step rows (eval rows hold only eval/ keys)."""
    return [r for r in rows if "loss/policy" in r or "update/skipped_nonfinite" in r]


def load_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        state.update(load_file(str(f)))
    assert state, f"no safetensors in {folder}"
    return state


def cli_env() -> dict[str, str]:
    """The environment of a CLI subprocess: this repo importable, the same thread count (so
    float reductions, hence the sampled tokens, are bit-identical to this process)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "selfrl.cli", *args], capture_output=True, text=True,
                          env=cli_env(), cwd=REPO, timeout=timeout)


# --- 1. end to end ----------------------------------------------------------------------


@pytest.mark.parametrize("loss_agg", AGGREGATIONS)
@pytest.mark.parametrize("advantage", ESTIMATORS)
def test_estimator_x_aggregation_trains(make_config, advantage, loss_agg):
    cfg = make_config(extra={"algorithm": {"advantage": advantage, "loss_agg": loss_agg}})
    trainer, summary, before = train(cfg)
    assert trainer.step == 1
    assert changed(trainer.model, before), "no parameter moved"
    rows = read_metrics(cfg["logging"]["run_dir"])
    assert_all_finite(rows)
    (step,) = step_rows(rows)
    assert step["advantage/abs_mean"] > 0 and step["update/skipped_nonfinite"] == 0
    assert "eval/greedy_pass@1" in summary["after"]


@pytest.mark.parametrize("advantage", ["grpo", "rloo"])
def test_one_update_raises_the_likelihood_of_positive_advantages(make_config, advantage):
    """The sign check every RL bug fails: after one step on a collected batch, completions
    with positive advantage are likelier and those with negative advantage less likely."""
    from selfrl.trainer.batch import completion_logprobs, pad_sequences

    cfg = make_config(extra={"algorithm": {"advantage": advantage},
                             "train": {"prompts_per_step": 4, "micro_batch_size": 16, "lr": 1e-3,
                                       "warmup_steps": 0}})
    trainer = build_trainer(RunConfig.model_validate(cfg))
    batch = trainer.collect()
    trainer.prepare(batch)

    def seq_logprob() -> torch.Tensor:
        seq = pad_sequences(batch.prompt_ids, batch.completion_ids, trainer.pad_id)
        with torch.no_grad():
            lp, _ = completion_logprobs(trainer.model, seq)
        return (lp * seq.response_mask).sum(1)  # (B,)

    before = seq_logprob()
    trainer.update(batch)
    delta = seq_logprob() - before
    adv = batch.advantages[:, 0]
    assert (adv > 0).any() and (adv < 0).any()
    assert delta[adv > 0].mean() > 0 > delta[adv < 0].mean()


def test_all_estimators_but_gae_are_covered():
    assert set(ESTIMATORS) | {"gae"} == set(ADVANTAGE_ESTIMATORS.names())
    assert len(AGGREGATIONS) == 4


def test_kl_loss_term_and_tensorboard(make_config):
    cfg = make_config(extra={"algorithm": {"kl_coef": 0.1}, "train": {"steps": 2},
                             "logging": {"tensorboard": True}})
    trainer, _, before = train(cfg)
    assert trainer.ref_model is not None
    assert changed(trainer.model, before)
    # The reference model stays the initial policy.
    assert not changed(trainer.ref_model, before)
    rows = step_rows(read_metrics(cfg["logging"]["run_dir"]))
    assert_all_finite(rows)
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # policy == reference before any update
    assert rows[1]["kl"] > 0
    assert list((Path(cfg["logging"]["run_dir"]) / "tensorboard").glob("events.out.tfevents.*"))


def test_kl_in_reward_reinforce_pp(make_config):
    cfg = make_config(extra={"algorithm": {"advantage": "reinforce_pp", "kl_coef": 0.1,
                                           "kl_in_reward": True}, "train": {"steps": 2}})
    trainer, _, before = train(cfg)
    assert changed(trainer.model, before)
    rows = step_rows(read_metrics(cfg["logging"]["run_dir"]))
    assert_all_finite(rows)
    assert rows[1]["kl"] > 0


def test_ppo_epochs_and_mini_batches(make_config):
    cfg = make_config(extra={"algorithm": {"ppo_epochs": 2, "mini_batches": 2}, "train": {"steps": 2}})
    trainer, _, before = train(cfg)
    assert changed(trainer.model, before)
    rows = step_rows(read_metrics(cfg["logging"]["run_dir"]))
    assert_all_finite(rows)
    # 4 optimizer steps per RL step; later mini-batches are off-policy, so the ratio moves.
    assert trainer.scheduler.last_epoch == 2 * 2 * 2
    assert any(r["policy/approx_kl"] != 0 for r in rows)


def test_gspo(make_config):
    cfg = make_config(extra={"algorithm": {"policy_loss": "gspo", "loss_agg": "seq-mean-token-mean"}})
    trainer, _, before = train(cfg)
    assert changed(trainer.model, before)
    assert_all_finite(read_metrics(cfg["logging"]["run_dir"]))


def test_dynamic_sampling(make_config):
    cfg = make_config(extra={"filter": {"dynamic_sampling": True, "std_eps": 0.0, "max_attempts": 3}})
    trainer, _, before = train(cfg)
    assert changed(trainer.model, before)
    rows = read_metrics(cfg["logging"]["run_dir"])
    assert_all_finite(rows)
    (step,) = step_rows(rows)
    assert 1 <= step["filter/attempts"] <= 3


def test_dynamic_sampling_gives_up_after_max_attempts(make_config):
    # No group has a reward std above 10: every attempt drops everything, and a dropped group is
    # never trained, so the step logs its filter metrics and skips the update.
    cfg = make_config(extra={"filter": {"dynamic_sampling": True, "std_eps": 10.0, "max_attempts": 2}})
    train(cfg)
    rows = read_metrics(cfg["logging"]["run_dir"])
    assert_all_finite(rows)
    (step,) = step_rows(rows)
    assert step["filter/attempts"] == 2
    assert step["filter/unfilled_groups"] == 2
    assert step["filter/kept_frac"] == 0
    assert step["update/skipped_empty"] == 1


def test_single_sequence_batch_logs_finite_metrics(make_config):
    # reinforce_pp needs no group: one prompt, one completion is a valid (if tiny) batch;
    # the std of one score used to be logged as nan.
    cfg = make_config(extra={"algorithm": {"advantage": "reinforce_pp"}, "rollout": {"n": 1},
                             "train": {"prompts_per_step": 1, "micro_batch_size": 1}})
    train(cfg)
    rows = read_metrics(cfg["logging"]["run_dir"])
    assert_all_finite(rows)
    assert step_rows(rows)[0]["reward/std"] == 0


def test_lora_trains_only_the_adapter(make_config):
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    cfg = make_config(extra={"model": {"lora": lora}})
    trainer, _, before = train(cfg)
    moved = changed(trainer.model, before)
    assert moved and all("lora_" in n for n in moved), moved
    lora_b = [n for n in before if "lora_B" in n]
    assert lora_b and set(lora_b) <= set(moved)
    base = [n for n in before if "lora_" not in n]
    assert base and not set(base) & set(moved)
    assert_all_finite(read_metrics(cfg["logging"]["run_dir"]))
    # The checkpoint holds the adapter; resuming loads it back into a fresh model.
    last = ckpt.list_checkpoints(cfg["logging"]["run_dir"])[-1]
    assert (last / "model" / "adapter_model.safetensors").is_file()
    resumed = build_trainer(RunConfig.model_validate(cfg), resume="auto")
    assert resumed.step == 1
    assert not changed(resumed.model, snapshot(trainer.model))


# --- 2. resume, bit-identical -------------------------------------------------------------


def test_resume_in_a_fresh_process_is_bit_identical(make_config, tmp_path):
    # PPO epochs and mini-batches (shuffled by the trainer's generator), warmup (scheduler
    # state), a KL reference and temperature-1 sampling: every piece of state matters.
    extra = {"algorithm": {"ppo_epochs": 2, "mini_batches": 2, "kl_coef": 0.05},
             "train": {"warmup_steps": 3, "steps": 4}, "rollout": {"temperature": 1.0},
             "checkpoint": {"every": 0}}
    straight = make_config("straight", extra=extra)
    train(straight)

    split = make_config("split", extra={**extra, "train": {"warmup_steps": 3, "steps": 2},
                                        "checkpoint": {"every": 1, "keep_last": 2}})
    train(split)
    assert [p.name for p in ckpt.list_checkpoints(split["logging"]["run_dir"])] == \
        ["step-000001", "step-000002"]
    cfg_path = tmp_path / "split.yaml"
    cfg_path.write_text(yaml.safe_dump(split))
    proc = cli("train", str(cfg_path), "train.steps=4", "--resume", "auto")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming from" in proc.stdout and "(step 2)" in proc.stdout

    a = load_weights(Path(straight["logging"]["run_dir"]) / "checkpoints" / "step-000004" / "model")
    b = load_weights(Path(split["logging"]["run_dir"]) / "checkpoints" / "step-000004" / "model")
    assert a.keys() == b.keys()
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differing, differing
    init = load_weights(Path(straight["model"]["path"]))
    assert any(not torch.equal(a[k], init[k]) for k in a)  # it did train

    # The logged steps 3 and 4 agree too (rewards, losses; timings aside).
    def comparable(rows):
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in step_rows(rows)]

    sa = comparable(read_metrics(straight["logging"]["run_dir"]))
    sb = comparable(read_metrics(split["logging"]["run_dir"]))
    assert [r["step"] for r in sb] == [1, 2, 3, 4]
    assert sa == sb
    sa_state = ckpt.load_trainer_state(Path(straight["logging"]["run_dir"]) / "checkpoints" / "step-000004")
    sb_state = ckpt.load_trainer_state(Path(split["logging"]["run_dir"]) / "checkpoints" / "step-000004")
    assert sa_state["data"] == sb_state["data"]
    assert sa_state["scheduler"]["last_epoch"] == sb_state["scheduler"]["last_epoch"] == 16


# --- 3. checkpoints -----------------------------------------------------------------------


def test_checkpoints_atomic_pruned_and_loadable(make_config):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = make_config(extra={"train": {"steps": 3}, "checkpoint": {"every": 1, "keep_last": 2}})
    trainer, _, _ = train(cfg)
    root = ckpt.checkpoint_dir(cfg["logging"]["run_dir"])
    assert sorted(p.name for p in root.iterdir()) == ["step-000002", "step-000003"]  # no .tmp-*/.old-*
    last = root / "step-000003"
    model = AutoModelForCausalLM.from_pretrained(last / "model")
    AutoTokenizer.from_pretrained(last / "model")
    trained = trainer.model.state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, trained[k]), k
    state = ckpt.load_trainer_state(last)
    assert state["step"] == 3 and {"optimizer", "scheduler", "rng", "data", "config"} <= set(state)


def test_resaving_the_same_step_replaces_it(make_config):
    cfg = make_config(extra={"eval": {"at_start": False}})
    trainer, _, _ = train(cfg)
    first = trainer.save()
    second = trainer.save()
    assert first == second and (second / "trainer_state.pt").is_file()
    assert [p.name for p in ckpt.checkpoint_dir(cfg["logging"]["run_dir"]).iterdir()] == ["step-000001"]


def test_resume_auto_without_checkpoint_starts_fresh(write_config, capsys):
    path = write_config("fresh")
    assert main(["train", str(path), "--resume", "auto"]) == 0
    out = capsys.readouterr().out
    assert "resuming" not in out
    run_dir = yaml.safe_load(path.read_text())["logging"]["run_dir"]
    assert [r["step"] for r in step_rows(read_metrics(run_dir))] == [1]


def test_resume_from_missing_path_is_a_clear_error(write_config, capsys, tmp_path):
    missing = tmp_path / "nonexistent"
    assert main(["train", str(write_config()), "--resume", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and str(missing) in err and "not a checkpoint" in err
    assert "Traceback" not in err


# --- 4. config errors through the CLI -------------------------------------------------------


@pytest.mark.parametrize(("override", "expected"), [
    ("train.stpes=3", ["train.stpes", "unknown key", "did you mean 'steps'"]),
    ("train.lr_rate=1", ["train.lr_rate", "unknown key", "lr,"]),
    ("train.steps=abc", ["train.steps", "int", "'abc'"]),
    ("rollout.n=1", ["rollout.n must be >= 2", "grpo"]),
    ("train.micro_batch_size=3", ["divisible by train.micro_batch_size=3", "8 sequences"]),
    ("algorithm.advantage=ppo", ["unknown advantage estimator 'ppo'",
                                 "dr_grpo, gae, grpo, reinforce_pp, reinforce_pp_baseline, rloo"]),
    ("algorithm.loss_agg=mean", ["unknown loss aggregation 'mean'", "token-mean"]),
])
def test_config_errors(write_config, capsys, override, expected):
    assert main(["train", str(write_config()), override]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("selfrl train: error: invalid config")
    for text in expected:
        assert text in captured.err


def test_missing_config_file(capsys, tmp_path):
    assert main(["train", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml" in err and "does not exist" in err


# --- 5. bad rewards -------------------------------------------------------------------------


@pytest.mark.parametrize(("fn", "message"), [
    ("wrong_count", "reward 'wrong_count' returned 9 scores for 8 completions"),
    ("nan_score", "reward 'nan_score': score 0 is nan, not finite"),
])
def test_bad_reward_fails_naming_it(make_config, fn, message):
    cfg = make_config(reward_fn=fn)
    with pytest.raises(RewardError) as info:
        train(cfg)
    assert message in str(info.value)


def test_reward_function_missing_is_a_cli_error(write_config, capsys):
    assert main(["train", str(write_config(reward_fn="no_such_fn"))]) == 2
    err = capsys.readouterr().err
    assert "has no function 'no_such_fn'" in err and "digit_frac" in err


# --- 6. NaN losses --------------------------------------------------------------------------


def test_nan_loss_is_skipped_then_stops(make_config, nan_loss):
    cfg = make_config(extra={"algorithm": {"policy_loss": NAN_LOSS},
                             "train": {"steps": 10, "max_nonfinite_steps": 2}})
    trainer = build_trainer(RunConfig.model_validate(cfg))
    before = snapshot(trainer.model)
    with pytest.raises(TrainingStopped) as info:
        trainer.fit()
    message = str(info.value)
    assert "2 steps in a row" in message and "NaN" in message and "step 2" in message
    assert trainer.step == 2
    assert not changed(trainer.model, before)  # skipped steps leave the weights alone
    rows = step_rows(read_metrics(cfg["logging"]["run_dir"]))
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["update/skipped_nonfinite"] == 1 for r in rows)
    assert_all_finite(rows)
    (last,) = ckpt.list_checkpoints(cfg["logging"]["run_dir"])
    assert last.name == "step-000002" and str(last) in message
    assert ckpt.load_trainer_state(last)["nonfinite_streak"] == 2


def test_nan_loss_through_the_cli(write_config, capsys, nan_loss):
    path = write_config(extra={"algorithm": {"policy_loss": NAN_LOSS}})
    assert main(["train", str(path), "train.steps=5", "train.max_nonfinite_steps=1"]) == 2
    assert "1 steps in a row had a NaN/inf loss" in capsys.readouterr().err


# --- 7. SIGTERM -----------------------------------------------------------------------------


def test_sigterm_saves_and_resumes(write_config, capsys):
    path = write_config("sig")
    run_dir = Path(yaml.safe_load(path.read_text())["logging"]["run_dir"])
    proc = subprocess.Popen([sys.executable, "-m", "selfrl.cli", "train", str(path), "train.steps=100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
                            cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            metrics = run_dir / "metrics.jsonl"
            if metrics.is_file() and step_rows(read_metrics(run_dir)):
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err[-3000:]  # 128 + SIGTERM, after the checkpoint
    reached = step_rows(read_metrics(run_dir))[-1]["step"]
    assert reached >= 1
    assert f"stopped by SIGTERM at step {reached}" in out
    last = ckpt.list_checkpoints(run_dir)[-1]
    assert last.name == f"step-{reached:06d}"
    assert ckpt.load_trainer_state(last)["step"] == reached

    assert main(["train", str(path), f"train.steps={reached + 1}", "--resume", "auto"]) == 0
    assert f"resuming from {last} (step {reached})" in capsys.readouterr().out
    assert step_rows(read_metrics(run_dir))[-1]["step"] == reached + 1
    assert ckpt.list_checkpoints(run_dir)[-1].name == f"step-{reached + 1:06d}"


# --- 8. plot and config show ----------------------------------------------------------------


def test_plot_writes_pngs(make_config, capsys):
    cfg = make_config(extra={"train": {"steps": 2}, "eval": {"every": 1, "at_start": True},
                             "algorithm": {"kl_coef": 0.1}})
    train(cfg)
    run_dir = Path(cfg["logging"]["run_dir"])
    assert main(["plot", str(run_dir)]) == 0
    printed = [Path(line) for line in capsys.readouterr().out.split()]
    pngs = sorted((run_dir / "plots").glob("*.png"))
    assert sorted(printed) == pngs
    names = {p.name for p in pngs}
    assert {"overview.png", "reward.png", "held_out_accuracy.png", "KL.png", "entropy.png"} <= names
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_config_show_prints_resolved_defaults(write_config, capsys):
    assert main(["config", "show", str(write_config()), "train.steps=7"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["train"]["steps"] == 7
    assert shown["algorithm"]["clip_low"] == 0.2 and shown["algorithm"]["policy_loss"] == "ppo_clip"
    assert shown["filter"] == {"dynamic_sampling": False, "std_eps": 0.1, "max_attempts": 4}
    assert shown["train"]["betas"] == [0.9, 0.999]
    # What it prints loads back to the same config.
    RunConfig.model_validate(shown)
