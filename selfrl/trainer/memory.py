"""Per-device memory of a training run, estimated from the model's shape: ``selfrl plan``.

Every figure is in bytes per device and follows what the trainer allocates:

* **weights, gradients, optimizer**: fp32 master weights, fp32 gradients and AdamW's two fp32
  moments (16 bytes per trained parameter, 4 per frozen one); FSDP divides them by the number of
  devices, and CPU offload moves them off the device.
* **working weights**: the compute-dtype copies the forward pass uses: FSDP gathers the root
  (embeddings, output layer) for the whole forward and backward and two decoder layers at a time
  (the current one and the prefetched next) plus one layer's unsharded gradients; unsharded with
  bf16 autocast, the cast cache holds a bf16 copy of every weight.
* **activations**: what autograd saves per token and decoder layer in a Hugging Face Llama-style
  layer (two RMSNorms that save an fp32 input, q/k/v, the key/value heads repeated to every head
  as SDPA with a padding mask needs them, the attention output and its contiguous copy, four
  MLP tensors), for one micro-batch; with the shared-prompt layout each distinct prompt once and
  the completions' attention keys spanning prompt + completion.  With gradient checkpointing,
  each layer keeps its input only and one layer is recomputed at a time.  Backward adds about one
  layer's worth of activation gradients.
* **output layer**: chunked (``train.chunked_output_layer``): a few hundred rows of logits at a
  time plus one fp32 (vocabulary x hidden) gradient buffer; plain: (batch, completion, vocabulary)
  logits in fp32, their log-softmax, and their gradient.
* **sampling** (HF engine): the gathered weights in the compute dtype (FSDP), the key/value cache
  of ``rollout.batch_size`` sequences and the last position's logits; the vLLM engine instead
  takes ``rollout.vllm_gpu_memory_utilization`` of the device, which must hold vLLM's own copy of
  the weights and some key/value cache (1.2 x the weights).

The estimate is checked against peak memory measured on a CPU for small models
(``tests/test_plan.py``; ``benchmarks/bench_fsdp_gpu.py`` measures it on a GPU).  Only the
standard library is imported: ``benchmarks/bench_fsdp_gpu.py`` uses this module where pydantic is
not installed.

>>> shape = KNOWN_SHAPES["qwen2.5-7b"]
>>> round(shape.params / 1e9, 2)
7.62
>>> plan = estimate(shape, RunShape(micro_batch=4, group_size=8, prompt_len=256, completion_len=1024),
...                 Layout("fsdp", devices=8), device_gib=80)
>>> plan.fits, round(plan.parts["optimizer"] / 2**30, 1)
(True, 7.1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

GIB = 2**30
# Rows of logits the chunked output layer computes at once (selfrl.trainer.lm_head.CHUNK_NUMBERS).
CHUNK_NUMBERS = 1 << 23
# Per device, beyond what tensors take: CUDA context, NCCL buffers, allocator fragmentation.
OVERHEAD_BYTES = 2 * GIB
FRAGMENTATION = 0.05
# vLLM's share must hold its copy of the weights and then some KV cache.
VLLM_HEADROOM = 1.2


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a decoder-only transformer (Llama / Qwen2 / Qwen3 / Mistral layout)."""

    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    head_dim: int = 0  # 0: hidden / heads
    tied: bool = False

    @classmethod
    def from_hf_config(cls, cfg: dict) -> ModelShape:
        """From a Hugging Face ``config.json`` (as a dict).

        >>> ModelShape.from_hf_config({"vocab_size": 10, "hidden_size": 4, "num_hidden_layers": 1,
        ...     "num_attention_heads": 2, "intermediate_size": 8}).params
        252
        """
        heads = cfg["num_attention_heads"]
        return cls(vocab=cfg["vocab_size"], hidden=cfg["hidden_size"], layers=cfg["num_hidden_layers"],
                   heads=heads, kv_heads=cfg.get("num_key_value_heads") or heads,
                   intermediate=cfg["intermediate_size"], head_dim=cfg.get("head_dim") or 0,
                   tied=bool(cfg.get("tie_word_embeddings", False)))

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def q_width(self) -> int:
        return self.heads * self.hd

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.hd

    @property
    def layer_params(self) -> int:
        """One decoder layer: q, k, v, o, the three MLP matrices and two norms (biases ignored)."""
        h = self.hidden
        return h * (self.q_width + 2 * self.kv_width) + self.q_width * h + 3 * h * self.intermediate + 2 * h

    @property
    def root_params(self) -> int:
        """Embeddings, the final norm and (untied) the output layer."""
        return self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden

    @property
    def params(self) -> int:
        return self.layers * self.layer_params + self.root_params

    def lora_params(self, rank: int) -> int:
        """Trainable parameters of a rank-``rank`` adapter on every linear layer of every decoder layer."""
        h, i = self.hidden, self.intermediate
        shapes = [(h, self.q_width), (h, self.kv_width), (h, self.kv_width), (self.q_width, h),
                  (h, i), (h, i), (i, h)]
        return self.layers * sum(rank * (a + b) for a, b in shapes)


