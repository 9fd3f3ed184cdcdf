"""What a SeRL run generated, kept and filtered, from its per-step JSONL records.

    python -m selfrl.selfplay.report runs/serl_tiny

prints one JSON object: problems generated, each filter's count (``generated/<reason>``,
``generated/accepted``), problems filtered by difficulty, expired and trained on, and the
pseudo-labels' accuracy where a problem's true answer is computable (arith grammar only;
analysis, never a reward).

>>> import json, tempfile
>>> from pathlib import Path
>>> run = Path(tempfile.mkdtemp())
>>> (run / "selfplay").mkdir()
>>> rows = [{"kind": "generated", "decision": "accepted"}, {"kind": "generated", "decision": "rouge_l"},
...         {"kind": "trained", "pseudo_label_correct": True}, {"kind": "expired"}]
>>> _ = (run / "selfplay" / "step-000001.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
>>> r = selfplay_report(run)
>>> r["generated"], r["generated/accepted"], r["generated/rouge_l"], r["trained"], r["expired"]
(2, 1, 1, 1, 1)
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def selfplay_report(run_dir: str | Path) -> dict:
    """Counts over every ``RUN_DIR/selfplay/step-*.jsonl`` of a SeRL run (see module doc)."""
    files = sorted(Path(run_dir, "selfplay").glob("step-*.jsonl"))
    if not files:
        raise FileNotFoundError(f"{run_dir}: no selfplay/step-*.jsonl (not a SeRL run?)")
    counts: Counter = Counter()
    checked: list[bool] = []
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if r["kind"] == "generated":
                counts["generated"] += 1
                counts[f"generated/{r['decision']}"] += 1
            else:
                counts[r["kind"]] += 1
            if r["kind"] == "trained":
                counts["trained/generated"] += bool(r.get("generated"))
                if r.get("pseudo_label_correct") is not None:
                    checked.append(bool(r["pseudo_label_correct"]))
    report = {"steps": len(files), **dict(sorted(counts.items()))}
    report["trained/answer_computable"] = len(checked)
    report["pseudo_label_accuracy"] = sum(checked) / len(checked) if checked else None
    return report


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m selfrl.selfplay.report RUN_DIR")
    print(json.dumps(selfplay_report(sys.argv[1]), indent=2))
