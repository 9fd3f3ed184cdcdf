"""The report's charts as plotly figures (plain dicts: ``{"id", "data", "layout"}``), several runs
overlaid in each.  Plotly.js draws them in the page; nothing here imports plotly.

Each panel picks its metrics from the names the trainer logs; a panel with no data in any run
is left out.  A run's name prefixes each of its traces when there are several.

>>> rows = [{"step": 1, "reward/mean": 0.2, "reward/accuracy": 0.25, "kl": 0.0},
...         {"step": 2, "reward/mean": 0.4, "reward/accuracy": 0.5, "kl": 0.01}]
>>> charts = line_charts([("run", rows)])
>>> [c["id"] for c in charts]
['chart-reward', 'chart-kl']
>>> [(t["name"], t["y"]) for t in charts[0]["data"]]
[('reward/mean', [0.2, 0.4]), ('reward/accuracy', [0.25, 0.5])]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

Rows = list[dict]
Picker = Callable[[list[str]], list[str]]

REWARD_TOTALS = ("reward/mean", "reward/trained_mean")
STEP_TIMES = ("time/rollout", "time/score", "time/update", "time/sync", "time/samples")
JUDGE_SUFFIXES = ("/judge_accuracy", "/judge_position_consistency", "/judge_parse_failure_frac")


def _listed(*keys: str) -> Picker:
    return lambda present: [k for k in keys if k in present]


def _reward_keys(present: list[str]) -> list[str]:
    """The totals, then each part of the reward (``reward/<part>``: one level below ``reward/``)."""
    parts = sorted(k for k in present if k.startswith("reward/") and k.count("/") == 1
                   and k not in REWARD_TOTALS and k != "reward/std")
    return [k for k in REWARD_TOTALS if k in present] + parts


def _prefixed(prefix: str) -> Picker:
    return lambda present: sorted(k for k in present if k.startswith(prefix))


def _judge_keys(present: list[str]) -> list[str]:
    """The self-judging reward's accuracy, position consistency and parse failures, and the
    judge's own training reward (SERL)."""
    return sorted(k for k in present if k.endswith(JUDGE_SUFFIXES) or k == "judge/reward_mean")


def _selfplay_keys(present: list[str]) -> list[str]:
    return sorted(k for k in present if k.endswith("pseudo_label_accuracy"))


# (id, title, y-axis, which metrics, stacked)
PANELS: tuple[tuple[str, str, str, Picker, bool], ...] = (
    ("reward", "reward: total and each part", "mean reward", _reward_keys, False),
    ("eval", "held-out accuracy", "share", _prefixed("eval/"), False),
    ("kl", "KL to the reference", "KL", _listed("kl", "kl/rollout", "policy/approx_kl"), False),
    ("entropy", "entropy", "nats per token", _listed("entropy"), False),
    ("length", "response length", "tokens", _listed("response_length/mean", "response_length/max"), False),
    ("clip", "clip fraction", "share of tokens", _listed("policy/clip_frac", "policy/dual_clip_frac"), False),
    ("time", "step time split", "seconds", _listed(*STEP_TIMES), True),
    ("judge", "self-judging: judge accuracy and position consistency", "share", _judge_keys, False),
    ("selfplay", "self-play: pseudo-label accuracy", "share", _selfplay_keys, False),
    ("filter", "filters: share of groups kept", "share", _listed("filter/kept_frac"), False),
)


def series(rows: Rows, key: str) -> tuple[list[int], list[float | None]]:
    """The steps at which ``key`` was logged and its values there.

    >>> series([{"step": 0, "a": 1.0}, {"step": 1}, {"step": 2, "a": None}], "a")
    ([0, 2], [1.0, None])
    """
    pairs = [(r["step"], r[key]) for r in rows if key in r]
    return [s for s, _ in pairs], [v for _, v in pairs]


