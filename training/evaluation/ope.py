"""Off-policy estimates of a target policy's value from logged slates: IPS, SNIPS, doubly robust.

The entry points: every target's estimates with intervals, champion vs challenger comparisons, and
the logging policy's own value. The pieces: the logged rows and the target's pi per row (slates.py),
the estimators as per-request sums (estimators.py), the Poisson bootstrap over requests
(bootstrap.py), and the floor under its intervals (noise_floor.py).

Weights are clipped at ``max_weight`` (propensity clipping). Confidence intervals are percentile
intervals of a Poisson bootstrap over requests (the unit that is sampled), and two policies are
compared with the same bootstrap draws (paired), so the difference's interval is tight. Each
interval's ends are pushed out to at least z x the reward-model-based sd of its outcome noise
(noise_floor.py): the bootstrap alone collapses when the few high-weight rows happen to hold no
reward, which rare rewards (purchases) make likely.
Push logs fit the same mould: one request per push decision with one slot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from training.evaluation.bootstrap import bootstrap_estimates, poisson_draws
from training.evaluation.estimators import DEFAULT_MAX_WEIGHT, RewardModel, estimates_under, policy_terms
from training.evaluation.noise_floor import noise_sds, reward_coefficients, reward_variance, widen
from training.evaluation.slates import SlateLog, TargetSlates


@dataclass(frozen=True)
class Estimate:
    estimator: str
    value: float
    ci_low: float
    ci_high: float
    ess: float
    n_requests: int
    n_rows: int
    noise_sd: float = 0.0  # reward-model sd of the outcome noise: the upper end is >= value + z * it

    def covers(self, truth: float) -> bool:
        return self.ci_low <= truth <= self.ci_high

    def as_dict(self) -> dict[str, float | int | str]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Comparison:
    estimator: str
    champion: float
    challenger: float
    diff: float
    ci_low: float
    ci_high: float
    verdict: str  # "better" | "worse" | "can't tell" (the challenger against the champion)

    def as_dict(self) -> dict[str, float | str]:
        return dict(self.__dict__)


def verdict(ci_low: float, ci_high: float) -> str:
    if ci_low > 0:
        return "better"
    if ci_high < 0:
        return "worse"
    return "can't tell"


def evaluate_policies(
    log: SlateLog,
    targets: Mapping[str, TargetSlates],
    reward_model: RewardModel | None = None,
    *,
    pairs: Sequence[tuple[str, str]] = (),
    max_weight: float | None = DEFAULT_MAX_WEIGHT,
    n_boot: int = 400,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[dict[str, dict[str, Estimate]], dict[tuple[str, str], dict[str, Comparison]]]:
    """IPS, SNIPS (and DR with a reward model) for every target with (1 - alpha) bootstrap intervals,
    and for each (champion, challenger) in ``pairs`` the paired difference with its verdict.

    One set of bootstrap draws serves all targets: cheaper, and it is what makes the comparison paired.
    """
    if log.n_requests == 0:
        raise ValueError("the log holds no requests")
    names = list(targets)
    # q on the logged rows is the same for every target: computed once (a ranker's q is slow)
    q_logged = None
    if reward_model is not None:
        q_logged = np.asarray(reward_model(log.request, log.item, log.slot), dtype=np.float64)
    terms = [policy_terms(log, targets[name], reward_model, max_weight, q_logged) for name in names]
    ones = np.ones((1, log.n_requests))
    points = [estimates_under(t, ones) for t in terms]
    boots = bootstrap_estimates(terms, log.n_requests, n_boot, seed)
    q = [alpha / 2, 1 - alpha / 2]
    z = NormalDist().inv_cdf(1 - alpha / 2)
    variance = reward_variance(log, q_logged)
    coefs = [reward_coefficients(log, t.w, t.has) for t in terms]
    estimates: dict[str, dict[str, Estimate]] = {}
    for name, t, point, boot, c in zip(names, terms, points, boots, coefs, strict=True):
        estimates[name] = {}
        for est, v in point.items():
            up, down = noise_sds(c[est], variance)
            b_lo, b_hi = np.quantile(boot[est], q)
            lo, hi = widen(float(v[0]), float(b_lo), float(b_hi), up, down, z)
            estimates[name][est] = Estimate(est, float(v[0]), lo, hi, t.ess, log.n_requests, int(log.item.size),
                                            up)  # fmt: skip
    comparisons: dict[tuple[str, str], dict[str, Comparison]] = {}
    for champ, chall in pairs:
        a, b = names.index(champ), names.index(chall)
        comparisons[(champ, chall)] = {}
        for est in points[a]:
            va, vb = float(points[a][est][0]), float(points[b][est][0])
            up, down = noise_sds(coefs[b][est] - coefs[a][est], variance)
            b_lo, b_hi = np.quantile(boots[b][est] - boots[a][est], q)
            lo, hi = widen(vb - va, float(b_lo), float(b_hi), up, down, z)
            comparisons[(champ, chall)][est] = Comparison(est, va, vb, vb - va, lo, hi, verdict(lo, hi))
    return estimates, comparisons


def evaluate_policy(
    log: SlateLog,
    target: TargetSlates,
    reward_model: RewardModel | None = None,
    *,
    max_weight: float | None = DEFAULT_MAX_WEIGHT,
    n_boot: int = 400,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Estimate]:
    """IPS, SNIPS (and DR when a reward model is given) of one target with bootstrap intervals."""
    est, _ = evaluate_policies(log, {"target": target}, reward_model, max_weight=max_weight, n_boot=n_boot,
                               alpha=alpha, seed=seed)  # fmt: skip
    return est["target"]


def on_policy_value(log: SlateLog, *, n_boot: int = 400, alpha: float = 0.05, seed: int = 0) -> Estimate:
    """The logging policy's own value: the mean logged reward per request, with its bootstrap interval."""
    per_req = np.bincount(log.request, weights=log.reward.astype(np.float64), minlength=log.n_requests)
    means = []
    for c in poisson_draws(log.n_requests, n_boot, seed):
        total = c.sum(axis=1)
        keep = (
            total > 0
        )  # a draw that leaves out every request has no mean (tiny logs): dropped, as in bootstrap_estimates
        means.append((c[keep] @ per_req) / total[keep])
    boot = np.concatenate(means)
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    n = float(log.n_requests)
    return Estimate(
        "on_policy", float(per_req.mean()), float(lo), float(hi), n, log.n_requests, int(log.item.size)
    )


def compare(
    log: SlateLog,
    champion: TargetSlates,
    challenger: TargetSlates,
    reward_model: RewardModel | None = None,
    *,
    max_weight: float | None = DEFAULT_MAX_WEIGHT,
    n_boot: int = 400,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Comparison]:
    """Challenger minus champion per estimator, with a paired bootstrap interval and a verdict."""
    _, cmp_ = evaluate_policies(log, {"champion": champion, "challenger": challenger}, reward_model,
                                pairs=[("champion", "challenger")], max_weight=max_weight, n_boot=n_boot,
                                alpha=alpha, seed=seed)  # fmt: skip
    return cmp_[("champion", "challenger")]
