"""The logging policies that chose what the simulated users were shown, with exact propensities.

Carousel: with probability 1 - eps the deterministic top-k of the logging score over the on-air
products (a pinned product takes its pinned slot, the rest fill the other slots in score order);
with probability eps a uniformly random k-permutation of the on-air products. So

    P(product a at slot s) = (1 - eps) * 1[a is at s in the deterministic list] + eps / n_on_air

and for every request and slot the propensities over the on-air products sum to 1.

Push: among a campaign's candidate products, with probability 1 - eps the argmax of the logging
score, else a uniform pick, so P(a) = (1 - eps) * 1[a is the argmax] + eps / n_candidates.
"""

from __future__ import annotations

import numpy as np

from pipelines.simulator.behaviour import Params, logging_score

CAROUSEL_POLICY = "logging-epsilon-greedy"
PUSH_POLICY = "push-epsilon-greedy"


def deterministic_slate(
    p: Params, users: np.ndarray, items: np.ndarray, pin_col: np.ndarray, pin_slot: np.ndarray, k: int
) -> np.ndarray:
    """Columns of ``items`` [R, n_max] (-1 padded) shown at slots 0..k-1 by the greedy branch."""
    scores = logging_score(p, users[:, None], np.maximum(items, 0))
    scores = np.where(items >= 0, scores, -np.inf)
    rows = np.arange(len(users))
    pinned = pin_col >= 0
    scores[rows[pinned], pin_col[pinned]] = -np.inf  # the pinned product is placed, not ranked
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    # Slot j takes the pinned product at its slot; other slots shift the ranked list past it.
    slot = np.arange(k)[None, :]
    src = np.where(pinned[:, None] & (slot > pin_slot[:, None]), slot - 1, slot)
    det = np.take_along_axis(top, src, axis=1)
    return np.where(pinned[:, None] & (slot == pin_slot[:, None]), pin_col[:, None], det)


def random_slate(items: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Columns of a uniformly random k-permutation of each row's on-air products."""
    keys = np.where(items >= 0, rng.random(items.shape), -1.0)
    return np.argsort(-keys, axis=1, kind="stable")[:, :k]


def carousel(
    p: Params,
    users: np.ndarray,
    items: np.ndarray,
    n_on: np.ndarray,
    pin_col: np.ndarray,
    pin_slot: np.ndarray,
    k: int,
    eps: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Shown product indices [R, k] and the exact propensity of each (product, slot)."""
    det = deterministic_slate(p, users, items, pin_col, pin_slot, k)
    explore = rng.random(len(users)) < eps
    rand = random_slate(items, k, rng)
    cols = np.where(explore[:, None], rand, det)
    shown = np.take_along_axis(items, cols, axis=1)
    propensity = (1.0 - eps) * (cols == det) + eps / n_on[:, None]
    return shown, propensity


def push(
    p: Params, users: np.ndarray, candidates: np.ndarray, eps: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Pushed product index per user from ``candidates`` [A, M] and its exact propensity."""
    m = candidates.shape[1]
    det = np.argmax(logging_score(p, users[:, None], candidates), axis=1)
    explore = rng.random(len(users)) < eps
    col = np.where(explore, rng.integers(0, m, len(users)), det)
    pushed = candidates[np.arange(len(users)), col]
    return pushed, (1.0 - eps) * (col == det) + eps / m
