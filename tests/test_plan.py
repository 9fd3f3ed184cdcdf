"""``selfrl plan``: the memory estimate against peak memory measured on a CPU (the GPU benchmark's
CPU path, so that path is known to run), the known model shapes against their published sizes,
and the command's verdicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from selfrl.cli import main
from selfrl.trainer.memory import KNOWN_SHAPES, Layout, RunShape, estimate

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks" / "bench_fsdp_gpu.py"
SEVEN_B = REPO / "recipes" / "rlvr_7b_fsdp.yaml"


def _bench(tmp_path: Path, args: list[str], torchrun: bool = False) -> dict:
    out = tmp_path / "bench.json"
    # Freed tensors go back to the system at once, so the resident peak follows the live tensors.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "MALLOC_MMAP_THRESHOLD_": "65536"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1",
                "--master_port", str(_free_port())] if torchrun else [sys.executable]
    done = subprocess.run([*launcher, str(BENCH), "--device", "cpu", "--warmup", "1", "--steps", "1",
                           "--json", str(out), *args], capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("args, torchrun", [
    (["--preset", "tiny", "--prompts", "4", "--group", "4", "--prompt-len", "128", "--completion-len", "384",
      "--micro-batch", "8"], True),
    (["--preset", "tiny", "--prompts", "4", "--group", "4", "--prompt-len", "128", "--completion-len", "384",
      "--micro-batch", "8", "--gradient-checkpointing"], False),
    (["--preset", "small", "--prompts", "2", "--group", "2", "--prompt-len", "64", "--completion-len", "512",
      "--micro-batch", "2"], False),
], ids=["tiny", "tiny-checkpointing", "small"])
def test_the_estimate_is_within_15_percent_of_the_measured_peak(tmp_path, args, torchrun):
    """FSDP on one CPU process (gloo, fp32): the update's peak resident memory against the plan."""
    result = _bench(tmp_path, args, torchrun)
    assert 0.85 <= result["estimate_over_measured"] <= 1.15, (result["peak_memory_gib"],
                                                              result["plan_estimate_gib"])
    assert result["tokens_per_s"] > 0 and 0 < result["mfu"] < 1 and result["world_size"] == 1
    assert all(n == n and n > 0 for n in result["grad_norms"])  # finite, so a real update ran


def test_known_shapes_have_their_published_sizes():
    published = {"qwen2.5-0.5b": 0.494e9, "llama-3.2-3b": 3.21e9, "qwen2.5-7b": 7.62e9,
                 "llama-3.1-8b": 8.03e9, "qwen3-8b": 8.19e9}
    for name, params in published.items():  # q/k/v biases and q/k norms are left out: < 0.1 %
        assert KNOWN_SHAPES[name].params == pytest.approx(params, rel=0.01), name


def test_sharding_divides_the_training_state_and_advice_names_what_fits():
    shape = KNOWN_SHAPES["qwen2.5-7b"]
    run = RunShape(micro_batch=8, group_size=8, prompt_len=512, completion_len=1024,
                   gradient_checkpointing=True, reference=True, engine="vllm")
    whole, sharded = estimate(shape, run, Layout("none", 8), 80), estimate(shape, run, Layout("fsdp", 8), 80)
    for part in ("weights", "gradients", "optimizer", "reference model"):
        assert sharded.parts[part] * 8 == pytest.approx(whole.parts[part])
    assert not whole.fits and sharded.fits
    assert any(line.startswith("train.sharding=fsdp:") for line in whole.advice) and sharded.advice == []
    offloaded = estimate(shape, run, Layout("fsdp", 8, cpu_offload=True), 80)
    assert offloaded.parts["optimizer"] == 0 and offloaded.peak < sharded.peak


def test_plan_prints_a_table_and_a_verdict(capsys):
    assert main(["plan", str(SEVEN_B), "--gpus", "8", "--gpu-memory", "80"]) == 0
    out = capsys.readouterr().out
    assert "fsdp (config)" in out and "fits: train.sharding=fsdp peaks at" in out
    assert main(["plan", str(SEVEN_B), "train.sharding=none", "--gpus", "8", "--gpu-memory", "80"]) == 0
    out = capsys.readouterr().out
    assert "does not fit: train.sharding=none" in out and "train.sharding=fsdp: peak" in out
    assert main(["plan", str(SEVEN_B), "model.path=Qwen/Qwen3-8B", "--gpus", "8"]) == 0
    assert "8.19 B parameters" in capsys.readouterr().out


def test_plan_needs_a_local_config_or_a_known_shape(capsys, tmp_path):
    assert main(["plan", str(SEVEN_B), f"model.path={tmp_path / 'nowhere'}"]) == 2
    assert "no local config.json" in capsys.readouterr().err
    assert main(["plan", str(SEVEN_B), "--shape", "gpt-9"]) == 2
    assert "--shape gpt-9: unknown; known shapes: qwen2.5-0.5b" in capsys.readouterr().err


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
