"""The RL trainer: a page of named steps.

``fit`` runs, every step: sample prompts → rollout n per prompt → score → filter (dynamic
sampling and the recipe's own filters; refill until the batch is full or ``filter.max_attempts``
run out, then train the shorter batch, or skip the update when nothing was kept) → the recipe's
training batches → advantages → PPO epochs over micro-batches with gradient accumulation → log
→ evaluate → checkpoint.  With several processes, one whose filters kept no group takes part in
every collective with an empty batch.

The algorithm maths lives in :mod:`selfrl.algorithms` and the trainer calls it by name, reading
what an estimator declares rather than its name.  The recipe is handed in (the trainer imports
none) and sees only a :class:`~selfrl.trainer.recipe.RecipeContext`.  Each step's data travels
on the :class:`~selfrl.trainer.batch.RolloutBatch`.  With ``train.sharding=fsdp`` the models
are sharded over the processes (:mod:`selfrl.trainer.sharding` says what that changes in a step).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from selfrl.algorithms import (
    ADVANTAGE_ESTIMATORS,
    KL_ESTIMATORS,
    POLICY_LOSSES,
    AdvantageParams,
    PolicyLossParams,
    aggregate_loss,
    masked_mean,
    truncated_is_weight,
)
from selfrl.algorithms.value import AdaptiveKLController, clipped_value_loss
from selfrl.config import config_to_dict, dump_config
from selfrl.data.io import write_jsonl
from selfrl.eval.benchmarks import BENCHMARKS
from selfrl.eval.evaluate import EvalSettings, evaluate, prompt_ids
from selfrl.models import (
    check_saveable,
    disable_dropout,
    load_causal_lm,
    load_tokenizer,
    pick_dtype,
    resolve_device,
    resolve_model_path,
    with_lora,
)
from selfrl.rewards import RewardBatch, compute_reward
from selfrl.rollout.base import SamplingParams, distinct_prompts
from selfrl.trainer import checkpoint as ckpt
from selfrl.trainer.advantage import compute_advantages
from selfrl.trainer.batch import (
    RolloutBatch,
    Sequences,
    SharedPromptSequences,
    completion_logprobs,
    merge_prepared,
    pad_logprobs,
    pad_sequences,
    pad_shared_prompts,
)
from selfrl.trainer.data import PromptSource, eval_rows, training_rows, within_prompt_limit
from selfrl.trainer.distributed import ensure_process_group, group_seed, init_distributed, shard_size
from selfrl.trainer.lm_head import OutputHead
from selfrl.trainer.logger import MetricsLogger, NullLogger
from selfrl.trainer.progress import StepProgress
from selfrl.trainer.recipe import Recipe, RecipeContext
from selfrl.trainer.samples import RolloutSampleWriter
from selfrl.trainer.schedule import make_adamw, make_scheduler
from selfrl.trainer.sharding import (
    ShardingError,
    export_hf,
    full_value,
    gathered,
    in_forward,
    load_shards,
    save_shards,
    settings_from_launch,
    shard,
    train_state_bytes,
)

if TYPE_CHECKING:  # annotations only: the command line validates the config and hands it in
    from selfrl.config.schema import RunConfig
    from selfrl.prompts import PromptFormat


class TrainingStopped(RuntimeError):
    """The run stopped early (non-finite losses); the last checkpoint holds its state."""


class Trainer:
    """Train ``cfg.model`` with the recipe class ``recipe`` (the one ``cfg.recipe`` names, resolved
    by :func:`selfrl.recipes.build_trainer`).  ``resume``: a checkpoint path or ``auto``."""

    def __init__(self, cfg: RunConfig, recipe: type[Recipe], resume: str | None = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(cfg.logging.run_dir)
        self.nonfinite_streak = 0
        self.syncs = 0
        self.samples: RolloutSampleWriter | None = None  # rank 0, inside fit()
        self._stop_signal: int | None = None
        self.sharding = settings_from_launch(cfg.train.sharding, cfg.train.cpu_offload, os.environ)
        self.sharded = self.sharding.fsdp
        self.dist, self.device = init_distributed(resolve_device(cfg.model.device))
        if self.sharded:
            ensure_process_group(self.device)
        self.local_prompts = shard_size(cfg.train.prompts_per_step, self.dist.world_size)
        torch.manual_seed(cfg.train.seed)  # the same in every process: LoRA adapters start equal
        self.generator = torch.Generator().manual_seed(self.dist.rank_seed(cfg.train.seed))
        self.autocast_dtype = pick_dtype(self.device, cfg.model.dtype)
        self._setup_model()
        self._setup_critic()
        self._setup_data()
        self.engine = self._make_engine()
        self.ctx = RecipeContext(config=cfg, tokenizer=self.tokenizer, engine=self.engine,
                                 prompts=self.prompts, prompt_format=self.prompt_format, dist=self.dist,
                                 generator=self.generator, autocast=self._autocast, run_dir=self.run_dir,
                                 device=self.device)
        self.recipe = recipe(self.ctx)
        self.reward = self.recipe.build_reward()
        self._setup_optimizer()
        for module in (self.model, self.critic):
            if module is not None and not self.sharded:  # sharded: every process loaded the same
                self.dist.broadcast_parameters(module)      # files with the same seed before sharding
        self.resume_requested = bool(resume)
        if resume and self.dist.is_main:  # a crash while saving left half-written folders
            ckpt.remove_partial_saves(self.run_dir)
        self.dist.barrier()
        self.resumed_from = ckpt.resolve_resume(resume, self.run_dir)
        if self.resumed_from is not None:
            self._load(self.resumed_from)
            self.engine.sync_weights(self.model)

    @property
    def step(self) -> int:
        """The step being run (the last one run between steps); recipes read it from their context."""
        return self.ctx.step

    @step.setter
    def step(self, value: int) -> None:
        self.ctx.step = value

    # --- setup ------------------------------------------------------------------------

    def _setup_model(self) -> None:
        cfg = self.cfg.model
        self.tokenizer = load_tokenizer(cfg.path)
        # Master weights stay fp32; bf16/fp16 only through autocast (sharded: FSDP's gathered
        # copies).  A sharded model is loaded on the CPU: sharding moves each process's part.
        device = "cpu" if self.sharded else str(self.device)
        self.model = load_causal_lm(cfg.path, device=device, dtype="fp32")
        check_saveable(self.model, cfg.path)  # checkpoints must not fail after the training they keep
        self.ref_model = None
        if cfg.lora is not None:
            self.model = with_lora(self.model, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout,
                                   cfg.lora.target_modules)
        elif self.cfg.algorithm.kl_coef > 0:
            self.ref_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        for model in (self.model, self.ref_model):  # LoRA's dropout too: after get_peft_model
            if model is not None:
                disable_dropout(model)
        self.gradient_checkpointing = cfg.gradient_checkpointing or self.sharding.gradient_checkpointing
        if self.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.pad_id = self.tokenizer.pad_token_id
        chunked = self.cfg.train.chunked_output_layer
        self.head = OutputHead.probe(self.model) if chunked else None  # probed on the whole model
        self.ref_head = OutputHead.probe(self.ref_model) if chunked and self.ref_model is not None else None
        if self.sharded:
            shard(self.model, self.device, self.autocast_dtype, self.sharding.cpu_offload)
            if self.ref_model is not None:
                shard(self.ref_model, self.device, self.autocast_dtype, self.sharding.cpu_offload,
                      frozen=True)

    def _setup_critic(self) -> None:
        """PPO's value model and the adaptive KL controller, when the config asks for them."""
        a = self.cfg.algorithm
        self.critic = self.critic_optimizer = None
        if ADVANTAGE_ESTIMATORS.traits(a.advantage).critic:
            from selfrl.trainer.critic import ValueModel

            init = self.cfg.model.path if self.cfg.critic.init == "policy" else self.cfg.critic.init
            self.critic = ValueModel.from_pretrained(init)
            disable_dropout(self.critic)
            if self.sharded:
                shard(self.critic, self.device, self.autocast_dtype, self.sharding.cpu_offload)
            else:
                self.critic.to(self.device)
            self.critic_optimizer = make_adamw(list(self.critic.parameters()), lr=self.cfg.critic.lr,
                                               betas=self.cfg.train.betas)
        self.kl_ctl = AdaptiveKLController(a.kl_coef, a.kl_target, a.kl_horizon) if a.kl_target else None

    @property
    def kl_coef(self) -> float:
        """The KL weight now: fixed, or the adaptive controller's current value."""
        return self.kl_ctl.value if self.kl_ctl is not None else self.cfg.algorithm.kl_coef

    def _setup_data(self) -> None:
        data = self.cfg.data
        # A benchmark's rows come with its prompt (unless data.prompt_template is set) and its scoring.
        self.benchmark = BENCHMARKS.get(data.benchmark) if data.benchmark else None
        self.prompt_format = data.prompt_format(self.benchmark.prompt if self.benchmark else None)
        self.data_metrics: dict[str, int] = {}  # logged with step 0
        train = self._within_limit("train", training_rows(data, self.prompt_format), data.train)
        self.prompts = PromptSource(train, shuffle=data.shuffle, seed=self.cfg.train.seed)
        self.eval_rows = None
        self.eval_prompt_format = self.prompt_format
        if self.cfg.eval.prompt_template is not None:
            self.eval_prompt_format = dataclasses.replace(self.prompt_format,
                                                          template=self.cfg.eval.prompt_template)
        if data.eval:
            rows = eval_rows(data, self.eval_prompt_format, self.cfg.eval.limit)
            self.eval_rows = self._within_limit("eval", rows, data.eval, self.eval_prompt_format)

    def _within_limit(self, split: str, rows: list[dict], source: str,
                      fmt: PromptFormat | None = None) -> list[dict]:
        """``rows`` held to ``data.max_prompt_tokens``; how many were longer (skipped or cut) goes
        into the step-0 metrics as ``data/SPLIT_prompts_too_long``."""
        data = self.cfg.data
        rows, too_long = within_prompt_limit(rows, fmt or self.prompt_format, self.tokenizer,
                                             data.question_field, source)
        if data.max_prompt_tokens:
            self.data_metrics[f"data/{split}_prompts_too_long"] = too_long
        return rows

    def _make_engine(self):
        """``rollout.engine``: hf samples from the trainer's model; vllm from its own copy, which
        starts from the model folder and gets the trainer's weights after every update."""
        r = self.cfg.rollout
        if r.engine == "hf":
            from selfrl.rollout.hf import HFEngine

            return HFEngine(self.model, self.tokenizer, batch_size=r.batch_size)
        from selfrl.rollout.vllm import VLLMEngine

        dtype = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}
        engine = VLLMEngine(resolve_model_path(self.cfg.model.path), self.tokenizer,
                            gpu_memory_utilization=r.vllm_gpu_memory_utilization,
                            kv_cache_gib=r.vllm_kv_cache_gib, seed=self.cfg.train.seed,
                            dtype=dtype[self.autocast_dtype])
        engine.sync_weights(self.model)  # a LoRA model's adapters may start nonzero
        return engine

    def _setup_optimizer(self) -> None:
        t, a = self.cfg.train, self.cfg.algorithm
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_adamw(params, lr=t.lr, betas=t.betas, weight_decay=t.weight_decay)
        total = t.steps * a.ppo_epochs * a.mini_batches
        self.scheduler = make_scheduler(self.optimizer, t.schedule, t.warmup_steps, total)

    # --- the loop ---------------------------------------------------------------------

    def fit(self) -> dict:
        """Run until ``train.steps``; returns the held-out metrics before and after."""
        cfg, main = self.cfg, self.dist.is_main
        if main:  # several processes: rank 0 writes files and logs
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(dump_config(cfg))
        # Resumed: the crashed run's rows past the checkpoint are replayed, so they go first (all
        # of them when no checkpoint was found and the run starts again from step 0).
        drop_after = (self.step if self.resumed_from else -1) if self.resume_requested else None
        logger = MetricsLogger(self.run_dir, cfg.logging.tensorboard, cfg.logging.wandb,
                               cfg.logging.wandb_project, config_to_dict(cfg),
                               drop_after=drop_after) if main else NullLogger()
        log = cfg.logging
        if main and log.samples_every:
            self.samples = RolloutSampleWriter(
                self.run_dir, log.samples_groups, int(log.samples_max_mb * 2**20), cfg.data.answer_field,
                decode=lambda ids: self.tokenizer.decode(ids, skip_special_tokens=False),
                drop_after=drop_after)
        summary: dict = {"run_dir": str(self.run_dir)}
        start = dict(self.data_metrics) if self.step == 0 else {}
        if self.step == 0 and cfg.eval.at_start and self.eval_rows:
            summary["before"] = self._evaluate_on_main()
            start.update(summary["before"])
        if start:
            logger.log(0, start)
        old_handlers = self._install_signal_handlers()
        try:
            with StepProgress(cfg.train.steps, self.step, enabled=cfg.logging.progress and main) as bar:
                stop = self.dist.any_true(self._stop_signal is not None)
                while self.step < cfg.train.steps and not stop:
                    metrics = self.train_step()
                    logger.log(self.step, metrics)
                    bar.update(self.step, metrics)
                    self._check_finite(metrics)  # after logging: the failing step stays visible
                    if self._should("eval") and self.eval_rows:
                        summary["after"] = self._evaluate_on_main()
                        logger.log(self.step, summary["after"])
                    stop = self.dist.any_true(self._stop_signal is not None)  # a signal stops every rank
                    if self._should("checkpoint") or stop:
                        self.save(final=stop or self.step == cfg.train.steps)
            if stop:  # every process reports the signal, whichever received it
                self._stop_signal = next(s for s in self.dist.gather_objects(self._stop_signal) if s)
        finally:
            _restore_signal_handlers(old_handlers)
            logger.close()
        if self._stop_signal is not None:
            summary["stopped_by_signal"] = signal.Signals(self._stop_signal).name
        return summary

    def train_step(self) -> dict:
        """One RL step; returns its metrics."""
        self.step += 1
        t0 = time.perf_counter()
        batch = collected = self.collect()
        if not self.dist.any_true(len(batch) > 0):  # every group filtered out, in every process
            return self._skip_update(batch, time.perf_counter() - t0)
        parts = self.recipe.training_batches(batch)  # e.g. SERL's actor and judge samples
        t1 = time.perf_counter()
        batch = self.prepare_all(parts)
        metrics = self.update(batch)
        metrics["update/skipped_empty"] = 0.0
        t2 = time.perf_counter()
        metrics.update(self._sync_engine(batch))
        t3 = time.perf_counter()
        metrics.update(batch.metrics)
        metrics.update({"time/collect": t1 - t0, "time/update": t2 - t1, "time/sync": t3 - t2,
                        "time/step": t3 - t0,
                        "lr": self.scheduler.get_last_lr()[0]})
        metrics.update(self.recipe.on_step_end(self.step, batch))
        metrics.update(self._write_samples(collected, parts[0]))
        return metrics

    def _skip_update(self, batch: RolloutBatch, t_collect: float) -> dict:
        """The metrics of a step whose filters kept no group: no update, the weights and the
        rollout engine unchanged; the step still counts, is logged and may be checkpointed."""
        metrics = {**batch.metrics, "update/skipped_empty": 1.0, "update/skipped_nonfinite": 0.0,
                   "time/collect": t_collect, "time/step": t_collect, "lr": self.scheduler.get_last_lr()[0]}
        metrics.update(self.recipe.on_step_end(self.step, batch))
        metrics.update(self._write_samples(batch, None))
        return metrics

    def _write_samples(self, collected: RolloutBatch, trained: RolloutBatch | None) -> dict:
        """A few of the step's groups to ``RUN_DIR/rollouts.jsonl`` every ``logging.samples_every``
        steps, from the batches already in hand: ``trained`` is the recipe's first training batch,
        whose advantages are set (the collected groups, when it holds them; SERL's actor
        sequences), else the collected batch is written without advantages."""
        if self.samples is None or not self._should("samples"):
            return {}
        t = time.perf_counter()
        same = trained is not None and len(trained) == len(collected) \
            and trained.group_size == collected.group_size
        self.samples.write(self.step, trained if same else collected, collected.filtered)
        return {"time/samples": time.perf_counter() - t}

    def _sync_engine(self, batch: RolloutBatch) -> dict:
        """Give the rollout engine the updated weights before the next rollout.  Every
        ``rollout.verify_sync_every``-th sync, compare its logprobs of the batch's first sequence
        with the trainer's and stop the run past ``rollout.sync_tolerance``."""
        r = self.cfg.rollout
        self.engine.sync_weights(self.model)
        self.syncs += 1
        if not r.verify_sync_every or self.syncs % r.verify_sync_every:
            return {}
        if not batch.prompt_ids:  # this process's filters kept no group this step: no probe sequence;
            if self.sharded:  # sharded, it still takes part in the others' forward passes
                self.engine.verify_sync(self.model, [self.pad_id, self.pad_id])
            return {}
        gap = self.engine.verify_sync(self.model, batch.prompt_ids[0] + batch.completion_ids[0])
        if not gap <= r.sync_tolerance:  # nan stops too
            raise TrainingStopped(f"step {self.step}: after the weight sync, vLLM's logprobs differ from the "
                                  f"trainer's by up to {gap:.3g} per token (rollout.sync_tolerance="
                                  f"{r.sync_tolerance:g}); the rollout engine no longer samples this policy")
        return {"rollout/sync_logprob_gap": gap}

    def _should(self, what: str) -> bool:
        every = {"eval": self.cfg.eval.every, "checkpoint": self.cfg.checkpoint.every,
                 "samples": self.cfg.logging.samples_every}[what]
        return self.step == self.cfg.train.steps or (every > 0 and self.step % every == 0)

    # --- named steps ------------------------------------------------------------------

    def rollout(self, rows: list[dict], group_ids: list[int] | None = None, attempt: int = 1) -> RolloutBatch:
        """Sample ``rollout.n`` completions for each row's prompt.  With ``group_ids`` (the rows'
        global indices in this step's ``attempt``), each group and the token budget are sampled
        from generators seeded by :func:`group_seed`, the same for any number of processes."""
        r = self.cfg.rollout
        prompts = [prompt_ids(self.tokenizer, row, self.cfg.data.question_field, self.prompt_format)
                   for row in rows]
        seeds = None if group_ids is None else [group_seed(self.cfg.train.seed, self.step, attempt, g)
                                                 for g in [-1, *group_ids]]
        budget = r.max_new_tokens
        if r.max_new_tokens_min is not None:  # the StackExchange PPO's length sampler (seeded)
            gen = self.generator if seeds is None else torch.Generator().manual_seed(seeds[0])
            budget = int(torch.randint(r.max_new_tokens_min, r.max_new_tokens + 1, (1,), generator=gen))
        params = SamplingParams(n=r.n, temperature=r.temperature, top_p=r.top_p, top_k=r.top_k,
                                presence_penalty=r.presence_penalty, max_new_tokens=budget)
        with self._autocast():
            if seeds is None:
                groups = self.engine.generate(prompts, params, self.generator)
            else:
                groups = [self.engine.generate([p], params, torch.Generator().manual_seed(s))[0]
                          for p, s in zip(prompts, seeds[1:])]
        flat = [(row, c) for row, group in zip(rows, groups) for c in group]
        return RolloutBatch(
            rows=[row for row, _ in flat], prompt_ids=[c.prompt_ids for _, c in flat],
            completion_ids=[c.token_ids for _, c in flat], rollout_logprobs=[c.logprobs for _, c in flat],
            completions=[c.text for _, c in flat],
            prompts=[str(row.get(self.cfg.data.question_field, "")) for row, _ in flat],
            finish_reasons=[c.finish_reason for _, c in flat], group_size=r.n)

    def score(self, batch: RolloutBatch) -> dict:
        """Set ``batch.scores``, ``batch.group_data`` and ``batch.reward_components`` from the reward;
        returns its metrics."""
        result = compute_reward(self.reward, RewardBatch(batch.prompts, batch.completions, batch.rows,
                                                         batch.group_size))
        # float64: the estimators keep rewards that differ by 1e-4 exact (float32 would not)
        batch.scores = torch.tensor(result.scores, dtype=torch.float64)  # (B,)
        truncated = self.cfg.rollout.truncated_reward
        if truncated is not None:  # an answer cut off at the budget is unfinished, whatever it says
            cut = torch.tensor([r == "length" for r in batch.finish_reasons], dtype=torch.bool)  # (B,)
            batch.scores[cut] = truncated
        batch.group_data = result.group_data  # e.g. pseudo-labels, judge samples: they follow the group
        batch.reward_components = result.components
        return result.metrics

    def collect(self) -> RolloutBatch:
        """Rollout, score and filter until ``prompts_per_step`` groups are kept or attempts run out
        (then fewer: the dropped groups are passed to the recipe as such, never trained)."""
        with self._sampling_weights():
            return self._collect()

    def _sampling_weights(self):
        """A sharded policy's full weights while the HF engine samples from it (:func:`gathered`);
        nothing to do otherwise (vLLM samples from its own copy)."""
        if self.sharded and self.cfg.rollout.engine == "hf":
            return gathered(self.model)
        return contextlib.nullcontext()

    def _collect(self) -> RolloutBatch:
        f, need = self.cfg.filter, self.local_prompts  # this process's share
        kept, dropped, seen = [], [], []
        attempts = 0
        t_roll = t_score = 0.0
        reward_metrics: dict[str, list[float]] = {}
        while (self.dist.sum_scalar(sum(b.num_groups for b in kept)) < self.cfg.train.prompts_per_step
               and attempts < f.max_attempts):
            attempts += 1
            rows, first = self._next_rows(need - sum(b.num_groups for b in kept))
            if not rows:
                continue
            t = time.perf_counter()
            ids = list(range(first, first + len(rows))) if self.cfg.rollout.seed_per_group else None
            batch = self.rollout(rows, ids, attempts)
            t_roll += time.perf_counter() - t
            t = time.perf_counter()
            for k, v in self.score(batch).items():
                reward_metrics.setdefault(k, []).append(v)
            t_score += time.perf_counter() - t
            seen.append(batch)
            keep = self._keep_groups(batch)
            kept.append(batch.select_groups([g for g, k in enumerate(keep) if k]))
            dropped.append(batch.select_groups([g for g, k in enumerate(keep) if not k]))
        if not self.dist.all_true(bool(seen)):  # every process stops, none waits for the others
            raise RuntimeError(f"recipe {self.cfg.recipe!r} produced no prompts in {attempts} attempts"
                               + (" for some process" if self.dist.enabled else ""))
        # Out of attempts, the batch stays short: a dropped group is never trained (its advantage
        # is zero only under group-normalised estimators) and never reaches a recipe's pools.
        out = RolloutBatch.concat(kept)
        missing = need - out.num_groups
        out.filtered = RolloutBatch.concat(dropped)
        self.recipe.on_collected(out, out.filtered)
        out.metrics = self._collect_metrics(RolloutBatch.concat(seen), out, reward_metrics, attempts,
                                            missing, t_roll, t_score)
        return out

    def _next_rows(self, k: int) -> tuple[list[dict], int]:
        """This process's ``k`` next prompts and the global index of the first.  Every process
        takes the prompts that all of them need, in rank order, so the cursors stay equal."""
        if not self.dist.enabled:
            return self.recipe.next_prompts(k), 0
        counts = self.dist.gather_objects(k)
        first = sum(counts[:self.dist.rank])
        return self.recipe.next_prompts(sum(counts))[first:first + k], first

    def _keep_groups(self, batch: RolloutBatch) -> list[bool]:
        keep = self.recipe.keep_groups(batch)
        if self.cfg.filter.dynamic_sampling:
            std = batch.scores.view(-1, batch.group_size).std(dim=1, unbiased=False)  # (G,)
            keep = [k and s > self.cfg.filter.std_eps for k, s in zip(keep, std.tolist())]
        return keep

    def _collect_metrics(self, seen: RolloutBatch, out: RolloutBatch, reward_metrics: dict,
                         attempts: int, missing: int, t_roll: float, t_score: float) -> dict:
        """Step metrics over the global batch (every process's rows gathered)."""
        g = self.dist
        lengths = g.gather_rows(torch.tensor([len(c) for c in out.completion_ids], dtype=torch.float32))[0]
        seen_scores, out_scores = g.gather_rows(seen.scores)[0], g.gather_rows(out.scores)[0]
        m = g.mean_metrics({f"reward/{k}" if not k.startswith("reward/") else k: sum(v) / len(v)
                            for k, v in reward_metrics.items()})
        unfilled = g.sum_scalar(max(missing, 0))
        trained = len(lengths) > 0  # no kept group anywhere: the step trains nothing (0 below, not nan)
        m.update({
            "reward/mean": float(seen_scores.mean()),
            "reward/std": float(seen_scores.std()) if len(seen_scores) > 1 else 0.0,  # one sequence: not nan
            "reward/trained_mean": float(out_scores.mean()) if trained else 0.0,
            "response_length/mean": float(lengths.mean()) if trained else 0.0,
            "response_length/max": float(lengths.max()) if trained else 0.0,
            "response/truncated_frac": g.sum_scalar(sum(r == "length" for r in out.finish_reasons))
            / max(1, len(lengths)),
            "filter/attempts": attempts, "filter/kept_frac": g.sum_scalar(out.num_groups)
            / max(1, g.sum_scalar(seen.num_groups)), "filter/unfilled_groups": unfilled,
            "tokens/generated": g.sum_scalar(float(sum(len(c) for c in seen.completion_ids))),
            "time/rollout": t_roll, "time/score": t_score,
        })
        return m

    def prepare_all(self, parts: list[RolloutBatch]) -> RolloutBatch:
        """Each of the recipe's training batches prepared (:meth:`prepare`), then merged into the
        one batch the update trains."""
        for part in parts:
            self.prepare(part)
        return merge_prepared(parts) if len(parts) > 1 else parts[0]

    def prepare(self, batch: RolloutBatch) -> None:
        """Old and reference logprobs when needed, then advantages."""
        a = self.cfg.algorithm
        C = max(1, max((len(c) for c in batch.completion_ids), default=0))  # a process may hold none
        mask = torch.zeros(len(batch), C)
        for i, c in enumerate(batch.completion_ids):
            mask[i, :len(c)] = 1
        # With one epoch and one mini-batch the update is on-policy: the ratio's denominator
        # equals the current logprobs, so the extra forward pass is skipped.
        needs_old = a.ppo_epochs > 1 or a.mini_batches > 1 or (a.kl_coef > 0 and a.kl_in_reward)
        if needs_old:
            batch.old_logprobs = self._logprobs_no_grad(batch, C, reference=False)
        if a.kl_coef > 0:
            batch.ref_logprobs = self._logprobs_no_grad(batch, C, reference=True)
        kl = None
        if a.kl_coef > 0 and a.kl_in_reward:
            kl = KL_ESTIMATORS.get(a.kl_estimator)(batch.old_logprobs, batch.ref_logprobs) * mask
            batch.metrics["kl/rollout"] = float(self.dist.sum_tensor(kl.sum())
                                                / self.dist.sum_tensor(mask.sum()).clamp(min=1))
        if self.critic is not None:
            batch.values = self._values_no_grad(batch, C) * mask
        params = AdvantageParams(norm_by_std=a.norm_by_std, gamma=a.gamma, lam=a.lam,
                                 kl_coef=self.kl_coef if a.kl_in_reward else 0.0)
        batch.advantages, batch.returns, metrics = compute_advantages(batch, mask, kl, a.advantage, params,
                                                                      self.dist)
        batch.metrics.update(metrics)

    def _sequences(self, batch: RolloutBatch, idx: list[int],
                   share: bool = True) -> Sequences | SharedPromptSequences:
        """The micro-batch ``idx`` as model input: each distinct prompt once when several sequences
        share it (``train.shared_prompt_forward``), else the plain padded layout.  Sharded, every
        process takes the same layout (the shared one runs the model twice, and each run gathers
        every layer with the other processes), and no rows give an idle pass's input."""
        prompts = [batch.prompt_ids[i] for i in idx]
        completions = [batch.completion_ids[i] for i in idx]
        shared = share and self._share_prompts and len({tuple(p) for p in prompts}) < len(prompts)
        if self.sharded:  # a one-token completion is one run of the model even when shared: plain
            shared = self.dist.all_true(share and self._share_prompts and (
                not idx or (shared and max(len(c) for c in completions) > 1)))
            if not idx:
                return self._idle_sequences(shared)
        if shared:
            return pad_shared_prompts(prompts, completions, self.pad_id, self.device)
        return pad_sequences(prompts, completions, self.pad_id, self.device)

    @property
    def _share_prompts(self) -> bool:
        # Gradient checkpointing turns the key/value cache off, and the shared path needs it.
        return self.cfg.train.shared_prompt_forward and not self.gradient_checkpointing

    def _micro_batches(self, idx: list[int], size: int) -> list[list[int]]:
        """``idx`` in chunks of ``size``; sharded, padded with empty chunks to the largest count
        over processes, since every forward and backward pass is a collective there (an empty
        chunk runs an idle pass: :meth:`_idle_sequences`)."""
        chunks = _chunks(idx, size)
        if not self.sharded:
            return chunks
        return chunks + [[] for _ in range(self.dist.max_int(len(chunks)) - len(chunks))]

    def _idle_sequences(self, shared: bool = False) -> Sequences | SharedPromptSequences:
        """Pad tokens, laid out as the other processes' micro-batch (``shared``: two completions of
        two tokens after one prompt): the input of a sharded process's idle pass."""
        pad = self.pad_id
        if shared:
            return pad_shared_prompts([[pad]] * 2, [[pad, pad]] * 2, pad, self.device)
        return pad_sequences([[pad]], [[pad]], pad, self.device)

    def _completion_logprobs(self, model, seq: Sequences | SharedPromptSequences,
                             temperature: float | torch.Tensor, with_entropy: bool = False,
                             head: OutputHead | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:func:`completion_logprobs`; a sharded model's chunked output layer runs inside its
        root's forward hooks (:func:`in_forward`), which gather the output layer's weight."""
        def run():
            return completion_logprobs(model, seq, temperature, with_entropy=with_entropy, head=head)

        return in_forward(model, run) if head is not None else run()

    @torch.no_grad()
    def _per_token_no_grad(self, batch: RolloutBatch, C: int, compute, share: bool = False) -> torch.Tensor:
        """``compute(seq, idx) -> (b, c)`` over micro-batches, gathered into a CPU ``(B, C)`` tensor.
        ``share``: ``compute`` takes :class:`SharedPromptSequences` too."""
        out = torch.zeros(len(batch), C)
        for idx in self._micro_batches(list(range(len(batch))), self.cfg.train.micro_batch_size):
            seq = self._sequences(batch, idx, share)
            with self._autocast():
                x = compute(seq, idx)
            if idx:
                out[idx, :x.shape[1]] = x.float().cpu()
        return out

    def _logprobs_no_grad(self, batch: RolloutBatch, C: int, reference: bool) -> torch.Tensor:
        model = self.ref_model if (reference and self.ref_model is not None) else self.model
        adapter_off = reference and self.ref_model is None and hasattr(self.model, "disable_adapter")

        head = self.ref_head if model is self.ref_model else self.head

        def compute(seq, idx):
            with self.model.disable_adapter() if adapter_off else contextlib.nullcontext():
                return self._completion_logprobs(model, seq, self._temperature(batch, idx), head=head)[0]

        return self._per_token_no_grad(batch, C, compute, share=True)

    def _temperature(self, batch: RolloutBatch, idx: list[int]) -> float | torch.Tensor:
        """What the rows ``idx`` were sampled at: ``rollout.temperature``, or ``(b,)`` each row's own
        when the batch carries them (SERL's judge samples).  No rows (an idle pass): the former."""
        if batch.temperatures is None or not idx:
            return self.cfg.rollout.temperature or 1.0
        return batch.temperatures[idx]

    def _values_no_grad(self, batch: RolloutBatch, C: int) -> torch.Tensor:
        from selfrl.trainer.critic import completion_values

        self.critic.eval()
        return self._per_token_no_grad(batch, C, lambda seq, _: completion_values(self.critic, seq))

    def update(self, batch: RolloutBatch) -> dict:
        """PPO epochs over mini-batches; micro-batches accumulate gradients."""
        a = self.cfg.algorithm
        self.model.train()
        B = len(batch)
        lengths = torch.tensor([len(c) for c in batch.completion_ids], dtype=torch.float32)
        sums: dict[str, float] = {}
        grad_norms: list[float] = []
        skipped = epochs_run = 0
        for _ in range(a.ppo_epochs):
            epochs_run += 1
            epoch_kl: list[float] = []
            shuffle = a.ppo_epochs > 1 or a.mini_batches > 1
            order = torch.randperm(B, generator=self.generator).tolist() if shuffle else list(range(B))
            for mb in _split(order, a.mini_batches):  # a short batch (filters) has short mini-batches
                grad_norm = self._mini_batch_step(batch, mb, lengths, sums, epoch_kl)
                if grad_norm is None:
                    skipped += 1
                else:
                    grad_norms.append(grad_norm)
            if a.early_stop_kl is not None and self._mean_kl(epoch_kl) > a.early_stop_kl:
                break  # the policy moved far enough from the rollout policy for this batch
        if epochs_run < a.ppo_epochs:  # stopped early on KL: per-epoch means over the epochs run
            sums = {k: v * a.ppo_epochs / epochs_run for k, v in sums.items()}
        if grad_norms:
            sums["grad_norm"] = sum(grad_norms) / len(grad_norms)
        sums["ppo/epochs_run"] = epochs_run
        # This process's share (sharded: its shards) of the weights, gradients and AdamW moments.
        params = [p for p in self.model.parameters() if p.requires_grad]
        sums["memory/train_state_mib"] = sum(train_state_bytes(params, self.optimizer).values()) / 2**20
        sums = self.dist.mean_metrics(sums)
        if self.kl_ctl is not None:  # its target is on the KL summed over a sequence (Ziegler et al.)
            n_seq = self.dist.sum_scalar(B)  # token-mean KL x mean length = mean per-sequence sum:
            measured = batch.metrics.get("kl/rollout", sums.get("kl", 0.0)) \
                * self.dist.sum_scalar(float(lengths.sum())) / max(1, n_seq)
            sums["kl/sequence_sum"] = measured
            sums["kl/coef"] = self.kl_ctl.update(measured, int(n_seq))
        sums["update/skipped_nonfinite"] = skipped
        self.nonfinite_streak = self.nonfinite_streak + 1 if skipped else 0
        return sums

    def _mini_batch_step(self, batch: RolloutBatch, mb: list[int], lengths: torch.Tensor,
                         sums: dict[str, float], epoch_kl: list[float]) -> float | None:
        """One optimizer step on the rows ``mb``; adds their metrics to ``sums``.

        Returns the gradient norm, or ``None`` when a loss or the gradient was not finite on any
        process (the step is then skipped everywhere).
        """
        a, t = self.cfg.algorithm, self.cfg.train
        B = len(batch)
        self.optimizer.zero_grad(set_to_none=True)
        # Global counts: the per-process losses add up to the loss of the whole mini-batch.
        n_tok = self.dist.sum_scalar(float(lengths[mb].sum()))
        n_seq = int(self.dist.sum_scalar(len(mb)))
        finite = True
        rows = self._rows_with_gradient(batch, mb)
        sums["update/zero_advantage_skipped"] = (sums.get("update/zero_advantage_skipped", 0.0)
                                                 + (len(mb) - len(rows)) / max(1, B) / a.ppo_epochs)
        grouped = _prompt_major(batch.prompt_ids, rows) if self._share_prompts else rows
        for micro in self._micro_batches(grouped, t.micro_batch_size):
            loss, m = self._micro_loss(batch, micro, n_tok, n_seq)
            if not torch.isfinite(loss):
                finite = False
                if not self.sharded:  # sharded, every backward is a collective: all of them run and
                    break             # the NaN gradients are dropped below, in every process
            loss.backward()
            for k, v in m.items():  # means over the rows run (of this mini-batch's share of the batch)
                sums[k] = sums.get(k, 0.0) + v * len(micro) / len(rows) * len(mb) / B / a.ppo_epochs
            if micro:
                epoch_kl.append(m.get("policy/approx_kl", 0.0))
        if not rows:  # every row skipped: a zero gradient, so that AdamW steps as it would on one
            for p in self.model.parameters():
                if p.requires_grad:
                    p.grad = torch.zeros_like(p)
        if self.critic is not None:
            for k, v in self._critic_update(batch, mb, n_tok).items():
                sums[k] = sums.get(k, 0.0) + v * len(mb) / max(1, B) / a.ppo_epochs
        finite = self.dist.all_true(finite)
        if finite and not self.sharded:  # sharded: FSDP summed them in backward
            self.dist.all_reduce_grads(self.model.parameters())
        grad_norm = full_value(torch.nn.utils.clip_grad_norm_(
            [p for p in self.model.parameters() if p.requires_grad], t.max_grad_norm))
        if not finite or not torch.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.optimizer.step()
        self.scheduler.step()
        # Gradients are dead until the next backward: free them for the rollout, evaluation and
        # checkpoint in between (one model's worth of memory: 0.5 GB for a 135 M model in fp32).
        self.optimizer.zero_grad(set_to_none=True)
        return float(grad_norm)

    def _rows_with_gradient(self, batch: RolloutBatch, rows: list[int]) -> list[int]:
        """The rows of ``rows`` whose loss term can have a gradient (``train.skip_zero_advantage``).

        The policy surrogate of a sequence whose advantage is 0 at every token is 0 whatever the
        weights (every registered policy loss multiplies by the advantage), and the loss
        normalisers (tokens, sequences) are the whole mini-batch's, counted before this: leaving
        such rows out gives the same gradient.  Not when the loss has another term (KL in the
        loss) or the process is sharded (every process must run the same collectives).
        """
        a = self.cfg.algorithm
        if (not self.cfg.train.skip_zero_advantage or self.sharded or batch.advantages is None
                or (a.kl_coef > 0 and not a.kl_in_reward)):
            return rows
        moving = (batch.advantages[rows] != 0).any(dim=1).tolist()  # NaN != 0: kept, and caught
        return [i for i, keep in zip(rows, moving) if keep]

    def _mean_kl(self, epoch_kl: list[float]) -> float:
        """The epoch's mean approximate KL, averaged over processes (0 when none was measured)."""
        return self.dist.mean_metrics({"kl": sum(epoch_kl) / len(epoch_kl) if epoch_kl else 0.0})["kl"]

    def _critic_update(self, batch: RolloutBatch, mb: list[int], n_tok: float) -> dict:
        """One critic optimizer step over a mini-batch: the clipped value loss, token-mean."""
        from selfrl.trainer.critic import completion_values

        a, t = self.cfg.algorithm, self.cfg.train
        self.critic.train()
        self.critic_optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        finite = True
        for micro in self._micro_batches(mb, t.micro_batch_size):
            if not micro:  # a sharded process's idle pass: zero loss, but every collective taken part in
                with self._autocast():
                    (completion_values(self.critic, self._idle_sequences()).sum() * 0.0).backward()
                continue
            seq = pad_sequences([batch.prompt_ids[i] for i in micro],
                                [batch.completion_ids[i] for i in micro], self.pad_id, self.device)
            with self._autocast():
                values = completion_values(self.critic, seq)
            C, mask = values.shape[1], seq.response_mask
            loss_mat, m = clipped_value_loss(values, batch.values[micro, :C].to(self.device),
                                             batch.returns[micro, :C].to(self.device), mask, a.value_clip)
            loss = aggregate_loss(loss_mat, mask, "token-mean", num_tokens=n_tok)
            if not torch.isfinite(loss):
                finite = False
                if not self.sharded:
                    break
            loss.backward()
            # loss is this process's share of the mini-batch loss: the mean over ranks x world size
            sums["critic/loss"] = sums.get("critic/loss", 0.0) + float(loss.detach()) * self.dist.world_size
            for k, v in m.items():
                sums[f"critic/{k}"] = sums.get(f"critic/{k}", 0.0) + v * len(micro) / len(mb)
        if not self.dist.all_true(finite):
            self.critic_optimizer.zero_grad(set_to_none=True)
            return {"critic/skipped_nonfinite": 1.0}
        if not self.sharded:
            self.dist.all_reduce_grads(self.critic.parameters())
        torch.nn.utils.clip_grad_norm_(self.critic.parameters(), t.max_grad_norm)
        self.critic_optimizer.step()
        self.critic_optimizer.zero_grad(set_to_none=True)  # dead until the next backward
        return sums

    def _micro_loss(self, batch: RolloutBatch, idx: list[int], n_tok: float,
                    n_seq: int) -> tuple[torch.Tensor, dict]:
        """The policy loss of the rows ``idx`` (this process's share of the mini-batch loss) and
        its metrics; no rows: a sharded process's idle pass, a zero loss through the model."""
        a = self.cfg.algorithm
        seq = self._sequences(batch, idx)
        if not idx:
            with self._autocast():
                logprobs, _ = self._completion_logprobs(self.model, seq, 1.0, head=self.head)
            return logprobs.sum() * 0.0, {}
        with self._autocast():
            logprobs, entropy = self._completion_logprobs(self.model, seq, self._temperature(batch, idx),
                                                          with_entropy=True, head=self.head)
        C, mask = logprobs.shape[1], seq.response_mask
        adv = batch.advantages[idx, :C].to(self.device)  # (b, C)
        old = batch.old_logprobs[idx, :C].to(self.device) if batch.old_logprobs is not None \
            else logprobs.detach()
        loss_mat, pm = POLICY_LOSSES.get(a.policy_loss)(
            logprobs, old, adv, mask,
            PolicyLossParams(clip_low=a.clip_low, clip_high=a.clip_high, dual_clip=a.dual_clip))
        if batch.loss_weight is not None:
            loss_mat = loss_mat * batch.loss_weight[idx].to(self.device)[:, None]
        if a.tis_cap is not None:  # the rollout engine sampled from q, not from the trainer's old policy
            rollout = pad_logprobs([batch.rollout_logprobs[i] for i in idx], C).to(self.device)  # (b, C)
            tis = truncated_is_weight(old, rollout, mask, a.tis_cap)  # (b, C)
            loss_mat = loss_mat * tis
            pm["tis_weight_mean"] = masked_mean(tis, mask)
        agg = dict(num_tokens=n_tok, num_seqs=n_seq, max_len=self.cfg.rollout.max_new_tokens)
        policy_loss = aggregate_loss(loss_mat, mask, a.loss_agg, **agg)
        loss, metrics = policy_loss, {"loss/policy": float(policy_loss.detach()) * n_seq / len(idx)}
        if a.kl_coef > 0:
            ref = batch.ref_logprobs[idx, :C].to(self.device)
            kl_mat = KL_ESTIMATORS.get(a.kl_estimator)(logprobs, ref)  # (b, C)
            kl = aggregate_loss(kl_mat, mask, "token-mean", num_tokens=n_tok)
            metrics["kl"] = float(kl.detach()) * n_seq / len(idx)
            if not a.kl_in_reward:
                loss = loss + self.kl_coef * kl
        ntok = mask.sum().clamp(min=1)
        metrics["entropy"] = float((entropy * mask).sum() / ntok)
        for k, v in pm.items():
            metrics[f"policy/{k}"] = float(v)
        return loss, metrics

    # --- evaluation, checkpoints, signals -----------------------------------------------

    def evaluate(self) -> dict:
        """Held-out metrics through the same code as ``selfrl eval``; the samples (prompt, greedy
        completion, extracted answer, verdict) go to ``RUN_DIR/eval/step-NNNNNN.jsonl``."""
        e, bench = self.cfg.eval, self.benchmark
        settings = EvalSettings(n=e.n, ks=(e.n,) if e.n else (), max_new_tokens=e.max_new_tokens,
                                batch_size=self.cfg.rollout.batch_size, seed=self.cfg.train.seed,
                                mode=bench.mode if bench else "math")
        with self._autocast():  # the rollout engine: the trainer's model, or vLLM's synced copy
            metrics, samples = evaluate(self.model, self.tokenizer, self.eval_rows, settings,
                                        question_field=self.cfg.data.question_field,
                                        answer_field=self.cfg.data.answer_field,
                                        prompt_format=self.eval_prompt_format, engine=self.engine,
                                        category_field="category" if bench else None,
                                        group_field="group" if bench else None)
        write_jsonl(self.run_dir / "eval" / f"step-{self.step:06d}.jsonl", samples)
        out = {f"eval/{k}": v for k, v in metrics.items() if isinstance(v, float)}
        # A curve per kind, group or category too (per_kind: the instruct task's constraint kinds).
        out.update({f"eval/{k}/{part}": v for k, parts in metrics.items() if k.startswith("per_")
                    for part, v in parts.items()})
        return out

    def _evaluate_on_main(self) -> dict:
        """:meth:`evaluate` on rank 0 while the other processes wait ({} there); a sharded policy is
        gathered on every process for it (rank 0 alone could not run a sharded forward pass)."""
        with gathered(self.model) if self.sharded else contextlib.nullcontext():
            metrics = self.evaluate() if self.dist.is_main else {}
            self.dist.barrier()
        return metrics

    def state_dict(self) -> dict:
        """Everything but the weights; with several processes, every rank's RNG state too.  Sharded,
        the optimizers and the critic are in the checkpoint's shards instead (:meth:`_shard_parts`)."""
        rng = ckpt.rng_state(self.generator)
        extra = {"rng_ranks": self.dist.gather_objects(rng)} if self.dist.enabled else {}
        critic_here = not self.sharded and self.critic is not None
        return {**extra, "step": self.step,
                "optimizer": None if self.sharded else self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "rng": rng,
                "data": self.prompts.state_dict(), "recipe": self.recipe.state_dict(),
                "nonfinite_streak": self.nonfinite_streak, "config": config_to_dict(self.cfg),
                "critic": self.critic.state_dict() if critic_here else None,
                "critic_optimizer": self.critic_optimizer.state_dict() if critic_here else None,
                "kl_ctl": None if self.kl_ctl is None else self.kl_ctl.state_dict()}

    def _shard_parts(self) -> dict:
        """What a sharded checkpoint's shards hold: ``name: (module, optimizer)``."""
        parts = {"policy": (self.model, self.optimizer)}
        if self.critic is not None:
            parts["critic"] = (self.critic, self.critic_optimizer)
        return parts

    def save(self, final: bool = False) -> Path:
        """Write a checkpoint (rank 0 only; every process calls this and waits for it).  Sharded,
        every process writes its shards, and the Hugging Face export is gathered only when
        ``final`` (the run's last checkpoint: its end, a signal, a stop)."""
        state = self.state_dict()
        if self.sharded:
            return ckpt.save_sharded_checkpoint(
                self.run_dir, self.step, state, self.cfg.checkpoint.keep_last, self.dist,
                write_shards=lambda folder: save_shards(folder, self._shard_parts()),
                export=(lambda folder: export_hf(self.model, folder, self.tokenizer, self.dist.is_main))
                if final else None)
        if not self.dist.enabled:
            return ckpt.save_checkpoint(self.run_dir, self.step, self.model, self.tokenizer, state,
                                        self.cfg.checkpoint.keep_last)
        self.dist.barrier()
        if self.dist.is_main:
            ckpt.save_checkpoint(self.run_dir, self.step, self.model, self.tokenizer, state,
                                 self.cfg.checkpoint.keep_last)
        self.dist.barrier()  # nobody reads or resumes from a half-written checkpoint
        return ckpt.checkpoint_dir(self.run_dir) / f"{ckpt.PREFIX}{self.step:06d}"

    def _load(self, path: Path) -> None:
        if ckpt.is_sharded_checkpoint(path) != self.sharded:
            written, now = ("unsharded", "sharded") if self.sharded else ("sharded", "unsharded")
            raise ShardingError(f"--resume {path}: the checkpoint was written by a {written} run and this "
                                f"run is {now} (train.sharding); resume with the same train.sharding, or "
                                f"start afresh from its weights (model.path=...; `selfrl export` writes a "
                                f"sharded checkpoint's)")
        if self.sharded:
            load_shards(path / ckpt.SHARDS, self._shard_parts())
        else:
            ckpt.load_weights(self.model, path / "model", lora=self.cfg.model.lora is not None)
        state = ckpt.load_trainer_state(path)
        self.step = state["step"]
        if not self.sharded:
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        ranks = state.get("rng_ranks")
        if self.dist.enabled and ranks is not None and len(ranks) == self.dist.world_size:
            ckpt.set_rng_state(ranks[self.dist.rank], self.generator)
        else:
            ckpt.set_rng_state(state["rng"], self.generator)
            if self.dist.enabled:  # saved with another number of processes: fresh per-rank streams
                self.generator.manual_seed(self.dist.rank_seed(self.cfg.train.seed) + self.step)
        self.prompts.load_state_dict(state["data"])
        self.recipe.load_state_dict(state["recipe"])
        self.nonfinite_streak = state["nonfinite_streak"]
        if self.critic is not None and not self.sharded:
            self.critic.load_state_dict(state["critic"])
            self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        if self.kl_ctl is not None:
            self.kl_ctl.load_state_dict(state["kl_ctl"])

    def _check_finite(self, metrics: dict) -> None:
        if self.nonfinite_streak >= self.cfg.train.max_nonfinite_steps:
            path = self.save(final=True)
            raise TrainingStopped(
                f"{self.nonfinite_streak} steps in a row had a NaN/inf loss or gradient; stopped at step "
                f"{self.step} and saved {path}. Lower train.lr or check the rewards.")

    def _install_signal_handlers(self) -> dict:
        def handler(signum, frame):  # noqa: ARG001
            self._stop_signal = signum

        old = {}
        with contextlib.suppress(ValueError):  # not in the main thread: no handlers
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, handler)
        return old

    def _autocast(self):
        if self.autocast_dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)


