"""Atomic checkpoints: written to a temporary folder, then renamed into place.

A checkpoint ``RUN_DIR/checkpoints/step-000010/`` holds ``model/`` (Hugging Face format,
``from_pretrained``-loadable; a PEFT adapter when training LoRA), the tokenizer, and
``trainer_state.pt`` (optimizer, scheduler, every RNG state, the data cursor, recipe state).
A sharded run's (``train.sharding=fsdp``) holds ``shards/`` instead (the trained weights and the
optimizer state, one file per process: :func:`save_sharded_checkpoint`) and ``trainer_state.pt``
without them; ``model/`` is gathered only at the end of the run, or by ``selfrl export``
(:func:`export_checkpoint`).
A crash while writing leaves only a ``.tmp-*`` folder behind; the last complete checkpoint
is untouched, and a resume removes the leftovers (:func:`remove_partial_saves`).
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from selfrl.trainer.sharding import SHARDS, load_shards_unsharded

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
    return _put_in_place(tmp, final, run_dir, keep_last)


def _put_in_place(tmp: Path, final: Path, run_dir: str | Path, keep_last: int) -> Path:
    """Rename the written ``tmp`` to ``final`` and prune all but the newest ``keep_last``."""
    if final.exists():  # re-saving the same step (e.g. a stop right after a periodic save)
        old = final.parent / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    for old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old)
    return final


def save_sharded_checkpoint(run_dir: str | Path, step: int, state: dict, keep_last: int, dist,
                            write_shards: Callable[[Path], None],
                            export: Callable[[Path], None] | None = None) -> Path:
    """Write checkpoint ``step`` of a sharded run atomically: every process writes its shards
    (``write_shards(folder)``) and, with ``export``, takes part in gathering the Hugging Face
    export (``export(folder / "model")``); rank 0 writes ``trainer_state.pt``, renames and prunes.
    ``dist``: the :class:`~selfrl.trainer.distributed.DistContext`.  Every process must call it."""
    root = checkpoint_dir(run_dir)
    final = root / f"{PREFIX}{step:06d}"
    tmp = root / dist.gather_objects(f".tmp-{PREFIX}{step:06d}-{os.getpid()}")[0]  # rank 0's name
    if dist.is_main:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    dist.barrier()
    write_shards(tmp / SHARDS)
    if export is not None:
        export(tmp / "model")
    if dist.is_main:
        torch.save(state, tmp / "trainer_state.pt")
        _put_in_place(tmp, final, run_dir, keep_last)
    dist.barrier()  # nobody reads or resumes from a half-written checkpoint
    return final


def is_sharded_checkpoint(path: str | Path) -> bool:
    """Whether the checkpoint at ``path`` was written by a sharded run (``shards/``)."""
    return (Path(path) / SHARDS).is_dir()


def export_checkpoint(checkpoint: str | Path, output: str | Path | None = None) -> Path:
    """A sharded checkpoint's policy as a Hugging Face folder (default ``CHECKPOINT/model``), in
    one process on the CPU: the run's ``model.path`` (and LoRA settings) from ``trainer_state.pt``
    give the architecture and the frozen weights, the shards the trained ones.  ``selfrl export``."""
    from selfrl.models import load_causal_lm, load_tokenizer, with_lora

    checkpoint = Path(checkpoint)
    if not is_sharded_checkpoint(checkpoint):
        raise FileNotFoundError(f"{checkpoint}: not a sharded checkpoint (no {SHARDS}/ folder); a checkpoint "
                                f"of an unsharded run holds its Hugging Face export in model/ already")
    cfg = load_trainer_state(checkpoint)["config"]["model"]
    model = load_causal_lm(cfg["path"], device="cpu", dtype="fp32")
    if cfg.get("lora"):
        lora = cfg["lora"]
        model = with_lora(model, lora["r"], lora["alpha"], lora["dropout"], lora["target_modules"])
    load_shards_unsharded(checkpoint / SHARDS, "policy", model)
    out = Path(output) if output is not None else checkpoint / "model"
    model.save_pretrained(out)
    load_tokenizer(cfg["path"]).save_pretrained(out)
    return out


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
