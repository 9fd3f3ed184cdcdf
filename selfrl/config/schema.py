"""The one typed schema of a training run.  Every option's help text is written here, once.

Load it with :func:`selfrl.config.load_config` (YAML + dotted overrides)::

    >>> from selfrl.config import load_config
    >>> cfg = load_config(RunConfig, None, ["rollout.n=4", "train.steps=2"])
    >>> cfg.rollout.n, cfg.algorithm.advantage
    (4, 'grpo')
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.fields import FieldInfo

from selfrl.config.loader import ConfigError, StrictModel, validate_section
from selfrl.eval.evaluate import EvalSettings
from selfrl.prompts import PromptOptions


class LoraConfig(StrictModel):
    r: int = Field(16, gt=0, description="LoRA rank")
    alpha: int = Field(32, gt=0, description="LoRA scaling numerator (alpha / r scales the update)")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA input")
    target_modules: list[str] | str = Field("all-linear", description="modules to adapt (PEFT syntax)")


class ModelConfig(StrictModel):
    path: str = Field("tiny-arith", description="local model folder, 'tiny-arith' (embedded) or a hub name")
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on GPUs and on CPUs with native bf16, else fp32")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    lora: LoraConfig | None = Field(None, description="train a LoRA adapter instead of all weights")
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward")


class DataConfig(PromptOptions):
    """Where the prompts come from; the prompt options (``prompt_template``, ``system_prompt``,
    ``chat_template``, ``chat_template_file``, ``chat_template_kwargs``, ``max_prompt_tokens``,
    ``long_prompts``) are :class:`selfrl.prompts.PromptOptions`, shared with ``selfrl eval``."""

    train: str = Field("data/arith/train.jsonl", description="training prompts (JSONL/Parquet/dataset)")
    eval: str | None = Field("data/arith/test.jsonl", description="held-out set for periodic evaluation")
    benchmark: str | None = Field(
        None, description="read data.train and data.eval in a benchmark's published schema (gsm8k, math500, "
                          "aime, mmlu_pro, ...; see selfrl eval --benchmark): its gold answers, its prompt "
                          "unless prompt_template is set, and its answer checking in evaluation")
    train_split: str = Field(
        "train", description="data.train's split when it is a dataset (a folder or a hub name)")
    eval_split: str = Field(
        "test", description="data.eval's split when it is a dataset (a folder or a hub name)")
    subset: str | None = Field(
        None, description="a dataset's config name (e.g. 'main' for openai/gsm8k) or, for one without named "
                          "configs, a folder inside it (load_dataset's data_dir)")
    question_field: str = Field("question", description="field holding the question text")
    answer_field: str = Field("answer", description="field holding the gold answer (if any)")
    require_answer: bool = Field(True, description="fail early when a training row lacks the answer")
    shuffle: bool = Field(True, description="reshuffle prompts every epoch (seeded)")
    arith_if_missing: bool = Field(
        True, description="write the arith task's files when data.train is under data/arith and absent")

    @field_validator("benchmark")
    @classmethod
    def _known_benchmark(cls, name: str | None) -> str | None:
        from selfrl.eval.benchmarks import BENCHMARKS

        if name is not None and name not in BENCHMARKS:
            try:
                BENCHMARKS.get(name)
            except KeyError as e:  # the registry's message: the name, close matches, the valid names
                raise ValueError(str(e)) from None
        return name

    @model_validator(mode="after")
    def _check_benchmark_fields(self) -> DataConfig:
        if self.benchmark is not None and (self.question_field, self.answer_field) != ("question", "answer"):
            raise ValueError(f"data.benchmark={self.benchmark} reads each row's question and gold answer "
                             f"from its own schema into 'question' and 'answer': leave question_field and "
                             f"answer_field unset")
        return self


class RolloutConfig(StrictModel):
    engine: Literal["hf", "vllm"] = Field(
        "hf", description="rollout engine: hf (the trainer's own model) or vllm (needs pip install "
                          "'selfrl[vllm]'; weights are synced after every update)")
    n: int = Field(8, ge=1, description="completions per prompt (group size)")
    temperature: float = Field(1.0, ge=0, description="sampling temperature (0: greedy)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass")
    top_k: int = Field(0, ge=0, description="top-k sampling (0: off)")
    presence_penalty: float = Field(0.0, description="penalty on tokens already generated")
    max_new_tokens: int = Field(128, ge=1, description="most tokens per completion")
    max_new_tokens_min: int | None = Field(
        None, ge=1, description="draw each step's token budget from [this, max_new_tokens] "
                                "(the StackExchange PPO's length sampler); None: always max_new_tokens")
    batch_size: int = Field(64, ge=1, description="sequences decoded together")
    truncated_reward: float | None = Field(
        None, description="the reward of a completion cut at max_new_tokens, replacing what the rewards gave "
                          "it (DAPO's overlong punishment in its simplest form: 0 stops a truncated ramble "
                          "from earning the accuracy reward with a number it happened to end on); None: "
                          "scored as written")
    seed_per_group: bool = Field(
        False, description="sample each prompt's group with its own generator seeded from (train.seed, step, "
                           "attempt, global group index): the completions then do not depend on the number "
                           "of processes (slower: decodes one group at a time)")
    vllm_gpu_memory_utilization: float = Field(
        0.3, gt=0, le=1, description="vllm: share of GPU memory for weights and KV cache (on a CPU, "
                                     "VLLM_CPU_KVCACHE_SPACE sets the KV cache in GiB instead)")
    vllm_kv_cache_gib: float | None = Field(
        None, gt=0, description="vllm: a fixed KV cache size in GiB (None: sized from "
                                "vllm_gpu_memory_utilization; on a CPU a small fixed size starts faster)")
    verify_sync_every: int = Field(
        0, ge=0, description="vllm: every N-th weight sync, compare vLLM's logprobs of a probe sequence "
                             "with the trainer's and stop past sync_tolerance (0: never)")
    sync_tolerance: float = Field(
        1e-3, gt=0, description="vllm: largest per-token logprob gap accepted by the sync check")


class RewardSpec(StrictModel):
    name: str = Field(description="registered reward name (see selfrl.rewards.available_rewards)")
    weight: float = Field(1.0, description="weight in the weighted sum")
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the reward")


class AlgorithmConfig(StrictModel):
    advantage: str = Field("grpo", description="advantage estimator (grpo, dr_grpo, rloo, reinforce_pp, "
                                                "reinforce_pp_baseline, gae)")
    norm_by_std: bool = Field(True, description="grpo: divide by the group std")
    gamma: float = Field(1.0, ge=0, le=1, description="discount (reinforce_pp, gae)")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda")
    policy_loss: str = Field("ppo_clip", description="policy loss (ppo_clip, gspo)")
    clip_low: float = Field(0.2, ge=0, description="PPO clip epsilon below 1")
    clip_high: float = Field(0.2, ge=0, description="PPO clip epsilon above 1 (clip-higher when larger)")
    dual_clip: float | None = Field(None, gt=1, description="dual-clip constant c (None: off)")
    loss_agg: str = Field("token-mean", description="token-mean, seq-mean-token-mean, seq-mean-token-sum, "
                                                    "seq-mean-token-sum-norm (Dr.GRPO)")
    kl_coef: float = Field(0.0, ge=0, description="KL weight (0: no reference model at all)")
    kl_estimator: str = Field("k3", description="KL estimator (k1, k2, k3)")
    kl_in_reward: bool = Field(False, description="fold the KL into the reward (REINFORCE++) "
                                                  "instead of adding it to the loss")
    ppo_epochs: int = Field(1, ge=1, description="passes over each rollout batch")
    mini_batches: int = Field(1, ge=1, description="optimizer steps per pass")
    kl_target: float | None = Field(None, gt=0, description="adaptive KL controller's target "
                                                            "(kl_coef is its start); None: fixed kl_coef")
    kl_horizon: int = Field(10000, ge=1, description="adaptive KL controller's horizon, in sequences")
    early_stop_kl: float | None = Field(
        None, gt=0, description="skip the rest of a step's PPO epochs once the approx. KL to the "
                                "rollout policy exceeds this")
    value_clip: float | None = Field(
        0.2, gt=0, description="gae: how far a value may move from its rollout-time estimate in the "
                               "value loss (None: no clip)")
    tis_cap: float | None = Field(
        None, gt=0, description="truncated importance sampling: weight each token's policy loss by "
                                "min(exp(old - rollout logprob), tis_cap), correcting for the rollout "
                                "engine's own numerics (None: off)")


class CriticConfig(StrictModel):
    init: str = Field("policy", description="gae only: 'policy' (the policy's backbone) or a model folder, "
                                            "e.g. the reward model")
    lr: float = Field(1e-5, gt=0, description="the critic's learning rate (its own AdamW)")


class FilterConfig(StrictModel):
    dynamic_sampling: bool = Field(False, description="drop groups whose reward std <= std_eps and refill")
    std_eps: float = Field(0.1, ge=0, description="dynamic sampling threshold")
    max_attempts: int = Field(4, ge=1, description="rollout rounds per step before giving up on refill")


class TrainConfig(StrictModel):
    steps: int = Field(100, ge=1, description="RL steps")
    prompts_per_step: int = Field(8, ge=1, description="prompts per rollout batch")
    micro_batch_size: int = Field(16, ge=1, description="sequences per forward/backward")
    shared_prompt_forward: bool = Field(
        True, description="run each distinct prompt of a micro-batch through the model once and share its "
        "key/value cache among its completions (the same logprobs and gradients as the plain padded batch, "
        "without repeating the prompt's work n times; off under gradient checkpointing)")
    skip_zero_advantage: bool = Field(
        True, description="leave out of the forward/backward the sequences whose advantage is 0 at every "
        "token when the loss is the policy surrogate alone (no KL term in the loss, not sharded): they add "
        "exactly nothing to the gradient, and the loss normalisers still count them, so the update is the "
        "same (a group whose answers are all wrong, or all judged equal, costs no training time); the "
        "step's entropy and policy/* metrics are then over the sequences run, and "
        "update/zero_advantage_skipped is the share left out")
    chunked_output_layer: bool = Field(
        True, description="compute completion logprobs from the decoder's hidden states, the output layer "
        "run a few hundred tokens at a time over completion tokens only (the same logprobs and gradients "
        "without the (batch, length, vocabulary) logits in memory; models whose logits are more than a "
        "linear layer keep the plain path)")
    lr: float = Field(1e-5, gt=0, description="peak learning rate")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas")
    warmup_steps: int = Field(0, ge=0, description="linear warmup, in optimizer steps")
    schedule: Literal["constant", "linear", "cosine"] = Field("constant", description="LR schedule")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping")
    seed: int = Field(0, description="one seed for data order, sampling and initialisation")
    max_nonfinite_steps: int = Field(3, ge=1, description="stop after this many NaN/inf losses in a row")
    sharding: Literal["none", "fsdp"] = Field(
        "none", description="none: every process holds the whole model (data parallel); fsdp: parameters, "
        "gradients and optimizer state sharded over the processes with FSDP2 (per decoder layer, then the "
        "root; also chosen by an accelerate FSDP config). The reference model and the critic are sharded "
        "too; on GPUs with model.dtype bf16/fp16 the sharded fp32 weights are gathered in that dtype and "
        "gradients reduced in fp32")
    cpu_offload: bool = Field(
        False, description="fsdp: keep the sharded parameters, gradients and optimizer state in CPU memory "
        "(the optimizer step runs on the CPU): fits a larger model on fewer GPUs, at a cost in speed")


def _eval_option(name: str, **changes: Any) -> Any:
    """The option ``name`` of :class:`~selfrl.eval.evaluate.EvalSettings` (its checks and its help,
    written there once), with ``changes``."""
    return FieldInfo.merge_field_infos(EvalSettings.model_fields[name], **changes)


class EvalConfig(StrictModel):
    """Held-out evaluation during training (the same code as ``selfrl eval``; it reports maj@n and
    pass@n, samples at rollout.batch_size and seeds with train.seed)."""

    every: int = Field(0, ge=0, description="evaluate every N steps (0: only before and after)")
    at_start: bool = Field(True, description="evaluate before the first step")
    limit: int = Field(200, ge=0, description="problems evaluated (0: all)")
    # Greedy only unless asked: n samples would cost n greedy passes at every evaluation.
    n: int = _eval_option("n", default=0)
    max_new_tokens: int = _eval_option("max_new_tokens")
    prompt_template: str | None = Field(
        None, description="the held-out problems' user turn when it is not the training prompts' (SRL trains "
                          "on step prompts that carry their own messages and is measured on whole problems "
                          "as RLVR is); None: data.prompt_template")


class CheckpointConfig(StrictModel):
    every: int = Field(50, ge=0, description="save every N steps (0: only at the end)")
    keep_last: int = Field(2, ge=1, description="checkpoints kept")


class LoggingConfig(StrictModel):
    run_dir: str = Field("runs/default", description="metrics.jsonl, TensorBoard and checkpoints go here")
    tensorboard: bool = Field(True, description="write TensorBoard event files")
    wandb: bool = Field(False, description="log to Weights & Biases (needs the wandb extra)")
    wandb_project: str = Field("selfrl", description="W&B project")
    progress: bool = Field(True, description="show a progress bar")
    samples_every: int = Field(
        5, ge=0, description="write a few groups of every N-th step (and of the last) to "
                             "RUN_DIR/rollouts.jsonl: prompt, completions, rewards and their parts, "
                             "advantages, the recipe's findings (0: none)")
    samples_groups: int = Field(
        4, ge=1, description="groups written per sampled step: trained ones spread over the step's range of "
                             "mean rewards (best and worst included), and as many the filters dropped")
    samples_max_mb: float = Field(
        32.0, gt=0, description="past this size rollouts.jsonl is moved to rollouts.1.jsonl (replacing it), "
                                "so samples take at most twice this on disk")
    report: bool = Field(
        True, description="write RUN_DIR/report.html (curves, evaluation, samples; opens offline) when "
                          "selfrl train ends")


class RunConfig(StrictModel):
    """A whole training run."""

    recipe: str = Field("rlvr", description="recipe plug-in (rlvr: ground-truth rewards)")
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    rewards: list[RewardSpec] = Field(
        default_factory=lambda: [RewardSpec(name="accuracy")], description="rewards, summed with weights")
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    critic: CriticConfig = Field(default_factory=CriticConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    recipe_args: dict[str, Any] = Field(
        default_factory=dict, description="recipe-specific options, checked against the recipe's args_model")

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        from selfrl.algorithms import ADVANTAGE_ESTIMATORS, KL_ESTIMATORS, LOSS_AGGREGATIONS, POLICY_LOSSES
        from selfrl.recipes import RECIPES

        _check_recipe_args(self.recipe, self.recipe_args)
        a = self.algorithm
        for value, registry in ((a.advantage, ADVANTAGE_ESTIMATORS), (a.policy_loss, POLICY_LOSSES),
                                (a.loss_agg, LOSS_AGGREGATIONS), (a.kl_estimator, KL_ESTIMATORS)):
            if value not in registry:
                raise ValueError(f"unknown {registry.kind} {value!r}; valid names: "
                                 f"{', '.join(registry.names())}")
        needs = ADVANTAGE_ESTIMATORS.traits(a.advantage)
        if needs.critic and not RECIPES.get(self.recipe).supports_critic:
            critic_free = [n for n in ADVANTAGE_ESTIMATORS.names()
                           if not ADVANTAGE_ESTIMATORS.traits(n).critic]
            raise ValueError(f"algorithm.advantage={a.advantage} trains a critic (PPO), which recipe "
                             f"{self.recipe!r} does not run with (rlvr does, with any rewards): use one of "
                             f"{', '.join(critic_free)}")
        if self.rollout.n < needs.min_group_size:
            raise ValueError(f"algorithm.advantage={a.advantage} compares the completions of a group: "
                             f"rollout.n must be >= {needs.min_group_size} (got {self.rollout.n})")
        if self.rollout.verify_sync_every and self.rollout.engine == "hf":
            raise ValueError("rollout.verify_sync_every checks vLLM's copy of the weights: it needs "
                             "rollout.engine=vllm (the hf engine samples from the trainer's own model)")
        if (self.rollout.max_new_tokens_min is not None
                and self.rollout.max_new_tokens_min > self.rollout.max_new_tokens):
            raise ValueError(f"rollout.max_new_tokens_min={self.rollout.max_new_tokens_min} is above "
                             f"rollout.max_new_tokens={self.rollout.max_new_tokens}")
        if self.train.cpu_offload and self.train.sharding != "fsdp":
            raise ValueError("train.cpu_offload offloads FSDP's shards: it needs train.sharding=fsdp")
        batch = self.train.prompts_per_step * self.rollout.n
        per_opt = batch // self.algorithm.mini_batches
        if batch % self.algorithm.mini_batches or per_opt % self.train.micro_batch_size:
            raise ValueError(
                f"the rollout batch ({self.train.prompts_per_step} prompts x {self.rollout.n} = {batch} "
                f"sequences) split into algorithm.mini_batches={self.algorithm.mini_batches} must be "
                f"divisible by train.micro_batch_size={self.train.micro_batch_size}")
        return self


def _check_recipe_args(name: str, args: dict[str, Any]) -> None:
    """The recipe exists and ``args`` fit its ``args_model`` (the loader's messages, under
    ``recipe_args``); a recipe without an ``args_model`` checks its own arguments."""
    import difflib

    from selfrl.recipes import RECIPES

    names = RECIPES.names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        hint = "did you mean " + " or ".join(map(repr, close)) + "? " if close else ""
        line = f"recipe: unknown recipe {name!r}; {hint}valid recipes: {', '.join(names)}"
        raise ConfigError(f"invalid config:\n  {line}", [(["recipe"], line)])
    args_model = RECIPES.get(name).args_model
    if args_model is not None:
        validate_section(args_model, args, "recipe_args")
