"""Vectorised top-k ranking metrics with per-user arrays (for paired bootstrap) and their means.

Definitions follow Microsoft Recommenders (``recommenders.evaluation.python_evaluation``) with
binary relevance:

- precision@k = hits in the top k / k
- recall@k    = hits in the top k / number of relevant items
- ndcg@k      = DCG / IDCG with DCG = sum over hits of 1 / log2(rank + 1) (rank 1-based) and IDCG the
  DCG of min(n_relevant, k) hits at the top
- map@k       = sum over hits of (hits so far / rank) / min(n_relevant, k)  (``map_at_k``)
- hit rate@k  = 1 when the top k holds at least one relevant item

As in Recommenders, users with no relevant item are left out of the means (their per-user values are
NaN). Recommended lists are a 2-D int array (one row per user, padded with ``PAD``) or a list of
sequences; a repeated item in one list counts once, at its first position.

Beyond-accuracy metrics: catalog coverage (distinct recommended items / catalog size) and novelty
(mean of -log2 p(i), p(i) = share of training users who interacted with item i).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

PAD = -1  # fills the tail of a recommended list shorter than k

RANKING_METRICS: tuple[str, ...] = ("precision", "recall", "ndcg", "map", "hit_rate")


def _unique_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distinct (a, b) rows sorted by a then b; lexsort of two int columns, much faster than unique(axis=0)."""
    if a.size == 0:
        return np.empty((0, 2), np.int64)
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    keep = np.ones(a.size, dtype=bool)
    keep[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return np.stack([a[keep], b[keep]], axis=1)


@dataclass(frozen=True)
class Relevance:
    """Relevant items per user as flat (row, item) pairs: row i belongs to user i of the recommended lists."""

    rows: np.ndarray
    items: np.ndarray
    n_users: int

    @classmethod
    def from_sets(cls, relevant: Sequence[Iterable[int]]) -> Relevance:
        # None or NaN (what a pandas reindex leaves for a user with nothing relevant) is an empty set
        lists = [
            np.unique(np.fromiter(r, dtype=np.int64)) if r is not None and not isinstance(r, float)
            else np.empty(0, np.int64)
            for r in relevant
        ]  # fmt: skip
        lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
        items = np.concatenate(lists) if lists else np.empty(0, np.int64)
        return cls(np.repeat(np.arange(len(lists), dtype=np.int64), lengths), items, len(lists))

    @classmethod
    def from_pairs(cls, rows: np.ndarray, items: np.ndarray, n_users: int) -> Relevance:
        """From flat arrays (duplicates are dropped); ``rows`` index users 0..n_users-1."""
        rows = np.asarray(rows, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        if rows.shape != items.shape:
            raise ValueError(f"relevance rows and items differ in length: {rows.shape} vs {items.shape}")
        if rows.size and (rows.min() < 0 or rows.max() >= n_users):
            raise ValueError(f"relevance rows must lie in [0, {n_users}); got {rows.min()}..{rows.max()}")
        pairs = _unique_pairs(rows, items)
        return cls(pairs[:, 0].copy(), pairs[:, 1].copy(), n_users)

    def counts(self) -> np.ndarray:
        return np.bincount(self.rows, minlength=self.n_users).astype(np.int64)


def as_matrix(recommended: np.ndarray | Sequence[Sequence[int]], k: int) -> np.ndarray:
    """Recommended lists as an (n_users, k) int64 matrix, cut to k and padded with ``PAD``."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if isinstance(recommended, np.ndarray) and recommended.ndim == 2:
        mat = recommended[:, :k].astype(np.int64, copy=False)
        if mat.shape[1] < k:
            mat = np.hstack([mat, np.full((mat.shape[0], k - mat.shape[1]), PAD, np.int64)])
        return mat
    mat = np.full((len(recommended), k), PAD, dtype=np.int64)
    for i, rec in enumerate(recommended):
        row = np.asarray(rec, dtype=np.int64)[:k]
        mat[i, : row.size] = row
    return mat


def _as_relevance(relevant: Relevance | Sequence[Iterable[int]], n_users: int) -> Relevance:
    rel = relevant if isinstance(relevant, Relevance) else Relevance.from_sets(relevant)
    if rel.n_users != n_users:
        raise ValueError(f"recommended lists cover {n_users} users but relevant sets cover {rel.n_users}")
    return rel


def hit_matrix(recommended: np.ndarray, rel: Relevance) -> np.ndarray:
    """Boolean (n_users, k): is the item at this rank relevant (first occurrence only)."""
    n, k = recommended.shape
    if rel.items.size == 0 or n == 0:
        return np.zeros((n, k), dtype=bool)
    # Factorise items over both sides, then one (row, item) key per pair makes the lookup a single isin.
    vocab, codes = np.unique(np.concatenate([recommended.ravel(), rel.items]), return_inverse=True)
    n_codes = np.int64(vocab.size)
    rec_keys = np.repeat(np.arange(n, dtype=np.int64), k) * n_codes + codes[: n * k]
    rel_keys = rel.rows * n_codes + codes[n * k :]
    hits = np.isin(rec_keys, rel_keys)
    # A repeated item in one list must not count twice: keep each key's first position only.
    _, first = np.unique(rec_keys, return_index=True)
    is_first = np.zeros(n * k, dtype=bool)
    is_first[first] = True
    hits &= is_first & (recommended.ravel() != PAD)
    return hits.reshape(n, k)


def per_user_metrics(
    recommended: np.ndarray | Sequence[Sequence[int]],
    relevant: Relevance | Sequence[Iterable[int]],
    k: int,
) -> dict[str, np.ndarray]:
    """Per-user precision, recall, ndcg, map, hit_rate at k (NaN for users with nothing relevant)."""
    rec = as_matrix(recommended, k)
    rel = _as_relevance(relevant, rec.shape[0])
    hits = hit_matrix(rec, rel)
    n_rel = rel.counts()
    n_hits = hits.sum(axis=1)
    ranks = np.arange(1, k + 1, dtype=np.float64)
    discounts = 1.0 / np.log2(ranks + 1.0)
    dcg = (hits * discounts).sum(axis=1)
    ideal_cum = np.concatenate([[0.0], np.cumsum(discounts)])
    idcg = ideal_cum[np.minimum(n_rel, k)]
    precision_at_hits = np.cumsum(hits, axis=1) / ranks
    ap_num = (precision_at_hits * hits).sum(axis=1)
    valid = n_rel > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "precision": n_hits / k,
            "recall": n_hits / n_rel,
            "ndcg": dcg / idcg,
            "map": ap_num / np.minimum(n_rel, k),
            "hit_rate": (n_hits > 0).astype(np.float64),
        }
    for arr in out.values():
        arr[~valid] = np.nan
    return out


def mean_metrics(per_user: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Mean over users with something relevant (NaN rows skipped); 0.0 when no user qualifies."""
    out = {}
    for name, arr in per_user.items():
        ok = ~np.isnan(arr)
        out[name] = float(arr[ok].mean()) if ok.any() else 0.0
    return out


def _metric(name: str, recommended, relevant, k: int, per_user: bool):  # type: ignore[no-untyped-def]
    values = per_user_metrics(recommended, relevant, k)[name]
    return values if per_user else mean_metrics({name: values})[name]


def precision_at_k(recommended, relevant, k: int = 10, per_user: bool = False):  # type: ignore[no-untyped-def]
    """Precision@k (mean, or the per-user array when ``per_user``)."""
    return _metric("precision", recommended, relevant, k, per_user)


def recall_at_k(recommended, relevant, k: int = 10, per_user: bool = False):  # type: ignore[no-untyped-def]
    """Recall@k (mean, or the per-user array when ``per_user``)."""
    return _metric("recall", recommended, relevant, k, per_user)


def ndcg_at_k(recommended, relevant, k: int = 10, per_user: bool = False):  # type: ignore[no-untyped-def]
    """nDCG@k with binary relevance (mean, or the per-user array when ``per_user``)."""
    return _metric("ndcg", recommended, relevant, k, per_user)


def map_at_k(recommended, relevant, k: int = 10, per_user: bool = False):  # type: ignore[no-untyped-def]
    """MAP@k as Recommenders' ``map_at_k`` (mean, or the per-user array when ``per_user``)."""
    return _metric("map", recommended, relevant, k, per_user)


def hit_rate_at_k(recommended, relevant, k: int = 10, per_user: bool = False):  # type: ignore[no-untyped-def]
    """Share of users with at least one relevant item in the top k."""
    return _metric("hit_rate", recommended, relevant, k, per_user)


def catalog_coverage(
    recommended: np.ndarray | Sequence[Sequence[int]], catalog: int | np.ndarray, k: int
) -> float:
    """Distinct recommended items (top k, pads ignored) over the catalog size."""
    rec = as_matrix(recommended, k)
    items = np.unique(rec[rec != PAD])
    if isinstance(catalog, np.ndarray | list | tuple):
        ids = np.unique(np.asarray(catalog))
        size = int(ids.size)
        items = items[np.isin(items, ids)]
    else:
        size = int(catalog)
    if size <= 0:
        raise ValueError("catalog size must be positive")
    return float(items.size / size)


@dataclass(frozen=True)
class Popularity:
    """p(i) = share of users who interacted with item i in the training window."""

    items: np.ndarray  # sorted item ids
    p: np.ndarray
    n_users: int
    floor: float = field(default=0.0)

    @classmethod
    def from_interactions(cls, user_ids: np.ndarray, item_ids: np.ndarray) -> Popularity:
        pairs = _unique_pairs(np.asarray(user_ids, np.int64), np.asarray(item_ids, np.int64))
        n_users = max(int(np.unique(pairs[:, 0]).size), 1)
        items, counts = np.unique(pairs[:, 1], return_counts=True)
        # An item nobody touched in training gets p = 1 / (n_users + 1): finite novelty, and more
        # novel than any item seen at least once.
        return cls(items, counts / n_users, n_users, floor=1.0 / (n_users + 1))

    def lookup(self, item_ids: np.ndarray) -> np.ndarray:
        item_ids = np.asarray(item_ids, np.int64)
        p = np.full(item_ids.shape, self.floor if self.floor > 0 else 1.0, dtype=np.float64)
        if self.items.size:
            pos = np.clip(np.searchsorted(self.items, item_ids), 0, self.items.size - 1)
            match = self.items[pos] == item_ids
            p[match] = self.p[pos[match]]
        return p


def novelty(
    recommended: np.ndarray | Sequence[Sequence[int]], popularity: Popularity, k: int, per_user: bool = False
):  # type: ignore[no-untyped-def]
    """Mean -log2 p(i) over recommended items (per user: over that user's list; NaN for an empty list)."""
    rec = as_matrix(recommended, k)
    valid = rec != PAD
    info = np.where(valid, -np.log2(popularity.lookup(np.where(valid, rec, 0))), 0.0)
    if per_user:
        with np.errstate(invalid="ignore", divide="ignore"):
            return info.sum(axis=1) / valid.sum(axis=1)
    return float(info[valid].mean()) if valid.any() else 0.0


def ranking_report(
    recommended: np.ndarray | Sequence[Sequence[int]],
    relevant: Relevance | Sequence[Iterable[int]],
    k: int,
    catalog: int | np.ndarray | None = None,
    popularity: Popularity | None = None,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """All metrics at once: (means, per-user arrays). Coverage and novelty only when their inputs are given."""
    rec = as_matrix(recommended, k)
    per_user = per_user_metrics(rec, relevant, k)
    means = mean_metrics(per_user)
    if popularity is not None:
        per_user["novelty"] = novelty(rec, popularity, k, per_user=True)
        means["novelty"] = novelty(rec, popularity, k)
    if catalog is not None:
        means["coverage"] = catalog_coverage(rec, catalog, k)
    return means, per_user
