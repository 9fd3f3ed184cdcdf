"""scripts/aggregator_signal.py: the share of RLVR's advantage a simulated judge and an aggregator
deliver, checked where the answer is known."""

from __future__ import annotations

import doctest
import importlib.util
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sig():
    path = REPO / "scripts" / "aggregator_signal.py"
    spec = importlib.util.spec_from_file_location("aggregator_signal", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(sig, agg: str, p: float, ties: bool, q: float = 0.3, groups: int = 300) -> dict[str, float]:
    return sig.measure(agg, p, n=6, q=q, groups=groups, ties=ties, schedule="both_orders",
                       judge_samples=2, seed=0)


def test_doctests(sig):
    assert doctest.testmod(sig).failed == 0


@pytest.mark.parametrize("agg", ["copeland", "bradley_terry"])
def test_perfect_tie_judge_is_rlvr(sig, agg):
    """A perfect judge that may call a tie ranks right above wrong and nothing else: the advantage
    is RLVR's exactly (Copeland's win share, Bradley-Terry's symmetric strengths)."""
    m = run(sig, agg, 1.0, ties=True)
    assert m["signal"] == pytest.approx(1.0, abs=1e-5)
    assert m["noise"] == pytest.approx(0.0, abs=1e-5)
    assert m["within_class"] == pytest.approx(0.0, abs=1e-5)


def test_elo_order_artefact_is_small_but_there(sig):
    """Elo's sequential updates spread a class of equal answers apart even with a perfect judge."""
    m = run(sig, "elo", 1.0, ties=True)
    assert m["signal"] == pytest.approx(1.0, abs=0.01)
    assert 0.0 < m["within_class"] < 0.2


def test_coin_judge_carries_no_signal(sig):
    """A forced judge at p = 0.5 is a coin everywhere: no share of RLVR's advantage, all noise."""
    m = run(sig, "bradley_terry", 0.5, ties=False, groups=600)
    assert abs(m["signal"]) < 0.1
    assert m["noise"] > 0.5


def test_copeland_tie_calls_favour_the_minority(sig):
    """At p = 0.5 a tie judge still calls ties only on equal pairs, so under Copeland (which counts
    decisive wins) the smaller class wins more: right answers when they are rare, wrong ones when
    they are common."""
    rare = run(sig, "copeland", 0.5, ties=True, q=0.2, groups=600)
    common = run(sig, "copeland", 0.5, ties=True, q=0.8, groups=600)
    assert rare["signal"] > 0.2
    assert common["signal"] < -0.2


def test_forced_bradley_terry_is_copeland(sig):
    """With every pair judged in both orders and no tie, Bradley-Terry's reward is an affine
    function of Copeland's win share (the fit's moment condition), so GRPO hands the policy the
    same advantages: the forced sweep's two columns train on one signal."""
    import random

    for seed in range(20):
        draw = random.Random(100 + seed)
        truth = [float(draw.random() < 0.3) for _ in range(8)]
        cop = sig.group_advantages(truth, "copeland", 0.7, False, "both_orders", 2, random.Random(seed))
        bt = sig.group_advantages(truth, "bradley_terry", 0.7, False, "both_orders", 2, random.Random(seed))
        assert np.allclose(cop, bt, atol=1e-4)
