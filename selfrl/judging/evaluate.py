"""Measuring a judge on pairs whose better side is known, and two models head to head.

A judge is shown every pair twice, once in each order, so that position bias shows:

- ``accuracy``: the share of all judgments (both orders) that pick the right response; a
  verdict that does not parse counts as wrong;
- ``pair_accuracy``: the share of pairs where both orders pick the right response;
- ``position_inconsistency``: among pairs where both orders parsed, the share where the
  verdict follows the position (the same slot wins twice, so the two verdicts contradict);
- ``first_position_rate``: among parsed verdicts, the share that pick the slot shown first;
- ``parse_failure_rate``: the share of verdicts that do not parse.

>>> m = judge_metrics([(1, 1), (1, 2), (None, 2)], winners=[1, 2, 2])
>>> round(m["accuracy"], 3), round(m["pair_accuracy"], 3), m["position_inconsistency"]
(0.667, 0.333, 0.5)

:func:`head_to_head` compares two models' answers to the same problems by the ground truth.

>>> head_to_head([True, True, False, False], [False, True, True, False])["win_rate"]
0.5
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from selfrl.judging.parse import parse_serl, parse_srr1
from selfrl.prompts import serl_judge_messages, srr1_judge_messages

_FORMATS = {"serl": (serl_judge_messages, parse_serl), "srr1": (srr1_judge_messages, parse_srr1)}


def _slot(fmt: str, verdict) -> int | None:
    """A parsed verdict as the slot it picks: 1 (shown first) or 2; ``None`` when unparsed."""
    if verdict is None:
        return None
    return {"A": 1, "B": 2}[verdict] if fmt == "srr1" else int(verdict)


def judge_metrics(verdicts: Sequence[tuple[int | None, int | None]], winners: Sequence[int]) -> dict:
    """Judge metrics from verdicts in both orders.

    Args:
        verdicts: per pair, the response the judge picked (1 or 2, in the pair's own
            numbering, or ``None`` when the verdict did not parse) when shown in the order
            (1, 2) and when shown in the order (2, 1).
        winners: per pair, the better response (1 or 2).

    Returns:
        The metrics of the module docstring, plus ``n_pairs``.
    """
    if len(verdicts) != len(winners):
        raise ValueError(f"{len(verdicts)} verdicts for {len(winners)} pairs")
    if not verdicts:
        raise ValueError("no pairs to judge")
    n = len(verdicts)
    flat = [v for pair in verdicts for v in pair]
    parsed = [v for v in flat if v is not None]
    # Slot picked: in the first order response r sits in slot r, in the swapped order in 3 - r.
    slots = [s for a, b in verdicts for s in (a, None if b is None else 3 - b) if s is not None]
    both = [(a, b) for a, b in verdicts if a is not None and b is not None]
    return {
        "n_pairs": n,
        "accuracy": sum(v == w for (a, b), w in zip(verdicts, winners) for v in (a, b)) / (2 * n),
        "pair_accuracy": sum(a == w and b == w for (a, b), w in zip(verdicts, winners)) / n,
        "position_inconsistency": sum(a != b for a, b in both) / len(both) if both else 0.0,
        "first_position_rate": sum(s == 1 for s in slots) / len(slots) if slots else 0.0,
        "parse_failure_rate": (len(flat) - len(parsed)) / len(flat),
    }


def judge_pairs(model, tokenizer, pairs: Sequence[dict], fmt: str = "serl", max_new_tokens: int = 48,
                temperature: float = 0.0, batch_size: int = 64, seed: int = 0,
                progress: bool = False) -> tuple[dict, list[dict]]:
    """Judge each pair in both orders with ``model`` and measure it.

    Args:
        model: a causal LM (the judge).
        tokenizer: its tokenizer, with a chat template.
        pairs: rows with ``question``, ``response_1``, ``response_2`` and ``winner`` (1 or 2).
        fmt: ``serl`` (``\\boxed{1}``/``\\boxed{2}``) or ``srr1`` (``Winner: response A|B``).
        max_new_tokens: the judge's budget per verdict.
        temperature: 0 for greedy verdicts.
        batch_size: judge prompts per generation batch.
        seed: seeds sampling when ``temperature > 0``.
        progress: show a progress bar.

    Returns:
        ``(metrics, rows)``: :func:`judge_metrics` and, per pair, both outputs and verdicts.

    Example:
        >>> import tempfile
        >>> from selfrl.models import load_causal_lm, load_tokenizer
        >>> from selfrl.testing import tiny_random_model
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = tiny_random_model(tmp.name, hidden_size=16, num_layers=1)
        >>> model, tok = load_causal_lm(str(path)), load_tokenizer(str(path))
        >>> pair = {"question": "1+1?", "response_1": "2", "response_2": "3", "winner": 1}
        >>> metrics, rows = judge_pairs(model, tok, [pair], max_new_tokens=4)
        >>> metrics["n_pairs"], len(rows[0]["outputs"])
        (1, 2)
        >>> tmp.cleanup()
    """
    import torch

    from selfrl.rollout.base import SamplingParams
    from selfrl.rollout.hf import HFEngine

    if fmt not in _FORMATS:
        raise ValueError(f"judge format must be one of {sorted(_FORMATS)}, got {fmt!r}")
    build, parse = _FORMATS[fmt]
    for i, p in enumerate(pairs, start=1):
        if p.get("winner") not in (1, 2):
            raise ValueError(f"pair {i}: 'winner' must be 1 or 2, got {p.get('winner')!r}")
    prompts = []
    for p in pairs:
        for first, second in ((p["response_1"], p["response_2"]), (p["response_2"], p["response_1"])):
            prompts.append(tokenizer.apply_chat_template(build(p["question"], first, second),
                                                         add_generation_prompt=True, tokenize=True,
                                                         return_dict=False))
    engine = HFEngine(model, tokenizer, batch_size=batch_size, progress=progress)
    params = SamplingParams(n=1, temperature=temperature, max_new_tokens=max_new_tokens)
    generator = torch.Generator().manual_seed(seed)
    outs = [g[0].text for g in engine.generate(prompts, params, generator)]
    verdicts, rows = [], []
    for k, p in enumerate(pairs):
        a, b = _slot(fmt, parse(outs[2 * k])), _slot(fmt, parse(outs[2 * k + 1]))
        pair = (a, None if b is None else 3 - b)  # back to the pair's own numbering
        verdicts.append(pair)
        rows.append({"question": p["question"], "winner": p["winner"], "verdicts": list(pair),
                     "outputs": [outs[2 * k], outs[2 * k + 1]]})
    return judge_metrics(verdicts, [p["winner"] for p in pairs]), rows


def head_to_head(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> dict:
    """Model A against model B on the same problems, decided by the ground truth.

    A wins a problem when its answer is right and B's is wrong; ties (both right or both
    wrong) count half in ``win_rate``.

    Example:
        >>> r = head_to_head([True, False, True], [False, False, True])
        >>> r["wins"], r["losses"], r["ties"], round(r["win_rate"], 3)
        (1, 0, 2, 0.667)
    """
    if len(a_correct) != len(b_correct):
        raise ValueError(f"{len(a_correct)} answers against {len(b_correct)}")
    if not a_correct:
        raise ValueError("no problems to compare")
    wins = sum(a and not b for a, b in zip(a_correct, b_correct))
    losses = sum(b and not a for a, b in zip(a_correct, b_correct))
    ties = len(a_correct) - wins - losses
    return {"n": len(a_correct), "wins": wins, "losses": losses, "ties": ties,
            "win_rate": (wins + ties / 2) / len(a_correct)}


def pairs_from_samples(rows: Sequence[dict], seed: int = 0) -> list[dict]:
    """Judge pairs from a model's own samples: per problem, one right and one wrong answer.

    ``rows`` are the ``samples.jsonl`` rows that ``selfrl eval --output`` writes (``prompt``,
    ``samples``, ``correct``); the question is the prompt's text.  Problems where every sample
    is right, or every one wrong, give no pair.  The right answer's slot is a seeded coin flip.

    Example:
        >>> rows = [{"question": "q", "samples": ["a", "b"], "correct": [False, True]}]
        >>> [p["winner"] for p in pairs_from_samples(rows)]
        [1]
    """
    rng = random.Random(seed)
    pairs = []
    for row in rows:
        right = [s for s, ok in zip(row["samples"], row["correct"]) if ok]
        wrong = [s for s, ok in zip(row["samples"], row["correct"]) if not ok]
        if not right or not wrong:
            continue
        good, bad = rng.choice(right), rng.choice(wrong)
        winner = rng.choice((1, 2))
        pair = (good, bad) if winner == 1 else (bad, good)
        pairs.append({"question": row.get("question") or row.get("prompt", ""), "response_1": pair[0],
                      "response_2": pair[1], "winner": winner})
    return pairs
