"""``selfrl pipeline PIPELINE.yaml``: run stages in order, skipping those already done.

A pipeline is a list of stages, each one of selfrl's commands with its own config::

    stages:
      - {name: sft, kind: sft, config: sft.yaml, output: runs/rlhf_tiny/sft/model}
      - {name: sft_merge, kind: merge, adapter: runs/rlhf_tiny/sft/model,
         output: runs/rlhf_tiny/sft_merged}
      - {name: rm, kind: rm, config: rm.yaml, output: runs/rlhf_tiny/rm/model}
      - {name: ppo, kind: train, config: ppo.yaml, output: runs/rlhf_tiny/ppo/final}

A stage whose ``output`` exists is skipped, so a pipeline that stopped half-way continues
where it stopped (a ``train`` stage also resumes from its last checkpoint).  Every output is
written beside its place (``NAME.partial``) and renamed in when complete, so a stage that
failed or was interrupted leaves nothing that looks done.  Config paths
are relative to the pipeline file; ``overrides`` are dotted ``key=value`` strings.  For a
``train`` stage, ``output`` is where the final model is copied (loadable with
``from_pretrained``; a LoRA run's adapter is merged first).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from selfrl.config.loader import StrictModel, load_config
from selfrl.data.io import staged_dir


class PipelineStopped(RuntimeError):
    """A stage was interrupted (Ctrl-C, SIGTERM) after saving a checkpoint."""


class Stage(StrictModel):
    name: str = Field(description="shown in the log")
    kind: Literal["sft", "rm", "train", "merge"] = Field(description="which selfrl command runs")
    config: str | None = Field(None, description="YAML config (sft, rm, train), relative to the pipeline")
    overrides: list[str] = Field(default_factory=list, description="dotted key=value overrides")
    adapter: str | None = Field(None, description="merge: the adapter folder")
    output: str = Field(description="the stage's product; when it exists the stage is skipped")

    @model_validator(mode="after")
    def _check(self) -> Stage:
        if self.kind == "merge" and not self.adapter:
            raise ValueError(f"stage {self.name!r}: a merge stage needs 'adapter'")
        if self.kind != "merge" and not self.config:
            raise ValueError(f"stage {self.name!r}: a {self.kind} stage needs 'config'")
        return self


class PipelineConfig(StrictModel):
    """An ordered list of stages."""

    stages: list[Stage] = Field(min_length=1, description="run in order")


def run_pipeline(path: str | Path, log=print) -> list[str]:
    """Run the stages of the pipeline at ``path``; returns the names of the stages that ran."""
    path = Path(path)
    cfg = load_config(PipelineConfig, path)
    ran = []
    for stage in cfg.stages:
        if Path(stage.output).exists():
            log(f"[{stage.name}] done already ({stage.output} exists): skipped")
            continue
        log(f"[{stage.name}] running {stage.kind}")
        _run_stage(stage, path.parent)
        if not Path(stage.output).exists():
            raise RuntimeError(f"stage {stage.name!r} finished but did not produce {stage.output}")
        ran.append(stage.name)
    return ran


def _run_stage(stage: Stage, base: Path) -> None:
    config = str(base / stage.config) if stage.config else None
    if stage.kind == "sft":
        from selfrl.sft import SftConfig, run_sft

        run_sft(load_config(SftConfig, config, stage.overrides))
    elif stage.kind == "rm":
        from selfrl.rlhf.rm import RmConfig, run_rm

        run_rm(load_config(RmConfig, config, stage.overrides))
    elif stage.kind == "merge":
        from selfrl.rlhf.merge import merge_adapter

        with staged_dir(stage.output) as staged:
            merge_adapter(stage.adapter, staged)
    else:
        _run_train(stage, config)


def _run_train(stage: Stage, config: str) -> None:
    from selfrl.config.schema import RunConfig
    from selfrl.recipes import build_trainer
    from selfrl.rlhf.merge import merge_adapter
    from selfrl.trainer import checkpoint as ckpt

    cfg = load_config(RunConfig, config, stage.overrides)
    resume = "auto" if ckpt.list_checkpoints(cfg.logging.run_dir) else None
    summary = build_trainer(cfg, resume=resume).fit()
    if cfg.logging.report:
        from selfrl.report import report_after_training

        report_after_training(cfg.logging.run_dir)
    if "stopped_by_signal" in summary:  # not finished: leave no output, so a re-run resumes
        raise PipelineStopped(f"stage {stage.name!r} stopped by {summary['stopped_by_signal']}; "
                              f"its checkpoint is in {cfg.logging.run_dir}: run the pipeline again to resume")
    final = ckpt.list_checkpoints(cfg.logging.run_dir)[-1] / "model"
    with staged_dir(stage.output) as staged:
        if (final / "adapter_config.json").is_file():
            merge_adapter(final, staged)
        else:
            shutil.copytree(final, staged, dirs_exist_ok=True)
