"""The vLLM rollout engine for real (runs only where vLLM is installed: CI's ``.venv-vllm``).

Greedy parity with the HF engine on the embedded model, seeded sampling, weight sync with a
check that can fail (and does when the sync is skipped), a LoRA model's merged weights,
RLVR steps through the trainer with ``rollout.engine=vllm``, its refresh from a policy sharded
with FSDP over 2 processes, and evaluation through vLLM (``selfrl eval --engine vllm`` on a
benchmark and a suite, in-training evaluation) giving the HF engine's greedy answers.  One vLLM
engine is shared by the
module (~3 s to start on a CPU with a fixed 0.25 GiB KV cache); the trainer test builds its own.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("vllm")

from selfrl.cli import main  # noqa: E402
from selfrl.config.schema import RunConfig  # noqa: E402
from selfrl.data.arith import ArithGenerator, ArithSpec  # noqa: E402
from selfrl.eval.benchmarks import BENCHMARKS, load_benchmark  # noqa: E402
from selfrl.eval.evaluate import EvalSettings, evaluate, prompt_ids  # noqa: E402
from selfrl.models import embedded_model_path, load_causal_lm, load_tokenizer  # noqa: E402
from selfrl.prompts import PromptOptions  # noqa: E402
from selfrl.recipes import build_trainer  # noqa: E402
from selfrl.rollout.base import SamplingParams  # noqa: E402
from selfrl.rollout.hf import HFEngine  # noqa: E402
from selfrl.rollout.vllm import VLLMEngine, WeightSyncError  # noqa: E402
from selfrl.trainer.trainer import TrainingStopped  # noqa: E402

KV_CACHE_GIB = 0.25  # a fixed size: vLLM's CPU worker then skips its memory profiling (~20 s)
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "benchmarks"
SYNCED_GAP = 1e-3  # fp32 on both sides: measured gaps are ~1e-5


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny-arith")


@pytest.fixture(scope="module")
def engine(tokenizer) -> VLLMEngine:
    return VLLMEngine(embedded_model_path(), tokenizer, kv_cache_gib=KV_CACHE_GIB)


@pytest.fixture(scope="module")
def hf_model():
    return load_causal_lm("tiny-arith", device="cpu", dtype="fp32").eval()


@pytest.fixture(scope="module")
def prompts(tokenizer) -> list[list[int]]:
    gen = ArithGenerator(ArithSpec(), seed=123)
    return [prompt_ids(tokenizer, {"question": gen.sample().question}, "question") for _ in range(5)]


@pytest.fixture
def restore(engine, hf_model):
    """Give the shared engine the embedded model's weights back after a test that changed them."""
    yield
    engine.sync_weights(hf_model)


def test_greedy_matches_the_hf_engine(engine, hf_model, tokenizer, prompts):
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=48)
    ours = [g[0] for g in engine.generate(prompts, params)]
    ref = [g[0] for g in HFEngine(hf_model, tokenizer).generate(prompts, params)]
    for a, b in zip(ours, ref):
        assert a.token_ids == b.token_ids
        assert a.finish_reason == b.finish_reason and a.text == b.text and a.prompt_ids == b.prompt_ids
        assert len(a.logprobs) == len(a.token_ids)
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-3
    stopped = [c for c in ours if c.finish_reason == "stop"]
    assert stopped, "the embedded model should finish some solutions within 48 tokens"
    for c in stopped:  # EOS is kept (it is trained), exactly once, at the end
        assert c.token_ids[-1] in engine.eos_ids and not set(c.token_ids[:-1]) & set(engine.eos_ids)


def test_sampling_is_seeded_and_shaped(engine, prompts):
    params = SamplingParams(n=3, temperature=1.0, top_p=0.9, top_k=20, presence_penalty=0.5,
                            max_new_tokens=12)
    a = engine.generate(prompts[:2], params, torch.Generator().manual_seed(7))
    b = engine.generate(prompts[:2], params, torch.Generator().manual_seed(7))
    assert [len(g) for g in a] == [3, 3]
    assert [[c.token_ids for c in g] for g in a] == [[c.token_ids for c in g] for g in b]
    assert len({tuple(c.token_ids) for g in a for c in g}) > 1  # the n samples differ
    for group, prompt in zip(a, prompts):
        for c in group:
            assert c.prompt_ids == prompt and 1 <= len(c.token_ids) <= 12
            assert len(c.logprobs) == len(c.token_ids) and all(lp <= 0 for lp in c.logprobs)
            assert c.finish_reason in ("stop", "length")


