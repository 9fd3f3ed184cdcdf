"""CPU unit tests of selfrl.judging: aggregators, judge rewards and pair schedules, against
hand-computed values."""

from __future__ import annotations

import doctest
import math
import random
from collections import Counter

import pytest

from selfrl.judging import aggregators as agg_mod
from selfrl.judging import rewards as rew_mod
from selfrl.judging.aggregators import (
    AGGREGATORS,
    AggregatorParams,
    Judgment,
    bt_strengths,
    elo_ratings,
    group_normalise,
    serl_judge_rewards,
)
from selfrl.judging.parse import parse_serl, parse_srr1
from selfrl.judging.rewards import PAIR_SCHEDULES, pair_schedule, strip_think, to_judgment, word_count
from selfrl.registry import UnknownNameError

copeland = AGGREGATORS.get("copeland")
elo = AGGREGATORS.get("elo")
bradley_terry = AGGREGATORS.get("bradley_terry")

A, B, C = 0, 1, 2
CYCLE = [Judgment(A, B, A), Judgment(B, C, B), Judgment(C, A, C)]  # A>B, B>C, C>A
ORDER = [Judgment(A, B, A), Judgment(B, C, B), Judgment(A, C, A)]  # A>B>C
K1 = AggregatorParams(judge_samples=1)
K2 = AggregatorParams(judge_samples=2)

# Three responses, K = 2 (each pair in both orders), one parse failure:
# A beats B twice, C beats A twice, B beats C once, and (C, B) did not parse.
GROUP = [Judgment(A, B, A), Judgment(B, A, A), Judgment(A, C, C), Judgment(C, A, C),
         Judgment(B, C, B), Judgment(C, B, None)]


@pytest.mark.parametrize("module", [agg_mod, rew_mod])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0, module.__name__


def test_registry_names_and_unknown_name():
    assert AGGREGATORS.names() == ("bradley_terry", "copeland", "elo")
    with pytest.raises(UnknownNameError, match="valid names: bradley_terry, copeland, elo"):
        AGGREGATORS.get("borda")
    with pytest.raises(ValueError, match="already registered"):
        AGGREGATORS.register("elo")(lambda *a: [])
    assert PAIR_SCHEDULES.names() == ("both_orders", "coin_flip")
    with pytest.raises(UnknownNameError, match="valid names: both_orders, coin_flip"):
        pair_schedule(3, 2, None, "round_robin")


@pytest.mark.parametrize("name", ["bradley_terry", "copeland", "elo"])
def test_shared_signature(name):
    out = AGGREGATORS.get(name)(3, GROUP, [10, 10, 10], K2)
    assert len(out) == 3 and all(isinstance(v, float) and math.isfinite(v) for v in out)
    assert AGGREGATORS.get(name)(0, [], None, K2) == []
    with pytest.raises(ValueError, match="outside a group of 2"):
        AGGREGATORS.get(name)(2, GROUP, None, K2)
    with pytest.raises(ValueError, match="2 lengths for a group of 3"):
        AGGREGATORS.get(name)(3, GROUP, [1, 2], K2)


def test_judgment_and_params_validation():
    assert Judgment(3, 1, 3).loser == 1 and Judgment(3, 1, None).loser is None
    with pytest.raises(ValueError, match="itself"):
        Judgment(1, 1, 1)
    with pytest.raises(ValueError, match="winner must be"):
        Judgment(0, 1, 2)
    for bad in [dict(judge_samples=0), dict(judge_samples=2, length_low=1.3),
                dict(judge_samples=2, elo_scale=0), dict(judge_samples=2, bt_prior=0.0),
                dict(judge_samples=2, bt_iters=0), dict(judge_samples=2, elo_passes=-1)]:
        with pytest.raises(ValueError):
            AggregatorParams(**bad)


# ---------------------------------------------------------------------------------------
# copeland (SERL actor reward)


def test_copeland_without_length_control():
    # Wins / ((n - 1) K) = wins / 4: A 2, B 1, C 2; the parse failure counts for nobody.
    assert copeland(3, GROUP, None, K2) == [0.5, 0.25, 0.5]


