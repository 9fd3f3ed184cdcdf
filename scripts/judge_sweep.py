"""Gain against judge accuracy: a self-judging recipe run with a simulated judge of accuracy p, per
aggregator and seed, and the held-out gain collected into a table and a plot.

For every aggregator A, judge accuracy p and seed S this runs, one after another (one ``selfrl
train`` process at a time, each writing its own run folder)::

    selfrl train CONFIG [overrides] recipe_args.judge=simulated recipe_args.judge_accuracy=p
        recipe_args.aggregator=A train.seed=S logging.run_dir=OUT/A/p0.70/seed-S --overwrite

The simulated judge follows the config's ``recipe_args.judge_truth`` (the gold answer, or the
instruct task's checker) and flips each verdict with probability 1 - p (``selfrl.judging.truth``);
everything else (pair schedule, aggregator, the actor's update) is the recipe's own.  A run whose
folder holds ``sweep.json`` is done and not run again, so an interrupted sweep continues.

From each run's ``metrics.jsonl`` it reads the held-out metric (``--metric``, e.g.
``greedy_pass@1`` or ``greedy_constraint_level``) before training (step 0: ``eval.at_start``
must be on) and at the last evaluation, and the judge's measured accuracy (the mean over steps of
the reward's ``judge_accuracy``).  It writes ``OUT/summary.json`` (every run, and per aggregator
and p the gain's mean and standard error over seeds), ``OUT/gain_vs_p.png`` and
``OUT/gain_vs_p.md`` (the tables of gain and of measured judge accuracy, mean ± SE over seeds).

Usage::

    python scripts/judge_sweep.py recipes/instruct_serl_smollm2.yaml --p 0.5 0.6 0.7 0.8 0.9 1.0 \\
        --aggregators copeland elo bradley_terry --seeds 0 1 2 --metric greedy_constraint_level \\
        --out runs/judge_sweep_instruct
    python scripts/judge_sweep.py CONFIG recipe_args.length_window=null --aggregators copeland \\
        --label copeland_nolength --out runs/judge_sweep_instruct      # a column under other overrides
    python scripts/judge_sweep.py CONFIG --report-only --out runs/judge_sweep_instruct \\
        --aggregators copeland copeland_nolength elo bradley_terry     # collect only

``--shared-base``: every run of the grid starts from the same model and is evaluated greedily on
the same set, so the evaluation before training is the same number in all of them.  With it, the
first run to finish evaluates at step 0 and its step-0 evaluation is written to ``OUT/base.json``
(with the model and evaluation settings it holds for); later runs are started with
``eval.at_start=false`` and read their "before" from there (a run whose model or evaluation
settings differ from the base's is refused, not silently compared).  It saves one evaluation
(~1 min of the ~7 of a real-model run) per run.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

from selfrl.eval.metrics import mean_and_stderr
from selfrl.trainer.logger import read_metrics

DONE = "sweep.json"  # written in a run folder when its run finished
BASE = "base.json"  # --shared-base: the step-0 evaluation every run of the folder shares
BASE_KEYS = ("model", "data", "eval")  # the config sections a shared base holds for (data: its eval set)


def run_dir_for(out: Path, aggregator: str, p: float, seed: int) -> Path:
    """``OUT/AGGREGATOR/p0.70/seed-S``."""
    return out / aggregator / f"p{p:.2f}" / f"seed-{seed}"


def train_command(config: str, overrides: list[str], aggregator: str, p: float, seed: int,
                  run_dir: Path, at_start: bool = True) -> list[str]:
    """The ``selfrl train`` command of one run (the sweep's settings after the user's overrides;
    ``at_start=False``: no evaluation before training, the shared base stands for it)."""
    return [sys.executable, "-m", "selfrl.cli", "train", config, *overrides, "recipe_args.judge=simulated",
            f"recipe_args.judge_accuracy={p}", f"recipe_args.aggregator={aggregator}", f"train.seed={seed}",
            f"logging.run_dir={run_dir}", *([] if at_start else ["eval.at_start=false"]), "--overwrite"]


def _base_settings(run_dir: Path) -> dict:
    """The config sections of a run that its step-0 evaluation depends on (``eval.at_start``,
    which only says whether it ran, left out)."""
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    out = {k: cfg.get(k) for k in BASE_KEYS}
    out["data"] = {k: v for k, v in (out["data"] or {}).items() if k != "train"}
    out["eval"] = {k: v for k, v in (out["eval"] or {}).items() if k not in ("at_start", "every")}
    return out


def write_base(out: Path, run_dir: Path) -> dict:
    """``OUT/base.json`` from a finished run's step-0 evaluation (every ``eval/`` value)."""
    step0 = next((r for r in read_metrics(run_dir) if r.get("step") == 0
                  and any(k.startswith("eval/") for k in r)), None)
    if step0 is None:
        raise SystemExit(f"{run_dir}: no evaluation at step 0 to share as the base")
    base = {"from": str(run_dir), "settings": _base_settings(run_dir),
            "eval": {k: v for k, v in step0.items() if k.startswith("eval/")}}
    (out / BASE).write_text(json.dumps(base, indent=2) + "\n")
    return base


