"""``selfrl plot RUN_DIR``: PNG curves of a run's metrics.jsonl."""

from __future__ import annotations

from pathlib import Path

PANELS = (
    ("reward", ("reward/mean", "reward/trained_mean")),
    ("held-out accuracy", ("eval/greedy_pass@1",)),
    ("KL", ("kl",)),
    ("entropy", ("entropy",)),
    ("response length", ("response_length/mean",)),
    ("step time split (s)", ("time/rollout", "time/score", "time/update")),
)


def plot_run(run_dir: str | Path, output: str | Path | None = None) -> list[Path]:
    """Write one PNG per panel that has data, plus ``overview.png``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from selfrl.trainer.logger import read_metrics

    rows = read_metrics(run_dir)
    out = Path(output) if output else Path(run_dir) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    panels = [(title, [(k, _series(rows, k)) for k in keys]) for title, keys in PANELS]
    panels = [(t, [(k, s) for k, s in series if s[0]]) for t, series in panels]
    panels = [(t, series) for t, series in panels if series]
    if not panels:
        raise ValueError(f"{run_dir}: metrics.jsonl has none of the plotted metrics")
    paths = []
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.6 * len(panels)), squeeze=False)
    for ax, (title, series) in zip(axes[:, 0], panels):
        for key, (xs, ys) in series:
            ax.plot(xs, ys, marker="." if len(xs) < 30 else None, label=key)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
        single = plt.figure(figsize=(6, 3.5))
        sax = single.add_subplot()
        for key, (xs, ys) in series:
            sax.plot(xs, ys, label=key)
        sax.set_title(title)
        sax.set_xlabel("step")
        sax.legend(fontsize=7)
        path = out / (title.split(" (")[0].replace(" ", "_").replace("-", "_") + ".png")
        single.tight_layout()
        single.savefig(path, dpi=100)
        plt.close(single)
        paths.append(path)
    fig.tight_layout()
    fig.savefig(out / "overview.png", dpi=100)
    plt.close(fig)
    return [out / "overview.png", *paths]


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in rows:
        v = r.get(key)
        if isinstance(v, (int, float)):
            xs.append(r["step"])
            ys.append(v)
    return xs, ys
