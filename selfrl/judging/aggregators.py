"""Turning a group's pairwise self-judgments into one reward per response.

Every aggregator is registered by name in :data:`AGGREGATORS` and shares one signature::

    fn(n, judgments, lengths, params) -> list[float]   # one reward per response 0..n-1

``judgments`` are :class:`Judgment` records: responses ``i`` and ``j`` of the group were shown
to the judge in that order (``i`` as "1"/"A", ``j`` as "2"/"B") and ``winner`` is the index it
chose, or ``None`` when its answer did not parse.  ``lengths`` are word counts (only
``copeland`` reads them).  Hyperparameters come in :class:`AggregatorParams`, never a config.

* ``copeland`` (SERL actor reward): length-controlled win share, in ``[0, 1.2]``
  (a win is worth ``L_o / L_a`` with ``L_a`` within ``(0.8, 1.2) * L_o``).
* ``elo`` (SR-R1): sequential Elo over the (winner, loser) list, min–max scaled to ``[0, 3]``.
* ``bradley_terry``: maximum-likelihood Bradley–Terry strengths (MM algorithm) with a
  pseudo-count prior, reported as the probability of beating a random other response.

Also here: SERL's judge self-consistency reward (:func:`serl_judge_rewards`) and its
within-pair normalisation (:func:`group_normalise`).

Departures and choices (the papers leave these open):

* ``elo`` is order-dependent, exactly as SR-R1 specifies: updates are sequential, so a
  perfect preference cycle A>B>C>A does *not* leave equal ratings, and min–max scaling then
  stretches that small order artefact to the full ``[0, 3]`` range.  ``bradley_terry`` is
  order-free and gives a cycle exactly 0.5 each; prefer it when that matters.
* ``bradley_terry`` returns win probabilities rather than min–max scaled log-strengths, so
  that a near-tie stays a near-tie instead of being blown up to ``0`` vs ``1``.

>>> js = [Judgment(0, 1, 0), Judgment(1, 0, 0), Judgment(0, 2, 2), Judgment(2, 0, 0),
...       Judgment(1, 2, 1), Judgment(2, 1, None)]
>>> params = AggregatorParams(judge_samples=2)
>>> AGGREGATORS.get("copeland")(3, js, None, params)
[0.75, 0.25, 0.25]
>>> AGGREGATORS.get("copeland")(3, js, [100, 100, 200], params)
[0.5, 0.0, 0.0]
>>> AGGREGATORS.get("elo")(3, js, None, params)[0]
3.0
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from selfrl.registry import Registry


@dataclass(frozen=True)
class Judgment:
    """One judge sample: responses ``i`` then ``j`` were shown; ``winner`` is ``i``, ``j`` or ``None``.

    >>> Judgment(2, 0, 0).loser
    2
    >>> Judgment(2, 0, 1)
    Traceback (most recent call last):
    ...
    ValueError: Judgment(2, 0): winner must be 2, 0 or None, got 1
    """

    i: int
    j: int
    winner: int | None

    def __post_init__(self) -> None:
        if self.i == self.j:
            raise ValueError(f"Judgment compares response {self.i} with itself")
        if self.winner not in (self.i, self.j, None):
            raise ValueError(f"Judgment({self.i}, {self.j}): winner must be {self.i}, {self.j} or None, "
                             f"got {self.winner}")

    @property
    def valid(self) -> bool:
        """The judge's answer parsed (a winner was chosen)."""
        return self.winner is not None

    @property
    def loser(self) -> int | None:
        """The response that was not chosen (``None`` for a parse failure)."""
        if self.winner is None:
            return None
        return self.j if self.winner == self.i else self.i