def test_sync_moves_vllm_to_the_trainer_weights_and_the_check_catches_a_missed_sync(
        engine, hf_model, prompts, restore):
    gen = torch.Generator().manual_seed(0)
    sampled = engine.generate(prompts[:1], SamplingParams(max_new_tokens=16), gen)
    probe = prompts[0] + sampled[0][0].token_ids
    assert engine.verify_sync(hf_model, probe, tol=SYNCED_GAP) < SYNCED_GAP

    moved = copy.deepcopy(hf_model)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        for p in moved.parameters():
            p.add_(0.05 * p.std() * torch.randn(p.shape, generator=gen))
    with pytest.raises(WeightSyncError) as err:  # not synced yet: vLLM still has the old weights
        engine.verify_sync(moved, probe, tol=SYNCED_GAP)
    assert err.value.gap > 0.05

    engine.sync_weights(moved)
    assert engine.verify_sync(moved, probe, tol=SYNCED_GAP) < SYNCED_GAP
    greedy = SamplingParams(temperature=0.0, max_new_tokens=24)
    assert [g[0].token_ids for g in engine.generate(prompts, greedy)] == \
        [g[0].token_ids for g in HFEngine(moved, engine.tokenizer).generate(prompts, greedy)]


def test_lora_model_syncs_its_merged_weights(engine, hf_model, prompts, restore):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear")
    model = get_peft_model(copy.deepcopy(hf_model), lora)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(1))
    model.eval()
    probe = prompts[1] + [5, 6, 7, 8]
    with pytest.raises(WeightSyncError):
        engine.verify_sync(model, probe, tol=SYNCED_GAP)
    engine.sync_weights(model)
    assert engine.verify_sync(model, probe, tol=SYNCED_GAP) < SYNCED_GAP


def test_a_vllm_without_in_place_reload_is_named(engine, monkeypatch):
    monkeypatch.setattr(engine.llm, "collective_rpc", lambda method, *a, **k: [False])
    with pytest.raises(RuntimeError, match=f"vLLM {engine.version}: .*reload_weights"):
        engine._check_reload_api()


# Before the tests that start engines of their own: shutting one down tears down vLLM's
# process-wide parallel groups, which the module's shared `engine` needs.
def test_evaluation_through_vllm_gives_the_hf_engines_greedy_answers(engine, hf_model, tokenizer):
    rows = load_benchmark("gsm8k", EXAMPLES / "gsm8k.jsonl")
    rows += load_benchmark("math500", EXAMPLES / "math500.jsonl")
    fmt = PromptOptions().prompt_format(BENCHMARKS.get("gsm8k").prompt)
    greedy = EvalSettings(n=0, max_new_tokens=48)
    ours, our_samples = evaluate(None, tokenizer, rows, greedy, prompt_format=fmt, engine=engine)
    ref, ref_samples = evaluate(hf_model, tokenizer, rows, greedy, prompt_format=fmt)
    assert [s["greedy"] for s in our_samples] == [s["greedy"] for s in ref_samples]
    assert ours == ref
    sampled, samples = evaluate(None, tokenizer, rows[:2], EvalSettings(n=4, ks=(1, 4), max_new_tokens=16),
                                prompt_format=fmt, engine=engine)
    assert all(len(s["samples"]) == 4 for s in samples) and {"avg@4", "maj@4", "pass@4"} <= set(sampled)


def test_rlvr_steps_with_the_vllm_engine(make_config, tmp_path):
    cfg = make_config("vllm-run", extra={
        "model": {"path": "tiny-arith"},
        "rollout": {"engine": "vllm", "vllm_kv_cache_gib": KV_CACHE_GIB, "verify_sync_every": 1,
                    "max_new_tokens": 16},
        "algorithm": {"tis_cap": 2.0},
        # every sequence through the update, so that every step measures the TIS weights (a step
        # whose groups all have equal rewards would otherwise run no sequence and log none)
        "train": {"steps": 3, "lr": 1e-3, "skip_zero_advantage": False},
    })
    trainer = build_trainer(RunConfig.model_validate(cfg))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.fit()

    log = Path(cfg["logging"]["run_dir"], "metrics.jsonl")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    steps = [r for r in rows if "rollout/sync_logprob_gap" in r]
    assert len(steps) == 3 and trainer.engine.syncs == 1 + 3  # at start, then after every update
    assert all(r["rollout/sync_logprob_gap"] < SYNCED_GAP for r in steps)
    assert all(0.5 < r["policy/tis_weight_mean"] < 1.5 for r in steps)
    assert any(not torch.equal(p.detach(), before[n]) for n, p in trainer.model.named_parameters())

    # the check stops the run when a sync did not happen
    trainer.engine.sync_weights = lambda model: None
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(0.05 * p.std())
    probe = SimpleNamespace(prompt_ids=[[1, 2, 3, 4]], completion_ids=[[5, 6, 7]])
    with pytest.raises(TrainingStopped, match="rollout.sync_tolerance"):
        trainer._sync_engine(probe)