# Shapes of the models the seeds train, for plans without a local config.json (public configs).
KNOWN_SHAPES: dict[str, ModelShape] = {
    "qwen2.5-0.5b": ModelShape(151936, 896, 24, 14, 2, 4864, tied=True),
    "llama-3.2-3b": ModelShape(128256, 3072, 28, 24, 8, 8192, tied=True),
    "qwen2.5-7b": ModelShape(152064, 3584, 28, 28, 4, 18944),
    "llama-3.1-8b": ModelShape(128256, 4096, 32, 32, 8, 14336),
    "qwen3-8b": ModelShape(151936, 4096, 36, 32, 8, 12288, head_dim=128),
}
HUB_NAMES = {"Qwen/Qwen2.5-0.5B-Instruct": "qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B": "qwen2.5-0.5b",
             "meta-llama/Llama-3.2-3B-Instruct": "llama-3.2-3b", "meta-llama/Llama-3.2-3B": "llama-3.2-3b",
             "Qwen/Qwen2.5-7B-Instruct": "qwen2.5-7b", "Qwen/Qwen2.5-7B": "qwen2.5-7b",
             "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b", "meta-llama/Llama-3.1-8B": "llama-3.1-8b",
             "Qwen/Qwen3-8B": "qwen3-8b", "Qwen/Qwen3-8B-Base": "qwen3-8b"}


def known_shape(name: str) -> ModelShape | None:
    """The shape of a model named in :data:`KNOWN_SHAPES` or by one of its hub ids (else None).

    >>> known_shape("Qwen/Qwen3-8B").layers
    36
    """
    return KNOWN_SHAPES.get(HUB_NAMES.get(name, name.lower()))


@dataclass(frozen=True)
class RunShape:
    """What one update and one rollout hold at once (the config's batch and options)."""

    micro_batch: int                 # sequences per forward/backward (train.micro_batch_size)
    group_size: int                  # completions per prompt (rollout.n)
    prompt_len: int                  # longest prompt, tokens
    completion_len: int              # rollout.max_new_tokens
    rollout_batch: int = 64          # sequences decoded together (rollout.batch_size)
    shared_prompts: bool = True      # train.shared_prompt_forward (off under checkpointing)
    gradient_checkpointing: bool = False
    chunked_output_layer: bool = True
    compute_bytes: int = 2           # 2: bf16/fp16 compute (GPUs), 4: fp32
    lora_rank: int | None = None     # LoRA on every linear layer (the base frozen)
    reference: bool = False          # a reference model (a KL term without LoRA)
    critic: bool = False             # PPO's value model (gae)
    engine: str = "hf"               # rollout.engine
    vllm_share: float = 0.3          # rollout.vllm_gpu_memory_utilization


@dataclass(frozen=True)
class Layout:
    """How the models are placed: ``none`` (a whole replica per device) or ``fsdp`` over ``devices``."""

    sharding: str = "none"
    devices: int = 1
    cpu_offload: bool = False

    @property
    def label(self) -> str:
        return "fsdp + cpu offload" if self.cpu_offload else self.sharding


