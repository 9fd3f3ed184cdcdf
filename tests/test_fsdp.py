"""Sharded training (``train.sharding=fsdp``, FSDP2) on 2 CPU processes (gloo).

Two processes with sharded models give the weights and metrics of one unsharded process with
the same global batch (GRPO with a sharded reference model and activation checkpointing;
REINFORCE++ under accelerate's own FSDP config with CPU offload; LoRA), each process holding
half of the parameters, gradients and optimizer state; a process whose filters kept nothing
takes part in every forward and backward pass; a sharded checkpoint resumed in fresh processes
continues bit for bit, and its Hugging Face export (gathered on rank 0) equals the one written
from the shards by ``selfrl export`` and loads with ``from_pretrained``; a sharded model's
weights are handed to a rollout engine one layer at a time.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from selfrl.config import deep_merge
from selfrl.config.schema import RunConfig
from selfrl.recipes import build_trainer
from selfrl.trainer.checkpoint import export_checkpoint
from selfrl.trainer.sharding import ShardingError

REPO = Path(__file__).resolve().parents[1]
# seed_per_group: the completions do not depend on the number of processes.  lr 1e-3: Adam
# turns a rounding-level gradient of ~1e-12 into a step of lr * g / (|g| + eps), so 1e-2 would
# show the different summation order of 2 processes as ~1e-6 in the weights.
COMMON = {"rollout": {"seed_per_group": True}, "train": {"steps": 2, "prompts_per_step": 4, "lr": 1e-3}}
SHARDED = {"train": {"sharding": "fsdp"}}
# accelerate's own FSDP config turns sharding on, with its CPU offload flag
ACCELERATE_FSDP = ("--use_fsdp", "--fsdp_version", "2", "--fsdp_offload_params", "true")


def _safetensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    (file,) = [f for f in folder.glob("*.safetensors")]
    return load_file(str(file))


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _one_and_two(make_config, launch_two, name: str, extra: dict, sharded: dict = SHARDED,
                 launcher: tuple[str, ...] = ("--multi_gpu",)) -> tuple[Path, Path]:
    """Run ``extra`` in this process and sharded on two; returns both run folders."""
    one = build_trainer(RunConfig.model_validate(make_config(f"{name}-one", extra=deep_merge(COMMON, extra))))
    one.fit()
    cfg = make_config(f"{name}-two", extra=deep_merge(deep_merge(COMMON, extra), sharded))
    done = launch_two(cfg, launcher=launcher)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return Path(one.run_dir), Path(cfg["logging"]["run_dir"])


def _assert_same_run(one: Path, two: Path, model: str = "model", tol: float = 1e-6) -> None:
    """The same final weights (to ``tol``) and batch metrics; each process holds half the train state."""
    a = _safetensors(one / "checkpoints" / "step-000002" / model)
    b = _safetensors(two / "checkpoints" / "step-000002" / model)
    assert a.keys() == b.keys()
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert diff <= tol, diff
    rows_one, rows_two = _metrics(one), _metrics(two)
    assert [r["step"] for r in rows_two] == [r["step"] for r in rows_one]
    for r1, r2 in zip(rows_one, rows_two):
        if "reward/mean" not in r1:
            continue
        for key in ("reward/mean", "reward/std", "advantage/abs_mean", "response_length/mean",
                    "tokens/generated", "loss/policy", "grad_norm", "entropy"):
            assert r2[key] == pytest.approx(r1[key], rel=1e-5, abs=1e-7), key
        # measured from the local shards: FSDP pads each tensor to a multiple of 2 rows at most
        assert r2["memory/train_state_mib"] / r1["memory/train_state_mib"] == pytest.approx(0.5, abs=0.02)


@pytest.mark.slow
def test_grpo_sharded_matches_one_process_resumes_bit_identically_and_exports(make_config, launch_two,
                                                                              tmp_path):
    """GRPO with a KL term (a sharded reference model) and activation checkpointing (on both
    sides, so that both run the same padded layout), checkpointed after every step."""
    extra = {"algorithm": {"advantage": "grpo", "kl_coef": 0.05}, "model": {"gradient_checkpointing": True},
             "checkpoint": {"every": 1}}
    one, two = _one_and_two(make_config, launch_two, "grpo", extra)
    _assert_same_run(one, two)
    moved = _safetensors(two / "checkpoints" / "step-000002" / "model")
    start = _safetensors(Path(make_config()["model"]["path"]))
    assert max(float((moved[k] - start[k]).abs().max()) for k in start) > 1e-3  # training moved them

    # An intermediate checkpoint holds the shards only; the run's last one the export too.
    step1 = two / "checkpoints" / "step-000001"
    assert sorted(p.name for p in step1.iterdir()) == ["shards", "trainer_state.pt"]

    # Resumed in fresh processes from step 1: step 2 is bit-identical to the straight run's.
    cfg = make_config("grpo-resumed", extra=deep_merge(deep_merge(COMMON, extra), SHARDED))
    done = launch_two(cfg, args=("--resume", str(step1)))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    resumed = _safetensors(Path(cfg["logging"]["run_dir"]) / "checkpoints" / "step-000002" / "model")
    assert all(torch.equal(resumed[k], moved[k]) for k in moved)

    # The export gathered on rank 0 = the weights read back from the shards in one process, and
    # it loads with from_pretrained.
    from transformers import AutoModelForCausalLM

    exported = export_checkpoint(two / "checkpoints" / "step-000002", tmp_path / "exported")
    assert _safetensors(exported).keys() == moved.keys()
    assert all(torch.equal(_safetensors(exported)[k], moved[k]) for k in moved)
    loaded = AutoModelForCausalLM.from_pretrained(two / "checkpoints" / "step-000002" / "model")
    assert all(torch.equal(loaded.state_dict()[k], moved[k]) for k in moved)

    # A sharded checkpoint does not resume an unsharded run (nor the other way round).
    unsharded = RunConfig.model_validate(make_config("grpo-unsharded", extra=deep_merge(COMMON, extra)))
    with pytest.raises(ShardingError, match="written by a sharded run and this run is unsharded"):
        build_trainer(unsharded, resume=str(step1))


@pytest.mark.slow
def test_reinforce_pp_under_accelerates_fsdp_config_matches_one_process(make_config, launch_two):
    """REINFORCE++ (advantages whitened over the global batch), sharded because the launch says so
    (``accelerate launch --use_fsdp``, the config says nothing), with CPU offload."""
    extra = {"algorithm": {"advantage": "reinforce_pp", "loss_agg": "token-mean"}}
    one, two = _one_and_two(make_config, launch_two, "rpp", extra, sharded={}, launcher=ACCELERATE_FSDP)
    assert sorted(p.name for p in (two / "checkpoints" / "step-000002").iterdir()) == \
        ["model", "shards", "trainer_state.pt"]
    _assert_same_run(one, two)


@pytest.mark.slow
def test_lora_sharded_matches_one_process(make_config, launch_two):
    """LoRA with FSDP: the frozen base sharded, the adapters trained; KL against the adapter-free
    model.  The run's export is the adapter."""
    extra = {"model": {"lora": {"r": 4, "alpha": 8, "dropout": 0.0}}, "algorithm": {"kl_coef": 0.05}}
    one, two = _one_and_two(make_config, launch_two, "lora", extra)
    _assert_same_run(one, two, model="model", tol=1e-6)
    assert (two / "checkpoints" / "step-000002" / "model" / "adapter_config.json").is_file()


