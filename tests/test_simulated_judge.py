"""Issue 21, item 2 (the mechanism): a judge backed by the ground truth, flipped with probability
1 - p, through the same pair schedules and aggregators; and the judge measured against a truth
(the gold answer on math rows, the checker on instruct rows)."""

from __future__ import annotations

import json
import math
import random

import pytest

from selfrl.config.schema import RunConfig
from selfrl.data.instruct import InstructSpec, write_instruct
from selfrl.judging.aggregators import AGGREGATORS
from selfrl.judging.rewards import pair_schedule
from selfrl.judging.self_judge import SelfJudgeReward
from selfrl.judging.truth import JUDGE_TRUTHS, simulated_winner
from selfrl.models import load_tokenizer
from selfrl.recipes import build_trainer
from selfrl.rewards import RewardBatch, RewardError, compute_reward
from selfrl.rollout.base import Completion

ROW = {"id": "p1", "constraints": [{"kind": "lowercase"}, {"kind": "no_commas"}]}
# truth (share of the two constraints): 1.0, 0.5, 0.0, 0.5
TEXTS = ["all calm here", "All calm here", "All, calm here", "all, calm here"]


class NoEngine:
    def generate(self, *args, **kwargs):
        raise AssertionError("a simulated judge never generates")


def simulated(accuracy: float, aggregator: str = "bradley_terry", seed: int = 0, k: int = 2,
              schedule: str = "both_orders", ties: bool = False) -> SelfJudgeReward:
    return SelfJudgeReward(NoEngine(), tokenizer=None, aggregator=aggregator, schedule=schedule,
                           judge_samples=k, seed=seed, truth="constraints", simulated_accuracy=accuracy,
                           simulated_ties=ties)


def batch(groups: int = 1) -> RewardBatch:
    rows = [{**ROW, "id": f"p{g}"} for g in range(groups) for _ in TEXTS]
    return RewardBatch(["Describe fog."] * len(rows), TEXTS * groups, rows, group_size=len(TEXTS))


# ---------------------------------------------------------------------------------------
# one verdict