def test_copeland_with_length_control():
    # A (100 words) vs B (110): 88 < 100 < 132, so each of A's two wins is worth 110/100.
    # C (300 words) is far longer than both: its wins over A (80 < 300 < 120 fails) and B's
    # win over it (240 < 110 fails) are worth 0.
    out = copeland(3, GROUP, [100, 110, 300], K2)
    assert out == pytest.approx([2 * 1.1 / 4, 0.0, 0.0])


def test_copeland_credits_shorter_winner_and_bounds_are_strict():
    # A shorter winner gets L_o / L_a > 1: 100 / 90 for one win out of (2 - 1) * 1.
    assert copeland(2, [Judgment(0, 1, 0)], [90, 100], K1) == pytest.approx([100 / 90, 0.0])
    # A longer winner gets less than 1.
    assert copeland(2, [Judgment(0, 1, 0)], [110, 100], K1) == pytest.approx([100 / 110, 0.0])
    # Exactly 1.2x or 0.8x the loser's length is outside the open interval.
    assert copeland(2, [Judgment(0, 1, 0)], [12, 10], K1) == [0.0, 0.0]
    assert copeland(2, [Judgment(0, 1, 0)], [8, 10], K1) == [0.0, 0.0]
    # An empty winner never scores (and never divides by zero), even against an empty loser.
    assert copeland(2, [Judgment(0, 1, 0)], [0, 0], K1) == [0.0, 0.0]


def test_copeland_invalid_judgments_and_denominator():
    # All K judgments of the pair failed to parse: nobody scores, and K still divides.
    params = AggregatorParams(judge_samples=4)
    failed = [Judgment(0, 1, None)] * 4
    assert copeland(2, failed, None, params) == [0.0, 0.0]
    # One win out of K = 4 over two opponents: 1 / ((3 - 1) * 4).
    assert copeland(3, failed + [Judgment(2, 0, 2)], None, params) == [0.0, 0.0, 0.125]
    assert copeland(1, [], [5], params) == [0.0]


def test_copeland_cycle_is_equal_and_order_free():
    assert copeland(3, CYCLE, None, K1) == [0.5, 0.5, 0.5]
    assert copeland(3, CYCLE[::-1], [10, 10, 10], K1) == [0.5, 0.5, 0.5]


# ---------------------------------------------------------------------------------------
# elo (SR-R1)


def test_elo_one_pass_by_hand():
    # Pass 1 over A>B, B>C, C>A from 0, with K = 16 and scale 400:
    d1 = 16 * (1 - 0.5)  # A>B at equal ratings: A = 8, B = -8
    d2 = 16 * (1 - 1 / (1 + 10 ** ((0 - (-8)) / 400)))  # B (-8) beats C (0)
    d3 = 16 * (1 - 1 / (1 + 10 ** ((8 - (-d2)) / 400)))  # C (-d2) beats A (8)
    expected = [d1 - d3, -d1 + d2, -d2 + d3]
    assert elo_ratings(3, CYCLE, passes=1) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx([-0.37239, 0.18417, 0.18821], abs=1e-5)


def test_elo_cycle_is_not_equal():
    # Sequential updates make Elo depend on the order of the list: in pass 1 A's win came
    # first, at equal ratings (+8), while B and C each beat a *higher*-rated opponent and
    # gained more than 8.  So A ends below B and C even though the data are symmetric.  The
    # raw spread is only a few Elo points, but min–max scaling stretches it to the full
    # [0, 3]: a cycle (no information) gets rewards as spread out as a clear order.
    raw = elo_ratings(3, CYCLE)
    assert sum(raw) == pytest.approx(0.0, abs=1e-9)  # every update is zero-sum
    assert raw[A] < raw[B] < raw[C] and raw[C] - raw[A] < 5.0
    scaled = elo(3, CYCLE, None, K1)
    assert scaled[A] == 0.0 and scaled[C] == 3.0 and scaled[B] == pytest.approx(2.98439, abs=1e-5)
    # Rotating the list moves the penalty to whichever response's win is listed first.
    rotated = elo(3, CYCLE[1:] + CYCLE[:1], None, K1)
    assert rotated[B] == 0.0 and rotated[A] == 3.0


