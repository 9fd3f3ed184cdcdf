"""The report's samples browser, rendered here as HTML: one card per rollout group, its
completions with their reward (and each part of it), advantage, length, finish reason and
correctness, each diffed word by word against a reference (the SRL target step, else the
row's gold solution).  The page's script only shows and hides cards (filters) and copies the
best and worst group of a step side by side.

>>> print(word_diff("a = 3 + 4 = 7.", "a = 3 + 4 = 8."))
a = 3 + 4 = <del>7.</del><ins>8.</ins>
"""

from __future__ import annotations

import difflib
import html
import json
import re

# Where a row keeps the text a completion should resemble, first found wins, and what it is called.
REFERENCES = (("target", "SRL target step"), ("solution", "gold solution"))


def word_diff(reference: str, text: str) -> str:
    """``text`` as HTML, with the words the reference lacks in ``<ins>`` and those it has but
    ``text`` lacks in ``<del>`` (whitespace kept as written)."""
    a, b = re.findall(r"\s+|\S+", reference), re.findall(r"\s+|\S+", text)
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op in ("delete", "replace"):
            out.append(f"<del>{html.escape(''.join(a[i1:i2]))}</del>")
        if op in ("insert", "replace"):
            out.append(f"<ins>{html.escape(''.join(b[j1:j2]))}</ins>")
        if op == "equal":
            out.append(html.escape("".join(b[j1:j2])))
    return "".join(out)


def reference_of(row: dict) -> tuple[str, str] | None:
    """``(what it is, text)``: the text a completion of ``row`` should resemble, if the row has one.

    >>> reference_of({"target": "8 + 6 = 14.", "solution": "..."})
    ('SRL target step', '8 + 6 = 14.')
    """
    for key, label in REFERENCES:
        if isinstance(row.get(key), str) and row[key].strip():
            return label, row[key]
    return None


