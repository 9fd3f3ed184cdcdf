"""The update phase of a sharded (FSDP2) policy on one device: MFU, tokens/s and peak memory
against ``selfrl plan``'s estimate for the same shape.

A randomly initialised Llama-shaped model is built from a config on the device (no hub; the
default, ``--preset 0.5b``, is Qwen2.5-0.5B's shape: 494 M parameters, tied embeddings), sharded
with selfrl's own :func:`~selfrl.trainer.sharding.shard` (each decoder layer, then the root; bf16
gathers and fp32 gradient reduction), and trained with the trainer's update step on random token
batches of a GRPO step's shape: ``--prompts`` prompts of ``--prompt-len`` tokens x ``--group``
completions of ``--completion-len`` tokens, cut into micro-batches of ``--micro-batch``
sequences (the completions of a prompt together, each prompt run once: the trainer's
shared-prompt layout), completion logprobs through the chunked output layer, the PPO-clip loss
aggregated token-mean, one AdamW step per batch after gradient clipping.

* **tokens/s**: tokens through the model per second of update (each distinct prompt once,
  plus every completion token).
* **MFU**: model FLOPs per second over ``--peak-tflops`` (989: H100/H200 dense bf16).  Model
  FLOPs = 3 x the forward's: 2 per parameter of every linear layer of the decoder for each
  token, the attention scores and their weighted sum (2 x 2 x layers x heads x head_dim per
  token and attended position, causal), and the output layer for completion tokens only (all
  the update needs).  Recomputation (checkpointing, the chunked output layer's backward) is
  not counted: it is work the model does not need.
* **peak memory**: ``torch.cuda.max_memory_allocated`` over the timed steps (after warm-up, so
  AdamW's state exists), beside :func:`selfrl.trainer.memory.estimate`'s update phase for the
  same shape (without its fragmentation margin).  On a CPU (``--device cpu``), the peak resident
  memory of the process over the timed steps minus what it held before the model was built
  (after one update of a one-layer model, so that lazily loaded libraries are not counted; run
  it with ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed tensors go back to the system at once).

GPU (one H200; < 3 min with torch, transformers and selfrl only, ``PYTHONPATH=.``)::

    PYTHONPATH=. torchrun --nproc_per_node 1 benchmarks/bench_fsdp_gpu.py --json bench_fsdp_gpu.json

The CPU path (gloo, fp32; what ``tests/test_plan.py`` runs)::

    PYTHONPATH=. python benchmarks/bench_fsdp_gpu.py --device cpu --preset tiny --steps 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

import torch

from selfrl.algorithms import POLICY_LOSSES, PolicyLossParams, aggregate_loss
from selfrl.trainer.batch import completion_logprobs, pad_sequences, pad_shared_prompts
from selfrl.trainer.lm_head import OutputHead
from selfrl.trainer.memory import FRAGMENTATION, GIB, KNOWN_SHAPES, Layout, ModelShape, RunShape
from selfrl.trainer.memory import estimate as plan_estimate
from selfrl.trainer.schedule import make_adamw
from selfrl.trainer.sharding import full_value, in_forward, shard

PRESETS = {"0.5b": KNOWN_SHAPES["qwen2.5-0.5b"],
           "tiny": ModelShape(vocab=2048, hidden=256, layers=4, heads=4, kv_heads=2, intermediate=688),
           "small": ModelShape(vocab=8192, hidden=512, layers=6, heads=8, kv_heads=2, intermediate=1376,
                               tied=True)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--preset", default="0.5b", choices=sorted(PRESETS), help="the model's shape")
    p.add_argument("--prompts", type=int, default=8, help="distinct prompts per update")
    p.add_argument("--group", type=int, default=8, help="completions per prompt")
    p.add_argument("--prompt-len", type=int, default=256)
    p.add_argument("--completion-len", type=int, default=1024)
    p.add_argument("--micro-batch", type=int, default=16, help="sequences per forward/backward")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--dtype", default=None, choices=["bf16", "fp32"],
                   help="default: bf16 on cuda, fp32 on cpu")
    p.add_argument("--warmup", type=int, default=1, help="untimed updates (AdamW's state is made here)")
    p.add_argument("--steps", type=int, default=4, help="timed updates")
    p.add_argument("--peak-tflops", type=float, default=989.0,
                   help="the device's dense bf16 peak (H100/H200: 989)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the results here too")
    args = p.parse_args(argv)
    if args.micro_batch % args.group and args.group % args.micro_batch:
        p.error("--micro-batch must be a multiple or a divisor of --group (whole prompts per micro-batch)")
    return args


def init_process_group(device: str) -> None:
    """torchrun's rendezvous, or a group of one on a free local port."""
    if "MASTER_ADDR" not in os.environ:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1",
                          LOCAL_RANK="0")
    torch.distributed.init_process_group("nccl" if device == "cuda" else "gloo")