@dataclass(frozen=True)
class AggregatorParams:
    """Hyperparameters of the aggregators (each reads only its own).

    Args:
        judge_samples: K, judge samples per unordered pair in total over both orders
            (``copeland`` divides by ``(n - 1) * K``).
        length_low, length_high: ``copeland`` counts a win of ``a`` over ``o`` only when
            ``length_low * L_o < L_a < length_high * L_o`` (strict, as in SERL).
        elo_k, elo_scale, elo_passes: Elo step size, logistic scale and passes over the list.
        elo_max: ``elo`` min–max scales ratings to ``[0, elo_max]``; all equal → ``elo_max / 2``.
        bt_iters, bt_tol: at most ``bt_iters`` MM iterations, stopping early once no
            log-strength moves by more than ``bt_tol``.
        bt_prior: pseudo-wins added in *both* directions of every unordered pair before the
            fit (a Laplace-style prior that shrinks towards equal strengths); it must be
            positive so that an unbeaten or winless response keeps a finite strength.
    """

    judge_samples: int
    length_low: float = 0.8
    length_high: float = 1.2
    elo_k: float = 16.0
    elo_scale: float = 400.0
    elo_passes: int = 10
    elo_max: float = 3.0
    bt_iters: int = 100
    bt_tol: float = 1e-10
    bt_prior: float = 0.5

    def __post_init__(self) -> None:
        checks = [
            (self.judge_samples >= 1, f"judge_samples must be >= 1, got {self.judge_samples}"),
            (0 < self.length_low < self.length_high,
             f"need 0 < length_low < length_high, got {self.length_low}, {self.length_high}"),
            (self.elo_scale > 0, f"elo_scale must be > 0, got {self.elo_scale}"),
            (self.elo_passes >= 0, f"elo_passes must be >= 0, got {self.elo_passes}"),
            (self.elo_max > 0, f"elo_max must be > 0, got {self.elo_max}"),
            (self.bt_iters >= 1, f"bt_iters must be >= 1, got {self.bt_iters}"),
            (self.bt_prior > 0, f"bt_prior must be > 0 (unbeaten responses diverge), got {self.bt_prior}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


Aggregator = Callable[[int, list[Judgment], "list[int] | None", AggregatorParams], list[float]]

AGGREGATORS: Registry[Aggregator] = Registry("judgment aggregator")


def _check_group(n: int, judgments: Sequence[Judgment], lengths: Sequence[int] | None) -> None:
    """Every judgment indexes a response of the group; lengths, when given, are ``n`` counts >= 0."""
    if n < 0:
        raise ValueError(f"group size must be >= 0, got {n}")
    for jd in judgments:
        if not (0 <= jd.i < n and 0 <= jd.j < n):
            raise ValueError(f"{jd} indexes outside a group of {n} responses")
    if lengths is not None:
        if len(lengths) != n:
            raise ValueError(f"got {len(lengths)} lengths for a group of {n} responses")
        if any(length < 0 for length in lengths):
            raise ValueError(f"lengths must be >= 0, got {list(lengths)}")


@AGGREGATORS.register("copeland")
def copeland(n: int, judgments: list[Judgment], lengths: list[int] | None,
             params: AggregatorParams) -> list[float]:
    """SERL's length-controlled Copeland reward.

    ``R(a) = sum over valid judgments that a won against o, with
    length_low * L_o < L_a < length_high * L_o, of L_o / L_a``, divided by ``(n - 1) * K``.
    Losses, parse failures and wins over a much shorter or longer opponent add 0 (so does any
    win by an empty response, since ``L_a > 0.8 * L_o >= 0`` fails).  Without ``lengths``
    every win adds 1.  A group of one gets 0.
    """
    _check_group(n, judgments, lengths)
    if n < 2:
        return [0.0] * n
    totals = [0.0] * n
    for jd in judgments:
        if not jd.valid:
            continue
        a, o = jd.winner, jd.loser
        if lengths is None:
            totals[a] += 1.0
        elif params.length_low * lengths[o] < lengths[a] < params.length_high * lengths[o]:
            totals[a] += lengths[o] / lengths[a]
    return [t / ((n - 1) * params.judge_samples) for t in totals]


def elo_ratings(n: int, judgments: Sequence[Judgment], k: float = 16.0, scale: float = 400.0,
                passes: int = 10) -> list[float]:
    """SR-R1's raw Elo ratings: from 0, ``passes`` sequential sweeps over the valid judgments.

    Each (winner w, loser l) applies ``E = 1 / (1 + 10 ** ((r_l - r_w) / scale))``,
    ``r_w += k (1 - E)``, ``r_l -= k (1 - E)``; the ratings always sum to 0.

    >>> elo_ratings(2, [Judgment(0, 1, 1)], passes=1)
    [-8.0, 8.0]
    """
    ratings = [0.0] * n
    games = [(jd.winner, jd.loser) for jd in judgments if jd.valid]
    for _ in range(passes):
        for w, lo in games:
            expected = 1.0 / (1.0 + 10.0 ** ((ratings[lo] - ratings[w]) / scale))
            delta = k * (1.0 - expected)
            ratings[w] += delta
            ratings[lo] -= delta
    return ratings


@AGGREGATORS.register("elo")
def elo(n: int, judgments: list[Judgment], lengths: list[int] | None,
        params: AggregatorParams) -> list[float]:
    """SR-R1: :func:`elo_ratings` min–max scaled to ``[0, elo_max]``; a range < 1e-6 gives
    everyone ``elo_max / 2``.  ``lengths`` is ignored."""
    _check_group(n, judgments, lengths)
    ratings = elo_ratings(n, judgments, params.elo_k, params.elo_scale, params.elo_passes)
    if not ratings:
        return []
    low, high = min(ratings), max(ratings)
    if high - low < 1e-6:
        return [params.elo_max / 2] * n
    return [params.elo_max * ((r - low) / (high - low)) for r in ratings]  # the max is exactly elo_max


def bt_strengths(n: int, judgments: Sequence[Judgment], prior: float = 0.5, iters: int = 100,
                 tol: float = 1e-10) -> np.ndarray:
    """Bradley–Terry strengths ``gamma`` (geometric mean 1) by Hunter's (2004) MM algorithm.

    Win counts get ``prior`` pseudo-wins each way for every unordered pair, then
    ``gamma_i <- W_i / sum_j n_ij / (gamma_i + gamma_j)`` (``W_i`` wins of i, ``n_ij`` games
    between i and j) until no log-strength moves more than ``tol``.  With ``prior > 0`` every
    pair has played both ways, so the maximum exists and is finite.

    >>> bt_strengths(2, [Judgment(0, 1, 0)] * 3, prior=0.5).round(6).tolist()  # ratio 3.5 / 0.5
    [2.645751, 0.377964]
    """
    wins = np.full((n, n), float(prior))  # (n, n) wins[a, b]: times a beat b
    np.fill_diagonal(wins, 0.0)
    for jd in judgments:
        if jd.valid:
            wins[jd.winner, jd.loser] += 1.0
    games = wins + wins.T  # (n, n) symmetric, zero diagonal
    won = wins.sum(axis=1)  # (n,)
    gamma = np.ones(n)  # (n,)
    for _ in range(iters):
        denom = (games / (gamma[:, None] + gamma[None, :])).sum(axis=1)  # (n,)
        new = won / denom
        new /= np.exp(np.log(new).mean())  # strengths are defined up to scale; pin it
        converged = np.max(np.abs(np.log(new) - np.log(gamma))) <= tol
        gamma = new
        if converged:
            break
    return gamma


@AGGREGATORS.register("bradley_terry")
def bradley_terry(n: int, judgments: list[Judgment], lengths: list[int] | None,
                  params: AggregatorParams) -> list[float]:
    """P(response i beats a uniformly random other response) under the fitted BT model.

    ``(1 / (n - 1)) * sum_{j != i} gamma_i / (gamma_i + gamma_j)`` with ``gamma`` from
    :func:`bt_strengths`; in ``(0, 1)``, averaging to 0.5 over the group.  No data, or
    perfectly balanced data (a cycle), gives 0.5 each; a group of one gets 0.5.
    ``lengths`` is ignored.

    At the maximum, ``sum_j n_ij gamma_i / (gamma_i + gamma_j) = W_i``; so when every pair
    was judged equally often (``m`` games each, counting the prior's ``2 * bt_prior``) this
    equals the smoothed win rate ``W_i / (m (n - 1))``.  The fit only adds information when
    parse failures leave the design unbalanced.
    """
    _check_group(n, judgments, lengths)
    if n < 2:
        return [0.5] * n
    gamma = bt_strengths(n, judgments, params.bt_prior, params.bt_iters, params.bt_tol)
    p = gamma[:, None] / (gamma[:, None] + gamma[None, :])  # (n, n) P(row beats column)
    np.fill_diagonal(p, 0.0)
    return (p.sum(axis=1) / (n - 1)).tolist()


def serl_judge_rewards(judgments: Sequence[Judgment], actor_rewards: Sequence[float],
                       tol: float = 1e-12) -> list[float]:
    """SERL's judge self-consistency reward, one per judge sample.

    Parse failure → −1; the chosen winner has the higher actor reward (Copeland ``R_A``) →
    +1; lower → −1; equal (within ``tol``, so float round-off is a tie) → 0.

    >>> serl_judge_rewards([Judgment(0, 1, 0), Judgment(1, 0, 1), Judgment(0, 1, None)], [0.5, 0.25])
    [1.0, -1.0, -1.0]
    """
    out = []
    for jd in judgments:
        if not (0 <= jd.i < len(actor_rewards) and 0 <= jd.j < len(actor_rewards)):
            raise ValueError(f"{jd} indexes outside {len(actor_rewards)} actor rewards")
        if not jd.valid:
            out.append(-1.0)
            continue
        diff = actor_rewards[jd.winner] - actor_rewards[jd.loser]
        out.append(0.0 if abs(diff) <= tol else math.copysign(1.0, diff))
    return out


def group_normalise(values: Sequence[float], groups: Sequence[Hashable], eps: float = 1e-4) -> list[float]:
    """``(v - group mean) / (group std + eps)`` within each group (SERL: a pair's K judge samples).

    ``groups[k]`` is the key of ``values[k]``'s group (e.g. the unordered pair ``(min(i, j),
    max(i, j))``); groups need not be contiguous.  The std is the unbiased (sample) one, as in
    :func:`selfrl.algorithms.grpo` and ``torch.std``; a group of one has none, so it raises.

    >>> group_normalise([2.0, 0.0, 1.0, 7.0, 5.0], ["a", "a", "a", "b", "b"], eps=0.0)[:3]
    [1.0, -1.0, 0.0]
    >>> group_normalise([1.0, 1.0], [(0, 1), (0, 1)])  # a constant group: std 0, all 0
    [0.0, 0.0]
    """
    if len(values) != len(groups):
        raise ValueError(f"got {len(values)} values but {len(groups)} group keys")
    members: dict[Hashable, list[int]] = {}
    for k, key in enumerate(groups):
        members.setdefault(key, []).append(k)
    out = [0.0] * len(values)
    for key, idx in members.items():
        if len(idx) < 2:
            raise ValueError(f"group {key!r} has one value; its std is undefined")
        vals = [float(values[k]) for k in idx]
        mean, std = statistics.fmean(vals), statistics.stdev(vals)
        for k, v in zip(idx, vals):
            out[k] = (v - mean) / (std + eps)
    return out
