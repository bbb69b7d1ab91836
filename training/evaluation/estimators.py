"""IPS, SNIPS and doubly robust estimates of a target policy's value, as per-request sums.

Each logged row is weighted with w = pi / propensity (slates.py), clipped at ``max_weight``; the
value of the target (expected total reward per request) is then

- IPS   = (1/N) sum_rows w r
- SNIPS = sum_slots [sum_rows@s w r / sum_rows@s w] * (requests whose slot s the target fills / N):
  E[sum w] per slot is that count when the logging policy covers the target, so normalising per slot
  trades a little bias for much less variance
- DR    = (1/N) sum_requests [sum_s sum_a pi(a at s) q(a, s)  +  sum_rows w (r - q(item, slot))]
  with any reward model q (the ranker's p_convert, for one); unbiased when either the propensities
  or q are right.

Every estimator is a few dot products of per-request sums (``Terms``) with request weights: all
ones for the plain estimate, Poisson draws for the bootstrap (bootstrap.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from training.evaluation.metrics import PAD
from training.evaluation.slates import SlateLog, TargetSlates

RewardModel = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""q(request_index, item_ids, slots) -> expected reward of that item at that slot in that request."""

DEFAULT_MAX_WEIGHT = 1_000.0


@dataclass(frozen=True)
class Terms:
    """Per-request sums from which every estimator (and each bootstrap draw) is a few dot products."""

    ips: np.ndarray  # (N,) sum w r
    num: np.ndarray  # (N, k) w r per slot
    den: np.ndarray  # (N, k) w per slot
    has: np.ndarray  # (N, k) the target's chance of filling that slot, where the request logged it
    dr: np.ndarray | None  # (N,) DM term + sum w (r - q)
    ess: float
    w: np.ndarray  # (rows,) the clipped weights, for the noise floor


def policy_terms(
    log: SlateLog,
    target: TargetSlates,
    reward_model: RewardModel | None,
    max_weight: float | None,
    q_logged: np.ndarray | None = None,
) -> Terms:
    """One target's per-request sums on the log, weights clipped at ``max_weight``; ``q_logged`` is the
    reward model on the logged rows where the caller already has it (it is the same for every target)."""
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
    return Terms(ips, num, den, has, dr, ess, w)


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


def term_columns(t: Terms) -> np.ndarray:
    """The per-request sums of one policy side by side: [ips | num (k) | den (k) | has (k) | dr]."""
    cols = [t.ips[:, None], t.num, t.den, t.has]
    if t.dr is not None:
        cols.append(t.dr[:, None])
    return np.hstack(cols)


def estimates_from(prod: np.ndarray, total: np.ndarray, k: int, has_dr: bool) -> dict[str, np.ndarray]:
    """Estimators from ``c @ term_columns(t)`` (shape (B, 1 + 3k [+1])) and the draws' totals."""
    out = {"ips": prod[:, 0] / total}
    num, den, has = prod[:, 1 : 1 + k], prod[:, 1 + k : 1 + 2 * k], prod[:, 1 + 2 * k : 1 + 3 * k]
    with np.errstate(invalid="ignore", divide="ignore"):
        per_slot = np.where(den > 0, num / den, 0.0) * has / total[:, None]
    out["snips"] = per_slot.sum(axis=1)
    if has_dr:
        out["dr"] = prod[:, 1 + 3 * k] / total
    return out


def estimates_under(t: Terms, c: np.ndarray) -> dict[str, np.ndarray]:
    """Every estimator under request weights ``c`` (shape (B, N); all ones is the plain estimate)."""
    return estimates_from(c @ term_columns(t), c.sum(axis=1), t.num.shape[1], t.dr is not None)
