"""Review issue 19: unparsable answers never vote, advantages from exact rewards, SR-R1's
tag-count reward."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from selfrl.algorithms import ADVANTAGE_ESTIMATORS, AdvantageInput, AdvantageParams
from selfrl.config import load_config
from selfrl.config.schema import RunConfig
from selfrl.eval.evaluate import EvalSettings, _aggregate, _mode_fns, _score_row
from selfrl.rewards import MajorityVoteReward, RewardBatch, build_reward, compute_reward
from selfrl.rewards.majority import majority_scores
from selfrl.trainer.batch import RolloutBatch
from selfrl.trainer.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
RIGHT = "3 + 4 = 7. The answer is \\boxed{7}"
CUT = "3 + 4 = 7. The answer is \\boxed{"  # truncated: extracts the string "\boxed{"


# --- 1. unparsable answers never vote ------------------------------------------------


def test_majority_reward_truncated_answers_neither_vote_nor_score():
    batch = RewardBatch(["q"] * 5, [RIGHT, CUT, CUT, RIGHT, CUT], [{}] * 5, group_size=5)
    result = compute_reward(MajorityVoteReward(), batch)
    assert result.scores == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert result.metrics["unparseable_answer_frac"] == pytest.approx(3 / 5)


def test_identical_unparsable_strings_do_not_agree():
    scores, label = majority_scores(["\\", "\\", "5", "\\frac{1}{"])
    assert label == 2 and scores == [0.0, 0.0, 1.0, 0.0]
    scores, label = majority_scores(["\\", "\\", None])
    assert label is None and scores == [0.0, 0.0, 0.0]


def test_eval_majority_ignores_unparsable_answers_and_counts_them():
    settings = EvalSettings(n=4, ks=(1, 4), greedy=False)
    extract, equal = _mode_fns("math")
    tokenizer = SimpleNamespace(decode=lambda ids: "prompt")
    row = _score_row({"question": "3 + 4?"}, [1], tokenizer, "7", True, None,
                     [CUT, RIGHT, CUT, "The answer is \\"], settings, extract, equal, "question")
    assert row["maj@4_correct"] is True  # the one readable answer wins; the cut ones do not vote
    assert row["maj@1_correct"] is False  # only a cut answer in the first sample: no majority
    metrics = _aggregate([row], settings)
    assert metrics["unparsable_answer_frac"] == pytest.approx(3 / 4)


# --- 2. advantages from the rewards as given -------------------------------------------


def _grpo_reference(scores: list[float], eps: float) -> list[float]:
    mean = sum(scores) / len(scores)
    std = (sum((s - mean) ** 2 for s in scores) / (len(scores) - 1)) ** 0.5
    return [(s - mean) / (std + eps) for s in scores]


def test_grpo_advantages_of_close_rewards_match_a_float64_reference():
    rewards = [0.8, 0.8001, 0.8002, 0.8003]
    batch = RolloutBatch(rows=[{}] * 4, prompt_ids=[[1]] * 4, completion_ids=[[2]] * 4,
                         rollout_logprobs=[None] * 4, completions=["a"] * 4, prompts=["q"] * 4,
                         finish_reasons=["stop"] * 4, group_size=4)
    trainer = SimpleNamespace(reward=lambda b: list(rewards),
                              cfg=SimpleNamespace(rollout=SimpleNamespace(truncated_reward=None)))
    Trainer.score(trainer, batch)  # the trainer's one line that turns reward floats into a tensor
    params = AdvantageParams()
    out = ADVANTAGE_ESTIMATORS.get("grpo")(
        AdvantageInput(scores=batch.scores, response_mask=torch.ones(4, 1),
                       group_index=torch.zeros(4, dtype=torch.long)), params)
    ref = _grpo_reference(rewards, params.eps)
    got = out.advantages[:, 0].tolist()
    for g, r in zip(got, ref):
        assert g == pytest.approx(r, rel=1e-9)


def test_estimators_compute_in_float64_and_return_the_input_dtype():
    scores = torch.tensor([0.8, 0.8001, 0.8002, 0.8003], dtype=torch.float64).float()
    inp = AdvantageInput(scores=scores, response_mask=torch.ones(4, 2),
                         group_index=torch.zeros(4, dtype=torch.long))
    out = ADVANTAGE_ESTIMATORS.get("grpo")(inp, AdvantageParams())
    assert out.advantages.dtype == torch.float32
    ref = _grpo_reference(scores.double().tolist(), AdvantageParams().eps)  # from the float32 values
    for g, r in zip(out.advantages[:, 0].tolist(), ref):
        assert g == pytest.approx(r, rel=1e-6)


# --- 3. SR-R1's tag-count reward -------------------------------------------------------


def test_tag_count_reward_quarter_per_tag_seen_exactly_once():
    full = "<think>\nadd\n</think>\n<answer>\n7\n</answer>"
    texts = [full, "<think>\nadd\n</think>\n7", full + "\n<answer>\n8\n</answer>", "7"]
    result = compute_reward(build_reward("tag_count"), RewardBatch(["q"] * 4, texts, [{}] * 4, 4))
    # the third repeats both answer tags, so only the two think tags count
    assert result.scores == [1.0, 0.5, 0.5, 0.0]


def test_srr1_recipe_sums_accuracy_format_tag_count_with_weight_one():
    cfg = load_config(RunConfig, ROOT / "recipes" / "srr1_elo_tiny.yaml")
    assert [(r.name, r.weight) for r in cfg.rewards] == [("accuracy", 1.0), ("format", 1.0),
                                                         ("tag_count", 1.0)]