@dataclass
class MemoryPlan:
    """Per-device bytes by part and by phase, whether the peak fits, and what to change if not."""

    parts: dict[str, float]
    phases: dict[str, float]
    available: float
    vllm_needs: float = 0.0  # vLLM's own copy of the weights and a little KV cache
    advice: list[str] = field(default_factory=list)

    @property
    def peak(self) -> float:
        return max(self.phases.values())

    @property
    def fits(self) -> bool:
        return self.peak <= self.available and self.parts["vLLM's share"] >= self.vllm_needs


def activation_bytes(model: ModelShape, run: RunShape, checkpointing: bool | None = None) -> float:
    """What one micro-batch's activations take at most: those saved for backward, plus one
    layer's worth (its gradients in backward; with checkpointing, the layer being recomputed)."""
    checkpointing = run.gradient_checkpointing if checkpointing is None else checkpointing
    return _saved_activations(model, run, checkpointing) + _one_layer(model, run, checkpointing)


def _tokens(run: RunShape, checkpointing: bool) -> tuple[int, bool]:
    """Tokens one micro-batch runs through the model, and whether prompts are shared."""
    shared = run.shared_prompts and not checkpointing and run.group_size > 1
    B, P, C = run.micro_batch, run.prompt_len, run.completion_len
    return ((math.ceil(B / run.group_size) * P + B * C) if shared else B * (P + C)), shared


def _saved_activations(model: ModelShape, run: RunShape, checkpointing: bool) -> float:
    c = run.compute_bytes
    tokens, shared = _tokens(run, checkpointing)
    if checkpointing:  # each layer's input only
        return tokens * model.layers * model.hidden * c
    saved = tokens * _layer_bytes_per_token(model, c) * model.layers
    if shared:  # the completions' keys and values span the prompt too (repeated to every head)
        saved += run.micro_batch * run.prompt_len * 2 * model.q_width * c * model.layers
    return saved


def _one_layer(model: ModelShape, run: RunShape, checkpointing: bool) -> float:
    return _tokens(run, checkpointing)[0] * _layer_bytes_per_token(model, run.compute_bytes)


def _layer_bytes_per_token(model: ModelShape, c: int) -> float:
    """What one decoder layer saves for backward per token (see the module docstring)."""
    h, q, i = model.hidden, model.q_width, model.intermediate
    norms = 2 * (4 * h + 2 * c * h)  # fp32 input, normalised, weighted output
    attention = c * (q + 2 * q + q + q)  # q, repeated k and v, SDPA output, its contiguous copy
    return norms + attention + 4 * c * i


