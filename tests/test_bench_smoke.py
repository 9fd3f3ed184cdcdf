"""Smoke test of ``benchmarks/bench_step.py``: both sides, one timed step on the tiny model."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_step.py"
POSITIVE = ("steps_per_s", "step_s_median", "rollout_s_mean", "update_s_mean", "generated_tokens_per_s",
            "trained_tokens_per_s", "flops_per_step", "gflops_per_s", "roofline_share", "peak_rss_mib")


@pytest.fixture(scope="module")
def bench():
    """The benchmark script as a module (``benchmarks`` is not an installed package)."""
    spec = importlib.util.spec_from_file_location("bench_step", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_step"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_step", None)


@pytest.mark.slow
def test_bench_step_writes_positive_numbers(bench, tiny_model, tmp_path):
    shape = bench.StepShape(prompts=2, generations=4, new_tokens=8, warmup=0, steps=1)
    out = tmp_path / "bench.json"
    bench.run([str(tiny_model)], shape, out, isolate=False, matmul_n=256, workdir=tmp_path / "work")

    result = json.loads(out.read_text())
    assert result["machine"]["cpu_count"] >= 1 and result["machine"]["trl"]
    assert result["matmul_peak"]["gflops"] > 0
    m = result["models"][str(tiny_model)]
    assert m["parameters"] > 0
    for side in ("selfrl", "trl"):
        s = m[side]["summary"]
        for key in POSITIVE:
            assert s[key] > 0, (side, key, s[key])
        assert 0 < s["generated_tokens_per_step"] <= shape.sequences * shape.new_tokens
        assert len(m[side]["steps"]) == shape.steps
        assert m[side]["settings"]["gradient_checkpointing"] is False
    # same prompts on both sides, in the same order
    assert m["selfrl"]["summary"]["prompt_tokens_per_step"] == m["trl"]["summary"]["prompt_tokens_per_step"]
    assert m["trl"]["settings"]["generation_batch_size"] == shape.sequences
    assert m["trl"]["settings"]["mixed_precision"] == "no"
    assert m["ratio"]["steps_per_s"] > 0