def _restore_signal_handlers(old: dict) -> None:
    for sig, h in old.items():
        signal.signal(sig, h)


def _chunks(xs: list[int], size: int) -> list[list[int]]:
    return [xs[i:i + size] for i in range(0, len(xs), size)]


def _split(xs: list[int], parts: int) -> list[list[int]]:
    """``xs`` cut into exactly ``parts`` consecutive pieces of near-equal size (some empty when
    ``len(xs) < parts``): every process then takes the same number of optimizer steps.

    >>> _split([0, 1, 2, 3, 4], 2), _split([0], 2)
    ([[0, 1], [2, 3, 4]], [[], [0]])
    """
    return [xs[i * len(xs) // parts:(i + 1) * len(xs) // parts] for i in range(parts)]


def _prompt_major(prompt_ids: list[list[int]], idx: list[int]) -> list[int]:
    """``idx`` reordered so that the sequences of one prompt sit together (prompts in order of
    first appearance; already-grouped input keeps its order).

    A mini-batch's gradient is the sum of its micro-batches' (losses are normalised by the
    mini-batch's global token and sequence counts), so the order inside it changes only float
    rounding; grouped, a shuffled mini-batch's micro-batches hold few distinct prompts, each
    run once (``train.shared_prompt_forward``).

    >>> _prompt_major([[1, 2], [3], [1, 2], [3]], [0, 1, 2, 3])
    [0, 2, 1, 3]
    """
    _, which = distinct_prompts([prompt_ids[i] for i in idx])
    return [i for _, i in sorted(zip(which, idx), key=lambda t: t[0])]  # stable: order kept within a prompt