def test_elo_clear_order():
    out = elo(3, ORDER, None, K1)
    assert out[A] == 3.0 and out[C] == 0.0 and 0.0 < out[B] < 3.0
    # The order of the list changes B's value but not the ranking here.
    out = elo(3, ORDER[::-1], None, K1)
    assert out[A] == 3.0 and out[C] == 0.0 and 0.0 < out[B] < 3.0


def test_elo_all_equal_gives_midpoint():
    assert elo(3, [], None, K1) == [1.5, 1.5, 1.5]
    assert elo(3, [Judgment(0, 1, None), Judgment(2, 1, None)], None, K1) == [1.5, 1.5, 1.5]
    assert elo(1, [], None, K1) == [1.5]
    assert elo(2, [Judgment(0, 1, 0)], None, AggregatorParams(1, elo_passes=0)) == [1.5, 1.5]
    assert elo(2, [], None, AggregatorParams(1, elo_max=1.0)) == [0.5, 0.5]


# ---------------------------------------------------------------------------------------
# bradley_terry


def test_bradley_terry_two_responses_closed_form():
    # For two responses the MLE ratio is (wins + prior) / (losses + prior): 3.5 / 1.5.
    js = [Judgment(0, 1, 0)] * 3 + [Judgment(1, 0, 1)]
    assert bradley_terry(2, js, None, K1) == pytest.approx([3.5 / 5, 1.5 / 5], abs=1e-9)
    params = AggregatorParams(1, bt_prior=1.0)
    assert bradley_terry(2, js, None, params) == pytest.approx([4 / 6, 2 / 6], abs=1e-9)


def test_bradley_terry_ordering():
    # Balanced design (every pair once, m = 1 + 2 * 0.5 games each): the MLE reproduces the
    # smoothed win rates W / (m (n - 1)) = 3/4, 2/4, 1/4.
    out = bradley_terry(3, ORDER, None, K1)
    assert out == pytest.approx([0.75, 0.5, 0.25], abs=1e-8)
    assert out[A] > out[B] > out[C]


def test_bradley_terry_cycle_symmetry_and_order_free():
    for js in (CYCLE, CYCLE[::-1], CYCLE[1:] + CYCLE[:1]):
        assert bradley_terry(3, js, None, K1) == pytest.approx([0.5, 0.5, 0.5], abs=1e-12)
    assert bradley_terry(4, [], None, K1) == [0.5] * 4
    assert bradley_terry(1, [], None, K1) == [0.5]


def test_bradley_terry_unbalanced_design_is_the_mle():
    # Parse failures leave the pairs unequally judged; at the maximum each response's expected
    # wins equal its (smoothed) observed wins: sum_j n_ij g_i / (g_i + g_j) = W_i.
    js = [Judgment(0, 1, 0)] * 5 + [Judgment(1, 2, 1)] * 2 + [Judgment(2, 0, 2), Judgment(3, 0, None)]
    n, prior = 4, 0.5
    g = bt_strengths(n, js, prior, iters=1000, tol=1e-13)
    wins = [[0.0 if a == b else prior for b in range(n)] for a in range(n)]
    for jd in js:
        if jd.valid:
            wins[jd.winner][jd.loser] += 1
    for i in range(n):
        expected = sum((wins[i][j] + wins[j][i]) * g[i] / (g[i] + g[j]) for j in range(n) if j != i)
        assert expected == pytest.approx(sum(wins[i]), abs=1e-8)
    out = bradley_terry(n, js, None, K1)
    assert sum(out) == pytest.approx(n / 2)  # each pair's two probabilities sum to 1
    assert out[0] > out[1]