def _layout(title: str, y_title: str, last_step: int = 10, **more) -> dict:
    # Whole steps on the x axis: plotly would otherwise tick a short run at 1.5, 2.5, ...
    dtick = max(1, math.ceil(last_step / 10))
    return {"title": {"text": title, "font": {"size": 14}},
            "xaxis": {"title": {"text": "step"}, "dtick": dtick},
            "yaxis": {"title": {"text": y_title}}, "margin": {"l": 55, "r": 10, "t": 40, "b": 40},
            "legend": {"font": {"size": 10}}, "height": 320, **more}


def line_charts(runs: Sequence[tuple[str, Rows]]) -> list[dict]:
    """One figure per panel of :data:`PANELS` that has data, every run's traces in it."""
    charts = []
    last_step = max((r["step"] for _, rows in runs for r in rows), default=1)
    for pid, title, y_title, pick, stacked in PANELS:
        data = []
        for name, rows in runs:
            present = sorted({k for r in rows for k in r if k != "step"})
            for key in pick(present):
                xs, ys = series(rows, key)
                if not any(y is not None for y in ys):
                    continue
                trace = {"type": "scatter", "mode": "lines+markers" if len(xs) < 40 else "lines",
                         "name": f"{name}: {key}" if len(runs) > 1 else key, "x": xs, "y": ys}
                if stacked:  # each run's parts stack on each other, not on another run's
                    trace["stackgroup"] = name
                data.append(trace)
        if data:
            charts.append({"id": f"chart-{pid}", "data": data, "layout": _layout(title, y_title, last_step)})
    return charts


FUNNEL = (("generated", "written by the policy"),
          ("generated/accepted", "passed the format and ROUGE filters"),
          ("rolled_out", "rolled out"), ("trained", "kept by the difficulty filter (trained)"))


def selfplay_counts(rows: Rows) -> dict[str, float]:
    """A SeRL run's counts over all its steps, from the ``selfplay/*`` metrics (each step logs its
    own): problems generated, each filter's verdict, rolled out, filtered by difficulty, trained.

    >>> selfplay_counts([{"step": 1, "selfplay/generated/accepted": 3.0, "selfplay/generated/rouge_l": 1.0,
    ...                   "selfplay/trained": 2.0, "selfplay/filtered_difficulty": 1.0}])["rolled_out"]
    3.0
    """
    counts: dict[str, float] = {}
    for r in rows:
        for k, v in r.items():
            if k.startswith("selfplay/") and k.count("/") <= 2 and isinstance(v, float) \
                    and not k.endswith(("pool", "accuracy")):
                counts[k.removeprefix("selfplay/")] = counts.get(k.removeprefix("selfplay/"), 0.0) + v
    if not counts:
        return {}
    counts["generated"] = sum(v for k, v in counts.items() if k.startswith("generated/"))
    counts["rolled_out"] = counts.get("trained", 0.0) + counts.get("filtered_difficulty", 0.0)
    return counts


def selfplay_charts(runs: Sequence[tuple[str, Rows]]) -> list[dict]:
    """SeRL's funnel (generated → passed the filters → rolled out → trained) and why problems
    were dropped, per run; none when no run is a self-play run."""
    funnel, dropped = [], []
    for name, rows in runs:
        counts = selfplay_counts(rows)
        if not counts:
            continue
        funnel.append({"type": "funnel", "name": name, "textinfo": "value+percent initial",
                       "y": [label for _, label in FUNNEL], "x": [counts.get(k, 0.0) for k, _ in FUNNEL]})
        reasons = sorted(k for k in counts if k.startswith("generated/") and k != "generated/accepted")
        reasons += [k for k in ("filtered_difficulty", "expired") if k in counts]
        dropped.append({"type": "bar", "name": name, "x": [k.removeprefix("generated/") for k in reasons],
                        "y": [counts[k] for k in reasons]})
    if not funnel:
        return []
    return [{"id": "chart-funnel", "data": funnel,
             "layout": {**_layout("self-play: generated, kept, trained (all steps)", ""),
                        "xaxis": {"title": {"text": "problems"}}, "yaxis": {"automargin": True}}},
            {"id": "chart-dropped", "data": dropped,
             "layout": {**_layout("self-play: why problems were dropped (all steps)", "problems"),
                        "xaxis": {"title": {"text": "filter"}}, "barmode": "group"}}]