def test_simulated_winner_follows_the_truth_with_probability_p():
    rng = random.Random(1)
    truth = [0.5, 1.0]
    assert all(simulated_winner(0, 1, truth, 1.0, rng) == 1 for _ in range(200))
    assert all(simulated_winner(1, 0, truth, 0.0, rng) == 0 for _ in range(200))
    n = 20_000
    for p in (0.5, 0.7, 0.9):
        right = sum(simulated_winner(0, 1, truth, p, rng) == 1 for _ in range(n)) / n
        assert abs(right - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-9
    # a tie in the truth: a fair coin, whatever p is
    first = sum(simulated_winner(2, 3, [0, 0, 0.5, 0.5], 1.0, rng) == 2 for _ in range(n)) / n
    assert abs(first - 0.5) < 4 * math.sqrt(0.25 / n)
    with pytest.raises(ValueError, match="judge accuracy must be in"):
        simulated_winner(0, 1, truth, 1.5, rng)


def test_a_tie_allowed_judge_calls_equal_pairs_a_tie_with_probability_p():
    rng = random.Random(2)
    n = 20_000
    for p in (0.5, 0.8, 1.0):
        verdicts = [simulated_winner(0, 1, [0.5, 0.5], p, rng, ties=True) for _ in range(n)]
        tie = verdicts.count(None) / n
        assert abs(tie - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-9
        # the judge's errors on an equal pair are a coin between the two slots
        assert abs(verdicts.count(0) / n - (1 - p) / 2) < 4 * math.sqrt(0.25 / n)
    # a pair the truth tells apart is judged as without ties: never a tie
    assert None not in [simulated_winner(0, 1, [0.0, 1.0], 0.7, rng, ties=True) for _ in range(500)]


@pytest.mark.parametrize("aggregator", ["copeland", "elo", "bradley_terry"])
def test_a_group_the_truth_cannot_rank_gets_equal_rewards_from_a_tie_allowed_judge(aggregator):
    """The noise the sweep diagnosed: a group of equally wrong answers.  A judge that must pick
    turns it into a full ranking (unequal rewards, so GRPO gives it advantages of full size); a
    perfect tie-allowed judge leaves every reward equal, so the group's advantages are 0, as
    RLVR's are."""
    rows = [{"id": "q", "constraints": [{"kind": "lowercase"}]}] * 4
    equal = RewardBatch(["q"] * 4, ["A b", "C d", "E f", "G h"], rows, group_size=4)
    forced = compute_reward(simulated(1.0, aggregator, seed=1), equal)
    assert len(set(forced.scores)) > 1
    tied = compute_reward(simulated(1.0, aggregator, seed=1, ties=True), equal)
    assert len(set(tied.scores)) == 1
    assert tied.metrics["judge_tie_frac"] == 1.0 and tied.metrics["judge_parse_failure_frac"] == 0.0
    notes = {s.completion.text for s in tied.group_data["judge"][0].samples}
    assert notes == {"[simulated judge] truth 0 vs 0: a tie"}
    # the pairs the truth tells apart are still ranked by it
    mixed = compute_reward(simulated(1.0, aggregator, ties=True), batch())
    s = mixed.scores
    assert s[0] > s[1] and s[0] > s[3] and s[1] > s[2] and s[3] > s[2]
    assert mixed.metrics["judge_accuracy"] == 1.0
    assert mixed.metrics["judge_tie_frac"] == pytest.approx(2 / 12)  # the 1 vs 3 pair, both orders


def test_truths_score_by_hand():
    assert JUDGE_TRUTHS.get("constraints")(ROW, TEXTS) == [1.0, 0.5, 0.0, 0.5]
    accuracy = JUDGE_TRUTHS.get("accuracy")
    assert accuracy({"answer": "7"}, ["The answer is 7.", "8", "\\boxed{7}"]) == [1.0, 0.0, 1.0]
    assert JUDGE_TRUTHS.get("constraints")({"question": "q"}, ["x"]) is None


# ---------------------------------------------------------------------------------------
# the reward with a simulated judge


@pytest.mark.parametrize("aggregator", ["copeland", "elo", "bradley_terry"])
def test_a_perfect_simulated_judge_ranks_by_the_truth(aggregator):
    result = compute_reward(simulated(1.0, aggregator), batch())
    s = result.scores
    assert s[0] > s[1] and s[0] > s[3] and s[1] > s[2] and s[3] > s[2]  # 1.0 > 0.5, 0.5 > 0.0
    assert result.metrics["judge_accuracy"] == 1.0
    assert result.metrics["truth_mean"] == pytest.approx(0.5)
    assert result.metrics["judge_parse_failure_frac"] == 0.0
    # pairs judged: 6 unordered x K=2; the one tie (1 vs 3) is no checkable pair
    assert result.metrics["judge_checkable_pairs"] == 10
    notes = [s.completion.text for s in result.group_data["judge"][0].samples]
    assert all(n.startswith("[simulated judge] truth ") for n in notes)
    assert sum("coin" in n for n in notes) == 2


def test_an_always_wrong_simulated_judge_ranks_backwards():
    result = compute_reward(simulated(0.0, "bradley_terry"), batch())
    assert result.metrics["judge_accuracy"] == 0.0
    assert result.scores[2] > result.scores[1] > result.scores[0]
    # shown in both orders, a judge that follows the content picks each slot equally often
    assert result.metrics["judge_first_slot_frac"] == pytest.approx(0.5, abs=0.1)


def test_measured_accuracy_matches_p_and_flips_are_seeded():
    reward = simulated(0.7, "copeland", seed=3, k=4)
    first = compute_reward(reward, batch(groups=40))
    pairs = first.metrics["judge_checkable_pairs"]
    assert abs(first.metrics["judge_accuracy"] - 0.7) < 4 * math.sqrt(0.21 / pairs)
    again = compute_reward(simulated(0.7, "copeland", seed=3, k=4), batch(groups=40))
    other = compute_reward(simulated(0.7, "copeland", seed=4, k=4), batch(groups=40))
    assert again.scores == first.scores and other.scores != first.scores


def test_the_schedule_is_the_model_judges():
    """The flips draw from their own stream: the coin-flip schedule is what a model judge gets."""
    sim = simulated(0.8, "elo", seed=5, k=1, schedule="coin_flip")
    samples = compute_reward(sim, batch()).group_data["judge"][0].samples
    shown = [(s.judgment.i, s.judgment.j) for s in samples]
    assert shown == pair_schedule(4, 1, random.Random(5), "coin_flip")


def test_a_row_without_the_truth_is_an_error_naming_it():
    rows = [{"id": "open-3", "question": "Describe fog."}] * 2
    with pytest.raises(RewardError, match="the truth 'constraints', which row 'open-3' does not carry"):
        compute_reward(simulated(0.9), RewardBatch(["q"] * 2, ["a", "b"], rows, group_size=2))
    with pytest.raises(ValueError, match="a simulated judge needs a truth"):
        SelfJudgeReward(NoEngine(), None, truth=None, simulated_accuracy=0.9)
    with pytest.raises(ValueError, match="simulated_ties is the simulated judge's"):
        SelfJudgeReward(NoEngine(), None, simulated_ties=True)


# ---------------------------------------------------------------------------------------
# a model judge measured against the truth


class FirstSlot:
    """A judge that always picks the response shown first (SERL's \\boxed{1})."""

    def generate(self, prompts, params, generator=None):
        return [[Completion("\\boxed{1}", [1], [-0.1], "stop", [])] for _ in prompts]


def test_a_model_judge_is_measured_against_the_gold_answer():
    reward = SelfJudgeReward(FirstSlot(), load_tokenizer("tiny-arith"), aggregator="copeland",
                             schedule="both_orders", judge_samples=2)
    texts = ["The answer is 4.", "The answer is 5.", "The answer is 4."]
    result = compute_reward(reward, RewardBatch(["2+2?"] * 3, texts, [{"answer": "4"}] * 3, group_size=3))
    m = result.metrics
    # pairs with exactly one right answer: (0, 1) and (1, 2), each shown once per order; a first-slot
    # judge is right in one order of each: 2 of 4.  It never agrees with itself across orders.
    assert m["judge_checkable_pairs"] == 4 and m["judge_accuracy"] == 0.5
    assert m["judge_position_consistency"] == 0.0 and m["truth_mean"] == pytest.approx(2 / 3)
    assert m["judge_first_slot_frac"] == 1.0
    plain = SelfJudgeReward(FirstSlot(), load_tokenizer("tiny-arith"), judge_samples=2, truth=None)
    assert "judge_accuracy" not in compute_reward(plain, RewardBatch(["q"] * 3, texts, [{"answer": "4"}] * 3,
                                                                      group_size=3)).metrics


# ---------------------------------------------------------------------------------------
# the recipes' options


@pytest.mark.parametrize("args, message", [
    ({"judge": "simulated"}, "judge=simulated needs judge_accuracy"),
    ({"judge": "simulated", "judge_accuracy": 0.8, "judge_truth": None}, "judge=simulated needs"),
    ({"judge": "simulated", "judge_accuracy": 0.8, "judge_model": "tiny-arith"}, "and no judge_model"),
    ({"judge_accuracy": 0.8}, "judge_accuracy and judge_ties are the simulated judge's"),
    ({"judge_ties": True}, "judge_accuracy and judge_ties are the simulated judge's"),
    ({"judge": "simulated", "judge_accuracy": 1.2}, "less than or equal to 1"),
    ({"judge_truth": "checker"}, "unknown judge truth 'checker'; valid: accuracy, constraints"),
    ({"judge": "oracle"}, "recipe_args.judge: wrong type: expected Literal['policy', 'simulated']"),
])
def test_recipe_args_are_checked_when_the_config_loads(make_config, args, message):
    with pytest.raises(ValueError, match="recipe_args") as e:
        RunConfig.model_validate(make_config("x", extra={"recipe": "serl_judge", "recipe_args": args}))
    assert message in str(e.value)


@pytest.fixture(scope="module")
def instruct_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("instruct")
    write_instruct(out, InstructSpec(n_train=24, n_validation=6, n_test=6))
    return out


@pytest.mark.parametrize("recipe, aggregator", [("serl_judge", "copeland"), ("srr1_elo", "bradley_terry")])
def test_recipes_train_with_a_simulated_judge_on_instruct_rows(make_config, instruct_dir, recipe, aggregator):
    cfg = RunConfig.model_validate(make_config("sim", extra={
        "recipe": recipe, "rewards": [],
        "data": {"benchmark": "instruct", "train": str(instruct_dir / "train.jsonl"),
                 "eval": str(instruct_dir / "test.jsonl"), "require_answer": False},
        "recipe_args": {"judge": "simulated", "judge_accuracy": 0.9, "judge_truth": "constraints",
                        "aggregator": aggregator, "judge_samples": 2}}))
    trainer = build_trainer(cfg)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    assert any(not v.equal(before[k]) for k, v in trainer.model.state_dict().items())
    rows = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    step = next(r for r in rows if "reward/mean" in r)
    # SERL's reward is the judge itself (reward/...), SR-R1's a sum with it (reward/srr1_judge/...)
    prefix = "reward/" if recipe == "serl_judge" else "reward/srr1_judge/"
    assert {prefix + k for k in ("truth_mean", "judge_accuracy", "judge_parse_failure_frac")} <= set(step)
    assert "judge/alpha" not in step  # a simulated judge writes no tokens: nothing of it is trained
    assert aggregator in AGGREGATORS


def test_copeland_length_control_drops_wins_over_much_shorter_answers_and_can_be_turned_off():
    """SERL's length control counts a win only against an opponent of similar length: on a
    short-answer task the right answer (an equation, 10 words) beating "The answer is 3." (4 words)
    earns nothing with it, and 1 per win without it (``recipe_args.length_window: null``)."""
    rows = [{"id": "q", "answer": "7"}] * 3
    texts = ["3 + 4 = 7 so she has 7 now.", "The answer is 3.", "The answer is 4."]
    b = RewardBatch(["Tom has 3 and wins 4."] * 3, texts, rows, group_size=3)

    def judge(window):
        return SelfJudgeReward(NoEngine(), tokenizer=None, aggregator="copeland", judge_samples=2,
                               truth="accuracy", simulated_accuracy=1.0, length_window=window)

    with_control = compute_reward(judge((0.8, 1.2)), b).scores
    assert with_control[0] == 0.0  # every win was over a much shorter answer
    without = compute_reward(judge(None), b).scores
    assert without[0] == 1.0  # 2 opponents x K=2 wins / ((3 - 1) x 2)
    assert without[1] + without[2] == pytest.approx(0.5)  # their tie: one coin per verdict, 2 verdicts
    wide = compute_reward(judge((0.1, 10.0)), b).scores
    assert wide[0] == pytest.approx(4 / 10)  # each win weighted L_o / L_a = 4 / 10


def test_length_window_is_a_recipe_option():
    from selfrl.recipes.self_judge import JudgeArgs

    assert JudgeArgs().length_window == (0.8, 1.2)
    assert JudgeArgs(length_window=None).length_window is None
    with pytest.raises(ValueError):
        JudgeArgs(length_window=(0.8,))
