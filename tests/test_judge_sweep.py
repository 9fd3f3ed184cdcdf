"""scripts/judge_sweep.py: collecting gain against simulated judge accuracy from run folders (made by
hand here), its table and plot, and its run part for one step on the tiny model."""

from __future__ import annotations

import doctest
import importlib.util
import json
import math
from pathlib import Path

import pytest
import yaml

from selfrl.data.instruct import InstructSpec, write_instruct

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sweep():
    spec = importlib.util.spec_from_file_location("judge_sweep", REPO / "scripts" / "judge_sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_run(run_dir: Path, before: float, after: float, accuracies: list[float]) -> None:
    """A finished run folder as ``selfrl train`` leaves it: evaluations at step 0 and at the end,
    the simulated judge's measured accuracy at every step."""
    run_dir.mkdir(parents=True)
    rows = [{"step": 0, "eval/greedy_constraint_level": before}]
    rows += [{"step": s, "reward/mean": 0.5, "reward/judge_accuracy": a, "kl": "nan"}
             for s, a in enumerate(accuracies, start=1)]
    rows.append({"step": len(accuracies), "eval/greedy_constraint_level": after})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "sweep.json").write_text("{}\n")


def test_collect_table_and_plot_from_run_folders(sweep, tmp_path):
    out = tmp_path / "sweep"
    gains = {("elo", 0.5): [(0.40, 0.38), (0.40, 0.42)], ("elo", 1.0): [(0.40, 0.50), (0.40, 0.56)],
             ("copeland", 0.5): [(0.40, 0.40), (0.40, 0.40)], ("copeland", 1.0): [(0.40, 0.45)]}
    for (agg, p), pairs in gains.items():
        for seed, (before, after) in enumerate(pairs):
            fake_run(sweep.run_dir_for(out, agg, p, seed), before, after, [p, p - 0.02])
    summary = sweep.collect(out, ["copeland", "elo"], [0.5, 1.0], [0, 1], "greedy_constraint_level")
    elo_1 = summary["table"]["elo"]["1.00"]
    # by hand: gains 10 and 16 points; mean 13, standard error |16 - 10| / 2 = 3
    assert elo_1["gain"]["mean"] == pytest.approx(13.0) and elo_1["gain"]["se"] == pytest.approx(3.0)
    assert elo_1["gain"]["n"] == 2 and elo_1["judge_accuracy"]["mean"] == pytest.approx(99.0)
    assert summary["table"]["elo"]["0.50"]["gain"]["mean"] == pytest.approx(0.0)
    one_seed = summary["table"]["copeland"]["1.00"]["gain"]
    assert one_seed["n"] == 1 and one_seed["mean"] == pytest.approx(5.0) and math.isnan(one_seed["se"])
    assert summary["missing"] == [str(sweep.run_dir_for(out, "copeland", 1.0, 1))]
    sweep.write_report({"config": "c.yaml", "overrides": [], **summary}, out)
    table = (out / "gain_vs_p.md").read_text()
    assert "| 1.00 | +5.0 (1) | +13.0 ± 3.0 (2) |" in table
    assert "| 0.50 | +0.0 ± 0.0 (2) | +0.0 ± 2.0 (2) |" in table
    assert "| 1.00 | 99.0 (1) | 99.0 ± 0.0 (2) |" in table  # the measured judge accuracy, in %
    assert (out / "gain_vs_p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "summary.json").read_text())["table"]["elo"]["1.00"]["gain"]["n"] == 2
    assert doctest.testmod(sweep).failed == 0  # the >>> examples of the script (not under selfrl/)


def test_a_run_without_an_evaluation_at_step_0_is_refused(sweep, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "eval/greedy_pass@1": 0.5}) + "\n")
    with pytest.raises(SystemExit, match="needs eval/greedy_pass@1 at step 0 .eval.at_start."):
        sweep.collect_run(run, "greedy_pass@1")


