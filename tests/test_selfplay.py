"""SeRL pieces: majority-vote reward, ROUGE-L pool, filter order."""

from __future__ import annotations

import random

import pytest

from selfrl.rewards import MajorityVoteReward, RewardBatch, compute_reward
from selfrl.rewards.majority import agreement_matrix, majority_scores
from selfrl.selfplay import report as report_mod
from selfrl.selfplay.report import selfplay_report
from selfrl.selfplay.rouge import RougePool, lcs_length, rouge_l, tokenize


def _lcs_reference(a, b):
    dp = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a)):
        for j in range(len(b)):
            dp[i + 1][j + 1] = dp[i][j] + 1 if a[i] == b[j] else max(dp[i][j + 1], dp[i + 1][j])
    return dp[-1][-1]


def test_lcs_matches_dynamic_programme():
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 70))]
        b = [rng.choice("abcde") for _ in range(rng.randint(0, 70))]
        assert lcs_length(a, b) == _lcs_reference(a, b)


def test_rouge_l_hand_value():
    # LCS of 6 and 6 tokens is 5 ("the cat sat on mat"): P = R = 5/6.
    assert rouge_l("the cat sat on the mat", "the cat sat on a mat") == pytest.approx(5 / 6)
    assert tokenize("Tom's 3 PENS!") == ["tom", "s", "3", "pens"]


def test_pool_max_score_is_exact_above_threshold():
    rng = random.Random(1)
    words = "tom ann has buys pens cups more then how many does she he 1 2 3 4 5".split()
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) for _ in range(200)]
    pool = RougePool(texts[:150])
    for cand in texts[150:]:
        brute = max(rouge_l(t, cand) for t in texts[:150])
        fast = pool.max_score(cand, threshold=0.5)
        if brute > 0.5:
            assert fast == pytest.approx(brute)
        else:
            assert fast <= 0.5


def test_majority_vote_scores_and_pseudo_label():
    scores, label = majority_scores(["3", "4", "3.0", None, "\\frac{6}{2}"])
    assert scores == [1.0, 0.0, 1.0, 0.0, 1.0] and label == 0
    # Tie between 5 and 7 (two each): the earliest wins.
    scores, label = majority_scores(["7", "5", "5", "7"])
    assert label == 0 and scores == [1.0, 0.0, 0.0, 1.0]


def test_majority_vote_unparseable_group_gets_zero_and_is_counted():
    batch = RewardBatch(prompts=["q"] * 6, completions=["no", "idea", "here", "\\boxed{2}", "2", "3"],
                        rows=[{}] * 6, group_size=3)
    result = compute_reward(MajorityVoteReward(), batch)
    assert result.scores[:3] == [0.0, 0.0, 0.0]
    assert result.scores[3:] == [1.0, 1.0, 0.0]
    assert result.metrics["unparseable_groups"] == 1.0


def test_majority_vote_never_reads_labels():
    batch = RewardBatch(prompts=["q"] * 3, completions=["\\boxed{1}", "\\boxed{1}", "\\boxed{2}"],
                        rows=[{"answer": "2"}] * 3, group_size=3)
    result = MajorityVoteReward()(batch)
    assert result.scores == [1.0, 1.0, 0.0]  # the majority, although the gold says 2
    assert result.metrics["pseudo_label_accuracy"] == 0.0


def test_agreement_matrix_is_symmetric():
    m = agreement_matrix(["1/2", "0.5", None])
    assert m[0][1] and m[1][0] and not m[2][2]


def _serl_extra(arith_dir, **recipe_args):
    return {"recipe": "serl",
            "data": {"train": str(arith_dir / "seed.jsonl"), "require_answer": False},
            "rewards": [{"name": "majority_vote"}],
            "algorithm": {"advantage": "reinforce_pp", "kl_coef": 1e-3, "kl_estimator": "k1",
                          "kl_in_reward": True},
            "filter": {"max_attempts": 2},
            "recipe_args": {"gen_prompts_per_round": 3, "gen_max_rounds": 2, "gen_max_new_tokens": 24,
                            "rouge_threshold": 0.99, "difficulty_bounds": [0.0, 1.0], **recipe_args}}


def test_serl_records_every_decision_and_resumes_exactly(make_config, arith_dir, tmp_path):
    import json

    import torch

    from selfrl.config.schema import RunConfig
    from selfrl.recipes import build_trainer

    def run(name, steps, resume=None):
        raw = make_config(name, extra=_serl_extra(arith_dir))
        raw["train"]["steps"] = steps
        raw["checkpoint"]["every"] = 1
        cfg = RunConfig.model_validate(raw)
        trainer = build_trainer(cfg, resume=resume)
        trainer.fit()
        return trainer

    straight = run("straight", 3)
    records = [json.loads(line) for line in
               (tmp_path / "straight" / "selfplay" / "step-000001.jsonl").read_text().splitlines()]
    kinds = {r["kind"] for r in records}
    assert "generated" in kinds and "trained" in kinds
    assert all("decision" in r for r in records if r["kind"] == "generated")
    assert straight.recipe.accepted  # the ROUGE pool grew
    report = selfplay_report(tmp_path / "straight")
    assert report["steps"] == 3
    assert report["generated"] == sum(v for k, v in report.items() if k.startswith("generated/"))
    assert report["trained"] == 3 * raw_prompts_per_step(make_config)

    run("split", 2)
    resumed = run("split", 3, resume="auto")
    assert resumed.recipe.accepted == straight.recipe.accepted
    assert resumed.recipe.generated_pool == straight.recipe.generated_pool
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k


def raw_prompts_per_step(make_config) -> int:
    return make_config("probe")["train"]["prompts_per_step"]


def test_report_doctest_and_missing_run(tmp_path):
    import doctest

    result = doctest.testmod(report_mod)
    assert result.attempted > 0 and result.failed == 0
    with pytest.raises(FileNotFoundError, match="not a SeRL run"):
        selfplay_report(tmp_path)


def test_serl_args_are_validated(make_config, arith_dir, tmp_path):
    import yaml

    from selfrl.config import ConfigError, load_config
    from selfrl.config.schema import RunConfig

    raw = make_config("bad", extra=_serl_extra(arith_dir, rouge_treshold=0.5))
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="rouge_threshold"):  # when the config loads, not at training
        load_config(RunConfig, tmp_path / "bad.yaml")