def _two_process_vllm_run(make_config, launch_two, name: str, sharding: str) -> Path:
    """A 2-step run on 2 processes with vLLM rollouts and the sync check on every step; returns
    its run folder after checking that both sync gaps were small."""
    cfg = make_config(name, extra={
        "model": {"path": "tiny-arith"},
        "rollout": {"engine": "vllm", "vllm_kv_cache_gib": KV_CACHE_GIB, "verify_sync_every": 1,
                    "max_new_tokens": 16},
        "train": {"steps": 2, "prompts_per_step": 4, "lr": 1e-3, "sharding": sharding},
        "checkpoint": {"every": 2},
    })
    done = launch_two(cfg, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = Path(cfg["logging"]["run_dir"])
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    gaps = [r["rollout/sync_logprob_gap"] for r in rows if "rollout/sync_logprob_gap" in r]
    assert len(gaps) == 2 and max(gaps) < SYNCED_GAP
    return run_dir


def test_vllm_rollouts_on_two_processes(make_config, launch_two):
    """Data parallel with vLLM: each rank starts its own engine and refreshes it after every
    update; with the sync check on every step a rank whose engine fell behind would stop the
    run, so a clean exit means both ranks sampled from their current weights."""
    run_dir = _two_process_vllm_run(make_config, launch_two, "vllm-two", "none")
    assert (run_dir / "checkpoints" / "step-000002" / "model" / "model.safetensors").is_file()


def test_vllm_is_refreshed_from_a_sharded_policy(make_config, launch_two):
    """FSDP on 2 processes with vLLM rollouts: each rank's engine is refreshed from the sharded
    policy gathered one layer at a time (``selfrl.rollout.weights.full_weights``), and the sync
    check on every step, a forward pass of the sharded policy on both ranks, passes."""
    run_dir = _two_process_vllm_run(make_config, launch_two, "vllm-fsdp", "fsdp")
    final = run_dir / "checkpoints" / "step-000002"
    assert (final / "shards").is_dir() and (final / "model" / "model.safetensors").is_file()


def test_bench_step_compares_hf_and_vllm_generation(tmp_path):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_step.py"
    spec = importlib.util.spec_from_file_location("bench_step", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_step"] = bench  # dataclasses look their module up here
    try:
        spec.loader.exec_module(bench)
        shape = bench.StepShape(prompts=2, generations=2, new_tokens=8, warmup=0, steps=1)
        train = tmp_path / "prompts.jsonl"
        bench.write_prompts(train, shape.rows_needed)
        g = bench.bench_generation(embedded_model_path(), train, shape, isolate=False)
    finally:
        sys.modules.pop("bench_step", None)
    for engine in ("hf", "vllm"):
        assert g[engine]["tokens_per_s"] > 0 and 0 < g[engine]["generated_tokens_per_round"] <= 2 * 2 * 8
    assert g["vllm_over_hf_tokens_per_s"] > 0


# --- evaluation through vLLM (issue 23) ------------------------------------------------------------

def _greedy_texts(folder: Path) -> list[str]:
    return [json.loads(line)["greedy"] for line in (folder / "samples.jsonl").read_text().splitlines()]


def test_selfrl_eval_engine_vllm_matches_hf_on_a_benchmark_and_a_suite(tmp_path):
    quick = ["eval", "--model", "tiny-arith", "--n", "0", "--max-new-tokens", "32", "--dtype", "fp32"]
    vllm = quick + ["--engine", "vllm", "--vllm-kv-cache-gib", str(KV_CACHE_GIB)]
    gsm8k = ["--benchmark", "gsm8k", "--data", str(EXAMPLES / "gsm8k.jsonl")]
    assert main(vllm + gsm8k + ["--output", str(tmp_path / "v")]) == 0
    assert main(quick + gsm8k + ["--output", str(tmp_path / "h")]) == 0
    assert _greedy_texts(tmp_path / "v") == _greedy_texts(tmp_path / "h")

    suite = ["--suite", str(EXAMPLES / "suite.yaml")]
    assert main(vllm + suite + ["--output", str(tmp_path / "vs")]) == 0
    assert main(quick + suite + ["--output", str(tmp_path / "hs")]) == 0
    names = [r["name"] for r in json.loads((tmp_path / "hs" / "results.json").read_text())["benchmarks"]]
    assert "mmlu_pro" in names
    for name in names:
        assert _greedy_texts(tmp_path / "vs" / name) == _greedy_texts(tmp_path / "hs" / name), name
    assert (tmp_path / "vs" / "results.md").read_text() == (tmp_path / "hs" / "results.md").read_text()


def test_in_training_evaluation_samples_with_the_vllm_engine(make_config):
    cfg = make_config("vllm-eval", extra={
        "model": {"path": "tiny-arith"},
        "rollout": {"engine": "vllm", "vllm_kv_cache_gib": KV_CACHE_GIB},
        "eval": {"limit": 6, "max_new_tokens": 24}})
    trainer = build_trainer(RunConfig.model_validate(cfg))
    calls = []
    generate = trainer.engine.generate
    trainer.engine.generate = lambda *a, **k: calls.append(len(a[0])) or generate(*a, **k)
    eval_file = Path(cfg["logging"]["run_dir"]) / "eval" / "step-000000.jsonl"
    with_vllm = trainer.evaluate()
    vllm_samples = eval_file.read_text()
    assert calls == [6]  # the greedy pass went through vLLM
    trainer.engine = HFEngine(trainer.model, trainer.tokenizer)
    assert trainer.evaluate() == with_vllm and eval_file.read_text() == vllm_samples
