"""Shared fixtures: a tiny random model, a small arith data folder, a reward file, a helper
that builds training configs pointing at them (all tiny, so each run takes ~1 s), and one
that runs a config on two processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

# One intra-op thread: these models are tiny, and on a busy machine OpenMP threads that wait
# on each other make a 0.2 s run take 2 s.  CLI subprocesses get the same count (the resume
# test compares weights bit for bit, and float reductions depend on the thread count).
torch.set_num_threads(1)

REWARD_CODE = textwrap.dedent('''
    """Test rewards: a score that varies per completion even for a random model."""
    import math


    def digit_frac(batch):
        """Fraction of digit characters, plus a little length signal (never constant)."""
        return [sum(ch.isdigit() for ch in c) / max(1, len(c)) + 0.01 * (len(c) % 7)
                for c in batch.completions]


    def wrong_count(batch):
        return [0.5] * (len(batch.completions) + 1)


    def nan_score(batch):
        return [math.nan] * len(batch.completions)
''')


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A random model in the embedded layout (hidden 16, 1 layer) with the arith BPE tokenizer."""
    from selfrl.testing import tiny_random_model

    return tiny_random_model(tmp_path_factory.mktemp("tiny-model"), hidden_size=16, num_layers=1)


@pytest.fixture(scope="session")
def arith_dir(tmp_path_factory) -> Path:
    from selfrl.data.arith_files import ArithSplits, write_arith

    out = tmp_path_factory.mktemp("arith")
    write_arith(out, ArithSplits(n_seed=16, n_train=64, n_test=16, n_test_hard=16))
    return out


@pytest.fixture(scope="session")
def reward_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rewards") / "test_rewards.py"
    path.write_text(REWARD_CODE)
    return path


@pytest.fixture
def make_config(tiny_model, arith_dir, reward_file, tmp_path):
    """``make_config(run_name, reward_fn=..., extra={...}) -> dict``: a tiny training config
    (2 prompts x 4 completions of at most 8 tokens per step) with ``extra`` deep-merged on top."""
    from selfrl.config import deep_merge

    def make(run_name: str = "run", reward_fn: str = "digit_frac", extra: dict | None = None) -> dict:
        cfg = {
            "model": {"path": str(tiny_model), "device": "cpu", "dtype": "fp32"},
            "data": {"train": str(arith_dir / "train.jsonl"), "eval": str(arith_dir / "test.jsonl"),
                     "arith_if_missing": False},
            "rollout": {"n": 4, "temperature": 1.0, "max_new_tokens": 8, "batch_size": 64},
            "rewards": [{"name": "python", "args": {"spec": f"{reward_file}:{reward_fn}"}}],
            "algorithm": {"advantage": "grpo"},
            "train": {"steps": 1, "prompts_per_step": 2, "micro_batch_size": 4, "lr": 1e-2, "seed": 0},
            "eval": {"at_start": False, "limit": 2, "max_new_tokens": 4},
            "checkpoint": {"every": 0, "keep_last": 2},
            "logging": {"run_dir": str(tmp_path / run_name), "tensorboard": False, "progress": False},
        }
        return deep_merge(cfg, extra or {})

    return make


@pytest.fixture
def write_config(make_config, tmp_path):
    """``write_config(name, **kw) -> Path``: ``make_config``'s dict written as a YAML file."""
    import yaml

    def write(run_name: str = "run", **kw) -> Path:
        path = tmp_path / f"{run_name}.yaml"
        path.write_text(yaml.safe_dump(make_config(run_name, **kw)))
        return path

    return write


REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_killing_the_group(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own process group; on timeout kill the whole group (launcher and
    workers), so that a deadlocked collective cannot hang the test suite."""
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"2-process run timed out after {timeout} s:\n{out[-2000:]}\n{err[-2000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.fixture
def launch_two(tmp_path) -> Callable[..., subprocess.CompletedProcess]:
    """``launch_two(cfg, args=(), launcher=("--multi_gpu",))``: ``selfrl train`` on the config (and
    ``args``, e.g. ``--resume``) under ``accelerate launch --num_processes 2`` with ``launcher``'s
    flags (``--multi_gpu``: gloo on CPU; ``--use_fsdp ...``: accelerate's FSDP config), one
    intra-op thread per process."""
    import yaml

    def run(cfg: dict, timeout: float = 150, args: tuple[str, ...] = (),
            launcher: tuple[str, ...] = ("--multi_gpu",)) -> subprocess.CompletedProcess:
        path = tmp_path / f"{Path(cfg['logging']['run_dir']).name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        env.pop("WORLD_SIZE", None)
        cmd = [sys.executable, "-m", "accelerate.commands.launch", *launcher, "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), "-m", "selfrl.cli", "train", str(path), *args]
        return _run_killing_the_group(cmd, timeout=timeout, cwd=tmp_path, env=env)

    return run


@pytest.fixture
def synthetic_run(tmp_path) -> Path:
    """A run folder written by hand, as a self-judging self-play run that crashed would leave it:
    judge and self-play metrics, a non-finite KL, a metrics line cut short, and rollout records in
    an older format (no version, no advantages, no reward parts) beside one that is not JSON."""
    import json

    run = tmp_path / "synthetic"
    run.mkdir()
    (run / "config.yaml").write_text("recipe: serl_judge\ntrain:\n  steps: 4\n")
    rows = [{"step": 0, "eval/greedy_pass@1": 0.25}]
    for s in range(1, 5):
        rows.append({"step": s, "reward/mean": 0.1 * s, "reward/serl_judge": 0.1 * s, "kl": "nan",
                     "reward/serl_judge/judge_accuracy": 0.5 + 0.05 * s,
                     "reward/serl_judge/judge_position_consistency": 0.2 * s,
                     "selfplay/generated/accepted": 6.0, "selfplay/generated/rouge_l": 2.0,
                     "selfplay/generated/word_count": 1.0, "selfplay/trained": 2.0,
                     "selfplay/filtered_difficulty": 3.0, "selfplay/expired": 1.0,
                     "time/rollout": 1.0, "time/update": 0.5})
    rows.append({"step": 4, "eval/greedy_pass@1": 0.5})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 5, "rew')
    records = []
    for s in (2, 4):
        for g, texts in enumerate((["The answer is 4.", "The answer is 5."], ["7", "no idea"])):
            records.append({"step": s, "group": g, "kept": g == 0, "question": f"2+2? (step {s})",
                            "gold": "4", "row": {"solution": "2 + 2 = 4.\nThe answer is 4."},
                            "group_data": {"judge": {"scores": [1.0, 0.0],
                                                     "verdicts": [{"shown": [0, 1], "winner": 0,
                                                                   "text": "\\boxed{1}"}]}},
                            "completions": [{"text": t, "reward": float(i == 0 and g == 0),
                                             "correct": t == "The answer is 4."}
                                            for i, t in enumerate(texts)]})
    (run / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + "not json\n")
    return run
