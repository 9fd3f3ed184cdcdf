"""Data-parallel training: ``accelerate launch`` with 2 CPU processes (gloo) gives the weights
of one process with the same global batch; the loss normalisers do not depend on the number
of processes; ``prompts_per_step`` must divide by it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from selfrl.algorithms import LOSS_AGGREGATIONS, aggregate_loss
from selfrl.config.schema import RunConfig
from selfrl.recipes import build_trainer
from selfrl.trainer import distributed
from selfrl.trainer.advantage import global_advantages
from selfrl.trainer.distributed import DistContext, group_seed, shard_size


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# --- without processes ------------------------------------------------------------------


def test_prompts_per_step_must_divide_by_world_size(make_config, monkeypatch):
    with pytest.raises(ValueError, match=r"prompts_per_step=3 .* divisible by the number of processes \(2\)"):
        shard_size(3, 2)
    assert shard_size(6, 3) == 2
    # The trainer checks it before loading anything.
    monkeypatch.setattr("selfrl.trainer.trainer.init_distributed",
                        lambda device: (DistContext(rank=0, world_size=2), device))
    cfg = RunConfig.model_validate(make_config(extra={"train": {"prompts_per_step": 3}}))
    with pytest.raises(ValueError, match="prompts_per_step=3"):
        build_trainer(cfg)


@pytest.mark.parametrize("mode", list(LOSS_AGGREGATIONS.names()))
def test_rank_losses_with_global_counts_sum_to_the_one_process_loss(mode):
    """Each rank aggregates its rows with the global token and sequence counts; the rank losses
    (and so their gradients, which the trainer sums) add up to the one-process loss."""
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 5, generator=g, requires_grad=True)  # a stand-in for the model
    mask = (torch.rand(6, 5, generator=g) > 0.3).float()  # (B, T)
    mask[:, 0] = 1
    n_tok, n_seq = float(mask.sum()), 6

    full = aggregate_loss(weight * 2.0, mask, mode, num_tokens=n_tok, num_seqs=n_seq, max_len=5)
    (full_grad,) = torch.autograd.grad(full, weight)
    ranks = [slice(0, 2), slice(2, 6)]  # uneven shards: the counts, not the shapes, normalise
    parts = [aggregate_loss(weight[r] * 2.0, mask[r], mode, num_tokens=n_tok, num_seqs=n_seq, max_len=5)
             for r in ranks]
    grads = [torch.autograd.grad(p, weight)[0] for p in parts]
    torch.testing.assert_close(sum(parts), full)
    torch.testing.assert_close(sum(grads), full_grad)  # all_reduce(SUM) of the rank gradients


def test_one_process_context_is_the_identity():
    ctx = DistContext()
    t = torch.arange(6.0).view(2, 3)
    assert ctx.gather_rows(t)[0] is t and ctx.sum_tensor(t) is t and ctx.sum_scalar(3) == 3
    assert ctx.mean_metrics({"a": 1.0}) == {"a": 1.0} and ctx.rank_seed(5) == 5
    assert group_seed(0, 1, 1, 3) != group_seed(0, 2, 1, 3)
    assert distributed.init_distributed(torch.device("cpu"))[0] == DistContext()  # no WORLD_SIZE

    def estimator(inp, params):
        return inp.scores

    from selfrl.algorithms import AdvantageInput

    inp = AdvantageInput(scores=torch.ones(2), response_mask=torch.ones(2, 3),
                         group_index=torch.zeros(2, dtype=torch.long))
    assert global_advantages(estimator, inp, None, ctx) is inp.scores


# --- two processes ----------------------------------------------------------------------


def test_two_processes_match_one_process(make_config, launch_two):
    """``accelerate launch --multi_gpu --num_processes 2`` on CPU (gloo), 2 steps of REINFORCE++
    (advantages whitened over the whole batch) with token-mean: the final weights and the
    batch metrics equal those of one process with the same global batch (4 prompts x 4)."""
    extra = {"rollout": {"seed_per_group": True}, "train": {"steps": 2, "prompts_per_step": 4},
             "algorithm": {"advantage": "reinforce_pp", "loss_agg": "token-mean"}}
    one = build_trainer(RunConfig.model_validate(make_config("one", extra=extra)))
    one.fit()

    two_cfg = make_config("two", extra=extra)
    done = launch_two(two_cfg)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    two_dir = Path(two_cfg["logging"]["run_dir"])
    two = _weights(two_dir / "checkpoints" / "step-000002" / "model")
    diff = max(float((p.detach() - two[n]).abs().max()) for n, p in one.model.named_parameters())
    moved = max(float((p.detach() - _weights(Path(two_cfg["model"]["path"]))[n]).abs().max())
                for n, p in one.model.named_parameters())
    assert moved > 1e-3  # training did change the weights ...
    assert diff < 1e-5, diff  # ... and in the same way with two processes
    rows_one, rows_two = _metrics(Path(one.run_dir)), _metrics(two_dir)  # rank 0 alone logs
    assert [(r["step"], "reward/mean" in r) for r in rows_two] == [(1, True), (2, True), (2, False)]
    assert rows_two[-1].keys() == rows_one[-1].keys()  # the held-out metrics, from rank 0
    for a, b in zip(rows_one[:2], rows_two[:2]):
        for key in ("reward/mean", "reward/std", "advantage/abs_mean", "response_length/mean",
                    "tokens/generated", "loss/policy", "grad_norm"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key


def test_self_play_on_two_processes_shares_one_problem_pool(make_config, arith_dir, launch_two):
    """SeRL with 2 processes: each samples half of the instruction prompts, every rank filters
    all of them, and the trained problems of both ranks join one pool (the recipe stops the run
    if the ranks' pools ever differ); rank 0 records every rank's groups."""
    cfg = make_config("serl2", extra={
        "recipe": "serl", "data": {"train": str(arith_dir / "seed.jsonl"), "require_answer": False},
        "rewards": [{"name": "majority_vote"}], "filter": {"max_attempts": 2},
        "train": {"steps": 2, "prompts_per_step": 4},
        "recipe_args": {"gen_prompts_per_round": 4, "gen_max_rounds": 2, "gen_max_new_tokens": 24,
                        "rouge_threshold": 0.99, "difficulty_bounds": [0.0, 1.0]}})
    done = launch_two(cfg)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = Path(cfg["logging"]["run_dir"])
    for step in (1, 2):
        records = [json.loads(line) for line in
                   (run_dir / "selfplay" / f"step-{step:06d}.jsonl").read_text().splitlines()]
        assert sum(r["kind"] == "trained" for r in records) == 4  # both ranks' 2 groups
        assert sum(r["kind"] == "generated" for r in records) >= 4  # both ranks' samples
    assert [r["step"] for r in _metrics(run_dir) if "reward/mean" in r] == [1, 2]


def test_self_judging_on_two_processes(make_config, launch_two):
    """SERL with 2 processes: judge samples are trained on every rank with the global token
    counts in their loss weights, and the run completes with finite metrics."""
    cfg = make_config("serl_judge2", extra={
        "recipe": "serl_judge", "recipe_args": {"judge_samples": 2, "judge_max_new_tokens": 6},
        "rewards": [], "data": {"require_answer": False},
        "train": {"steps": 2, "prompts_per_step": 4, "micro_batch_size": 4}})
    done = launch_two(cfg)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    step = [r for r in _metrics(Path(cfg["logging"]["run_dir"])) if "reward/mean" in r][-1]
    assert step["judge/alpha"] == pytest.approx(0.5) and "judge/reward_mean" in step
    assert all(v == v and abs(v) != float("inf") for v in step.values() if isinstance(v, float))


def test_a_launched_process_ends_with_its_code_and_its_output_flushed(tmp_path):
    """The CLI's way out of a multi-process launch (no interpreter teardown, see
    ``exit_launched_process``): buffered output still arrives and the code is kept, so a run
    stopped by a signal still reports 128 + the signal."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from selfrl.trainer.distributed import exit_launched_process\n"
            "print('done', end='')\n"
            "sys.stderr.write('warn')\n"
            "exit_launched_process(143)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout, out.stderr) == (143, "done", "warn")


def test_the_cli_exits_a_launched_process_without_teardown_only_when_launched(tmp_path, monkeypatch):
    """Called in-process (tests, notebooks) the CLI returns, even under a launcher's WORLD_SIZE;
    from the command line with peers it leaves through ``exit_launched_process``."""
    import subprocess
    import sys

    from selfrl import cli

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main(["data", "arith", "--output", str(tmp_path / "a"), "--n-train", "10"]) == 0
    env = {**os.environ, "WORLD_SIZE": "2"}
    script = ("import atexit, sys\n"
              "atexit.register(lambda: print('teardown ran'))\n"
              "from selfrl.cli import main\n"
              f"sys.argv = ['selfrl', 'data', 'arith', '--output', {str(tmp_path / 'b')!r},\n"
              "            '--n-train', '10']\n"
              "sys.exit(main())\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "teardown ran" not in out.stdout
    assert (tmp_path / "b" / "train.jsonl").exists()
    env["WORLD_SIZE"] = "1"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and "teardown ran" in out.stdout, out.stderr
