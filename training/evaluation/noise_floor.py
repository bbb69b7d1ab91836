"""A floor under the bootstrap intervals for rare rewards (purchases): the outcome noise a log did not show.

Why it is needed: the Poisson bootstrap resamples the rewards that happened. When a target's value
rests on rows the logging policy rarely shows (its exploration rows, weight ~ n / eps ~ 100), the
rewarded rows among those are few, and when by chance there are none, no bootstrap draw has any
either: the interval collapses around a value that is too low. On the demo world the ranker's
carousel slates matched 535 exploration rows where the truth expects 1.3 purchases (a Poisson
count that is 0 one time in four); none happened, and SNIPS said 0.0058 [0.0043, 0.0076] against a
true 0.0186. With clicks (60 expected there) the same slates were estimated right.

What it does: every estimator here is linear in the logged rewards (sum over rows of c_row r_row,
plus terms without rewards), so its outcome noise has variance sum c^2 p (1 - p). With p from a
reward model fitted on the whole log (thousands of rewarded rows, not the handful under the big
weights), that variance does not collapse. Rewards that did not happen push the estimate down
through rows with c > 0 and up through rows with c < 0 (the champion's, in a difference), so the
upper end of the interval is raised to at least value + z sd(rows with c > 0) and the lower end
lowered to at least value - z sd(rows with c < 0). A policy's own estimate has c >= 0: only its
upper end moves. Where rewards are plentiful the bootstrap interval is the wider one and nothing
changes. Measured: tests/evaluation/test_ope_rare.py and benchmarks/results/evaluation.md.
"""

from __future__ import annotations

import numpy as np

from training.evaluation.slates import SlateLog


def reward_variance(log: SlateLog, q_logged: np.ndarray | None) -> np.ndarray:
    """p (1 - p) per logged row: p from the reward model when given, else the log's reward rate per slot."""
    if q_logged is None:
        counts = np.bincount(log.slot)
        rate = np.bincount(log.slot, weights=log.reward.astype(np.float64)) / np.maximum(counts, 1)
        q_logged = rate[log.slot] if log.slot.size else np.zeros(0)
    q = np.clip(np.asarray(q_logged, dtype=np.float64), 0.0, 1.0)
    return q * (1.0 - q)


def reward_coefficients(log: SlateLog, w: np.ndarray, fill: np.ndarray) -> dict[str, np.ndarray]:
    """Each estimator's coefficient on each logged reward, with w the (clipped) importance weights and
    ``fill`` (N, k) the target's chance of filling each logged (request, slot)
    (``estimators.Terms.has``).

    IPS and DR: w / N. SNIPS: share of requests whose slot the target fills x w / (sum of w at that
    slot), its linearisation around the slot's weight total (the same form
    ``estimators.estimates_from`` computes).
    """
    n, k = log.n_requests, max(log.n_slots, 1)
    ips = w / n
    total_w = np.bincount(log.slot, weights=w, minlength=k)
    share = fill.sum(axis=0) / n
    at = total_w[log.slot]
    snips = np.where(at > 0, share[log.slot] * w / np.where(at > 0, at, 1.0), 0.0)
    return {"ips": ips, "snips": snips, "dr": ips}


def noise_sds(coef: np.ndarray, variance: np.ndarray) -> tuple[float, float]:
    """(upward, downward) sd of sum c r over independent Bernoulli rewards: rows with c > 0, rows with c < 0."""
    part = coef * coef * variance
    return float(np.sqrt(part[coef > 0].sum())), float(np.sqrt(part[coef < 0].sum()))


def widen(value: float, lo: float, hi: float, up: float, down: float, z: float) -> tuple[float, float]:
    """The bootstrap interval [lo, hi], reaching at least value + z up and value - z down."""
    return min(lo, value - z * down), max(hi, value + z * up)
