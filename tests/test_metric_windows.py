"""scripts/metric_windows.py: window means of training metrics, plain and weighted, from a
metrics.jsonl written by hand."""

from __future__ import annotations

import doctest
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "metric_windows.py"


@pytest.fixture(scope="module")
def windows():
    spec = importlib.util.spec_from_file_location("metric_windows", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docstring_examples(windows):
    assert doctest.testmod(windows).failed == 0


def test_weighted_mean_pools_over_the_weight_and_skips_nan(windows):
    rows = [{"step": 1, "acc": 1.0, "pairs": 1.0},    # one pair, right
            {"step": 2, "acc": 0.25, "pairs": 4.0},   # four pairs, one right
            {"step": 3, "acc": math.nan, "pairs": 0.0},  # no pair judged: nan, left out
            {"step": 4, "acc": 0.5}]                  # no weight logged: left out of the weighted mean
    assert windows.window_means(rows, "acc", 1, 3) == pytest.approx(0.625)
    assert windows.window_means(rows, "acc", 1, 4, weight="pairs") == pytest.approx(2 / 5)
    assert math.isnan(windows.window_means(rows, "acc", 3, 3, weight="pairs"))
    assert math.isnan(windows.window_means(rows, "missing", 1, 4))


def test_command_line_prints_a_row_per_run_and_key(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"step": s, "a": float(s), "w": 1.0 if s < 3 else 3.0} for s in range(1, 5)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = subprocess.run([sys.executable, str(SCRIPT), str(run), "--keys", "a", "--windows", "1-2", "3-4",
                          "--weight", "w"], capture_output=True, text=True, check=True).stdout
    assert f"| {run} | a | 1.5 | 3.5 |" in out
