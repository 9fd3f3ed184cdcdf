"""Majority-vote self-reward (SeRL): the group's most agreed-on answer is the pseudo-label.

For each group of N responses to one prompt: extract every answer, build the N×N agreement
matrix (math-verify equivalence, tried in both directions), take the response with the most
agreements as the pseudo-label (ties: the earliest), and score 1.0 for responses equivalent
to it, else 0.0.  No label is read.  Only a readable answer votes
(:func:`selfrl.eval.extract.answer_parses`): a truncated ``\\boxed{`` or a lone ``\\`` agrees
with nothing, not even an identical string, and always scores 0.0.

Each group's pseudo-label (the majority answer, ``None`` when nobody voted) is returned as
``group_data["pseudo_label"]``: it travels with the group on the rollout batch (SeRL records
it).

Departure from the authors' code: when no answer in a group parses, their counts all tie and
the first response gets 1.0; here every response gets 0.0 and the group is counted in
``unparseable_groups``.  ``unparseable_answer_frac`` is the share of responses that could not vote.

>>> batch = RewardBatch(prompts=["q"] * 4, completions=["\\\\boxed{3}", "\\\\boxed{4}", "\\\\boxed{3.0}",
...                     "none"], rows=[{}] * 4, group_size=4)
>>> result = MajorityVoteReward()(batch)
>>> result.scores, result.group_data
([1.0, 0.0, 1.0, 0.0], {'pseudo_label': ['3']})
"""

from __future__ import annotations

from selfrl.eval.extract import answer_parses, equivalent, extract_answer, grade
from selfrl.rewards.base import RewardBatch, RewardResult
from selfrl.rewards.registry import register_reward


def agreement_matrix(answers: list[str | None]) -> list[list[bool]]:
    """``m[i][j]``: answers i and j are equivalent (either direction).  An answer that cannot
    vote (``None`` or unreadable) agrees with nothing, not even itself: ``m[i][i]`` is whether
    answer i votes."""
    n = len(answers)
    votes = [answer_parses(a) for a in answers]
    m = [[False] * n for _ in range(n)]
    for i in range(n):
        for j in range(i, n):
            ok = votes[i] and votes[j] and equivalent(answers[i], answers[j])
            m[i][j] = m[j][i] = ok
    return m


def majority_of(m: list[list[bool]]) -> tuple[list[float], int | None]:
    """Scores and pseudo-label index from an :func:`agreement_matrix` (``None``: nobody voted)."""
    counts = [sum(row) for row in m]  # a voter agrees with itself, so counts[i] > 0 iff i votes
    if not any(counts):
        return [0.0] * len(m), None
    label = max(range(len(m)), key=lambda i: (counts[i], -i))
    return [1.0 if m[label][j] else 0.0 for j in range(len(m))], label


def majority_scores(answers: list[str | None]) -> tuple[list[float], int | None]:
    """Scores of one group and the index of the pseudo-label (``None`` when no answer votes)."""
    return majority_of(agreement_matrix(answers))


@register_reward("majority_vote")
class MajorityVoteReward:
    """Group-aware: 1.0 for responses that agree with the group's majority answer.

    Args:
        answer_field: only for the ``pseudo_label_accuracy`` metric, when rows happen to carry
            a gold answer; it never affects the scores.
        name: the name used in logs and errors.
    """

    name = "majority_vote"

    def __init__(self, answer_field: str = "answer", name: str | None = None) -> None:
        self.answer_field = answer_field
        if name:
            self.name = name

    def __call__(self, batch: RewardBatch) -> RewardResult:
        scores: list[float] = []
        labels: list[str | None] = []
        unparseable = non_voters = 0
        label_right = label_known = 0
        for g in batch.groups():
            answers = [extract_answer(batch.completions[i]) for i in g]
            m = agreement_matrix(answers)
            group_scores, label = majority_of(m)
            scores += group_scores
            non_voters += sum(not m[i][i] for i in range(len(m)))
            labels.append(answers[label] if label is not None else None)
            unparseable += label is None
            gold = batch.rows[g[0]].get(self.answer_field)
            if gold is not None and label is not None:
                label_known += 1
                label_right += grade(answers[label], str(gold)).correct
        metrics = {"majority_frac": sum(scores) / len(scores),
                   "unparseable_groups": float(unparseable),
                   "unparseable_answer_frac": non_voters / len(scores)}
        if label_known:
            metrics["pseudo_label_accuracy"] = label_right / label_known
        return RewardResult(scores, metrics, {"pseudo_label": labels})