def test_bradley_terry_matches_a_plain_logistic_fit():
    # The same maximum reached another way: gradient ascent on the log-strengths s of the
    # prior-smoothed log-likelihood sum_{a != b} w_ab log sigmoid(s_a - s_b), a plain loop.
    js = ([Judgment(0, 1, 0)] * 3 + [Judgment(1, 0, 1)] + [Judgment(1, 2, 1)] * 2 + [Judgment(2, 1, 2)]
          + [Judgment(0, 2, 2), Judgment(2, 0, 0), Judgment(3, 0, 3), Judgment(3, 2, None)])
    n, prior = 4, 0.5
    w = [[0.0 if a == b else prior for b in range(n)] for a in range(n)]
    for jd in js:
        if jd.valid:
            w[jd.winner][jd.loser] += 1
    s = [0.0] * n
    for _ in range(5000):
        grad = [sum(w[a][b] - (w[a][b] + w[b][a]) / (1 + math.exp(s[b] - s[a])) for b in range(n) if b != a)
                for a in range(n)]
        s = [x + 0.2 * g for x, g in zip(s, grad)]
    mean = sum(s) / n
    fitted = [math.log(g) for g in bt_strengths(n, js, prior, iters=2000, tol=1e-14)]
    assert fitted == pytest.approx([x - mean for x in s], abs=1e-7)
    p = [sum(1 / (1 + math.exp(s[b] - s[a])) for b in range(n) if b != a) / (n - 1) for a in range(n)]
    params = AggregatorParams(1, bt_iters=2000, bt_tol=1e-14)
    assert bradley_terry(n, js, None, params) == pytest.approx(p, abs=1e-7)


def test_bradley_terry_unbeaten_stays_finite():
    js = [Judgment(0, j, 0) for j in (1, 2, 3)] * 10
    out = bradley_terry(4, js, None, K1)
    assert all(math.isfinite(v) for v in out) and 0.9 < out[0] < 1.0
    assert out[1] == pytest.approx(out[2]) == pytest.approx(out[3])


# ---------------------------------------------------------------------------------------
# SERL judge reward and normalisation


def test_serl_judge_rewards():
    actor = [0.5, 0.25, 0.25]
    js = [Judgment(0, 1, 0),   # chose the higher R_A: +1
          Judgment(1, 0, 1),   # chose the lower: -1
          Judgment(1, 2, 1),   # equal R_A: 0
          Judgment(2, 1, None),  # parse failure: -1
          Judgment(2, 0, 0)]   # +1 (the winner was shown second)
    assert serl_judge_rewards(js, actor) == [1.0, -1.0, 0.0, -1.0, 1.0]
    # Float round-off is a tie, not a preference.
    assert serl_judge_rewards([Judgment(0, 1, 0)], [0.1 + 0.2, 0.3]) == [0.0]
    with pytest.raises(ValueError, match="outside 2 actor rewards"):
        serl_judge_rewards([Judgment(0, 2, 0)], [0.0, 1.0])


def test_group_normalise():
    # Group "p": [1, -1, 1] (mean 1/3, sample std sqrt(4/3)); group "q": [-1, 1] (std sqrt 2);
    # the groups interleave.
    values = [1.0, -1.0, -1.0, 1.0, 1.0]
    groups = ["p", "q", "p", "p", "q"]
    eps = 1e-4
    sp, sq = math.sqrt(4 / 3), math.sqrt(2)
    expected = [(2 / 3) / (sp + eps), -1 / (sq + eps), (-4 / 3) / (sp + eps), (2 / 3) / (sp + eps),
                1 / (sq + eps)]
    assert group_normalise(values, groups) == pytest.approx(expected, abs=1e-12)
    assert group_normalise([1.0, 1.0, 1.0], [(0, 1)] * 3) == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="one value"):
        group_normalise([1.0, 2.0, 3.0], ["a", "a", "b"])
    with pytest.raises(ValueError, match="2 values but 3 group keys"):
        group_normalise([1.0, 2.0], ["a", "a", "a"])