def output_layer_bytes(model: ModelShape, run: RunShape) -> float:
    """The output layer's working memory in the update (chunked or plain logits)."""
    V, h = model.vocab, model.hidden
    completion_tokens = run.micro_batch * run.completion_len
    if run.chunked_output_layer:  # a chunk of logits and its gradient; the (V, h) fp32 gradient buffer
        rows = min(completion_tokens, max(1, CHUNK_NUMBERS // V))
        return 2 * rows * V * 4 + V * h * 4 + completion_tokens * (h * run.compute_bytes + 8)
    return completion_tokens * V * (run.compute_bytes + 4 + 4 + 4)  # logits, fp32, log-softmax, grad


def _training_state(model: ModelShape, run: RunShape, layout: Layout) -> dict[str, float]:
    """Weights, gradients and optimizer state of the policy, the reference model and the critic."""
    n = layout.devices if layout.sharding == "fsdp" else 1
    on_device = 0.0 if layout.cpu_offload else 1.0
    P = model.params
    trained = model.lora_params(run.lora_rank) if run.lora_rank else P
    frozen = P if run.lora_rank else 0
    critic = model.params - (0 if model.tied else model.vocab * model.hidden) if run.critic else 0
    return {
        "weights": on_device * (4 * (trained + frozen)) / n,
        "gradients": on_device * 4 * trained / n,
        "optimizer": on_device * 8 * trained / n,
        "reference model": on_device * 4 * P / n if run.reference and not run.lora_rank else 0.0,
        "critic": on_device * 16 * critic / n,
    }


def _working_weights(model: ModelShape, run: RunShape, layout: Layout) -> float:
    """The compute-dtype copies the update's forward and backward use (see the module docstring)."""
    c = run.compute_bytes
    if layout.sharding == "fsdp":
        return c * model.root_params + 2 * c * model.layer_params + (c + 4) * model.layer_params
    return c * model.params if c < 4 else 0.0  # autocast's cache of bf16 weights


def _sampling_bytes(model: ModelShape, run: RunShape, layout: Layout) -> float:
    """The HF engine's rollout: gathered weights, key/value cache, logits (0 with vLLM)."""
    if run.engine != "hf":
        return 0.0
    c = run.compute_bytes
    gathered = c * model.params if layout.sharding == "fsdp" or c < 4 else 0.0
    seq = run.prompt_len + run.completion_len
    kv_cache = run.rollout_batch * seq * model.layers * 2 * model.kv_width * c
    return gathered + kv_cache + 3 * run.rollout_batch * model.vocab * 4


def estimate(model: ModelShape, run: RunShape, layout: Layout, device_gib: float) -> MemoryPlan:
    """The per-device memory plan of ``run`` on devices of ``device_gib`` GiB laid out as ``layout``,
    with :func:`advice` when it does not fit."""
    plan = _plan(model, run, layout, device_gib)
    plan.advice = advice(model, run, layout, device_gib, plan)
    return plan


def _plan(model: ModelShape, run: RunShape, layout: Layout, device_gib: float) -> MemoryPlan:
    state = _training_state(model, run, layout)
    static = sum(state.values())
    parts = {**state,
             "working weights": _working_weights(model, run, layout),
             "activations (checkpointing off)": activation_bytes(model, run, checkpointing=False),
             "activations (checkpointing on)": activation_bytes(model, run, checkpointing=True),
             "output layer": output_layer_bytes(model, run),
             "sampling (HF engine)": _sampling_bytes(model, run, layout),
             "vLLM's share": run.vllm_share * device_gib * GIB if run.engine == "vllm" else 0.0}
    # The output layer's buffers (forward, and the start of backward) and one layer's activations
    # beyond those saved (its gradients, or its recomputation) are not alive at the same time.
    ckpt = run.gradient_checkpointing
    update = static + parts["working weights"] + _saved_activations(model, run, ckpt) \
        + max(_one_layer(model, run, ckpt), parts["output layer"])
    sampling = static + parts["sampling (HF engine)"]
    phases = {"update": update * (1 + FRAGMENTATION), "sampling": sampling * (1 + FRAGMENTATION)}
    available = device_gib * GIB - parts["vLLM's share"] - OVERHEAD_BYTES
    vllm_needs = VLLM_HEADROOM * run.compute_bytes * model.params if run.engine == "vllm" else 0.0
    return MemoryPlan(parts, phases, available, vllm_needs)


def advice(model: ModelShape, run: RunShape, layout: Layout, device_gib: float,
           plan: MemoryPlan) -> list[str]:
    """What to change, cheapest first, when ``plan`` does not fit: each change that fits on its own."""
    if plan.fits:
        return []
    share = min(0.9, math.ceil(100 * plan.vllm_needs / (device_gib * GIB)) / 100)
    tries = [(f"rollout.vllm_gpu_memory_utilization={share:g}", run, layout, {"vllm_share": share}),
             ("model.gradient_checkpointing=true", run, layout, {"gradient_checkpointing": True}),
             ("train.sharding=fsdp", run, replace(layout, sharding="fsdp"), {}),
             ("train.sharding=fsdp train.cpu_offload=true", run,
              replace(layout, sharding="fsdp", cpu_offload=True), {}),
             (f"train.micro_batch_size={max(1, run.micro_batch // 2)}", run, layout,
              {"micro_batch": max(1, run.micro_batch // 2)}),
             (f"rollout.batch_size={max(1, run.rollout_batch // 2)}", run, layout,
              {"rollout_batch": max(1, run.rollout_batch // 2)}),
             ("model.lora.r=16 (LoRA)", run, layout, {"lora_rank": 16})]
    out = []
    for label, r, lay, changes in tries:
        if lay == layout and all(getattr(r, k) == v for k, v in changes.items()):
            continue  # already so
        trial = _plan(model, replace(r, **changes), lay, device_gib)
        if trial.fits:
            out.append(f"{label}: peak {trial.peak / GIB:.1f} GiB of {trial.available / GIB:.1f}")
    if not out:
        out.append("no single change fits: combine them, or use more or larger devices")
    return out