@pytest.mark.slow
def test_one_sharded_process_matches_an_unsharded_one(make_config, write_config, tmp_path):
    """``train.sharding=fsdp`` alone (a process group of one, as for CPU offload on one GPU)."""
    one = build_trainer(RunConfig.model_validate(make_config("alone-plain", extra=COMMON)))
    one.fit()
    path = write_config("alone-fsdp", extra=deep_merge(COMMON, SHARDED))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    done = subprocess.run([sys.executable, "-m", "selfrl.cli", "train", str(path)], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    a = _safetensors(Path(one.run_dir) / "checkpoints" / "step-000002" / "model")
    b = _safetensors(tmp_path / "alone-fsdp" / "checkpoints" / "step-000002" / "model")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


IDLE_REWARD = textwrap.dedent('''
    import os


    def idle_on_rank_one(batch):
        """Rank 1's groups all score the same, so dynamic sampling drops every one of them."""
        if os.environ.get("RANK") == "1":
            return [0.5] * len(batch.completions)
        return [sum(ch.isdigit() for ch in c) / max(1, len(c)) + 0.01 * (len(c) % 7)
                for c in batch.completions]
''')


@pytest.mark.slow
def test_a_sharded_process_with_no_rows_takes_part_in_every_pass(make_config, launch_two, tmp_path):
    """Rank 1's filters keep nothing: it runs idle passes through the policy, the reference model
    and the critic (PPO with GAE, 2 epochs x 2 mini-batches), matching rank 0's passes one for
    one, so that neither waits for the other; evaluation on gathered weights ends the run."""
    reward = tmp_path / "idle_reward.py"
    reward.write_text(IDLE_REWARD)
    cfg = make_config("idle", extra=deep_merge(deep_merge(COMMON, SHARDED), {
        "rewards": [{"name": "python", "args": {"spec": f"{reward}:idle_on_rank_one"}}],
        "algorithm": {"advantage": "gae", "kl_coef": 0.05, "ppo_epochs": 2, "mini_batches": 2},
        "filter": {"dynamic_sampling": True, "std_eps": 0.01, "max_attempts": 1},
        "train": {"micro_batch_size": 2}}))
    done = launch_two(cfg)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = _metrics(Path(cfg["logging"]["run_dir"]))
    steps = [r for r in rows if "reward/mean" in r]
    assert len(steps) == 2 and all(r["filter/kept_frac"] <= 0.5 for r in steps)  # rank 1 kept nothing
    assert all(r["update/skipped_empty"] == 0 and r["critic/loss"] > 0 for r in steps)
    assert "eval/greedy_pass@1" in rows[-1]


def test_activation_checkpointing_gives_the_same_loss_and_gradients(tiny_model):
    from selfrl.models import load_causal_lm
    from selfrl.trainer.batch import completion_logprobs, pad_sequences
    from selfrl.trainer.lm_head import OutputHead

    plain = load_causal_lm(tiny_model, "cpu", "fp32").train()
    checkpointed = copy.deepcopy(plain)
    checkpointed.gradient_checkpointing_enable()
    seq = pad_sequences([[5, 6, 7], [8, 9]], [[10, 11, 12, 13], [14]], 0)
    results = []
    for model in (plain, checkpointed):
        for head in (None, OutputHead.probe(model)):
            logprobs, _ = completion_logprobs(model, seq, 0.7, head=head)
            loss = -(logprobs * seq.response_mask).sum() / seq.response_mask.sum()
            grads = torch.autograd.grad(loss, [p for p in model.parameters()])
            results.append((loss, grads))
    (loss, grads), others = results[0], results[1:]
    for other_loss, other_grads in others:
        torch.testing.assert_close(other_loss, loss, rtol=0, atol=1e-7)
        for g, h in zip(grads, other_grads):
            torch.testing.assert_close(h, g, rtol=1e-5, atol=1e-7)


def test_a_deepspeed_launch_is_pointed_to_fsdp(make_config, monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    cfg = RunConfig.model_validate(make_config())
    with pytest.raises(ShardingError, match="DeepSpeed, which selfrl does not use: it shards with FSDP2"):
        build_trainer(cfg)


def test_cpu_offload_needs_fsdp(make_config):
    with pytest.raises(ValueError, match="train.cpu_offload .* needs train.sharding=fsdp"):
        RunConfig.model_validate(make_config(extra={"train": {"cpu_offload": True}}))


UNIT_BY_UNIT = textwrap.dedent('''
    """Under torchrun, 2 processes: a sharded LoRA model's full_weights equal the unsharded
    model's, and at most one decoder layer is gathered while they are read."""
    import copy
    import sys

    import torch
    from torch.distributed.tensor import DTensor

    from selfrl.models import load_causal_lm, with_lora
    from selfrl.rollout.weights import full_weights
    from selfrl.trainer.sharding import shard

    torch.distributed.init_process_group("gloo")
    torch.manual_seed(0)  # the same adapters in both processes, as the trainer seeds them
    model = with_lora(load_causal_lm(sys.argv[1], "cpu", "fp32"), 4, 8, 0.0, "all-linear")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))
    want = {n: t.clone() for n, t in full_weights(model)}
    sharded = shard(copy.deepcopy(model), torch.device("cpu"))
    layers = sharded.get_base_model().model.layers
    got, most = {}, 0
    for name, t in full_weights(sharded):
        got[name] = t
        gathered = [not isinstance(layer.mlp.up_proj.base_layer.weight, DTensor) for layer in layers]
        most = max(most, sum(gathered))
    assert got.keys() == want.keys(), sorted(set(got) ^ set(want))
    assert all(torch.equal(got[n], want[n]) for n in want)
    assert not any(".lora_" in n or "base_layer" in n for n in got)
    assert most == 1, most
    torch.distributed.barrier()  # both ranks got here (an assertion fails the launch)
    if torch.distributed.get_rank() == 0:
        print("ok", len(got))
    # Without this a rank can leave while gloo still holds the other's pair ("terminate called
    # without an active exception", seen once under load).
    torch.distributed.destroy_process_group()
''')


@pytest.mark.slow
def test_full_weights_of_a_sharded_model_come_one_layer_at_a_time(tmp_path):
    """What the vLLM engine's refresh reads (tests/test_vllm.py runs the refresh itself)."""
    from selfrl.testing import tiny_random_model

    model = tiny_random_model(tmp_path / "model", hidden_size=16, num_layers=2)
    script = tmp_path / "unit_by_unit.py"
    script.write_text(UNIT_BY_UNIT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(_free_port()), str(script), str(model)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ok " in done.stdout


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
