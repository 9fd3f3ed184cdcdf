"""Is a gain on the instruct task more than short answers?  Length and topic of greedy answers.

The constraint checker scores the letter of each constraint ("fewer than 10 words", "all
lowercase"), not whether the answer is about the prompt's topic, so a policy can satisfy it with
a few content-free words.  For each run (``measure_learning.py``'s ``seed-N`` folders) this reads
the first and last held-out evaluation and prints the mean number of words, the share of answers
under 5 words, the share that mention the topic (any topic word of 4+ letters, its stem allowing
plural/singular), prompt-level satisfaction, and satisfaction *and* on-topic together.

Usage (RESULTS.md, "The instruct task on the real model")::

    python scripts/instruct_topic_check.py runs/instruct_rlvr_smollm2/seed-{0,1,2} \
        --data data/instruct_smol/test.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def on_topic(text: str, topic: str) -> bool:
    """Whether ``text`` mentions a word of ``topic`` (4+ letters; the last 2 letters may differ).

    >>> on_topic("Street lamp glow", "street lamps"), on_topic("music", "the moon")
    (True, False)
    """
    words = [w.lower() for w in topic.split() if len(w) >= 4]
    low = text.lower()
    return any(w[:max(4, len(w) - 2)] in low for w in words)


def figures(rows: list[dict], topics: dict[str, str]) -> dict[str, float]:
    """The five figures of one evaluation file's rows, in %, words as a mean."""
    words = [len(r["greedy"].split()) for r in rows]
    topical = [on_topic(r["greedy"], topics[r["id"]]) for r in rows]
    ok = [bool(r["greedy_correct"]) for r in rows]
    n = len(rows)
    return {"words": statistics.mean(words), "under 5 words": 100 * sum(w < 5 for w in words) / n,
            "on topic": 100 * sum(topical) / n, "prompt-level": 100 * sum(ok) / n,
            "prompt-level and on topic": 100 * sum(o and t for o, t in zip(ok, topical)) / n}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run folders with eval/step-*.jsonl")
    p.add_argument("--data", default="data/instruct_smol/test.jsonl", help="the evaluated rows (topics)")
    args = p.parse_args()
    topics = {}
    for line in Path(args.data).read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            topics[row["id"]] = row["topic"]
    print("| run | evaluation | words | under 5 words | on topic | prompt-level "
          "| prompt-level and on topic |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for run in args.runs:
        files = sorted(Path(run, "eval").glob("step-*.jsonl"))
        for path in dict.fromkeys((files[0], files[-1])):  # one file when the run did not evaluate at step 0
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            f = figures(rows, topics)
            print(f"| {run} | {path.stem} | " + " | ".join(f"{v:.1f}" for v in f.values()) + " |")


if __name__ == "__main__":
    main()
