"""A pairwise reward model: ``selfrl rm train CONFIG`` and ``selfrl rm score``.

A sequence classifier with one output scores ``Question: {question}\\n\\nAnswer: {response}``
(the StackExchange RLHF format); training minimises −mean log σ(r_j − r_k) over
(preferred ``response_j``, rejected ``response_k``) pairs with TRL's ``RewardTrainer``;
accuracy is the share of pairs with r_j > r_k.  Pairs whose longer side exceeds
``train.max_length`` tokens are dropped and counted, as are pairs with an empty or identical
side.

Example::

    >>> import torch
    >>> loss, acc = pairwise_loss_and_accuracy(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0]))
    >>> round(loss.item(), 4), acc
    (0.7201, 0.5)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from pydantic import Field, model_validator

from selfrl.config.loader import StrictModel
from selfrl.data.io import read_rows, staged_dir
from selfrl.rewards.reward_model import TEMPLATE, encode, load_reward_model, score_texts
from selfrl.trl_support import HFRunConfig, HFTrainConfig, hf_trainer_args, peft_config

__all__ = ["TEMPLATE", "RmConfig", "encode", "load_reward_model", "pair_accuracy",
           "pairwise_loss_and_accuracy", "preference_pairs", "run_rm", "score_texts"]


class RmDataConfig(StrictModel):
    train: str = Field(description="preference rows (JSONL/Parquet/dataset)")
    eval: str | None = Field(None, description="held-out preference rows for the accuracy report")
    question_field: str = Field("question", description="field holding the question")
    chosen_field: str = Field("response_j", description="field holding the preferred response")
    rejected_field: str = Field("response_k", description="field holding the rejected response")
    template: str = Field(TEMPLATE, description="text scored by the model ({question}, {response})")
    limit: int = Field(0, ge=0, description="use only the first N training rows (0: all)")
    train_split: str = Field(
        "train", description="data.train's split when it is a dataset (a folder or a hub name)")
    eval_split: str = Field(
        "test", description="data.eval's split when it is a dataset (a folder or a hub name)")
    subset: str | None = Field(None, description="a dataset's config name, or a folder inside it (data_dir, "
                                                 "e.g. data/reward for lvwerra/stack-exchange-paired)")

    @model_validator(mode="after")
    def _check_template(self) -> RmDataConfig:
        try:
            self.template.format(question="", response="")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"template {self.template!r} is not a format string over {{question}} and "
                             f"{{response}} ({type(e).__name__}: {e})") from None
        return self


class RmTrainConfig(HFTrainConfig):
    lr: float = Field(5e-5, gt=0, description="peak learning rate")
    schedule: str = Field("linear", description="LR schedule (transformers names)")
    max_length: int = Field(512, ge=8, description="pairs with a longer side are dropped (counted)")


class RmConfig(HFRunConfig):
    """A reward-model training run."""

    data: RmDataConfig
    train: RmTrainConfig = Field(default_factory=RmTrainConfig)
    output_dir: str = Field("runs/rm", description="where the model, report and logs go")


def pairwise_loss_and_accuracy(r_j: torch.Tensor, r_k: torch.Tensor) -> tuple[torch.Tensor, float]:
    """−mean log σ(r_j − r_k) and the share of pairs with r_j > r_k (ties count as wrong)."""
    loss = -torch.nn.functional.logsigmoid(r_j - r_k).mean()
    return loss, (r_j > r_k).float().mean().item()


def preference_pairs(rows: list[dict], data: RmDataConfig, tokenizer,
                     max_length: int) -> tuple[list[dict], dict]:
    """Tokenised pairs (``chosen_ids``, ``rejected_ids``) and the counts of what was dropped."""
    pairs, counts = [], {"rows": len(rows), "empty_or_identical": 0, "too_long": 0}
    for row in rows:
        q, j, k = row[data.question_field], row[data.chosen_field], row[data.rejected_field]
        if not str(j).strip() or not str(k).strip() or j == k:
            counts["empty_or_identical"] += 1
            continue
        ids_j = encode(tokenizer, data.template.format(question=q, response=j))
        ids_k = encode(tokenizer, data.template.format(question=q, response=k))
        if max(len(ids_j), len(ids_k)) > max_length:
            counts["too_long"] += 1
            continue
        pairs.append({"chosen_ids": ids_j, "rejected_ids": ids_k})
    counts["kept"] = len(pairs)
    return pairs, counts


def pair_accuracy(model, tokenizer, rows: list[dict], data: RmDataConfig) -> dict:
    """Held-out loss and accuracy over preference rows (the same template as training)."""
    j = score_texts(model, tokenizer, [data.template.format(question=r[data.question_field],
                                                             response=r[data.chosen_field]) for r in rows])
    k = score_texts(model, tokenizer, [data.template.format(question=r[data.question_field],
                                                             response=r[data.rejected_field]) for r in rows])
    loss, acc = pairwise_loss_and_accuracy(torch.tensor(j), torch.tensor(k))
    return {"loss": loss.item(), "accuracy": acc, "n": len(rows),
            "mean_chosen": sum(j) / len(j), "mean_rejected": sum(k) / len(k)}


def read_preferences(data: RmDataConfig) -> tuple[list[dict], list[dict] | None]:
    """The training rows (first ``limit``) and the held-out rows (None without ``eval``), each with
    the question and both response fields: every input is read before any training starts."""
    fields = [data.question_field, data.chosen_field, data.rejected_field]
    rows = read_rows(data.train, fields, split=data.train_split, subset=data.subset)
    held_out = read_rows(data.eval, fields, split=data.eval_split, subset=data.subset) if data.eval else None
    return rows[: data.limit] if data.limit else rows, held_out


def run_rm(cfg: RmConfig) -> dict:
    """Check every input, train the reward model and save it (model + tokenizer) with its report.

    The model is written to ``output_dir/model.partial`` and renamed to ``output_dir/model`` only
    when the report is written too, so a failed or interrupted run leaves no ``model`` folder
    that a pipeline would take for done.
    """
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from selfrl.models import load_tokenizer, resolve_model_path

    t0 = time.time()
    rows, held_out = read_preferences(cfg.data)
    path = resolve_model_path(cfg.model.path)
    tokenizer = load_tokenizer(path)
    pairs, counts = preference_pairs(rows, cfg.data, tokenizer, cfg.train.max_length)
    if not pairs:
        raise ValueError(f"{cfg.data.train}: no usable preference pair ({counts})")
    torch.manual_seed(cfg.train.seed)  # the new score head
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    out = Path(cfg.output_dir)
    args = RewardConfig(**hf_trainer_args(cfg.model, cfg.train, str(out / "checkpoints"), cfg.report_to),
                        save_strategy="no")
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(pairs),
                            processing_class=tokenizer, peft_config=peft_config(cfg.model.lora, "SEQ_CLS"))
    with staged_dir(out / "model") as staged:
        result = trainer.train()
        trainer.save_model(str(staged))
        tokenizer.save_pretrained(staged)
        report: dict = {"train_loss": result.training_loss, "steps": result.global_step, "pairs": counts,
                        "minutes": (time.time() - t0) / 60, "model": str(out / "model")}
        if held_out is not None:
            scorer = trainer.model.merge_and_unload() if cfg.model.lora is not None else trainer.model
            report["eval"] = pair_accuracy(scorer.eval(), tokenizer, held_out, cfg.data)
        (out / "rm_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
