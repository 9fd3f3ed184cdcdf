"""Metrics to ``RUN_DIR/metrics.jsonl``, TensorBoard, and Weights & Biases when asked."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


class MetricsLogger:
    """Append one JSON line per step; mirror numbers to TensorBoard / W&B.

    ``drop_after``: a resumed run first drops the rows (and TensorBoard events) of steps after
    this one, which the crashed run logged past its last checkpoint and the resume replays.

    >>> import tempfile
    >>> log = MetricsLogger(tempfile.mkdtemp(), tensorboard=False)
    >>> log.log(1, {"reward/mean": 0.5})
    >>> log.close()
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True, wandb: bool = False,
                 wandb_project: str = "selfrl", config: dict | None = None,
                 drop_after: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / "metrics.jsonl"
        if drop_after is not None:
            drop_rows_after(self.path, drop_after)
        self._file = open(self.path, "a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if drop_after is None else drop_after + 1
            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge)
        self._wandb = None
        if wandb:
            try:
                import wandb as wandb_lib
            except ImportError:
                raise ImportError("logging.wandb=true needs W&B: pip install 'selfrl[wandb]'") from None
            self._wandb = wandb_lib.init(project=wandb_project, config=config, dir=str(self.run_dir))

    def log(self, step: int, metrics: dict) -> None:
        numbers = {k: float(v) for k, v in metrics.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        row = {"step": step, **{k: (v if math.isfinite(v) else str(v)) for k, v in numbers.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in numbers.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(numbers, step=step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


class NullLogger:
    """A logger that drops everything (processes other than rank 0 of a multi-process run)."""

    def log(self, step: int, metrics: dict) -> None:
        """Drop ``metrics``."""

    def close(self) -> None:
        """Nothing to close."""


def drop_rows_after(path: str | Path, step: int) -> int:
    """Keep only the rows of ``path`` (a metrics.jsonl) up to ``step``, and none that a crash cut
    short; returns how many were dropped.  Rewritten atomically.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "metrics.jsonl"
    >>> _ = p.write_text('{"step": 1}\\n{"step": 2}\\n{"step": 3, "reward/m')
    >>> drop_rows_after(p, 1), p.read_text()
    (2, '{"step": 1}\\n')
    """
    path = Path(path)
    if not path.is_file():
        return 0
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [line for line in lines if _row_step(line) is not None and _row_step(line) <= step]
    if len(kept) < len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(tmp, path)
    return len(lines) - len(kept)


def _row_step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The rows of ``RUN_DIR/metrics.jsonl``."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics (is {run_dir} a run folder?)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