def build_model(shape: ModelShape, device: torch.device, seed: int, checkpointing: bool):
    """A random ``LlamaForCausalLM`` of ``shape`` in fp32 (the trainer's master weights), on ``device``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=shape.vocab, hidden_size=shape.hidden, num_hidden_layers=shape.layers,
                      num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
                      intermediate_size=shape.intermediate, head_dim=shape.hd, tie_word_embeddings=shape.tied,
                      max_position_embeddings=4096, attention_dropout=0.0)
    torch.manual_seed(seed)
    with device:
        model = LlamaForCausalLM(cfg).to(torch.float32)
    if checkpointing:
        model.gradient_checkpointing_enable()
    return model.train()


def make_batches(args: argparse.Namespace, vocab: int, device: torch.device) -> list:
    """The update's micro-batches: random tokens, each micro-batch whole prompts' completions
    (each prompt run once, as the trainer does unless gradient checkpointing is on)."""
    g = torch.Generator().manual_seed(args.seed)
    batches = []
    per = max(1, args.micro_batch // args.group)  # prompts per micro-batch
    for first in range(0, args.prompts, per):
        prompts = [torch.randint(3, vocab, (args.prompt_len,), generator=g).tolist()
                   for _ in range(min(per, args.prompts - first))]
        rows = [p for p in prompts for _ in range(args.group)]
        for s in range(0, len(rows), args.micro_batch):
            part = rows[s:s + args.micro_batch]
            completions = [torch.randint(3, vocab, (args.completion_len,), generator=g).tolist()
                           for _ in part]
            # gradient checkpointing turns the key/value cache off: the trainer pads then (one run per row)
            seq = pad_sequences(part, completions, 0, device) if args.gradient_checkpointing \
                else pad_shared_prompts(part, completions, 0, device)
            adv = torch.randn(len(part), generator=g).to(device)[:, None].expand(-1, args.completion_len)
            batches.append((seq, adv))
    return batches


def update(model, head, optimizer, batches, autocast) -> float:
    """One optimizer step over all micro-batches; returns the gradient norm."""
    n_tok = float(sum(seq.response_mask.sum() for seq, _ in batches))
    optimizer.zero_grad(set_to_none=True)
    for seq, adv in batches:
        with autocast():
            logprobs, _ = in_forward(model, lambda s=seq: completion_logprobs(
                model, s, 1.0, with_entropy=True, head=head))  # (b, C)
        mask = seq.response_mask
        ppo_clip = POLICY_LOSSES.get("ppo_clip")
        # on-policy (one epoch): the old logprobs are these, detached
        loss_mat, _ = ppo_clip(logprobs, logprobs.detach(), adv, mask, PolicyLossParams())
        aggregate_loss(loss_mat, mask, "token-mean", num_tokens=n_tok).backward()
    norm = full_value(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
    optimizer.step()
    return float(norm)


def model_flops(shape: ModelShape, args: argparse.Namespace) -> float:
    """3 x the forward FLOPs of one update (see the module docstring)."""
    decoder_linear = shape.layers * (shape.layer_params - 2 * shape.hidden)
    prompt_tokens = args.prompts * args.prompt_len
    completion_tokens = args.prompts * args.group * args.completion_len
    tokens = prompt_tokens + completion_tokens
    # attended positions: a prompt token sees half its prompt on average; a completion token the
    # whole prompt and half its completion
    attended = prompt_tokens * args.prompt_len / 2 \
        + completion_tokens * (args.prompt_len + args.completion_len / 2)
    forward = 2 * decoder_linear * tokens + 4 * shape.layers * shape.q_width * attended \
        + 2 * shape.vocab * shape.hidden * completion_tokens
    return 3 * forward


def plan_for(shape: ModelShape, args: argparse.Namespace, compute_bytes: int) -> float:
    """``selfrl plan``'s update-phase peak for this shape, without the fragmentation margin."""
    run = RunShape(micro_batch=args.micro_batch, group_size=args.group, prompt_len=args.prompt_len,
                   completion_len=args.completion_len, gradient_checkpointing=args.gradient_checkpointing,
                   compute_bytes=compute_bytes)
    plan = plan_estimate(shape, run, Layout("fsdp", devices=torch.distributed.get_world_size()), 1e6)
    return plan.phases["update"] / (1 + FRAGMENTATION)


