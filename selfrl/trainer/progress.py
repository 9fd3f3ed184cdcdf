"""A rich progress bar for training steps, with live reward and accuracy."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class StepProgress:
    """``with StepProgress(total, start) as bar: bar.update(step, metrics)``."""

    def __init__(self, total: int, start: int = 0, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                                  disable=not enabled)
        self._task = self._progress.add_task("train", total=total, completed=start, info="")

    def __enter__(self) -> StepProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def update(self, step: int, metrics: dict) -> None:
        parts = [f"reward {metrics.get('reward/mean', float('nan')):.3f}"]
        for key in ("reward/accuracy/accuracy", "reward/accuracy", "eval/greedy_pass@1"):
            if key in metrics:
                parts.append(f"{key.split('/')[-1]} {metrics[key]:.3f}")
                break
        parts.append(f"{metrics.get('time/step', 0.0):.1f}s/step")
        self._progress.update(self._task, completed=step, info="  ".join(parts))
