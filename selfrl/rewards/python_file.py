"""A reward written by the user in a Python file: ``PythonFileReward("my_rewards.py:score")``.

WARNING: this imports and runs the user's code, with the full rights of the training
process.  Load only files you trust.

The convention: the named function is itself a reward.  It receives the
:class:`RewardBatch` and returns a list of floats (one per completion) or a
:class:`RewardResult`::

    # my_rewards.py
    def short_and_boxed(batch):
        return [float("\\\\boxed" in c and len(c) < 400) for c in batch.completions]

Use ``batch.prompts``, ``batch.completions``, ``batch.rows`` and ``batch.group_size``
(completions ``[g * group_size:(g + 1) * group_size]`` share a prompt).  The file is
imported once, when the reward is built; a missing file, a file that fails to import, or
a missing function is a :class:`RewardError` at that point.  The reward pickles as its
path and re-imports the file on unpickling (the function itself may not pickle).

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "my_rewards.py"
>>> code = "def has_boxed(batch):\\n    return [float('boxed' in c) for c in batch.completions]\\n"
>>> _ = path.write_text(code)
>>> reward = PythonFileReward(f"{path}:has_boxed")
>>> reward.name, reward(RewardBatch(["q", "q"], ["\\\\boxed{1}", "1"], [{}, {}], 2))
('has_boxed', [1.0, 0.0])
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from selfrl.rewards.base import RewardBatch, RewardError, RewardResult
from selfrl.rewards.registry import register_reward


def _import_file(path: Path) -> ModuleType:
    # A unique module name per file; registering it in sys.modules lets dataclasses and
    # pickling inside the user's file find their module, as with a normal import.
    module_name = "_selfrl_user_reward_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise RewardError(f"python reward: cannot import {path} (is it a .py file?)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's code: report which file failed and why
        sys.modules.pop(module_name, None)
        raise RewardError(f"python reward: importing {path} raised {type(e).__name__}: {e}") from e
    return module


def load_function(spec: str) -> Any:
    """The callable named by ``"path/to/file.py:function"`` (runs the file's code)."""
    file_part, sep, attr = spec.rpartition(":")
    if not sep or not file_part or not attr:
        raise RewardError(f"python reward: expected 'path/to/file.py:function', got {spec!r}")
    path = Path(file_part).expanduser().resolve()
    if not path.is_file():
        raise RewardError(f"python reward: no such file {path} (from {spec!r})")
    module = _import_file(path)
    fn = getattr(module, attr, None)
    if fn is None:
        found = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        raise RewardError(f"python reward: {path} has no function {attr!r}; callables there: {found}")
    if not callable(fn):
        raise RewardError(f"python reward: {path}:{attr} is a {type(fn).__name__}, not callable")
    return fn


@register_reward("python")
class PythonFileReward:
    """Calls a user function ``fn(batch) -> list[float] | RewardResult`` loaded from a file.

    Args:
        spec: ``"path/to/file.py:function"``; a relative path is taken from the current
            directory at construction.
        name: the name used in logs and errors (default: the function's name).
    """

    def __init__(self, spec: str, name: str | None = None) -> None:
        self.fn = load_function(spec)
        file_part, _, attr = spec.rpartition(":")
        # Keep the absolute path so an unpickled copy in another directory finds the file.
        self.spec = f"{Path(file_part).expanduser().resolve()}:{attr}"
        self.name = name or getattr(self.fn, "name", None) or getattr(self.fn, "__name__", attr)

    def __call__(self, batch: RewardBatch) -> RewardResult | list[float]:
        return self.fn(batch)

    def __getstate__(self) -> dict:
        return {"spec": self.spec, "name": self.name}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["spec"], state["name"])
