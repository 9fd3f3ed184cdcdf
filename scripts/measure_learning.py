"""Run a training recipe once per seed, exactly as the README runs it, and report the learning.

For each seed this runs ``selfrl train CONFIG train.seed=S logging.run_dir=OUT/seed-S [overrides]``
as a child process, measures its wall time and peak resident memory (``os.wait4``), and reads the
held-out evaluations the run wrote (``RUN_DIR/eval/step-*.jsonl``: the first is the model before
training, the last after).  It prints, per seed and as a mean with its standard error over seeds:

- greedy pass@1 before, after, and the gain (points);
- where the gain comes from: the share of greedy completions that state their answer in the
  requested form (``The answer is N`` / ``\\boxed{N}``), and the accuracy among the completions
  that do and among those that do not, before and after; on the instruct task (no answer), the
  share of all constraints satisfied instead (``greedy_pass@1`` is then prompt-level).

and checks the README quick start's targets (mean gain >= ``--min-mean-gain``, every seed >=
``--min-seed-gain``, wall <= ``--max-minutes``, peak RSS <= ``--max-rss-gb``).  Results go to
``OUT/summary.json``; the exit code is 1 when a target is missed.

Usage (RESULTS.md, "The quick start on a real model")::

    python scripts/measure_learning.py recipes/rlvr_smollm2.yaml --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def run_seed(config: str, seed: int, run_dir: Path, overrides: list[str]) -> dict:
    """One ``selfrl train`` run in a child process: its wall time, peak RSS and exit status."""
    cmd = [sys.executable, "-m", "selfrl.cli", "train", config, f"train.seed={seed}",
           f"logging.run_dir={run_dir}", *overrides]
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"seed {seed}: selfrl train exited with {code}")
    return {"seed": seed, "wall_min": wall / 60, "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9}


def eval_split(run_dir: Path) -> dict:
    """Before/after figures from the first and last held-out evaluation the run wrote."""
    files = sorted((run_dir / "eval").glob("step-*.jsonl"))
    if len(files) < 2:
        raise SystemExit(f"{run_dir}: needs an evaluation before and after training (eval.at_start)")
    out = {}
    for when, path in (("before", files[0]), ("after", files[-1])):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        out[when] = {"n": len(rows), "step": int(path.stem.split("-")[1]),
                     "greedy": 100 * sum(r["greedy_correct"] for r in rows) / len(rows),
                     "stated_share": math.nan, "acc_stated": math.nan, "acc_unstated": math.nan,
                     "constraint_level": math.nan}
        if "greedy_verdicts" in rows[0]:  # the instruct task: each constraint's verdict
            verdicts = [v for r in rows for v in r["greedy_verdicts"]]
            out[when]["constraint_level"] = 100 * sum(verdicts) / len(verdicts)
        else:  # a task with an answer: is it stated in the requested form?
            stated = [r["greedy_correct"] for r in rows if r["greedy_stated"]]
            other = [r["greedy_correct"] for r in rows if not r["greedy_stated"]]
            out[when].update(stated_share=100 * len(stated) / len(rows),
                             acc_stated=100 * sum(stated) / len(stated) if stated else math.nan,
                             acc_unstated=100 * sum(other) / len(other) if other else math.nan)
    out["gain"] = out["after"]["greedy"] - out["before"]["greedy"]
    return out


def mean_se(xs: list[float]) -> tuple[float, float]:
    """Mean and standard error (sample std / sqrt(n)); SE is nan for one value."""
    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return math.nan, math.nan
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, math.nan
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1)
    return m, math.sqrt(var / len(xs))


def fmt(m: float, se: float) -> str:
    return f"{m:.1f}" if math.isnan(se) else f"{m:.1f} ± {se:.1f}"


def report(results: list[dict], args: argparse.Namespace) -> dict:
    cols = [("greedy before", lambda r: r["before"]["greedy"]),
            ("greedy after", lambda r: r["after"]["greedy"]),
            ("gain (points)", lambda r: r["gain"]),
            ("stated share before", lambda r: r["before"]["stated_share"]),
            ("stated share after", lambda r: r["after"]["stated_share"]),
            ("acc (stated) before", lambda r: r["before"]["acc_stated"]),
            ("acc (stated) after", lambda r: r["after"]["acc_stated"]),
            ("acc (unstated) before", lambda r: r["before"]["acc_unstated"]),
            ("acc (unstated) after", lambda r: r["after"]["acc_unstated"]),
            ("constraint level before", lambda r: r["before"]["constraint_level"]),
            ("constraint level after", lambda r: r["after"]["constraint_level"]),
            ("wall (min)", lambda r: r["wall_min"]), ("peak RSS (GB)", lambda r: r["peak_rss_gb"])]
    header = ["figure"] + [f"seed {r['seed']}" for r in results] + ["mean ± SE"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    summary: dict = {"config": args.config, "overrides": args.overrides, "seeds": results, "mean_se": {}}
    for name, get in cols:
        vals = [get(r) for r in results]
        if all(math.isnan(v) for v in vals):  # a figure this task does not have
            continue
        m, se = mean_se(vals)
        summary["mean_se"][name] = [m, se]
        lines.append("| " + " | ".join([name] + [f"{v:.1f}" for v in vals] + [fmt(m, se)]) + " |")
    print(f"\n{args.config}, {results[0]['before']['n']} held-out problems, greedy pass@1 in %:")
    print("\n".join(lines))
    gains = [r["gain"] for r in results]
    mean_gain = summary["mean_se"]["gain (points)"][0]
    checks = {f"mean gain >= {args.min_mean_gain}": mean_gain >= args.min_mean_gain,
              f"every seed gain >= {args.min_seed_gain}": min(gains) >= args.min_seed_gain,
              f"wall <= {args.max_minutes} min": max(r["wall_min"] for r in results) <= args.max_minutes,
              f"peak RSS <= {args.max_rss_gb} GB": max(r["peak_rss_gb"] for r in results) <= args.max_rss_gb}
    for name, ok in checks.items():
        print(f"{'met   ' if ok else 'MISSED'} {name}")
    summary["checks"] = checks
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config", nargs="?", default="recipes/rlvr_smollm2.yaml")
    p.add_argument("overrides", nargs="*", help="dotted config overrides passed to every run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="runs/measure_learning", help="folder for the runs and summary.json")
    p.add_argument("--min-mean-gain", type=float, default=20.0)
    p.add_argument("--min-seed-gain", type=float, default=12.0)
    p.add_argument("--max-minutes", type=float, default=15.0)
    p.add_argument("--max-rss-gb", type=float, default=8.0)
    p.add_argument("--report-only", action="store_true", help="read existing runs, train nothing")
    args = p.parse_args()
    out = Path(args.out)
    results = []
    for seed in args.seeds:
        run_dir = out / f"seed-{seed}"
        if args.report_only:
            info = json.loads((run_dir / "measure.json").read_text())
        else:
            shutil.rmtree(run_dir, ignore_errors=True)  # this script's own output: a fresh run per seed
            info = run_seed(args.config, seed, run_dir, args.overrides)
            (run_dir / "measure.json").write_text(json.dumps(info) + "\n")
        results.append({**info, **eval_split(run_dir)})
    summary = report(results, args)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out / 'summary.json'}")
    return 0 if all(summary["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
