"""``selfrl build-tiny``: rebuild the embedded model from scratch, then measure it.

Steps: draw the arith task's held-out sets (their questions never enter training) → draw
the multi-task mix → train the byte-level BPE tokenizer → initialise a small Qwen2-shaped
model from the seed → supervised fine-tuning with TRL's SFTTrainer (fp32, completion-only
loss) → save in Hugging Face format, in Llama's layout (see :func:`to_llama`) → reload from
disk exactly as a user would → measure the four figures into ``build_report.json``.
"""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from selfrl.data.arith import ArithSpec
from selfrl.data.arith_files import ArithSplits, judge_rows, make_splits, selfinstruct_rows
from selfrl.tiny.mix import MixWeights, build_mix
from selfrl.tiny.tokenizer import build_tokenizer


@dataclass(frozen=True)
class TinyBuildConfig:
    """Everything that decides the embedded model; the defaults built the shipped one."""

    seed: int = 0
    device: str = "cpu"  # the shipped model was built on this 2-core CPU
    # model (Qwen2-shaped)
    vocab_size: int = 640
    hidden_size: int = 256
    intermediate_size: int = 768
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    # task difficulty (also the defaults of `selfrl data arith`)
    min_ops: int = ArithSpec.min_ops
    max_ops: int = ArithSpec.max_ops
    max_number: int = ArithSpec.max_number
    max_value: int = ArithSpec.max_value
    p_mul: float = ArithSpec.p_mul
    judge_style: str = "first_diff"  # the check judges write before the verdict (mix.JUDGE_STYLES)
    judge_max_new_tokens: int = 48
    solve_share: float = 0.67
    facts_share: float = 0.0  # calculation-drill rows (mix.facts_row); the other skills share the rest
    direct_share: float = 0.0  # answer-only solving rows (mix.direct_row), as facts_share
    # training (one pass over max_steps * batch_size fresh rows)
    max_steps: int = 2000
    batch_size: int = 8
    learning_rate: float = 1.5e-3
    warmup_ratio: float = 0.03
    weight_decay: float = 0.01
    max_length: int = 640
    # report
    report_problems: int = 500
    report_n: int = 16


def render(row: dict) -> str:
    """Plain text of a chat row, for training the tokenizer."""
    return "\n".join(m["content"] for m in row["prompt"] + row["completion"])


def make_model(cfg: TinyBuildConfig, tokenizer):
    """A freshly initialised Qwen2-shaped causal LM (seeded)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(cfg.seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=1024, tie_word_embeddings=True, rope_theta=10000.0,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def to_llama(model):
    """The same network as a ``LlamaForCausalLM`` (bit-identical outputs).

    A Qwen2 block is a Llama block with biases on q/k/v; Llama's ``attention_bias`` also
    puts one on o_proj, set to zero here.  Why not ship ``model_type: qwen2``: transformers
    ≥ 5 loads every qwen2 checkpoint's tokenizer as ``Qwen2Tokenizer``, which swaps in
    Qwen2's own pre-tokenizer, and that splits " 12" into "Ġ", "1", "2" where ours has
    "Ġ1", "2" — a model trained on one tokenisation and served with the other is wrecked.
    For ``model_type: llama`` ``AutoTokenizer`` keeps ``tokenizer.json`` as written.

    >>> from transformers import Qwen2Config, Qwen2ForCausalLM
    >>> q = Qwen2ForCausalLM(Qwen2Config(vocab_size=32, hidden_size=16, intermediate_size=32,
    ...     num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1))
    >>> x = torch.arange(8)[None]
    >>> bool(torch.equal(q(x).logits, to_llama(q)(x).logits))
    True
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    c = model.config
    config = LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads, max_position_embeddings=c.max_position_embeddings,
        rms_norm_eps=c.rms_norm_eps, rope_theta=c.rope_parameters["rope_theta"],
        tie_word_embeddings=c.tie_word_embeddings, attention_bias=True, hidden_act=c.hidden_act,
        bos_token_id=None, eos_token_id=c.eos_token_id, pad_token_id=c.pad_token_id,
    )
    state = dict(model.state_dict())
    for i in range(c.num_hidden_layers):
        state[f"model.layers.{i}.self_attn.o_proj.bias"] = torch.zeros(c.hidden_size)
    llama = LlamaForCausalLM(config)
    llama.load_state_dict(state)  # strict: every tensor has exactly one home
    llama.generation_config.eos_token_id = c.eos_token_id
    llama.generation_config.pad_token_id = c.pad_token_id
    return llama.eval()