def rss_bytes(field: str = "VmRSS") -> int:
    """This process's resident memory now (``VmRSS``) or its peak since the last reset (``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak(device: torch.device) -> None:
    """Start measuring the peak from here: the CUDA allocator's, or the process's resident peak
    (writing 5 to ``/proc/self/clear_refs`` resets ``VmHWM``, Linux >= 4.0)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:  # where it is not allowed, the peak counts from the start (model building included)
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")


def warm_up_code_paths(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> None:
    """One update of a one-layer model, so that the libraries the real run loads lazily are loaded
    before the CPU baseline is taken (their pages are not the run's tensors)."""
    small = ModelShape(vocab=64, hidden=32, layers=1, heads=2, kv_heads=1, intermediate=64)
    tiny_args = argparse.Namespace(**{**vars(args), "prompts": 1, "prompt_len": 4, "completion_len": 4})
    model = build_model(small, device, args.seed, args.gradient_checkpointing)
    head = OutputHead.probe(model)
    shard(model, device, dtype)
    optimizer = make_adamw(list(model.parameters()), lr=1e-6)
    update(model, head, optimizer, make_batches(tiny_args, small.vocab, device), _autocast(device, dtype))
    del model, head, optimizer
    import gc

    gc.collect()


def _autocast(device: torch.device, dtype: torch.dtype):
    return lambda: torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def run(args: argparse.Namespace) -> dict:
    init_process_group(args.device)
    rank = torch.distributed.get_rank()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if args.device == "cuda" \
        else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    name = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[name]
    shape = PRESETS[args.preset]
    if device.type == "cpu":
        warm_up_code_paths(args, device, dtype)
    rss_before = rss_bytes()
    model = build_model(shape, device, args.seed, args.gradient_checkpointing)
    head = OutputHead.probe(model)
    shard(model, device, dtype)
    optimizer = make_adamw([p for p in model.parameters()], lr=1e-6)
    batches = make_batches(args, shape.vocab, device)
    autocast = _autocast(device, dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        update(model, head, optimizer, batches, autocast)
    sync()
    reset_peak(device)
    times, norms = [], []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        norms.append(update(model, head, optimizer, batches, autocast))
        sync()
        times.append(time.perf_counter() - t0)
    # CPU: the batches' token tensors are tiny next to the rest; the peak counts from before the model
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" \
        else rss_bytes("VmHWM") - rss_before
    step_s = sorted(times)[len(times) // 2]
    tokens = args.prompts * args.prompt_len + args.prompts * args.group * args.completion_len
    flops = model_flops(shape, args)
    estimate = plan_for(shape, args, 2 if dtype != torch.float32 else 4)
    result = {
        "date": date.today().isoformat(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda"
        else (platform.processor() or "cpu"),
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                     "python": platform.python_version()},
        "world_size": torch.distributed.get_world_size(), "dtype": str(dtype).removeprefix("torch."),
        "shape": asdict(shape), "parameters": shape.params,
        "batch": {"prompts": args.prompts, "group": args.group, "prompt_len": args.prompt_len,
                  "completion_len": args.completion_len, "micro_batch": args.micro_batch,
                  "gradient_checkpointing": args.gradient_checkpointing},
        "step_s_median": step_s, "step_s": times, "tokens_per_step": tokens,
        "tokens_per_s": tokens / step_s, "model_tflops_per_step": flops / 1e12,
        "mfu": flops / step_s / (args.peak_tflops * 1e12), "peak_tflops": args.peak_tflops,
        "peak_memory_gib": peak / GIB, "plan_estimate_gib": estimate / GIB,
        "estimate_over_measured": estimate / peak if peak > 0 else math.nan,
        "grad_norms": norms,
    }
    if rank == 0:
        print(json.dumps(result, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    torch.distributed.destroy_process_group()
    return result


if __name__ == "__main__":
    run(parse_args())
