"""The generative model's probabilities, in one place for both the simulator and the truth.

The simulator draws its clicks, carts and purchases from these functions and ``TrueWorld`` answers
questions with the very same ones, so the truth cannot drift from what generated the logs.
All functions take internal indices (0..n-1), broadcast over any shape, and are vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

# Coefficients of the response model (see docs/simulator.md for the formulas).
COEFS: dict[str, float] = {
    "click_intercept": -5.0,  # logit of a click on an examined slot at affinity 0
    "cart_intercept": -3.5,  # logit of add-to-cart after a click
    "cart_affinity": 0.5,  # how much taste matters for carting beyond clicking
    "buy_intercept": -1.6,  # logit of buying what is in the cart
    "push_click_intercept": -4.0,  # logit of a click on an opened push at affinity 0
    "examination_decay": 0.6,  # examination(slot) = (1 + slot) ** -decay, slot 0 first
    "stream_boost_sd": 0.3,  # spread of the host/stream effect on carting
    "stream_choice": 1.5,  # softmax temperature of a session's category over taste . centroid
}
# Stand-in for "never buys" that keeps the arithmetic finite.
NEVER_LOGIT = -30.0


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Params:
    """All latent parameters of one world, as arrays indexed by internal index."""

    user_factors: np.ndarray  # [U, d] true tastes
    user_log_factors: np.ndarray  # [U, d] the logging policy's noisy estimate of them
    user_type: np.ndarray  # [U] index into config.USER_TYPES
    user_activity: np.ndarray  # [U] P(session on an active day)
    user_conversion: np.ndarray  # [U] offset on cart and buy logits
    user_price_sensitivity: np.ndarray  # [U]
    user_signup_day: np.ndarray  # [U] day (float, relative to start) the user signed up
    user_churn_day: np.ndarray  # [U] day the user leaves for good (inf: never)
    user_push_open: np.ndarray  # [U]
    user_repurchase: np.ndarray  # [U]
    product_factors: np.ndarray  # [P, d]
    product_bias: np.ndarray  # [P] popularity, part of affinity
    product_category: np.ndarray  # [P] category index
    product_price: np.ndarray  # [P]
    product_rel_price: np.ndarray  # [P] log(price / median price of its category)
    product_cycle_days: np.ndarray  # [P] repurchase cycle, nan for durables
    product_launch_day: np.ndarray  # [P] day (float, relative to start) it became available
    category_centroids: np.ndarray  # [C, d]
    stream_boost: np.ndarray  # [S] host/stream effect on carting
    # Taste drift (SimConfig.drift_share): from day user_switch_day[u] on, user u's tastes are
    # user_next_factors[u]. Empty ([0, d], and no switch days) in a world without drift.
    user_next_factors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    user_switch_day: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Params:
        """From saved arrays; a world saved before taste drift existed has none."""
        return cls(**{f.name: np.asarray(arrays[f.name]) for f in fields(cls) if f.name in arrays})

    @property
    def drifts(self) -> bool:
        return self.user_next_factors.size > 0

    def at_day(self, day: float) -> Params:
        """These parameters with every user's tastes as of ``day`` (days since the start); self
        without drift. The simulator's day loop runs on this view."""
        if not self.drifts:
            return self
        return replace(
            self,
            user_factors=user_tastes(self, np.arange(len(self.user_factors)), day),
            user_next_factors=np.zeros((0, self.user_factors.shape[1]), np.float32),
            user_switch_day=np.zeros(0, np.float32),
        )


def user_tastes(p: Params, u: np.ndarray, day: float | np.ndarray | None = None) -> np.ndarray:
    """Users' true tastes [..., d] as of ``day`` (broadcast with ``u``); None: as first drawn."""
    if day is None or not p.drifts:
        return p.user_factors[u]
    moved = np.asarray(p.user_switch_day[u] <= day)
    return np.where(moved[..., None], p.user_next_factors[u], p.user_factors[u])


def affinity(p: Params, u: np.ndarray, i: np.ndarray, day: float | np.ndarray | None = None) -> np.ndarray:
    """True latent preference: taste (as of ``day``, see ``user_tastes``) . product factors + popularity."""
    uf = user_tastes(p, u, day).astype(np.float32, copy=False)
    pf = p.product_factors[i].astype(np.float32, copy=False)
    return np.einsum("...d,...d->...", uf, pf) + p.product_bias[i]


def logging_score(p: Params, u: np.ndarray, i: np.ndarray) -> np.ndarray:
    """The logging policy's deterministic score: the same form with a noisy taste estimate."""
    uf = p.user_log_factors[u].astype(np.float32, copy=False)
    pf = p.product_factors[i].astype(np.float32, copy=False)
    return np.einsum("...d,...d->...", uf, pf) + p.product_bias[i]


def examination(slots: np.ndarray) -> np.ndarray:
    """P(a viewer looks at carousel slot s); slot 0 is the first and always examined."""
    s = np.asarray(slots, dtype=np.float64)
    if np.any(s < 0):
        raise ValueError("slots must be >= 0 (slot 0 is the first)")
    return (1.0 + s) ** -COEFS["examination_decay"]


def click_given_exam(p: Params, u: np.ndarray, i: np.ndarray, aff: np.ndarray | None = None) -> np.ndarray:
    a = affinity(p, u, i) if aff is None else aff
    return sigmoid(COEFS["click_intercept"] + a)


def cart_given_click(
    p: Params, u: np.ndarray, i: np.ndarray, boost: np.ndarray | float = 0.0, aff: np.ndarray | None = None
) -> np.ndarray:
    a = affinity(p, u, i) if aff is None else aff
    logit = (
        COEFS["cart_intercept"]
        + COEFS["cart_affinity"] * a
        + p.user_conversion[u]
        - p.user_price_sensitivity[u] * p.product_rel_price[i]
        + boost
    )
    return sigmoid(logit)


def buy_given_cart(p: Params, u: np.ndarray) -> np.ndarray:
    return sigmoid(COEFS["buy_intercept"] + p.user_conversion[u])


def push_click_given_open(
    p: Params, u: np.ndarray, i: np.ndarray, aff: np.ndarray | None = None
) -> np.ndarray:
    a = affinity(p, u, i) if aff is None else aff
    return sigmoid(COEFS["push_click_intercept"] + a)


def category_choice(p: Params, u: np.ndarray, day: float | np.ndarray | None = None) -> np.ndarray:
    """P(a session of user u watches a stream of category k) [..., C]: the softmax sessions draw from."""
    logits = COEFS["stream_choice"] * (user_tastes(p, u, day) @ p.category_centroids.T)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
