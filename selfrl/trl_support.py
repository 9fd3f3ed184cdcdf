"""What ``selfrl sft`` and ``selfrl rm train`` share: the training options of a
transformers/TRL trainer, and turning selfrl's model config into its arguments."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from selfrl.config.loader import StrictModel
from selfrl.config.schema import LoraConfig, ModelConfig


class HFTrainConfig(StrictModel):
    max_steps: int = Field(0, ge=0, description="optimizer steps (0: run `epochs` passes)")
    epochs: float = Field(1.0, gt=0, description="passes over the data when max_steps is 0")
    batch_size: int = Field(8, ge=1, description="rows (or pairs) per micro-batch")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    lr: float = Field(2e-5, gt=0, description="peak learning rate")
    schedule: str = Field("cosine", description="LR schedule (transformers names: cosine, linear, constant)")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="share of steps spent warming up")
    max_length: int = Field(1024, ge=8, description="longest tokenised row")
    seed: int = Field(0, description="seeds new weights, data order and dropout")
    logging_steps: int = Field(10, ge=1, description="log every N steps")


class HFRunConfig(StrictModel):
    """Fields of every TRL-backed run: the model, where outputs go, and the loggers."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    output_dir: str = Field("runs/out", description="where the model, checkpoints and report go")
    report_to: list[str] = Field(default_factory=lambda: ["tensorboard"],
                                 description="TRL/transformers loggers (tensorboard, wandb; [] for none)")


def hf_trainer_args(model: ModelConfig, train: HFTrainConfig, output_dir: str,
                    report_to: list[str]) -> dict[str, Any]:
    """Keyword arguments common to TRL's ``SFTConfig`` and ``RewardConfig``.

    Precision follows :func:`selfrl.models.pick_dtype`: bf16 mixed precision on GPUs and
    CPUs with native bf16, fp32 elsewhere (bf16 autocast is ~20x slower on other CPUs).
    """
    import torch

    from selfrl.models import pick_dtype, resolve_device

    device = resolve_device(model.device)
    dtype = pick_dtype(device, model.dtype)
    return dict(
        output_dir=output_dir, max_steps=train.max_steps or -1, num_train_epochs=train.epochs,
        per_device_train_batch_size=train.batch_size, gradient_accumulation_steps=train.grad_accum,
        learning_rate=train.lr, lr_scheduler_type=train.schedule, warmup_steps=train.warmup_ratio,
        max_length=train.max_length, seed=train.seed, data_seed=train.seed,
        bf16=dtype == torch.bfloat16, fp16=dtype == torch.float16, use_cpu=device.type == "cpu",
        gradient_checkpointing=model.gradient_checkpointing, logging_steps=train.logging_steps,
        report_to=report_to, dataloader_num_workers=0,
    )


def peft_config(lora: LoraConfig | None, task_type: str):
    """PEFT's ``LoraConfig`` for ``task_type`` (``CAUSAL_LM``, ``SEQ_CLS``), or None."""
    if lora is None:
        return None
    from peft import LoraConfig as PeftLoraConfig

    return PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                          target_modules=lora.target_modules, task_type=task_type)
