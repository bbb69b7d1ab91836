"""Off-policy estimates of a target policy's value from logged slates: IPS, SNIPS, doubly robust.

The item-position model: a logged row (request, item, slot, propensity, reward) says the logging
policy put ``item`` at ``slot`` with probability ``propensity``. A target policy gives
pi(item at slot | request); under the model the value of the target (expected total reward per
request) is estimated by weighting each row with w = pi / propensity:

- IPS   = (1/N) sum_rows w r
- SNIPS = sum_slots [sum_rows@s w r / sum_rows@s w] * (requests whose slot s the target fills / N):
  E[sum w] per slot is that count when the logging policy covers the target, so normalising per slot
  trades a little bias for much less variance
- DR    = (1/N) sum_requests [sum_s sum_a pi(a at s) q(a, s)  +  sum_rows w (r - q(item, slot))]
  with any reward model q (the ranker's p_convert, for one); unbiased when either the propensities
  or q are right.

Weights are clipped at ``max_weight`` (propensity clipping). Confidence intervals are percentile
intervals of a Poisson bootstrap over requests (the unit that is sampled), and two policies are
compared with the same bootstrap draws (paired), so the difference's interval is tight. Each
interval's ends are pushed out to at least z x the reward-model-based sd of its outcome noise
(noise_floor.py): the bootstrap alone collapses when the few high-weight rows happen to hold no
reward, which rare rewards (purchases) make likely.
Push logs fit the same mould: one request per push decision with one slot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from training.evaluation.metrics import PAD
from training.evaluation.noise_floor import noise_sds, reward_coefficients, reward_variance, widen

RewardModel = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""q(request_index, item_ids, slots) -> expected reward of that item at that slot in that request."""

DEFAULT_MAX_WEIGHT = 1_000.0


@dataclass(frozen=True)
class SlateLog:
    """Logged rows of slate decisions. ``request`` indexes requests 0..n_requests-1; slots are 0-based."""

    request: np.ndarray
    item: np.ndarray
    slot: np.ndarray
    propensity: np.ndarray
    reward: np.ndarray
    n_requests: int

    def __post_init__(self) -> None:
        n = self.request.shape[0]
        for name in ("item", "slot", "propensity", "reward"):
            if getattr(self, name).shape != (n,):
                raise ValueError(
                    f"logged column {name!r} has shape {getattr(self, name).shape}, expected ({n},)"
                )
        if n and (self.request.min() < 0 or self.request.max() >= self.n_requests):
            raise ValueError(f"logged request index must lie in [0, {self.n_requests})")
        if n and self.slot.min() < 0:
            raise ValueError("logged slot must be >= 0")
        bad = ~((self.propensity > 0) & (self.propensity <= 1))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"propensity must lie in (0, 1]; row {i} has {float(self.propensity[i])} ({int(bad.sum())} bad rows)"
            )

    @property
    def n_slots(self) -> int:
        return int(self.slot.max()) + 1 if self.slot.size else 0

    def with_propensity(self, propensity: np.ndarray | float) -> SlateLog:
        """The same log with other propensities (used to show what ignoring them does)."""
        p = np.broadcast_to(np.asarray(propensity, dtype=np.float64), self.propensity.shape).copy()
        return SlateLog(self.request, self.item, self.slot, p, self.reward, self.n_requests)


