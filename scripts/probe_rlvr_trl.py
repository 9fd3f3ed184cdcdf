"""Train the embedded model with TRL's GRPOTrainer in the shape of ``recipes/rlvr_tiny.yaml``.

The learning check beside the speed benchmark: does TRL's GRPO, on the same model, data
and shape (8 prompts × 8 samples, 96 new tokens, T = 1, token-mean loss, rewards scaled
by the group's std, no KL, 5 warmup steps then a constant lr), move held-out greedy
accuracy any more than selfrl's trainer does?  It saves the final model for ``selfrl eval``.
RESULTS.md ("RLVR ... side by side with TRL") has the figures:

    python scripts/probe_rlvr_trl.py --lr 2e-5 --steps 60 --output /tmp/trl_rlvr
    selfrl eval --model /tmp/trl_rlvr/final --data data/arith/test.jsonl --n 1 --k 1 --max-new-tokens 96
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--train", default="data/arith/train.jsonl", help="from `selfrl data arith`")
    ap.add_argument("--model", default=None, help="default: the embedded model")
    ap.add_argument("--output", type=Path, required=True)
    args = ap.parse_args()

    from bench_step import TRLAccuracy
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from selfrl.data.io import read_rows
    from selfrl.models import embedded_model_path

    model_dir = args.model or str(embedded_model_path())
    rows = read_rows(args.train)
    dataset = Dataset.from_list([{"prompt": r["prompt"], "answer": str(r["answer"])} for r in rows])
    # transformers 5 renamed gradient_checkpointing (TRL's default: True) to activation_checkpointing.
    renamed = "activation_checkpointing" in GRPOConfig.__dataclass_fields__
    no_checkpointing = {"activation_checkpointing" if renamed else "gradient_checkpointing": False}
    config = GRPOConfig(
        output_dir=str(args.output), max_steps=args.steps, learning_rate=args.lr,
        per_device_train_batch_size=64, gradient_accumulation_steps=1, steps_per_generation=1,
        num_iterations=1, num_generations=8, max_completion_length=96, temperature=1.0, top_p=1.0,
        top_k=0, beta=0.0, loss_type="dapo", scale_rewards="group", bf16=False, fp16=False,
        use_cpu=True, report_to=[], logging_steps=10, save_strategy="no", disable_tqdm=True,
        seed=0, log_completions=False, warmup_steps=5, lr_scheduler_type="constant_with_warmup",
        **no_checkpointing,
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
                          reward_funcs=[TRLAccuracy()], args=config, train_dataset=dataset,
                          processing_class=tokenizer)
    t0 = time.time()
    trainer.train()
    print(f"trained {args.steps} steps in {(time.time() - t0) / 60:.1f} min")
    trainer.save_model(str(args.output / "final"))
    tokenizer.save_pretrained(str(args.output / "final"))


if __name__ == "__main__":
    main()