def test_the_run_part_trains_one_step_per_cell(sweep, make_config, tmp_path, monkeypatch, capsys):
    data = tmp_path / "instruct"
    write_instruct(data, InstructSpec(n_train=16, n_validation=4, n_test=4))
    cfg = make_config("base", extra={
        "recipe": "serl_judge", "rewards": [],
        "data": {"benchmark": "instruct", "train": str(data / "train.jsonl"),
                 "eval": str(data / "test.jsonl"), "require_answer": False},
        "eval": {"at_start": True}, "logging": {"report": False},
        "recipe_args": {"judge_truth": "constraints", "judge_samples": 2}})
    config = tmp_path / "serl.yaml"
    config.write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "sweep"
    assert sweep.main([str(config), "--p", "0.8", "--aggregators", "bradley_terry", "--seeds", "1",
                       "--metric", "greedy_constraint_level", "--out", str(out)]) == 0
    run = sweep.run_dir_for(out, "bradley_terry", 0.8, 1)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["recipe_args"]["judge"] == "simulated" and saved["recipe_args"]["judge_accuracy"] == 0.8
    assert saved["recipe_args"]["aggregator"] == "bradley_terry" and saved["train"]["seed"] == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["missing"] == [] and summary["table"]["bradley_terry"]["0.80"]["gain"]["n"] == 1
    assert not (run / "checkpoints").exists()  # the sweep reads metrics only; checkpoints are dropped
    assert "| 0.80 |" in capsys.readouterr().out
    # done runs are not run again: a second call only collects
    mtime = (run / "config.yaml").stat().st_mtime
    assert sweep.main([str(config), "--p", "0.8", "--aggregators", "bradley_terry", "--seeds", "1",
                       "--metric", "greedy_constraint_level", "--out", str(out)]) == 0
    assert (run / "config.yaml").stat().st_mtime == mtime


def test_a_label_names_the_column_of_one_aggregator_under_other_overrides(sweep, tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    commands = []

    def fake_run_one(cmd, run_dir, keep_checkpoints=False):
        commands.append(cmd)
        fake_run(run_dir, 0.1, 0.3, [1.0])

    monkeypatch.setattr(sweep, "run_one", fake_run_one)
    assert sweep.main(["c.yaml", "recipe_args.length_window=null", "--p", "1.0", "--aggregators", "copeland",
                       "--label", "copeland_nolength", "--seeds", "0", "--out", str(out),
                       "--metric", "greedy_constraint_level"]) == 0
    (cmd,) = commands
    assert "recipe_args.length_window=null" in cmd and "recipe_args.aggregator=copeland" in cmd
    assert f"logging.run_dir={sweep.run_dir_for(out, 'copeland_nolength', 1.0, 0)}" in cmd
    fake_run(sweep.run_dir_for(out, "copeland", 1.0, 0), 0.1, 0.0, [1.0])
    assert sweep.main(["c.yaml", "--report-only", "--p", "1.0", "--aggregators", "copeland",
                       "copeland_nolength", "--seeds", "0", "--out", str(out),
                       "--metric", "greedy_constraint_level"]) == 0
    assert "| 1.00 | -10.0 (1) | +20.0 (1) |" in (out / "gain_vs_p.md").read_text()
    with pytest.raises(SystemExit):
        sweep.main(["c.yaml", "--aggregators", "copeland", "elo", "--label", "x", "--out", str(out)])


def test_a_shared_base_evaluates_before_training_once(sweep, tmp_path, monkeypatch):
    """--shared-base: the first run evaluates at step 0 and writes OUT/base.json; the others start
    with eval.at_start=false and take their "before" from it; a run whose model or evaluation set
    differs from the base's is refused."""
    out = tmp_path / "sweep"
    commands = []
    settings = {"model": {"path": "m"}, "data": {"train": "t.jsonl", "eval": "e.jsonl"},
                "eval": {"limit": 300, "at_start": True}}

    def fake_run_one(cmd, run_dir, keep_checkpoints=False):
        commands.append(cmd)
        fake_run(run_dir, 0.1, 0.3 if "recipe_args.judge_accuracy=1.0" in cmd else 0.2, [1.0])
        if "eval.at_start=false" in cmd:  # no step-0 evaluation in the run's own log
            rows = (run_dir / "metrics.jsonl").read_text().splitlines()[1:]
            (run_dir / "metrics.jsonl").write_text("\n".join(rows) + "\n")
        cfg = {**settings, "eval": {**settings["eval"], "at_start": "eval.at_start=false" not in cmd}}
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))

    monkeypatch.setattr(sweep, "run_one", fake_run_one)
    args = ["c.yaml", "--p", "0.5", "1.0", "--aggregators", "elo", "--seeds", "0", "1", "--out", str(out),
            "--metric", "greedy_constraint_level", "--shared-base"]
    assert sweep.main(args) == 0
    assert ["eval.at_start=false" in c for c in commands] == [False, True, True, True]
    base = json.loads((out / "base.json").read_text())
    assert base["eval"] == {"eval/greedy_constraint_level": 0.1}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["table"]["elo"]["1.00"]["gain"]["mean"] == pytest.approx(20.0)
    assert summary["table"]["elo"]["0.50"]["gain"]["mean"] == pytest.approx(10.0)
    # another model in one run folder: not compared against the base
    run = sweep.run_dir_for(out, "elo", 1.0, 1)
    (run / "config.yaml").write_text(yaml.safe_dump({**settings, "model": {"path": "other"}}))
    with pytest.raises(SystemExit, match="differ from those of the shared base"):
        sweep.main([*args, "--report-only"])
