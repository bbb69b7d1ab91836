"""A tiny slate bandit with a known truth, for checking the off-policy estimators and for benchmarks.

Contexts are (user, stream) pairs drawn uniformly; each stream has ``n_on_air`` products on air.
The true purchase probability of product a at slot s for user u is
``sigmoid(bias + u . v_a) * examination(s)``, so a slate's true value is the sum over its slots.
The logging policy is the simulator's: with probability 1 - eps the deterministic top-k of a noisy
logging score, else a uniformly random k-permutation of the on-air products, so
propensity(a at s) = (1 - eps) * 1[a at s in the deterministic list] + eps / n.
Because the context space is finite, a policy's true value is an exact average, not an estimate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from training.evaluation.slates import SlateLog, TargetSlates

ScoreFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""scores(user_idx (m,), product_idx (m, n)) -> (m, n) scores; the top k is the slate."""


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def top_k(scores: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Per row, the k items with the highest scores, best first (ties broken by position)."""
    part = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(items, part, axis=1)


@dataclass
class SlateWorld:
    user_vec: np.ndarray  # (U, d)
    item_vec: np.ndarray  # (P, d)
    item_bias: np.ndarray  # (P,)
    on_air: np.ndarray  # (S, n) product indices per stream
    noise_user: np.ndarray  # (U, d) and (P, d): the logging score's error is their dot product,
    noise_item: np.ndarray  # low-rank so that big worlds stay small in memory
    k: int
    eps: float
    bias: float = -2.5
    exam_decay: float = 0.6

    @classmethod
    def make(
        cls,
        seed: int = 0,
        n_users: int = 300,
        n_products: int = 60,
        n_streams: int = 8,
        n_on_air: int = 12,
        k: int = 4,
        eps: float = 0.3,
        dim: int = 4,
        log_noise: float = 1.0,
    ) -> SlateWorld:
        rng = np.random.default_rng(seed)
        on_air = np.stack([rng.choice(n_products, n_on_air, replace=False) for _ in range(n_streams)])
        return cls(
            user_vec=rng.normal(0, 0.8, (n_users, dim)),
            item_vec=rng.normal(0, 0.8, (n_products, dim)),
            item_bias=rng.normal(0, 0.7, n_products),
            on_air=on_air,
            noise_user=rng.normal(0, np.sqrt(log_noise / dim), (n_users, dim)),
            noise_item=rng.normal(0, 1.0, (n_products, dim)),
            k=k,
            eps=eps,
        )

    @property
    def n_on_air(self) -> int:
        return int(self.on_air.shape[1])

    def examination(self, slots: np.ndarray) -> np.ndarray:
        return (1.0 + np.asarray(slots, np.float64)) ** -self.exam_decay

    def affinity(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        u = np.asarray(users)[..., None] if np.ndim(items) > np.ndim(users) else np.asarray(users)
        return np.sum(self.user_vec[u] * self.item_vec[items], axis=-1) + self.item_bias[items]

    def purchase_prob(self, users: np.ndarray, items: np.ndarray, slots: np.ndarray) -> np.ndarray:
        return _sigmoid(self.bias + self.affinity(users, items)) * self.examination(slots)

    # ---- policies, as score functions over (user, on-air products) ----
    def logging_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        noise = np.sum(self.noise_user[np.asarray(users)[:, None]] * self.noise_item[items], axis=-1)
        return self.affinity(users, items) + noise

    def oracle_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.affinity(users, items)

    def popular_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_bias[items], items.shape)

    def anti_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return -self.affinity(users, items)

    # ---- logging and truth ----
    def log(self, n_requests: int, seed: int) -> tuple[SlateLog, np.ndarray, np.ndarray]:
        """Log ``n_requests`` carousels; returns (log, user per request, stream per request)."""
        rng = np.random.default_rng(seed)
        users = rng.integers(0, self.user_vec.shape[0], n_requests)
        streams = rng.integers(0, self.on_air.shape[0], n_requests)
        cands = self.on_air[streams]  # (R, n)
        det = top_k(self.logging_scores(users, cands), cands, self.k)
        explore = rng.random(n_requests) < self.eps
        perm = top_k(rng.random(cands.shape), cands, self.k)
        shown = np.where(explore[:, None], perm, det)  # (R, k)
        slots = np.broadcast_to(np.arange(self.k), shown.shape)
        prop = (1.0 - self.eps) * (shown == det) + self.eps / self.n_on_air
        q = self.purchase_prob(np.repeat(users, self.k).reshape(shown.shape), shown, slots)
        reward = rng.random(shown.shape) < q
        log = SlateLog(
            request=np.repeat(np.arange(n_requests), self.k),
            item=shown.ravel().astype(np.int64),
            slot=slots.ravel().astype(np.int64),
            propensity=prop.ravel(),
            reward=reward.ravel().astype(np.float64),
            n_requests=n_requests,
        )
        return log, users, streams

    def target(self, score: ScoreFn, users: np.ndarray, streams: np.ndarray) -> TargetSlates:
        cands = self.on_air[streams]
        return TargetSlates(top_k(score(users, cands), cands, self.k))

    def true_value(self, score: ScoreFn) -> float:
        """Exact expected reward per request of the deterministic policy ``score`` (all contexts, equal weight)."""
        n_u, n_s = self.user_vec.shape[0], self.on_air.shape[0]
        users = np.repeat(np.arange(n_u), n_s)
        streams = np.tile(np.arange(n_s), n_u)
        slates = self.target(score, users, streams).slates
        slots = np.broadcast_to(np.arange(self.k), slates.shape)
        q = self.purchase_prob(np.repeat(users, self.k).reshape(slates.shape), slates, slots)
        return float(q.sum(axis=1).mean())

    def reward_model(self, users: np.ndarray, noise: float = 0.0, seed: int = 0):  # type: ignore[no-untyped-def]
        """q(request, item, slot) for DR: the truth, optionally with a multiplicative error (a wrong model)."""
        err = np.exp(np.random.default_rng(seed).normal(0, noise, self.item_vec.shape[0])) if noise else None

        def q(req: np.ndarray, items: np.ndarray, slots: np.ndarray) -> np.ndarray:
            p = self.purchase_prob(users[req], items, slots)
            return np.clip(p * err[items], 0, 1) if err is not None else p

        return q
