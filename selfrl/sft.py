"""Supervised fine-tuning (``selfrl sft CONFIG``): TRL's SFTTrainer behind selfrl's config.

The first stage of classic RLHF, and the "SFT on the same expert data" baseline that the
RL recipes are compared against.  Rows become prompt-completion pairs, so by default the
loss falls on the answer tokens only:

- ``prompt: template`` — plain text, ``prompt_template`` filled from the row
  (default ``"Question: {question}\\n\\nAnswer: "``) and the ``completion_field`` after it;
- ``prompt: chat`` — the question as the user turn, the answer as the assistant turn,
  through the tokenizer's chat template (the prompt ``selfrl eval`` and the RL recipes use).

Example::

    >>> from selfrl.config import load_config
    >>> cfg = load_config(SftConfig, None, ["data.train=rows.jsonl", "train.max_steps=2"])
    >>> cfg.data.prompt, cfg.data.completion_field, cfg.train.completion_only_loss
    ('template', 'response_j', True)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from selfrl.config.loader import StrictModel
from selfrl.data.io import DataError, read_rows
from selfrl.trl_support import HFRunConfig, HFTrainConfig, hf_trainer_args, peft_config


class SftDataConfig(StrictModel):
    train: str = Field(description="training rows (JSONL/Parquet/dataset)")
    question_field: str = Field("question", description="field holding the prompt text")
    completion_field: str = Field("response_j", description="field holding the target answer")
    prompt: Literal["template", "chat"] = Field(
        "template", description="template: plain text; chat: the tokenizer's chat template")
    prompt_template: str = Field("Question: {question}\n\nAnswer: ",
                                 description="template format: filled from the row's fields")
    limit: int = Field(0, ge=0, description="use only the first N rows (0: all)")


class SftTrainConfig(HFTrainConfig):
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    packing: bool = Field(False, description="pack several rows into each sequence")
    completion_only_loss: bool = Field(True, description="loss on the answer tokens only")
    save_steps: int = Field(0, ge=0, description="checkpoint every N steps (0: only at the end)")


class SftConfig(HFRunConfig):
    """A supervised fine-tuning run."""

    data: SftDataConfig
    train: SftTrainConfig = Field(default_factory=SftTrainConfig)
    output_dir: str = Field("runs/sft", description="where the model, checkpoints and report go")


def sft_rows(rows: list[dict], cfg: SftDataConfig, source: str = "data") -> list[dict]:
    """Prompt-completion rows in the form TRL's SFTTrainer takes.

    >>> data = SftDataConfig(train="x.jsonl")
    >>> sft_rows([{"question": "2+2?", "response_j": "4"}], data)
    [{'prompt': 'Question: 2+2?\\n\\nAnswer: ', 'completion': '4'}]
    """
    from selfrl.prompts import solve_messages

    out = []
    for i, row in enumerate(rows, start=1):
        answer = row[cfg.completion_field]
        if not isinstance(answer, str) or not answer.strip():
            raise DataError(f"{source}:{i}: field {cfg.completion_field!r} is empty or not text")
        if cfg.prompt == "template":
            try:
                prompt = cfg.prompt_template.format_map(row)
            except KeyError as e:
                raise DataError(f"{source}:{i}: prompt_template needs field {e.args[0]!r}") from None
            out.append({"prompt": prompt, "completion": answer})
            continue
        out.append({"prompt": solve_messages(row[cfg.question_field]),
                    "completion": [{"role": "assistant", "content": answer}]})
    return out


def run_sft(cfg: SftConfig, resume: str | None = None) -> dict:
    """Fine-tune, save model and tokenizer to ``cfg.output_dir``, and return the report.

    ``resume``: a TRL checkpoint folder, or ``"auto"`` for the last one in
    ``output_dir/checkpoints`` (optimizer, scheduler, RNG and data position included).
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from selfrl.models import check_saveable, load_causal_lm, load_tokenizer, resolve_device

    t0 = time.time()
    required = [cfg.data.completion_field]
    if cfg.data.prompt != "template":
        required.append(cfg.data.question_field)
    rows = read_rows(cfg.data.train, required, split="train")
    if cfg.data.limit:
        rows = rows[: cfg.data.limit]
    dataset = Dataset.from_list(sft_rows(rows, cfg.data, cfg.data.train))
    device = resolve_device(cfg.model.device)
    tokenizer = load_tokenizer(cfg.model.path)
    model = load_causal_lm(cfg.model.path, device=str(device), dtype="fp32")  # fp32 master weights
    check_saveable(model, cfg.model.path)
    out = Path(cfg.output_dir)
    t = cfg.train
    args = SFTConfig(
        **hf_trainer_args(cfg.model, t, str(out / "checkpoints"), cfg.report_to),
        weight_decay=t.weight_decay, packing=t.packing, completion_only_loss=t.completion_only_loss,
        save_strategy="steps" if t.save_steps else "no", save_steps=t.save_steps or 500,
        save_total_limit=2,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=peft_config(cfg.model.lora, "CAUSAL_LM"))
    checkpoint = _resume_path(out / "checkpoints", resume)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(str(out / "model"))
    tokenizer.save_pretrained(out / "model")
    log = [r for r in trainer.state.log_history if "loss" in r]
    report = {"train_loss": result.training_loss, "steps": result.global_step, "rows": len(dataset),
              "first_logged_loss": log[0]["loss"] if log else None,
              "last_logged_loss": log[-1]["loss"] if log else None,
              "minutes": (time.time() - t0) / 60, "model": str(out / "model"),
              "resumed_from": checkpoint}
    (out / "sft_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _resume_path(checkpoints: Path, resume: str | None) -> str | None:
    if resume is None:
        return None
    if resume != "auto":
        if not Path(resume).is_dir():
            raise FileNotFoundError(f"--resume {resume}: no such checkpoint folder")
        return resume
    found = sorted(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    if not found:
        raise FileNotFoundError(f"--resume auto: no checkpoint-* folder under {checkpoints}")
    return str(found[-1])