def pick_records(records: list[dict], limit: int) -> tuple[list[dict], int]:
    """At most ``limit`` records, whole steps at a time, the steps spread evenly over the run (the
    first and last always in); returns them and how many steps were left out.

    >>> recs = [{"step": s} for s in (1, 1, 2, 2, 3, 3, 4, 4)]
    >>> [r["step"] for r in pick_records(recs, 4)[0]], pick_records(recs, 4)[1]
    ([1, 1, 4, 4], 2)
    """
    steps = sorted({r["step"] for r in records})
    by_step = {s: [r for r in records if r["step"] == s] for s in steps}
    per_step = max(1, max((len(v) for v in by_step.values()), default=1))
    k = max(1, min(len(steps), limit // per_step))
    chosen = steps if k >= len(steps) else sorted({steps[round(i * (len(steps) - 1) / max(1, k - 1))]
                                                   for i in range(k)})
    return [r for s in chosen for r in by_step[s]], len(steps) - len(chosen)


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "–"
    return f"{x:+.3g}" if signed else f"{x:.3g}"


def _correct_flag(correct) -> str:
    return "1" if correct is True else "0" if correct is False else "x"


def completion_html(c: dict, reference: str | None, extra: dict[str, float]) -> str:
    """One completion: a line of figures, then its text (diffed against ``reference``)."""
    parts = " · ".join(f"{html.escape(k)} {_fmt(v)}" for k, v in {**c["components"], **extra}.items())
    verdict = {"1": '<span class="ok">correct</span>', "0": '<span class="bad">wrong</span>',
               "x": '<span class="na">not graded</span>'}[_correct_flag(c["correct"])]
    meta = (f'<span class="reward">reward {_fmt(c["reward"])}</span>'
            + (f' <span class="parts">({parts})</span>' if parts else "")
            + f' · advantage {_fmt(c["advantage"], signed=True)} · {_fmt(c["length"])} tokens'
            + f' · {html.escape(str(c["finish_reason"] or "–"))} · {verdict}')
    text = word_diff(reference, c["text"]) if reference else html.escape(c["text"])
    reward = "" if c["reward"] is None else c["reward"]
    return (f'<li class="completion" data-reward="{reward}" data-correct="{_correct_flag(c["correct"])}">'
            f'<div class="meta">{meta}</div><pre class="text">{text}</pre></li>')


def _per_completion_scores(group_data: dict, n: int) -> dict[str, list]:
    """Group data that scores each completion (a judge's Copeland/Elo scores: ``{"scores": [n]}``)."""
    out = {}
    for key, value in group_data.items():
        scores = value.get("scores") if isinstance(value, dict) else None
        if isinstance(scores, list) and len(scores) == n:
            out[f"{key} score"] = scores
    return out


def group_data_html(group_data: dict) -> str:
    """What the reward found out about the group: short values inline, a judge's verdicts as a
    table, anything else as JSON."""
    inline, blocks = [], []
    for key, value in group_data.items():
        if value is None or isinstance(value, (str, int, float, bool)):
            inline.append(f"<b>{html.escape(key)}</b> {html.escape(str(value))}")
        elif isinstance(value, dict) and isinstance(value.get("verdicts"), list):
            rows = "".join(
                f"<tr><td>{html.escape(str(v.get('shown')))}</td><td>{html.escape(str(v.get('winner')))}</td>"
                f"<td><pre>{html.escape(str(v.get('text', '')))}</pre></td></tr>"
                for v in value["verdicts"] if isinstance(v, dict))
            blocks.append(f"<details><summary>{html.escape(key)}: {len(value['verdicts'])} verdicts</summary>"
                          f"<table class='verdicts'><tr><th>shown (first, second)</th><th>winner</th>"
                          f"<th>judge's text</th></tr>{rows}</table></details>")
        else:
            blocks.append(f"<details><summary>{html.escape(key)}</summary>"
                          f"<pre>{html.escape(json.dumps(value, indent=1))}</pre></details>")
    return (f'<div class="extras">{" · ".join(inline)}</div>' if inline else "") + "".join(blocks)


def group_html(run_index: int, rec: dict) -> str:
    """One group's card."""
    ref = reference_of(rec["row"])
    n = len(rec["completions"])
    scores = _per_completion_scores(rec["group_data"], n)
    items = "".join(completion_html(c, ref[1] if ref else None, {k: v[i] for k, v in scores.items()})
                    for i, c in enumerate(rec["completions"]))
    kept = "trained" if rec["kept"] else "filtered out"
    gold = f' · gold <b>{html.escape(str(rec["gold"]))}</b>' if rec["gold"] is not None else ""
    header = (f'<b>step {rec["step"]}</b> · group {html.escape(str(rec["group"]))} · mean reward '
              f'{_fmt(rec["mean_reward"])} · <span class="{kept.replace(" ", "-")}">{kept}</span>{gold}')
    prompt = rec["prompt"] or rec["question"]
    details = f'<details><summary>prompt</summary><pre>{html.escape(str(prompt))}</pre></details>'
    if ref:
        details += f'<details><summary>{ref[0]}</summary><pre>{html.escape(ref[1])}</pre></details>'
    mean = "" if rec["mean_reward"] is None else rec["mean_reward"]
    return (f'<article class="group" data-run="{run_index}" data-step="{rec["step"]}" data-mean="{mean}" '
            f'data-kept="{int(bool(rec["kept"]))}"><header>{header}</header>'
            f'<p class="question">{html.escape(str(rec["question"]))}</p>{details}'
            f'{group_data_html(rec["group_data"])}<ol class="completions">{items}</ol></article>')


def samples_html(runs: list[tuple[str, list[dict]]], limit: int) -> tuple[str, list[str]]:
    """The samples browser (controls, the best/worst panel, the cards) and notes on what was left
    out; empty when no run has samples."""
    notes, cards, options = [], [], []
    for i, (name, records) in enumerate(runs):
        chosen, left_out = pick_records(records, max(1, limit // max(1, len(runs))))
        if left_out:
            notes.append(f"{name}: samples of {left_out} steps left out to keep the page small "
                         f"(selfrl report --samples-limit)")
        cards += [group_html(i, r) for r in chosen]
        options += [f'<option value="{s}" data-run="{i}">step {s}</option>'
                    for s in sorted({r["step"] for r in chosen})]
    if not cards:
        return "", notes
    run_select = "".join(f'<option value="{i}">{html.escape(name)}</option>'
                         for i, (name, _) in enumerate(runs))
    controls = f"""
<div class="controls">
  <label>run <select id="f-run">{run_select}</select></label>
  <label>step <select id="f-step"><option value="all">all steps</option>{"".join(options)}</select></label>
  <label>reward from <input id="f-min" type="number" step="any" placeholder="any"></label>
  <label>to <input id="f-max" type="number" step="any" placeholder="any"></label>
  <label>answer <select id="f-correct"><option value="any">any</option><option value="1">correct</option>
    <option value="0">wrong</option><option value="x">not graded</option></select></label>
  <label>groups <select id="f-kept"><option value="any">trained and filtered out</option>
    <option value="1">trained</option><option value="0">filtered out</option></select></label>
  <label><input id="f-diff" type="checkbox" checked> diff against the reference</label>
  <span id="f-count"></span>
</div>"""
    best_worst = """
<h3 id="bw-title">best and worst group of a step</h3>
<div class="side-by-side"><div><h4>best</h4><div id="bw-best"></div></div>
<div><h4>worst</h4><div id="bw-worst"></div></div></div>
<h3>all sampled groups</h3>"""
    return controls + best_worst + f'<div id="sample-list">{"".join(cards)}</div>', notes
