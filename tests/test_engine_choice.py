"""``rollout.engine`` without vLLM installed: clear errors, light imports, and the LoRA merge
that the vLLM engine's weight sync relies on (the vLLM engine itself is tested in test_vllm.py)."""

from __future__ import annotations

import copy
import importlib.util
import subprocess
import sys

import pytest
import torch

from selfrl.config.schema import RunConfig
from selfrl.recipes import build_trainer

HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here")
def test_vllm_engine_without_vllm_names_the_install_command(make_config):
    cfg = make_config(extra={"rollout": {"engine": "vllm"}})
    with pytest.raises(ImportError, match=r"pip install 'selfrl\[vllm\]'"):
        build_trainer(RunConfig.model_validate(cfg))


def test_the_vllm_module_imports_without_importing_vllm():
    code = ("import sys, selfrl, selfrl.rollout, selfrl.rollout.vllm, selfrl.trainer.trainer; "
            "print('vllm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_verify_sync_needs_the_vllm_engine(make_config):
    with pytest.raises(ValueError, match="rollout.engine=vllm"):
        RunConfig.model_validate(make_config(extra={"rollout": {"verify_sync_every": 1}}))


def test_merged_lora_weights_equal_merge_and_unload_and_leave_the_model_alone(tiny_model):
    from peft import LoraConfig, get_peft_model

    from selfrl.models import load_causal_lm
    from selfrl.rollout.weights import full_weights

    base = load_causal_lm(str(tiny_model), device="cpu", dtype="fp32")
    model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules="all-linear"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1, generator=torch.Generator().manual_seed(0))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    merged = dict(full_weights(model))
    expected = copy.deepcopy(model).merge_and_unload().state_dict()
    assert set(merged) == set(expected)
    for name, t in expected.items():
        assert torch.allclose(merged[name], t, atol=1e-6), name
    assert any(not torch.equal(merged[n], base_t) for n, base_t in load_causal_lm(
        str(tiny_model), device="cpu", dtype="fp32").state_dict().items())  # the adapters are in
    assert all(torch.equal(p.detach(), before[n]) for n, p in model.named_parameters())
