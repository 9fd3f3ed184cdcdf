"""Evaluation suites: several benchmarks with one model load, one table; and two models compared
benchmark by benchmark, with the standard error of each difference.

A suite is a YAML file::

    settings: {n: 32, ks: [1, 32], max_new_tokens: 1024}   # EvalSettings of every benchmark
    prompt: {system_prompt: "You are a careful mathematician."}  # PromptOptions of every benchmark
    benchmarks:
      - {benchmark: gsm8k, data: gsm8k.jsonl}
      - {benchmark: aime, data: aime24.jsonl, name: aime24}
      - {benchmark: mmlu_pro, data: mmlu_pro, settings: {n: 0}}   # a folder with test and validation

An entry's own ``settings`` and ``prompt`` override the suite's; its ``data`` is taken relative to
the suite file when it names a file or folder there (else as given: a path from the current
folder, or a hub name).  ``selfrl eval --suite`` writes ``DIR/results.md`` (the table),
``DIR/results.json`` and, per benchmark, ``DIR/NAME/metrics.json`` and ``DIR/NAME/samples.jsonl``;
``selfrl compare`` reads two such folders.

>>> suite = Suite.model_validate({"benchmarks": [{"benchmark": "gsm8k", "data": "gsm8k.jsonl"}]})
>>> suite.benchmarks[0].label, suite.entry_settings(0).mode
('gsm8k', 'math')
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from selfrl.config.loader import ConfigError, StrictModel, load_config, validate_section
from selfrl.data.io import read_jsonl, write_jsonl
from selfrl.eval.benchmarks import BENCHMARKS, load_benchmark
from selfrl.eval.evaluate import EvalSettings, evaluate
from selfrl.eval.metrics import mean_and_stderr, paired_difference
from selfrl.prompts import PromptOptions

_TABLE_METRIC = re.compile(r"^(greedy_pass@1|greedy_constraint_level|avg@\d+|maj@\d+|pass@\d+)$")


class SuiteEntry(StrictModel):
    """One benchmark of a suite."""

    benchmark: str = Field(description="a registered benchmark: gsm8k, math500, aime, mmlu_pro, ...")
    data: str = Field(description="its file, dataset folder or hub name (relative to the suite file)")
    name: str | None = Field(None, description="the row's name in the table (default: the benchmark's)")
    split: str = Field("test", description="the split to evaluate when data is a dataset")
    subset: str | None = Field(None, description="a dataset's config name, or a folder inside it")
    fewshot_data: str | None = Field(None, description="where the few-shot examples are (MMLU-Pro: the "
                                                        "validation split; default: data's own)")
    shots: int | None = Field(None, ge=0, description="few-shot examples (default: the benchmark's)")
    limit: int = Field(0, ge=0, description="evaluate only the first N problems (0: all)")
    settings: dict[str, Any] = Field(default_factory=dict, description="EvalSettings of this benchmark")
    prompt: dict[str, Any] = Field(default_factory=dict, description="PromptOptions of this benchmark")

    @property
    def label(self) -> str:
        return self.name or self.benchmark


class Suite(StrictModel):
    """Benchmarks evaluated with one model load (see the module docstring)."""

    settings: dict[str, Any] = Field(default_factory=dict, description="EvalSettings of every benchmark")
    prompt: dict[str, Any] = Field(default_factory=dict, description="PromptOptions of every benchmark")
    benchmarks: list[SuiteEntry] = Field(min_length=1, description="the benchmarks, one table row each")

    @model_validator(mode="after")
    def _check(self) -> Suite:
        labels = [e.label for e in self.benchmarks]
        twice = sorted({x for x in labels if labels.count(x) > 1})
        if twice:
            raise ValueError(f"benchmarks: {', '.join(twice)} named twice; give each a distinct 'name'")
        for i, entry in enumerate(self.benchmarks):
            try:
                BENCHMARKS.get(entry.benchmark)
            except KeyError as e:
                raise ValueError(f"benchmarks.{i}.benchmark: {e}") from None
            self.entry_settings(i)
            self.entry_prompt(i)
        return self

    def entry_settings(self, i: int, given: dict[str, Any] | None = None) -> EvalSettings:
        """Entry ``i``'s :class:`EvalSettings`: the suite's, its own, then ``given`` (the command
        line's), scored in its benchmark's mode.  A layer that sets ``n`` without ``ks`` drops the
        ``ks`` of the layers before it (the default ks up to the new n apply).

        >>> suite = Suite.model_validate({"settings": {"n": 32, "ks": [1, 32]},
        ...                               "benchmarks": [{"benchmark": "aime", "data": "aime24.jsonl"}]})
        >>> [suite.entry_settings(0, given).ks for given in ({}, {"n": 4}, {"n": 0})]
        [(1, 32), (1, 4), ()]
        """
        entry = self.benchmarks[i]
        merged: dict[str, Any] = {}
        for layer in (self.settings, entry.settings, given or {}):
            if "n" in layer and "ks" not in layer:  # ks belong to the n they were written for
                merged.pop("ks", None)
            merged.update(layer)
        where = f"benchmarks.{i}.settings" if entry.settings else "settings"
        if "mode" in merged:
            raise ConfigError(f"invalid config:\n  {where}.mode: each benchmark is scored in its own mode",
                              [([*where.split("."), "mode"], f"{where}.mode: each benchmark is scored in "
                                                              f"its own mode")])
        mode = BENCHMARKS.get(entry.benchmark).mode
        return validate_section(EvalSettings, {**merged, "mode": mode}, where)

    def entry_prompt(self, i: int, given: dict[str, Any] | None = None) -> PromptOptions:
        """Entry ``i``'s :class:`PromptOptions`: the suite's, its own, then ``given``."""
        entry = self.benchmarks[i]
        where = f"benchmarks.{i}.prompt" if entry.prompt else "prompt"
        return validate_section(PromptOptions, {**self.prompt, **entry.prompt, **(given or {})}, where)


def load_suite(path: str | os.PathLike) -> Suite:
    """Read and check a suite file; a :class:`~selfrl.config.loader.ConfigError` names every bad key."""
    if not Path(path).is_file():
        raise ConfigError(f"suite file {path} does not exist")
    return load_config(Suite, path)


def _resolve(data: str, base: Path) -> str:
    """``data`` relative to the suite's folder when something is there, else as given."""
    there = base / data
    return str(there) if not os.path.isabs(data) and there.exists() else data


def run_suite(suite: Suite, model, tokenizer, output: str | os.PathLike, base_dir: str | os.PathLike = ".",
              engine=None, settings: dict[str, Any] | None = None, prompt: dict[str, Any] | None = None,
              limit: int = 0, progress: bool = False) -> dict:
    """Evaluate every benchmark of ``suite`` with one model (``engine``: vLLM's, else an HF engine
    over ``model``); write the per-benchmark outputs and the table into ``output``; returns what
    ``results.json`` holds.  ``settings``, ``prompt`` and ``limit`` (the command line's) override
    the suite's."""
    output, base = Path(output), Path(base_dir)
    results = []
    for i, entry in enumerate(suite.benchmarks):
        bench = BENCHMARKS.get(entry.benchmark)
        fmt = suite.entry_prompt(i, prompt).prompt_format(bench.prompt)
        data = _resolve(entry.data, base)
        fewshot = _resolve(entry.fewshot_data, base) if entry.fewshot_data else None
        rows = load_benchmark(entry.benchmark, data, split=entry.split, subset=entry.subset,
                              shots=entry.shots, fewshot_source=fewshot)
        rows = rows[:limit or entry.limit] if limit or entry.limit else rows
        metrics, samples = evaluate(model, tokenizer, rows, suite.entry_settings(i, settings),
                                    prompt_format=fmt, engine=engine, progress=progress,
                                    category_field="category" if "category" in rows[0] else None,
                                    group_field="group" if "group" in rows[0] else None)
        folder = output / entry.label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        write_jsonl(folder / "samples.jsonl", samples)
        results.append({"name": entry.label, "benchmark": entry.benchmark, "data": data, "metrics": metrics})
    summary = {"benchmarks": results}
    (output / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    (output / "results.md").write_text(suite_table(results))
    return summary


def _percent(mean: float, stderr: float | None = None) -> str:
    return f"{100 * mean:.1f}" + ("" if stderr is None else f" ± {100 * stderr:.1f}")


def suite_table(results: list[dict]) -> str:
    """The Markdown table of a suite: a row per benchmark, each metric as ``mean ± standard error``
    in percent; then each benchmark's accuracy per group and per category, where it has them.

    >>> print(suite_table([{"name": "gsm8k", "metrics": {"n_problems": 4, "greedy_pass@1": 0.5,
    ...                     "stderr": {"greedy_pass@1": 0.29}, "n_unparsable_gold": 0}}]), end="")
    | benchmark | problems | greedy pass@1 | unparsable gold |
    | --- | ---: | ---: | ---: |
    | gsm8k | 4 | 50.0 ± 29.0 | 0 |
    """
    keys: list[str] = []
    for r in results:
        keys += [k for k in r["metrics"] if _TABLE_METRIC.match(k) and k not in keys]
    counts = ["n_unparsable_gold"] + (["n_prompts_too_long"] if any("n_prompts_too_long" in r["metrics"]
                                                                    for r in results) else [])
    head = ["benchmark", "problems", *[k.replace("_", " ") for k in keys],
            *[k.removeprefix("n_").replace("_", " ") for k in counts]]
    lines = ["| " + " | ".join(head) + " |", "| --- | " + " | ".join(["---:"] * (len(head) - 1)) + " |"]
    for r in results:
        m = r["metrics"]
        cells = [r["name"], str(m["n_problems"])]
        cells += [_percent(m[k], m.get("stderr", {}).get(k)) if k in m else "-" for k in keys]
        cells += [str(m.get(k, "-")) for k in counts]
        lines.append("| " + " | ".join(cells) + " |")
    for r in results:
        for key, what, score in (("per_group", "group", "accuracy"), ("per_category", "category", "accuracy"),
                                 ("per_kind", "constraint kind", "satisfied")):
            if key in r["metrics"]:
                lines += ["", f"{r['name']} by {what}:", "", f"| {what} | {score} |", "| --- | ---: |"]
                lines += [f"| {c} | {_percent(v)} |" for c, v in r["metrics"][key].items()]
    return "\n".join(lines) + "\n"


# --- comparing two models --------------------------------------------------------------------

def sample_scores(samples: list[dict], by: str) -> list[float]:
    """Each problem's score from ``selfrl eval`` samples: ``greedy`` (0/1), ``avg`` (the share of
    its samples that are right) or ``maj@K`` (0/1).

    >>> sample_scores([{"correct": [True, False]}, {"correct": [True, True]}], "avg")
    [0.5, 1.0]
    """
    if by == "avg":
        if not samples[0].get("correct"):
            raise ValueError("no sampled answers (evaluated with --n 0): compare by greedy")
        return [sum(s["correct"]) / len(s["correct"]) for s in samples]
    field = f"{by}_correct"
    if field not in samples[0]:
        have = sorted(k[:-len("_correct")] for k in samples[0] if k.endswith("_correct"))
        have += ["avg"] if samples[0].get("correct") else []
        raise ValueError(f"no '{field}' (evaluated with: {', '.join(have) or 'nothing'})")
    return [float(bool(s[field])) for s in samples]


def same_problems(a: list[dict], b: list[dict]) -> bool:
    """Whether two evaluations hold the same problems in the same order: by id and question when
    both name their rows (two models' prompts may differ by their chat templates), else by prompt."""
    if all("id" in s for s in a + b):
        return [(s["id"], s.get("question")) for s in a] == [(s["id"], s.get("question")) for s in b]
    return [s["prompt"] for s in a] == [s["prompt"] for s in b]


def compare_samples(a: list[dict], b: list[dict], by: str) -> dict:
    """Model A against model B on the same problems: each one's accuracy with its standard error,
    and ``delta`` = A − B with the paired standard error."""
    if not same_problems(a, b):
        raise ValueError("not evaluations of the same problems in the same order")
    sa, sb = sample_scores(a, by), sample_scores(b, by)
    (acc_a, se_a), (acc_b, se_b) = mean_and_stderr(sa), mean_and_stderr(sb)
    delta, se = paired_difference(sa, sb)
    return {"n": len(sa), "a": acc_a, "a_stderr": se_a, "b": acc_b, "b_stderr": se_b,
            "delta": delta, "delta_stderr": se}


def compare_suites(dir_a: str | os.PathLike, dir_b: str | os.PathLike, by: str = "greedy") -> list[dict]:
    """Two ``selfrl eval --suite`` folders benchmark by benchmark (those both hold): a row each with
    :func:`compare_samples`'s figures and the benchmark's name."""
    names_a = [r["name"] for r in json.loads((Path(dir_a) / "results.json").read_text())["benchmarks"]]
    names_b = {r["name"] for r in json.loads((Path(dir_b) / "results.json").read_text())["benchmarks"]}
    rows = []
    for name in [n for n in names_a if n in names_b]:
        a = read_jsonl(Path(dir_a) / name / "samples.jsonl")
        b = read_jsonl(Path(dir_b) / name / "samples.jsonl")
        try:
            rows.append({"benchmark": name, **compare_samples(a, b, by)})
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
    if not rows:
        raise ValueError(f"{dir_a} and {dir_b} share no benchmark")
    return rows


def comparison_table(rows: list[dict], by: str) -> str:
    """The Markdown table of :func:`compare_suites` (percent; ± one standard error).

    >>> print(comparison_table([{"benchmark": "gsm8k", "n": 4, "a": 0.75, "a_stderr": 0.25, "b": 0.25,
    ...                          "b_stderr": 0.25, "delta": 0.5, "delta_stderr": 0.29}], "greedy"), end="")
    | benchmark (greedy) | problems | A | B | A − B |
    | --- | ---: | ---: | ---: | ---: |
    | gsm8k | 4 | 75.0 ± 25.0 | 25.0 ± 25.0 | +50.0 ± 29.0 |
    """
    lines = [f"| benchmark ({by}) | problems | A | B | A − B |", "| --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        delta = f"{100 * r['delta']:+.1f} ± {100 * r['delta_stderr']:.1f}"
        lines.append(f"| {r['benchmark']} | {r['n']} | {_percent(r['a'], r['a_stderr'])} | "
                     f"{_percent(r['b'], r['b_stderr'])} | {delta} |")
    return "\n".join(lines) + "\n"