@dataclass(frozen=True)
class TargetSlates:
    """A target policy on the logged requests: its slate per request, epsilon-mixed with uniform.

    pi(a at s | x) = (1 - eps) * 1[slates[x, s] == a] + eps / n_candidates[x]: a deterministic
    ranking (eps = 0) or the logging policy's own form. ``candidates`` (n_requests, n_max, padded
    with PAD) is needed by DR only when eps > 0.
    """

    slates: np.ndarray
    eps: float = 0.0
    n_candidates: np.ndarray | None = None
    candidates: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.eps <= 1.0:
            raise ValueError(f"eps must lie in [0, 1], got {self.eps}")
        if self.eps > 0 and self.n_candidates is None:
            raise ValueError("a target with eps > 0 needs n_candidates per request")

    def fill(self, log: SlateLog) -> np.ndarray:
        """sum_a pi(a at slot | request) for every logged row: 1 where the target puts an item at the
        row's slot, less where its slate is shorter than that (PAD) or the slot lies beyond it."""
        k = self.slates.shape[1]
        in_range = log.slot < k
        filled = np.zeros(log.item.shape, dtype=bool)
        filled[in_range] = self.slates[log.request[in_range], log.slot[in_range]] != PAD
        return (1.0 - self.eps) * filled + self.eps * in_range

    def prob(self, log: SlateLog) -> np.ndarray:
        """pi(item at slot | request) for every logged row."""
        k = self.slates.shape[1]
        in_range = log.slot < k
        chosen = np.full(log.item.shape, PAD, dtype=np.int64)
        chosen[in_range] = self.slates[log.request[in_range], log.slot[in_range]]
        p = (1.0 - self.eps) * ((chosen == log.item) & (chosen != PAD))
        if self.eps > 0:
            assert self.n_candidates is not None
            p = p + in_range * self.eps / self.n_candidates[log.request]
        return p


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


@dataclass(frozen=True)
class _Terms:
    """Per-request sums from which every estimator (and each bootstrap draw) is a few dot products."""

    ips: np.ndarray  # (N,) sum w r
    num: np.ndarray  # (N, k) w r per slot
    den: np.ndarray  # (N, k) w per slot
    has: np.ndarray  # (N, k) the target's chance of filling that slot, where the request logged it
    dr: np.ndarray | None  # (N,) DM term + sum w (r - q)
    ess: float
    w: np.ndarray  # (rows,) the clipped weights, for the noise floor


def _terms(
    log: SlateLog,
    target: TargetSlates,
    reward_model: RewardModel | None,
    max_weight: float | None,
    q_logged: np.ndarray | None = None,
) -> _Terms:
    n, k = log.n_requests, max(log.n_slots, 1)
    w = target.prob(log) / log.propensity
    if max_weight is not None:
        w = np.minimum(w, max_weight)
    r = log.reward.astype(np.float64)
    ips = np.bincount(log.request, weights=w * r, minlength=n)
    flat = log.request * k + log.slot
    num = np.bincount(flat, weights=w * r, minlength=n * k).reshape(n, k)
    den = np.bincount(flat, weights=w, minlength=n * k).reshape(n, k)
    # SNIPS normalises a slot by E[sum w] there, which is the number of requests in which the target
    # fills that slot, not of requests that logged it: a short slate earns nothing at its empty slots.
    has = np.zeros((n, k))
    has[log.request, log.slot] = target.fill(log)
    sw, sw2 = float(w.sum()), float((w * w).sum())
    ess = sw * sw / sw2 if sw2 > 0 else 0.0
    dr = None
    if reward_model is not None:
        if q_logged is None:
            q_logged = np.asarray(reward_model(log.request, log.item, log.slot), dtype=np.float64)
        dr = np.bincount(log.request, weights=w * (r - q_logged), minlength=n) + _direct(
            log, target, reward_model
        )
    return _Terms(ips, num, den, has, dr, ess, w)


def _direct(log: SlateLog, target: TargetSlates, q: RewardModel) -> np.ndarray:
    """Per request: sum_s sum_a pi(a at s) q(a, s) over the slots the log shows for that request."""
    n, k_t = log.n_requests, target.slates.shape[1]
    k = min(max(log.n_slots, 1), k_t)
    # Only slots the request really had count (a short carousel has no slot 7).
    shown = np.zeros((n, k), dtype=bool)
    ok = log.slot < k
    shown[log.request[ok], log.slot[ok]] = True
    req, slot = np.nonzero(shown & (target.slates[:, :k] != PAD))
    out = np.zeros(n)
    if req.size:
        vals = np.asarray(q(req, target.slates[req, slot], slot), dtype=np.float64)
        out += (1.0 - target.eps) * np.bincount(req, weights=vals, minlength=n)
    if target.eps > 0:
        if target.candidates is None or target.n_candidates is None:
            raise ValueError("DR with an eps > 0 target needs its candidates per request")
        r_idx, s_idx = np.nonzero(shown)
        cand = target.candidates[r_idx]  # (m, n_max)
        rr = np.repeat(r_idx, cand.shape[1])
        ss = np.repeat(s_idx, cand.shape[1])
        aa = cand.ravel()
        valid = aa != PAD
        vals = np.asarray(q(rr[valid], aa[valid], ss[valid]), dtype=np.float64)
        out += target.eps * np.bincount(rr[valid], weights=vals, minlength=n) / target.n_candidates
    return out