def train(cfg: TinyBuildConfig, output: Path, rows: list[dict], tokenizer, model) -> dict:
    """SFT with TRL's SFTTrainer on prompt-completion rows (loss on the completion only)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=str(output / "_sft"), max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
        lr_scheduler_type="cosine", warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
        logging_steps=50, save_strategy="no", report_to=[], bf16=False, fp16=False,
        use_cpu=cfg.device == "cpu", gradient_checkpointing=False, seed=cfg.seed, data_seed=cfg.seed,
        max_length=cfg.max_length,
        completion_only_loss=True, dataloader_num_workers=0, disable_tqdm=False,
        train_sampling_strategy="group_by_length",
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer)
    result = trainer.train()
    return {"train_loss": result.training_loss, "steps": result.global_step}


def mix_weights(cfg: TinyBuildConfig) -> MixWeights:
    """The mix: ``solve_share``, ``facts_share`` and ``direct_share`` as given, the other
    skills scaled from their defaults to share the rest.

    >>> w = mix_weights(TinyBuildConfig(solve_share=0.5, facts_share=0.2))
    >>> round(sum(vars(w).values()), 6), w.facts, round(w.srl_step / w.judge_serl, 6)
    (1.0, 0.2, 1.111111)
    """
    default = MixWeights()
    given = {"solve": cfg.solve_share, "facts": cfg.facts_share, "solve_direct": cfg.direct_share}
    others = {k: v for k, v in vars(default).items() if k not in given}
    rest = (1.0 - sum(given.values())) / (1.0 - sum(getattr(default, k) for k in given))
    if rest < 0:
        raise ValueError(f"solve_share + facts_share + direct_share = {sum(given.values())} > 1")
    scaled = {k: v * rest for k, v in others.items()}
    return MixWeights(**given, **scaled)


def build(output: str | Path, cfg: TinyBuildConfig = TinyBuildConfig()) -> dict:
    """Build, save and measure the embedded model; returns the report."""
    output = Path(output)
    t0 = time.time()
    spec = ArithSpec(min_ops=cfg.min_ops, max_ops=cfg.max_ops, max_number=cfg.max_number,
                     max_value=cfg.max_value, p_mul=cfg.p_mul)
    hard = replace(spec, min_ops=cfg.max_ops + 1, max_ops=cfg.max_ops + 2)
    splits = make_splits(ArithSplits(spec=spec, hard_spec=hard), seed=0)
    held_out = {p.question for p in splits["test"] + splits["test_hard"]}
    rows = build_mix(cfg.max_steps * cfg.batch_size, spec, held_out, cfg.seed, mix_weights(cfg),
                     judge_style=cfg.judge_style)
    tokenizer = build_tokenizer((render(r) for r in rows), vocab_size=cfg.vocab_size)
    model = make_model(cfg, tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f} M parameters, vocab {len(tokenizer)}")
    stats = train(cfg, output, rows, tokenizer, model)
    output.mkdir(parents=True, exist_ok=True)
    to_llama(model).save_pretrained(output)
    tokenizer.save_pretrained(output)
    train_minutes = (time.time() - t0) / 60
    # Measure what a user gets: the files, loaded back through the Auto classes.
    from selfrl.models import load_causal_lm, load_tokenizer

    model, tokenizer = load_causal_lm(output, cfg.device, "fp32"), load_tokenizer(output)
    t1 = time.time()
    figures = measure(model, tokenizer, splits, cfg)
    report = {"config": asdict(cfg), "n_parameters": n_params, "train_minutes": train_minutes,
              "measure_minutes": (time.time() - t1) / 60, **stats, **figures}
    (output / "build_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def measure(model, tokenizer, splits, cfg: TinyBuildConfig) -> dict:
    """The four figures: greedy pass@1, maj@16 vs avg@16, self-instruction, judge accuracy."""
    from selfrl.data.arith_files import problem_row
    from selfrl.eval.evaluate import EvalSettings, evaluate

    test_rows = [problem_row(p, "test", i) for i, p in enumerate(splits["test"][:cfg.report_problems])]
    metrics, samples = evaluate(model, tokenizer, test_rows,
                                EvalSettings(n=cfg.report_n, ks=(1, cfg.report_n), max_new_tokens=128),
                                progress=True)
    metrics["greedy_modes"] = solving_modes(samples)
    rng = random.Random(cfg.seed + 7)
    n = cfg.report_problems
    return {"eval": metrics,
            "self_instruct": measure_self_instruct(model, tokenizer, splits["seed"], rng, min(200, n)),
            "judge": measure_judge(model, tokenizer, judge_rows(splits["test"][:n], rng),
                                   cfg.judge_max_new_tokens)}


def solving_modes(samples: list[dict]) -> dict:
    """How greedy solutions answer: worked (numbered steps) or direct, and each one's accuracy.

    >>> solving_modes([{"greedy": "1. a\\nThe answer is 3.", "greedy_correct": True},
    ...                {"greedy": "The answer is 4.", "greedy_correct": False}])
    {'worked_share': 0.5, 'worked_accuracy': 1.0, 'direct_accuracy': 0.0}
    """
    worked: list[bool] = []
    direct: list[bool] = []
    for s in samples:
        (worked if s["greedy"].lstrip().startswith("1.") else direct).append(s["greedy_correct"])
    return {"worked_share": len(worked) / max(1, len(samples)),
            "worked_accuracy": sum(worked) / max(1, len(worked)),
            "direct_accuracy": sum(direct) / max(1, len(direct))}


def measure_self_instruct(model, tokenizer, seeds, rng: random.Random, n_prompts: int = 200) -> dict:
    """Share of problems written from SeRL's few-shot prompt that are well-formed."""
    from selfrl.data.arith import solve_arith_text
    from selfrl.prompts import parse_numbered_items
    from selfrl.rollout.base import SamplingParams
    from selfrl.rollout.hf import HFEngine
    from selfrl.selfplay.filters import is_well_formed_problem

    rows = selfinstruct_rows(seeds, n_prompts, rng)
    prompts = [tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True,
                                             tokenize=True, return_dict=False) for r in rows]
    params = SamplingParams(n=1, temperature=0.8, top_p=0.95, presence_penalty=2.0, max_new_tokens=96)
    outs = HFEngine(model, tokenizer, batch_size=100).generate(
        prompts, params, torch.Generator().manual_seed(0))
    items = [parse_numbered_items(g[0].text) for g in outs]
    ok = [bool(it) and is_well_formed_problem(it[0]) for it in items]
    grammatical = [bool(it) and solve_arith_text(it[0]) is not None for it in items]
    return {"well_formed": sum(ok) / len(ok), "n": len(ok),
            "parses_as_arith": sum(grammatical) / len(grammatical),
            "examples": [it[0] if it else "" for it in items[:5]]}