def read_base(out: Path) -> dict | None:
    """``OUT/base.json``, or ``None``."""
    path = out / BASE
    return json.loads(path.read_text()) if path.is_file() else None


def run_one(cmd: list[str], run_dir: Path, keep_checkpoints: bool = False) -> dict:
    """Run one training to its end (its output goes to this terminal); marks the folder done and,
    unless asked to keep them, deletes its checkpoints: the sweep reads only ``metrics.jsonl``, and
    a real model's final checkpoint is ~1.6 GB a run (a 36-run grid fills a disk)."""
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    code = subprocess.run(cmd).returncode
    if code != 0:
        raise SystemExit(f"{run_dir}: selfrl train exited with {code}")
    info = {"wall_s": time.perf_counter() - t0, "command": cmd}
    (run_dir / DONE).write_text(json.dumps(info) + "\n")
    if not keep_checkpoints:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return info


def collect_run(run_dir: Path, metric: str, base: dict | None = None) -> dict:
    """Before, after and gain (points) of ``eval/METRIC``, and the judge's measured accuracy;
    a run with no step-0 evaluation takes its "before" from the shared ``base``."""
    rows = read_metrics(run_dir)
    key = f"eval/{metric}"
    evals = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), float)]
    if evals and evals[0][0] != 0 and base is not None and isinstance(base["eval"].get(key), float):
        if _base_settings(run_dir) != base["settings"]:
            raise SystemExit(f"{run_dir}: its model or evaluation settings differ from those of the shared "
                             f"base ({base['from']}); it cannot take its step-0 figure from there")
        evals.insert(0, (0, base["eval"][key]))
    if not evals or evals[0][0] != 0 or len(evals) < 2:
        found = sorted({k for r in rows for k in r if k.startswith("eval/")})
        raise SystemExit(f"{run_dir}: needs {key} at step 0 (eval.at_start) and after training; the run "
                         f"logged {', '.join(found) or 'no evaluation'}")
    accuracy = [v for r in rows for k, v in r.items()
                if k.startswith("reward/") and k.endswith("/judge_accuracy") and isinstance(v, float)]
    (_, before), (last, after) = evals[0], evals[-1]
    return {"before": 100 * before, "after": 100 * after, "gain": 100 * (after - before), "last_step": last,
            "judge_accuracy": 100 * sum(accuracy) / len(accuracy) if accuracy else math.nan}


