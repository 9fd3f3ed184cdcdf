"""Issue 24: ``selfrl report`` and the report written at the end of ``selfrl train`` (the page's
content, checked in Python; tests/test_report_browser.py opens it in Chromium).

The charts' data against the metrics they come from, the samples' cards against the records,
the word diff against the two texts it was made from, and bad input: a folder with no metrics,
a metrics line cut short, rollouts from an older format are rendered as far as they go and
named; a folder that is not a run is a one-line error with exit code 2.
"""

from __future__ import annotations

import html
import json
import random
import re
from pathlib import Path

import pytest
import yaml

from selfrl.cli import main
from selfrl.report import build_html, read_run, write_report
from selfrl.report.charts import line_charts, selfplay_charts, selfplay_counts
from selfrl.report.samples import pick_records, samples_html, word_diff


def _chart_data(page: str) -> list[dict]:
    text = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', page, re.S).group(1)
    return json.loads(text.replace("<\\/", "</"))


def _outside_plotly(page: str) -> str:
    """The page without plotly.js (whose source names URLs it never fetches for these charts)."""
    start = page.index("<script>")
    return page[:start] + page[page.index("</script>", start):]


def test_train_writes_its_report_and_says_where(write_config, capsys):
    path = write_config("reported", extra={"train": {"steps": 2}, "eval": {"at_start": True},
                                           "logging": {"samples_every": 1}})
    run_dir = Path(yaml.safe_load(path.read_text())["logging"]["run_dir"])
    assert main(["train", str(path)]) == 0
    report = run_dir / "report.html"
    assert f"report: {report}" in capsys.readouterr().out
    page = report.read_text()
    ids = [c["id"] for c in _chart_data(page)]
    assert {"chart-reward", "chart-eval", "chart-entropy", "chart-time"} <= set(ids)
    assert all(f'<div class="chart" id="{i}">' in page for i in ids)
    records = [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    assert page.count('<article class="group"') == len(records)
    assert "greedy_pass@1" in page and html.escape((run_dir / "config.yaml").read_text()) in page
    # Self-contained: nothing is loaded from elsewhere.
    assert not re.search(r"<(script|link|img|iframe)[^>]*\b(src|href)=", _outside_plotly(page))


def test_no_report_when_turned_off(write_config, capsys):
    path = write_config("quiet", extra={"logging": {"report": False}})
    assert main(["train", str(path)]) == 0
    assert "report:" not in capsys.readouterr().out
    assert not (Path(yaml.safe_load(path.read_text())["logging"]["run_dir"]) / "report.html").exists()


def test_a_crashed_run_in_an_older_format_renders_what_it_can(synthetic_run):
    run = read_run(synthetic_run)
    assert [r["step"] for r in run.metrics] == [0, 1, 2, 3, 4, 4]  # the cut line is skipped
    assert all(r.get("kl", None) is None for r in run.metrics)  # "nan" -> a gap in the curve
    notes = "\n".join(run.notes)
    assert "metrics.jsonl: line 7 is cut short" in notes
    assert "rollouts.jsonl: line 5 is cut short" in notes
    assert "lack advantage, components" in notes and "older selfrl" in notes
    page = build_html([run])
    assert page.count('<article class="group"') == 4 and "What is missing" in page
    assert 'id="chart-judge"' in page and 'id="chart-funnel"' in page


def test_a_run_with_no_metrics_yet(tmp_path):
    run = tmp_path / "starting"
    run.mkdir()
    (run / "config.yaml").write_text("recipe: rlvr\n")
    page = write_report([run], tmp_path / "r.html").read_text()
    assert "no metrics.jsonl: no curves" in page and "No metrics to draw yet" in page
    assert "recipe: rlvr" in page and _chart_data(page) == []


def test_not_a_run_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    for folder in (tmp_path / "data", tmp_path / "missing"):
        assert main(["report", str(folder)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(folder) in err
    assert main(["report", str(tmp_path / "data"), str(tmp_path / "data")]) == 2
    assert "--output" in capsys.readouterr().err


def test_several_runs_are_overlaid(synthetic_run, tmp_path, capsys):
    other = tmp_path / "other" / "synthetic"  # the same folder name: told apart by the parent's
    other.parent.mkdir()
    other.mkdir()
    (other / "metrics.jsonl").write_text('{"step": 1, "reward/mean": 0.9}\n')
    assert main(["report", str(synthetic_run), str(other), "--output", str(tmp_path / "both.html")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "both.html")
    reward = next(c for c in _chart_data((tmp_path / "both.html").read_text()) if c["id"] == "chart-reward")
    names = [t["name"] for t in reward["data"]]
    assert f"{tmp_path.name}/synthetic: reward/mean" in names and "other/synthetic: reward/mean" in names


def test_chart_traces_are_the_logged_values(synthetic_run):
    rows = read_run(synthetic_run).metrics
    charts = {c["id"]: c for c in line_charts([("s", rows)])}
    judge = {t["name"]: t for t in charts["chart-judge"]["data"]}
    key = "reward/serl_judge/judge_position_consistency"
    assert judge[key]["x"] == [1, 2, 3, 4] and judge[key]["y"] == [r[key] for r in rows if key in r]
    assert [t["stackgroup"] for t in charts["chart-time"]["data"]] == ["s", "s"]  # stacked: the split
    assert "chart-kl" not in charts  # only non-finite values: nothing to draw
    counts = selfplay_counts(rows)
    assert counts["generated"] == 4 * (6 + 2 + 1) and counts["rolled_out"] == 4 * (2 + 3)
    funnel = selfplay_charts([("s", rows)])[0]["data"][0]
    assert funnel["x"] == [36.0, 24.0, 20.0, 8.0]


def test_sample_cards_carry_what_the_filters_read(synthetic_run):
    records = read_run(synthetic_run).rollouts
    page, notes = samples_html([("s", records)], limit=1000)
    cards = re.findall(r'<article class="group" data-run="0" data-step="(\d+)" data-mean="([^"]*)" '
                       r'data-kept="(\d)">', page)
    assert [(int(s), k == "1") for s, _, k in cards] == [(r["step"], r["kept"]) for r in records]
    flags = re.findall(r'<li class="completion" data-reward="([^"]*)" data-correct="(.)">', page)
    assert [f for _, f in flags] == ["1" if c["correct"] else "0" for r in records for c in r["completions"]]
    assert "judge: 1 verdicts" in page and "judge score 1" in page and not notes


def test_pick_records_keeps_whole_steps_under_the_limit():
    records = [{"step": s, "g": g} for s in range(1, 101) for g in range(3)]
    chosen, left_out = pick_records(records, 30)
    steps = sorted({r["step"] for r in chosen})
    assert len(chosen) <= 30 and steps[0] == 1 and steps[-1] == 100 and left_out == 100 - len(steps)
    assert all(sum(r["step"] == s for r in chosen) == 3 for s in steps)


def test_word_diff_rebuilds_both_texts():
    rng = random.Random(0)
    words = ["1.", "Tom", "has", "3", "4", "=", "7.", "<b>", "&", "\n", "  "]
    for _ in range(200):
        a = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        b = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        out = word_diff(a, b)
        assert html.unescape(re.sub(r"<del>.*?</del>|</?ins>", "", out, flags=re.S)) == b
        assert html.unescape(re.sub(r"<ins>.*?</ins>|</?del>", "", out, flags=re.S)) == a


def test_report_flags_are_checked(synthetic_run, tmp_path, monkeypatch, capsys):
    assert main(["report", str(synthetic_run), "--samples-limit", "0"]) == 2
    assert "--samples-limit" in capsys.readouterr().err
    pytest.importorskip("playwright", reason="--screenshot needs Playwright (pip install 'selfrl[dev]')")
    monkeypatch.setenv("SELFRL_CHROMIUM", str(tmp_path / "no-browser"))
    assert main(["report", str(synthetic_run), "--screenshot", str(tmp_path / "r.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SELFRL_CHROMIUM" in err and (synthetic_run / "report.html").is_file()
