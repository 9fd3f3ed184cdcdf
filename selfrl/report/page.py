"""The report page: one HTML file holding plotly.js, the charts' data, the samples and the
configs, so that it opens offline in any browser (no server, nothing fetched).

>>> import tempfile
>>> run = Path(tempfile.mkdtemp()) / "run"
>>> run.mkdir()
>>> rows = [{"step": 0, "eval/greedy_pass@1": 0.25}, {"step": 1, "reward/mean": 0.5},
...         {"step": 1, "eval/greedy_pass@1": 0.5}]
>>> _ = (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
>>> eval_rows(read_run(run).metrics)
[('eval/greedy_pass@1', 0.25, 0.5)]
>>> out = write_report([run], run / "report.html")
>>> html_text = out.read_text()
>>> "Plotly" in html_text and 'id="chart-reward"' in html_text and "no rollouts.jsonl" in html_text
True
"""

from __future__ import annotations

import datetime
import html
import json
import os
import sys
from importlib import resources
from pathlib import Path

from selfrl.report.charts import line_charts, selfplay_charts
from selfrl.report.runs import RunData, read_run
from selfrl.report.samples import samples_html

SAMPLES_LIMIT = 1000  # sample groups on the page, spread over the runs' steps


def plotly_js() -> str:
    """plotly.js, minified, from the plotly package (its offline bundle)."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise ImportError("the report's charts need plotly: pip install plotly") from None
    return get_plotlyjs()


def eval_rows(metrics: list[dict]) -> list[tuple[str, float | None, float | None]]:
    """``(metric, before, after)`` of the held-out evaluation: before is the evaluation at step 0,
    after the last one past it (``None`` where there is none)."""
    evals = [r for r in metrics if any(k.startswith("eval/") for k in r)]
    before = next((r for r in evals if r["step"] == 0), {})
    after = next((r for r in reversed(evals) if r["step"] > 0), {})
    keys = sorted({k for r in (before, after) for k in r if k.startswith("eval/")})
    return [(k, before.get(k), after.get(k)) for k in keys]


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def eval_html(runs: list[RunData]) -> str:
    """The before/after table of every run that was evaluated."""
    rows = []
    for run in runs:
        for key, before, after in eval_rows(run.metrics):
            change = "–" if before is None or after is None else f"{100 * (after - before):+.1f} points"
            rows.append(f"<tr><td>{html.escape(run.name)}</td><td>{html.escape(key.removeprefix('eval/'))}</td>"
                        f"<td>{_pct(before)}</td><td>{_pct(after)}</td><td>{change}</td></tr>")
    if not rows:
        return "<p>No held-out evaluation was logged (data.eval unset, or the run has not evaluated yet).</p>"
    return ("<table class='eval'><tr><th>run</th><th>metric</th><th>before (step 0)</th>"
            "<th>after (last evaluation)</th><th>change</th></tr>" + "".join(rows) + "</table>")


def _asset(name: str) -> str:
    return resources.files("selfrl.report").joinpath(name).read_text(encoding="utf-8")


def _json_script(element_id: str, value) -> str:
    """``value`` as JSON in a script tag that the browser never runs; ``</`` is escaped so that no
    string in it can close the tag."""
    text = json.dumps(value, allow_nan=False).replace("</", "<\\/")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def _run_names(paths: list[Path]) -> list[str]:
    """Folder names, with the parent folder's too where two runs share one."""
    names = [p.name for p in paths]
    return [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]


def build_html(runs: list[RunData], samples_limit: int = SAMPLES_LIMIT) -> str:
    """The whole page for ``runs``."""
    series = [(r.name, r.metrics) for r in runs]
    charts = line_charts(series)
    play = selfplay_charts(series)
    samples, sample_notes = samples_html([(r.name, r.rollouts) for r in runs], samples_limit)
    notes = [f"<li>{html.escape(r.name)}: {html.escape(n)}</li>" for r in runs for n in r.notes]
    notes += [f"<li>{html.escape(n)}</li>" for n in sample_notes]
    run_list = "".join(
        f"<li><b>{html.escape(r.name)}</b>: {html.escape(str(r.path))} "
        f"({max((m['step'] for m in r.metrics), default=0)} steps logged, "
        f"{len(r.rollouts)} sampled groups)</li>" for r in runs)
    configs = "".join(
        f"<details{' open' if len(runs) == 1 else ''}><summary>{html.escape(r.name)}: config.yaml</summary>"
        f"<pre>{html.escape(r.config)}</pre></details>" if r.config else
        f"<p>{html.escape(r.name)}: no config.yaml</p>" for r in runs)
    chart_divs = lambda cs: "".join(f'<div class="chart" id="{c["id"]}"></div>' for c in cs)  # noqa: E731
    title = "selfrl report: " + ", ".join(r.name for r in runs)
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_asset("report.css")}</style>
<script>{plotly_js()}</script>
</head><body>
<nav><a href="#runs">runs</a><a href="#curves">curves</a><a href="#evaluation">evaluation</a>
{'<a href="#selfplay">self-play</a>' if play else ''}<a href="#samples">samples</a>
<a href="#config">config</a></nav>
<h1>{html.escape(title)}</h1>
<p>Written {when} by <code>selfrl report</code>; everything is in this one file.</p>
<section id="runs"><h2>Runs</h2><ul>{run_list}</ul>
{'<h3>What is missing</h3><ul class="notes">' + "".join(notes) + '</ul>' if notes else ''}</section>
<section id="curves"><h2>Curves</h2>
{f'<div class="charts">{chart_divs(charts)}</div>' if charts else '<p>No metrics to draw yet.</p>'}</section>
<section id="evaluation"><h2>Held-out evaluation</h2>{eval_html(runs)}</section>
{f'<section id="selfplay"><h2>Self-play (SeRL)</h2><div class="charts">{chart_divs(play)}</div></section>'
 if play else ''}
<section id="samples"><h2>Samples</h2>
{samples or '<p>No rollout samples (see what is missing, above).</p>'}</section>
<section id="config"><h2>Configuration</h2>{configs}</section>
{_json_script("chart-data", charts + play)}
<script>{_asset("report.js")}</script>
</body></html>
"""


def write_report(run_dirs: list[str | Path], output: str | Path, samples_limit: int = SAMPLES_LIMIT) -> Path:
    """Read each run folder and write the report to ``output`` (atomically: a browser never sees
    half a file); returns its path.  Raises :class:`~selfrl.report.runs.NotARunError` for a folder
    that is not a run."""
    paths = [Path(p) for p in run_dirs]
    runs = [read_run(p, name) for p, name in zip(paths, _run_names(paths))]
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(build_html(runs, samples_limit), encoding="utf-8")
    os.replace(tmp, output)
    return output


def report_after_training(run_dir: str | Path) -> Path | None:
    """``RUN_DIR/report.html`` at the end of ``selfrl train`` (or a pipeline's train stage), its path
    printed.  A report that cannot be written is a warning on stderr, never the run's failure:
    the training it would show is done and saved."""
    try:
        path = write_report([run_dir], Path(run_dir) / "report.html")
    except (OSError, ImportError, ValueError) as e:
        print(f"warning: no report written ({e}); try: selfrl report {run_dir}", file=sys.stderr)
        return None
    print(f"report: {path}")
    return path