def measure_judge(model, tokenizer, pairs: list[dict], max_new_tokens: int = 48) -> dict:
    """Greedy judge accuracy on balanced pairs, in SERL's and SR-R1's formats."""
    from selfrl.judging.parse import parse_serl, parse_srr1
    from selfrl.prompts import serl_judge_messages, srr1_judge_messages
    from selfrl.rollout.base import SamplingParams
    from selfrl.rollout.hf import HFEngine

    engine = HFEngine(model, tokenizer, batch_size=100)
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens)

    def run(build_messages) -> list[str]:
        prompts = [tokenizer.apply_chat_template(build_messages(p), add_generation_prompt=True,
                                                 tokenize=True, return_dict=False) for p in pairs]
        return [g[0].text for g in engine.generate(prompts, params)]

    serl = run(lambda p: serl_judge_messages(p["question"], p["response_1"], p["response_2"]))
    srr1 = run(lambda p: srr1_judge_messages(p["question"], p["response_1"], p["response_2"]))
    def located(text: str, p: dict) -> bool:
        # first_diff/walk styles: did the check name the first step where the two differ?
        lines = zip(p["response_1"].splitlines(), p["response_2"].splitlines())
        first = next(i for i, (a, b) in enumerate(lines) if a != b) + 1
        named = re.search(r"Step (\d+):", text)
        return named is not None and int(named.group(1)) == first

    def solved(text: str, p: dict) -> bool:
        # solve style: is the judge's own answer the right one?
        mine = re.search(r"My answer: (-?\d+)", text)
        return mine is not None and mine.group(1) == str(p["answer"])

    serl_ok = [parse_serl(t) == p["winner"] for t, p in zip(serl, pairs)]
    srr1_ok = [parse_srr1(t) == "AB"[p["winner"] - 1] for t, p in zip(srr1, pairs)]

    def share(hit) -> tuple[float, float]:
        hits = [hit(t, p) for t, p in zip(serl, pairs)]
        right = sum(ok for ok, h in zip(serl_ok, hits) if h)
        return sum(hits) / len(pairs), right / max(1, sum(hits))

    (located_share, when_located), (solved_share, when_solved) = share(located), share(solved)
    return {"serl_accuracy": sum(serl_ok) / len(pairs), "srr1_accuracy": sum(srr1_ok) / len(pairs),
            "serl_parse_failures": sum(parse_serl(t) is None for t in serl),
            "srr1_parse_failures": sum(parse_srr1(t) is None for t in srr1), "n": len(pairs),
            "serl_located": located_share, "serl_accuracy_when_located": when_located,
            "serl_solved": solved_share, "serl_accuracy_when_solved": when_solved,
            "examples": [{"winner": p["winner"], "output": t} for t, p in zip(serl[:12], pairs)]}