def _columns(t: _Terms) -> np.ndarray:
    """The per-request sums of one policy side by side: [ips | num (k) | den (k) | has (k) | dr]."""
    cols = [t.ips[:, None], t.num, t.den, t.has]
    if t.dr is not None:
        cols.append(t.dr[:, None])
    return np.hstack(cols)


def _stat_from(prod: np.ndarray, total: np.ndarray, k: int, has_dr: bool) -> dict[str, np.ndarray]:
    """Estimators from ``c @ _columns(t)`` (shape (B, 1 + 3k [+1])) and the draws' totals."""
    out = {"ips": prod[:, 0] / total}
    num, den, has = prod[:, 1 : 1 + k], prod[:, 1 + k : 1 + 2 * k], prod[:, 1 + 2 * k : 1 + 3 * k]
    with np.errstate(invalid="ignore", divide="ignore"):
        per_slot = np.where(den > 0, num / den, 0.0) * has / total[:, None]
    out["snips"] = per_slot.sum(axis=1)
    if has_dr:
        out["dr"] = prod[:, 1 + 3 * k] / total
    return out


def _stat(t: _Terms, c: np.ndarray) -> dict[str, np.ndarray]:
    """Every estimator under request weights ``c`` (shape (B, N); all ones is the plain estimate)."""
    return _stat_from(c @ _columns(t), c.sum(axis=1), t.num.shape[1], t.dr is not None)


# CDF of Poisson(1) up to 9 (P(X > 9) < 2e-7, below float32 resolution of u): inverse-CDF sampling
# from float32 uniforms is ~10x faster than Generator.poisson, which dominated the bootstrap's time.
_POISSON1_CDF = np.cumsum([np.exp(-1.0) / np.prod(np.arange(1, j + 1, dtype=np.float64)) for j in range(10)])


def _poisson_draws(n: int, n_boot: int, seed: int, chunk: int = 64):  # type: ignore[no-untyped-def]
    """Poisson(1) bootstrap weights per request, in chunks so memory stays at chunk * N."""
    rng = np.random.default_rng(seed)
    cdf = _POISSON1_CDF.astype(np.float32)
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        u = rng.random((b, n), dtype=np.float32)
        # X = #{j : u > cdf[j]}: a few vectorised comparisons beat searchsorted and Generator.poisson
        c = (u > cdf[0]).view(np.uint8)
        for level in cdf[1:]:
            c += u > level
        yield c.astype(np.float64)
        done += b


def _bootstrap(terms: Sequence[_Terms], n: int, n_boot: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Every estimator of every policy under the same draws (so differences are paired).

    All policies' columns go into one matrix, so each chunk of draws is read once by one matmul:
    the draws are the big operand (chunk x N), and reading them per policy and per estimator was
    most of the time.
    """
    blocks = [_columns(t) for t in terms]
    edges = np.cumsum([0] + [b.shape[1] for b in blocks])
    big = np.hstack(blocks)
    parts: list[list[dict[str, np.ndarray]]] = [[] for _ in terms]
    for c in _poisson_draws(n, n_boot, seed):
        total = c.sum(axis=1)
        keep = total > 0
        prod = (c @ big)[keep]
        for i, t in enumerate(terms):
            parts[i].append(
                _stat_from(prod[:, edges[i] : edges[i + 1]], total[keep], t.num.shape[1], t.dr is not None)
            )
    return [{key: np.concatenate([p[key] for p in ps]) for key in ps[0]} for ps in parts]


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
    terms = [_terms(log, targets[name], reward_model, max_weight, q_logged) for name in names]
    ones = np.ones((1, log.n_requests))
    points = [_stat(t, ones) for t in terms]
    boots = _bootstrap(terms, log.n_requests, n_boot, seed)
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
    for c in _poisson_draws(log.n_requests, n_boot, seed):
        total = c.sum(axis=1)
        keep = (
            total > 0
        )  # a draw that leaves out every request has no mean (tiny logs): dropped, as in _bootstrap
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
