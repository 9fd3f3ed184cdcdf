"""Atomic checkpoints: written to a temporary folder, then renamed into place.

A checkpoint ``RUN_DIR/checkpoints/step-000010/`` holds ``model/`` (Hugging Face format,
``from_pretrained``-loadable; a PEFT adapter when training LoRA), the tokenizer, and
``trainer_state.pt`` (optimizer, scheduler, every RNG state, the data cursor, recipe state).
A crash while writing leaves only a ``.tmp-*`` folder behind; the last complete checkpoint
is untouched, and a resume removes the leftovers (:func:`remove_partial_saves`).
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import torch

PREFIX = "step-"
# What a run writes into its folder: ``selfrl train --overwrite`` removes exactly these.
RUN_ARTEFACTS = ("metrics.jsonl", "config.yaml", "checkpoints", "tensorboard", "eval", "selfplay", "plots",
                 "wandb", "rollouts.jsonl", "rollouts.1.jsonl", "report.html")


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir()
                  if p.is_dir() and p.name.startswith(PREFIX) and (p / "trainer_state.pt").is_file())


def holds_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` already holds a run: its metrics or anything under ``checkpoints/``."""
    root = checkpoint_dir(run_dir)
    return (Path(run_dir) / "metrics.jsonl").is_file() or (root.is_dir() and any(root.iterdir()))


def clear_run(run_dir: str | Path) -> None:
    """Remove an earlier run's files (:data:`RUN_ARTEFACTS`) from ``run_dir``; anything else stays."""
    for name in RUN_ARTEFACTS:
        path = Path(run_dir) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def remove_partial_saves(run_dir: str | Path) -> list[Path]:
    """Clean up after a crash in :func:`save_checkpoint`: remove ``.tmp-*`` folders (half-written
    checkpoints) and ``.old-*`` ones, but put an ``.old-step-N-*`` back as ``step-N`` when the
    crash came between its two renames and left no ``step-N``.  Returns what was removed."""
    root = checkpoint_dir(run_dir)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for path in sorted(root.glob(".old-*")) + sorted(root.glob(".tmp-*")):  # .old- first: may restore
        if not path.is_dir():
            continue
        final = root / path.name.removeprefix(".old-").rsplit("-", 1)[0]
        if path.name.startswith(".old-") and final.name.startswith(PREFIX) and not final.exists():
            os.replace(path, final)
        else:
            shutil.rmtree(path)
            removed.append(path)
    return removed


def resolve_resume(resume: str | None, run_dir: str | Path) -> Path | None:
    """``auto`` → the newest checkpoint of ``run_dir`` (or ``None``); a path → that checkpoint."""
    if not resume:
        return None
    if resume == "auto":
        found = list_checkpoints(run_dir)
        return found[-1] if found else None
    path = Path(resume)
    if (path / "trainer_state.pt").is_file():
        return path
    found = list_checkpoints(path)  # a run folder
    if found:
        return found[-1]
    raise FileNotFoundError(f"--resume {resume}: not a checkpoint (no trainer_state.pt) nor a run folder "
                            f"with checkpoints")


def rng_state(generator: torch.Generator) -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "generator": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, generator: torch.Generator) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: str | Path, step: int, model, tokenizer, state: dict,
                    keep_last: int) -> Path:
    """Write checkpoint ``step`` atomically and prune all but the newest ``keep_last``."""
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:06d}"
    tmp = root / f".tmp-{PREFIX}{step:06d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp / "model")
    tokenizer.save_pretrained(tmp / "model")
    torch.save(state, tmp / "trainer_state.pt")
    if final.exists():  # re-saving the same step (e.g. a stop right after a periodic save)
        old = root / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    for old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old)
    return final


def load_trainer_state(path: str | Path) -> dict:
    return torch.load(Path(path) / "trainer_state.pt", map_location="cpu", weights_only=False)


def load_weights(model, folder: Path, lora: bool) -> None:
    """Copy a checkpoint's weights into ``model`` in place (keeps the optimizer's parameters)."""
    from safetensors.torch import load_file

    if lora:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors")))
        return
    files = sorted(folder.glob("*.safetensors"))
    state = {}
    for f in files:
        state.update(load_file(str(f)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and model.config.tie_word_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"checkpoint {folder} does not match the model: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