def summarise(values: list[float]) -> dict:
    """Mean, standard error over seeds (nan for one) and count of the finite values."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return {"mean": math.nan, "se": math.nan, "n": 0}
    mean, se = mean_and_stderr(finite)
    return {"mean": mean, "se": se if len(finite) > 1 else math.nan, "n": len(finite)}


def collect(out: Path, aggregators: list[str], ps: list[float], seeds: list[int], metric: str) -> dict:
    """Every finished run of the grid, and per aggregator and p the gain and measured judge accuracy
    over seeds (runs not found are listed under ``missing``)."""
    runs, missing = [], []
    base = read_base(out)
    table: dict = {}
    for aggregator in aggregators:
        for p in ps:
            found = []
            for seed in seeds:
                run_dir = run_dir_for(out, aggregator, p, seed)
                if not (run_dir / DONE).is_file():
                    missing.append(str(run_dir))
                    continue
                found.append({"aggregator": aggregator, "p": p, "seed": seed,
                              **collect_run(run_dir, metric, base)})
            runs += found
            table.setdefault(aggregator, {})[f"{p:.2f}"] = {
                "gain": summarise([r["gain"] for r in found]),
                "judge_accuracy": summarise([r["judge_accuracy"] for r in found])}
    return {"metric": metric, "p": ps, "aggregators": aggregators, "seeds": seeds, "table": table,
            "runs": runs, "missing": missing}


def _cell(s: dict, signed: bool) -> str:
    if s["n"] == 0:
        return "-"
    mean = round(s["mean"], 1) + 0.0  # no "-0.0" for a mean that rounds to zero
    text = f"{mean:+.1f}" if signed else f"{mean:.1f}"
    return text + ("" if math.isnan(s["se"]) else f" ± {s['se']:.1f}") + f" ({s['n']})"


def markdown(summary: dict) -> str:
    """The gain table and the measured judge accuracy table: a row per p, a column per aggregator,
    ``mean ± SE (seeds)``.

    >>> s = {"metric": "greedy_pass@1", "aggregators": ["elo"], "p": [0.5], "table": {"elo": {"0.50": {
    ...     "gain": {"mean": 1.5, "se": 0.5, "n": 3}, "judge_accuracy": {"mean": 50.2, "se": 0.4, "n": 3}}}}}
    >>> print(markdown(s).splitlines()[4])
    | 0.50 | +1.5 ± 0.5 (3) |
    """
    aggs = summary["aggregators"]
    head = "| p | " + " | ".join(aggs) + " |\n|" + " ---: |" * (len(aggs) + 1)
    out = []
    for what, title in (("gain", f"gain in eval/{summary['metric']} (points, after - before)"),
                        ("judge_accuracy", "measured judge accuracy (%, mean over steps)")):
        out += [f"{title}, mean ± SE over seeds (seeds):", "", head]
        for p in summary["p"]:
            cells = [_cell(summary["table"][a][f"{p:.2f}"][what], signed=what == "gain") for a in aggs]
            out.append("| " + " | ".join([f"{p:.2f}", *cells]) + " |")
        out.append("")
    return "\n".join(out)


def plot(summary: dict, path: Path) -> Path:
    """Gain against p, a line per aggregator, standard errors as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, aggregator in enumerate(summary["aggregators"]):
        cells = [(p, summary["table"][aggregator][f"{p:.2f}"]["gain"]) for p in summary["p"]]
        cells = [(p, s) for p, s in cells if s["n"]]
        if not cells:
            continue
        xs = [p + (i - 1) * 0.004 for p, _ in cells]  # a little apart, so the bars do not hide each other
        errors = [0 if math.isnan(s["se"]) else s["se"] for _, s in cells]
        ax.errorbar(xs, [s["mean"] for _, s in cells], yerr=errors, marker="o", capsize=3, label=aggregator)
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("simulated judge accuracy p")
    ax.set_ylabel(f"gain in {summary['metric']} (points)")
    ax.set_title("held-out gain against judge accuracy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(summary: dict, out: Path) -> None:
    """``summary.json``, ``gain_vs_p.md`` and ``gain_vs_p.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "gain_vs_p.md").write_text(markdown(summary))
    plot(summary, out / "gain_vs_p.png")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", help="a self-judging recipe config (serl_judge or srr1_elo)")
    ap.add_argument("overrides", nargs="*", help="dotted config overrides passed to every run")
    ap.add_argument("--p", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
                    help="simulated judge accuracies")
    ap.add_argument("--aggregators", nargs="+", default=["copeland", "elo", "bradley_terry"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--metric", default="greedy_pass@1",
                    help="the held-out metric whose gain is reported (eval/METRIC in metrics.jsonl)")
    ap.add_argument("--out", default="runs/judge_sweep", help="folder for the runs and the report")
    ap.add_argument("--label", help="the column (and folder) name of this sweep's runs instead of the "
                                    "aggregator's, for one aggregator under other overrides (e.g. "
                                    "copeland_nolength with recipe_args.length_window=null)")
    ap.add_argument("--shared-base", action="store_true",
                    help="evaluate before training once, in the first run, and share it (OUT/base.json): "
                         "every run of OUT starts from the same model and evaluation set")
    ap.add_argument("--keep-checkpoints", action="store_true",
                    help="keep each finished run's checkpoints (default: deleted once it is done)")
    ap.add_argument("--report-only", action="store_true",
                    help="collect the runs there, train nothing (--aggregators then lists the columns: "
                         "aggregators and labels alike)")
    args = ap.parse_args(argv)
    bad = [p for p in args.p if not 0 <= p <= 1]
    if bad:
        ap.error(f"--p: judge accuracies are in [0, 1], got {bad}")
    if args.label and len(args.aggregators) != 1:
        ap.error("--label names the runs of one aggregator: give one --aggregators")
    out = Path(args.out)
    columns = [args.label] if args.label else args.aggregators
    if not args.report_only:
        for aggregator, column in zip(args.aggregators, columns):
            for p in args.p:
                for seed in args.seeds:
                    run_dir = run_dir_for(out, column, p, seed)
                    if (run_dir / DONE).is_file():
                        continue
                    shared = args.shared_base and read_base(out) is not None
                    run_one(train_command(args.config, args.overrides, aggregator, p, seed, run_dir,
                                          at_start=not shared), run_dir, args.keep_checkpoints)
                    if args.shared_base and not shared:
                        write_base(out, run_dir)
    summary = {"config": args.config, "overrides": args.overrides,
               **collect(out, columns, args.p, args.seeds, args.metric)}
    write_report(summary, out)
    print(markdown(summary))
    if summary["missing"]:
        print(f"{len(summary['missing'])} runs missing, e.g. {summary['missing'][0]}")
    print(f"wrote {out / 'summary.json'}, {out / 'gain_vs_p.md'} and {out / 'gain_vs_p.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