def test_serl_pipeline_from_judge_text():
    # Two responses, K = 4 (two in each order); judge texts in SERL's \boxed format.
    schedule = pair_schedule(2, 4, None, "both_orders")
    assert schedule == [(0, 1), (0, 1), (1, 0), (1, 0)]
    texts = ["\\boxed{1}", "\\boxed{1}", "\\boxed{1}", "I cannot decide"]
    js = [to_judgment(i, j, parse_serl(t)) for (i, j), t in zip(schedule, texts)]
    assert [jd.winner for jd in js] == [0, 0, 1, None]
    lengths = [word_count(strip_think("<think>x y</think>" + "w " * 10)), word_count("w " * 11)]
    assert lengths == [10, 11]
    actor = copeland(2, js, lengths, AggregatorParams(judge_samples=4))
    assert actor == pytest.approx([2 * (11 / 10) / 4, 1 * (10 / 11) / 4])
    judge = serl_judge_rewards(js, actor)
    assert judge == [1.0, 1.0, -1.0, -1.0]
    keys = [(min(jd.i, jd.j), max(jd.i, jd.j)) for jd in js]
    assert group_normalise(judge, keys) == pytest.approx([0.866, 0.866, -0.866, -0.866], abs=1e-3)


# ---------------------------------------------------------------------------------------
# schedules and text helpers


def test_both_orders_counts_and_balance():
    n, k = 4, 4
    schedule = pair_schedule(n, k, None, "both_orders")
    assert len(schedule) == n * (n - 1) // 2 * k
    counts = Counter(schedule)
    assert set(counts) == {(i, j) for i in range(n) for j in range(n) if i != j}
    assert set(counts.values()) == {k // 2}
    first = Counter(i for i, _ in schedule)
    assert set(first.values()) == {(n - 1) * k // 2}  # every response shown first equally often


@pytest.mark.parametrize("k", [1, 3, 0])
def test_both_orders_needs_even_k(k):
    with pytest.raises(ValueError, match="even number of judge samples"):
        pair_schedule(3, k, None, "both_orders")


def test_coin_flip_schedule():
    n = 5
    schedule = pair_schedule(n, 1, random.Random(0), "coin_flip")
    assert len(schedule) == n * (n - 1) // 2
    assert sorted(tuple(sorted(p)) for p in schedule) == [(a, b) for a in range(n) for b in range(a + 1, n)]
    assert schedule == pair_schedule(n, 1, random.Random(0), "coin_flip")  # seeded: replayable
    assert schedule != pair_schedule(n, 1, random.Random(1), "coin_flip")
    assert any(i < j for i, j in schedule) and any(i > j for i, j in schedule)
    big = pair_schedule(20, 1, random.Random(0), "coin_flip")
    assert 60 < sum(i < j for i, j in big) < 130  # 190 fair flips
    assert len(pair_schedule(3, 2, random.Random(0), "coin_flip")) == 6
    with pytest.raises(ValueError, match="needs a random.Random"):
        pair_schedule(3, 1, None, "coin_flip")
    with pytest.raises(ValueError, match="k >= 1"):
        pair_schedule(3, 0, random.Random(0), "coin_flip")


def test_to_judgment_maps_both_formats():
    assert to_judgment(3, 1, parse_serl("\\boxed{1}")) == Judgment(3, 1, 3)
    assert to_judgment(3, 1, parse_serl("\\boxed{2}")) == Judgment(3, 1, 1)
    assert to_judgment(3, 1, parse_srr1("Winner: response B")) == Judgment(3, 1, 1)
    assert to_judgment(3, 1, parse_srr1("no verdict")) == Judgment(3, 1, None)
    with pytest.raises(ValueError, match="judge choice"):
        to_judgment(0, 1, "C")


def test_strip_think_and_word_count():
    assert strip_think("<think>a</think> b </think>\n answer  ") == "answer  "
    assert strip_think("plan...</think>The end.") == "The end."
    assert strip_think("plain") == "plain"
    assert word_count(strip_think("<think>long long long</think> three short words")) == 3
    assert word_count("") == 0
