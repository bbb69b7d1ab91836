"""Policies under evaluation, all behind one verb: score (user, product) pairs, higher is better.

``scores(user_ids (m,), product_ids (m, n)) -> (m, n)``; PAD products are never chosen. The same
verb serves the time-split replay (rank the whole catalogue) and off-policy evaluation (rank the
products on air in each logged request), so a policy is written once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from models.popularity import RANKER_FEATURE
from training.evaluation.metrics import PAD
from training.evaluation.slates import TargetSlates

POSITIVE_TYPES = ("product_click", "add_to_cart", "purchase")


class Policy(Protocol):
    name: str

    def scores(self, user_ids: np.ndarray, product_ids: np.ndarray) -> np.ndarray: ...


# Score matrix cells per policy call (64 MB of float64 scores; a ranker policy holds a few such
# matrices). A ranker policy's feature lookup is a Feast point-in-time join that reads every source
# table once per call, whatever the number of rows: evaluation prefetches every pair it needs in one
# call (ranker_features.PointInTimeFeatures), so chunks can stay this small without more lookups.
MAX_CELLS = 8_000_000
MIN_CHUNK = 256  # rows per call however wide the candidates (replay: the whole catalogue)


def rank(
    policy: Policy, user_ids: np.ndarray, candidates: np.ndarray, k: int, chunk: int | None = None
) -> np.ndarray:
    """Each user's top k among its row of ``candidates`` (PAD padded), best first, PAD where short."""
    m = len(user_ids)
    if chunk is None:
        chunk = max(MIN_CHUNK, MAX_CELLS // max(candidates.shape[1], 1))
    out = np.full((m, k), PAD, dtype=np.int64)
    for lo in range(0, m, chunk):
        hi = min(lo + chunk, m)
        cand = candidates[lo:hi]
        s = np.asarray(policy.scores(user_ids[lo:hi], cand), dtype=np.float64)
        s = np.where((cand == PAD) | np.isnan(s), -np.inf, s)
        kk = min(k, cand.shape[1])
        if kk < cand.shape[1]:
            part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
            order = np.argsort(-np.take_along_axis(s, part, 1), axis=1, kind="stable")
            top = np.take_along_axis(part, order, 1)
        else:
            top = np.argsort(-s, axis=1, kind="stable")
        items = np.take_along_axis(cand, top, 1)
        ok = np.isfinite(np.take_along_axis(s, top, 1))
        out[lo:hi, :kk] = np.where(ok, items, PAD)
    return out


def recommend(
    policy: Policy, user_ids: np.ndarray, catalog: np.ndarray, k: int, chunk: int = 512
) -> np.ndarray:
    """Top k of the whole catalogue per user (the replay's recommended lists)."""
    user_ids = np.asarray(user_ids, np.int64)
    out = np.empty((len(user_ids), k), dtype=np.int64)
    for lo in range(0, len(user_ids), chunk):
        u = user_ids[lo : lo + chunk]
        out[lo : lo + chunk] = rank(policy, u, np.broadcast_to(catalog, (len(u), catalog.size)), k, chunk)
    return out


def target_slates(policy: Policy, user_ids: np.ndarray, candidates: np.ndarray, k: int) -> TargetSlates:
    """The policy as a deterministic target on logged requests (its top k of each request's candidates)."""
    return TargetSlates(rank(policy, user_ids, candidates, k))


@dataclass
class PopularPolicy:
    """Most interacted-with products in the training window; needs no model."""

    product_ids: np.ndarray
    counts: np.ndarray
    name: str = "popular"

    @classmethod
    def from_events(cls, events: pd.DataFrame, types: tuple[str, ...] = POSITIVE_TYPES) -> PopularPolicy:
        ev = events.loc[events["type"].isin(types) & events["product_id"].notna(), "product_id"]
        vc = ev.astype(np.int64).value_counts()
        order = np.argsort(vc.index.to_numpy())
        return cls(vc.index.to_numpy()[order], vc.to_numpy()[order].astype(np.float64))

    def scores(self, user_ids: np.ndarray, product_ids: np.ndarray) -> np.ndarray:
        # A product never seen scores 0 (below any seen one), so new launches still get an order.
        if self.product_ids.size == 0:
            return np.zeros(product_ids.shape)
        if _same_rows(product_ids):  # replay's catalogue for every user: one row's lookup, broadcast
            return np.broadcast_to(self.scores(user_ids[:1], product_ids[:1]), product_ids.shape)
        pos = np.clip(np.searchsorted(self.product_ids, product_ids), 0, self.product_ids.size - 1)
        return np.where(self.product_ids[pos] == product_ids, self.counts[pos], 0.0)


@dataclass
class RandomPolicy:
    seed: int = 0
    name: str = "random"

    def scores(self, user_ids: np.ndarray, product_ids: np.ndarray) -> np.ndarray:
        # Keyed on (user, product) so the same pair always gets the same score across chunks.
        h = (user_ids[:, None].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (
            product_ids.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9) + np.uint64(self.seed)
        )
        return (h % np.uint64(1 << 31)).astype(np.float64)


@dataclass
class ScoreFnPolicy:
    """Any callable ``f(user_ids, product_ids) -> scores`` (for tests, simulator truths, experiments)."""

    name: str
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def scores(self, user_ids: np.ndarray, product_ids: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(user_ids, product_ids), dtype=np.float64)


@dataclass
class ALSPolicy:
    """ALS affinity (``models.als.ALSCandidateGenerator.score``); unknown users or products fall back
    to popularity below every scored product, as serving does."""

    als: Any
    fallback: Policy
    name: str = "als"

    def scores(self, user_ids: np.ndarray, product_ids: np.ndarray) -> np.ndarray:
        if _same_rows(product_ids) and hasattr(self.als, "score_matrix"):
            # replay's catalogue for every user: one matrix product instead of gathering a factor row
            # per (user, product) cell (float32 sums in another order: equal up to rounding)
            s = np.asarray(self.als.score_matrix(user_ids, np.maximum(product_ids[0], 0)), dtype=np.float64)
        else:
            s = np.asarray(self.als.score(user_ids[:, None], np.maximum(product_ids, 0)), dtype=np.float64)
        fb = np.asarray(self.fallback.scores(user_ids, product_ids), dtype=np.float64)
        fb_rank = fb / (np.nanmax(fb) + 1.0) if fb.size and np.nanmax(fb) > 0 else np.zeros_like(fb)
        missing = np.isnan(s)
        floor = (np.nanmin(s) if (~missing).any() else 0.0) - 2.0
        return np.where(missing, floor + fb_rank, s)


def _same_rows(product_ids: np.ndarray) -> bool:
    """True for a row broadcast to every user (np.broadcast_to: stride 0), as replay passes the catalogue."""
    return product_ids.ndim == 2 and product_ids.shape[0] > 1 and product_ids.strides[0] == 0


def _top_stable(values: np.ndarray, n: int) -> np.ndarray:
    """Columns of each row's n largest values, best first, ties by position: the first n columns of a
    stable descending argsort, without sorting whole rows (a 50k-product catalogue per user in replay)."""
    m, width = values.shape
    values = np.where(np.isnan(values), -np.inf, values)
    if n >= width or m == 0:
        return np.argsort(-values, axis=1, kind="stable")[:, :n]
    kth = -np.partition(-values, n - 1, axis=1)[:, n - 1 : n]  # each row's n-th largest value
    above = values > kth
    tie = values == kth
    # all values above the n-th, then the first ties by position up to n in all
    take = above | (tie & (np.cumsum(tie, axis=1) <= n - above.sum(axis=1, keepdims=True)))
    r, c = np.nonzero(take)
    order = np.lexsort((c, -values[r, c], r))
    return c[order].reshape(m, n)


FeatureFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], pd.DataFrame]
"""features(user_ids, product_ids, als_score, als_rank), all (r,) -> r rows holding the ranker's features."""


