"""Logged slates and target policies for off-policy evaluation: the propensities and pi per logged row.

A logged row (request, item, slot, propensity, reward) says the logging policy put ``item`` at
``slot`` with probability ``propensity``; a target policy gives pi(item at slot | request). The
estimators (estimators.py) weight each row with w = pi / propensity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.evaluation.metrics import PAD


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