@dataclass
class RankerPolicy:
    """ALS shortlist re-ranked by the LightGBM ranker's p_convert (what serving does, minus business rules).

    Only each row's ALS top ``n_candidates`` reach the ranker (and the feature lookup); the rest keep
    ALS order below them. ``None``: every candidate, as serving reranks a stream's on-air products
    for a personal answer (``RERANK_ON_AIR``); ``slotcast evaluate`` scores carousel logs that way,
    for every user. (Serving keeps the shortlist for fallback answers, where its length did not
    change the true value: benchmarks/results/serving.md.)
    """

    als_policy: ALSPolicy
    ranker: Any
    features: FeatureFn
    n_candidates: int | None = 50
    name: str = "als+ranker"
    popularity: Any = None  # the bundle's PopularityModel: the ranker's popularity_score feature

    def shortlist(
        self, user_ids: np.ndarray, product_ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """ALS scores of every cell, and (rows, cols, ranks) of each row's ALS top ``n_candidates``:
        the only pairs that reach the ranker and its feature lookup."""
        als = self.als_policy.scores(user_ids, product_ids)
        m, n = product_ids.shape
        ranked = np.where(product_ids == PAD, -np.inf, als)
        n_short = n if self.n_candidates is None else min(self.n_candidates, n)
        order = _top_stable(ranked, n_short)
        rows = np.repeat(np.arange(m), n_short)
        cols = order.ravel()
        ok = product_ids[rows, cols] != PAD
        rows, cols = rows[ok], cols[ok]
        ranks = (np.tile(np.arange(1, n_short + 1), m)[ok]).astype(np.float64)
        return ranked, rows, cols, ranks

    def p_convert(
        self, users: np.ndarray, products: np.ndarray, als_score: np.ndarray, als_rank: np.ndarray
    ) -> np.ndarray:
        """The ranker's value of each (user, product) pair, from ``features`` plus the bundle's
        popularity where the ranker was trained on it (its ``popularity_score``, as serving adds)."""
        X = self.features(users, products, als_score, als_rank)
        if self.popularity is not None and RANKER_FEATURE in self.ranker.feature_names:
            X[RANKER_FEATURE] = self.popularity.relative_log_score(products)
        return np.asarray(self.ranker.predict(X[self.ranker.feature_names]), dtype=np.float64)

    def scores(self, user_ids: np.ndarray, product_ids: np.ndarray) -> np.ndarray:
        ranked, rows, cols, ranks = self.shortlist(user_ids, product_ids)
        raw = np.asarray(self.als_policy.als.score(user_ids[rows], product_ids[rows, cols]), dtype=np.float64)
        p = self.p_convert(user_ids[rows], product_ids[rows, cols], raw, ranks)
        finite = np.isfinite(ranked)
        lo = ranked[finite].min() if finite.any() else 0.0
        hi = ranked[finite].max() if finite.any() else 1.0
        # p_convert lies in [0, 1]: shortlisted products sit above 1, the rest below 0 in ALS order.
        out = (ranked - lo) / (hi - lo + 1e-9) - 1.0
        out[rows, cols] = 1.0 + p
        return out
