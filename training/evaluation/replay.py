"""Replay on held-out time: each policy ranks the catalogue for every user active in the test window,
scored against what those users really interacted with there; overall, with bootstrap intervals,
and per segment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from training.evaluation.metrics import Popularity, Relevance, catalog_coverage, novelty, per_user_metrics
from training.evaluation.policies import POSITIVE_TYPES, Policy, recommend

REPLAY_METRICS = ("recall", "ndcg", "map", "hit_rate", "precision", "novelty")


@dataclass
class ReplayResult:
    policy: str
    k: int
    means: dict[str, float]
    ci: dict[str, tuple[float, float]]
    per_segment: dict[str, dict[str, float]]
    per_user: dict[str, np.ndarray] = field(repr=False)
    n_users: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "k": self.k,
            "n_users": self.n_users,
            "means": self.means,
            "ci": {m: list(v) for m, v in self.ci.items()},
            "per_segment": self.per_segment,
        }


def time_split(events: pd.DataFrame, test_fraction: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events before / from the time that leaves ``test_fraction`` of the span for testing."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    if events.empty:
        raise ValueError("no events to split")
    t0, t1 = events["ts"].min(), events["ts"].max()
    cut = t0 + (t1 - t0) * (1 - test_fraction)
    return events.loc[events["ts"] < cut], events.loc[events["ts"] >= cut]


def activity_segments(
    train: pd.DataFrame, user_ids: np.ndarray, types: Sequence[str] = POSITIVE_TYPES
) -> np.ndarray:
    """new (no product interaction before the test window), light (1-4), heavy (5+)."""
    pos = train.loc[train["type"].isin(types), "user_id"].value_counts()
    n = pos.reindex(user_ids).fillna(0).to_numpy()
    return np.where(n == 0, "new", np.where(n < 5, "light", "heavy"))


def bootstrap_mean_ci(
    values: np.ndarray, n_boot: int = 500, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` (NaN skipped) under a Poisson bootstrap."""
    v = values[~np.isnan(values)]
    if v.size == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = []
    for lo in range(0, n_boot, 100):
        c = rng.poisson(1.0, size=(min(100, n_boot - lo), v.size)).astype(np.float64)
        tot = c.sum(axis=1)
        means.append((c @ v)[tot > 0] / tot[tot > 0])
    lo_q, hi_q = np.quantile(np.concatenate(means), [alpha / 2, 1 - alpha / 2])
    return float(lo_q), float(hi_q)


def replay_users(
    test: pd.DataFrame,
    relevant_types: Sequence[str] = POSITIVE_TYPES,
    max_users: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, pd.DataFrame]:
    """The users replay scores (sorted; at most ``max_users``, sampled) and their held-out (user, product) rows."""
    rel = test.loc[test["type"].isin(relevant_types) & test["product_id"].notna(), ["user_id", "product_id"]]
    users = np.unique(rel["user_id"].to_numpy(np.int64))
    if users.size == 0:
        raise ValueError(f"the test window has no {'/'.join(relevant_types)} events; nothing to replay")
    if max_users is not None and users.size > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
        rel = rel[rel["user_id"].isin(users)]
    return users, rel


def default_catalog(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Every product either window mentions (when no products table is given)."""
    return np.unique(pd.concat([train["product_id"], test["product_id"]]).dropna().to_numpy(np.int64))


def replay(
    policies: Sequence[Policy],
    train: pd.DataFrame,
    test: pd.DataFrame,
    k: int = 10,
    *,
    catalog: np.ndarray | None = None,
    segments: Mapping[int, str] | None = None,
    relevant_types: Sequence[str] = POSITIVE_TYPES,
    max_users: int | None = None,
    n_boot: int = 500,
    seed: int = 0,
) -> list[ReplayResult]:
    """Evaluate every policy on the users with a relevant event in ``test`` (at most ``max_users``, sampled)."""
    users, rel = replay_users(test, relevant_types, max_users, seed)
    catalog = np.asarray(default_catalog(train, test) if catalog is None else catalog, np.int64)
    relevance = Relevance.from_pairs(np.searchsorted(users, rel["user_id"].to_numpy(np.int64)),
                                     rel["product_id"].to_numpy(np.int64), users.size)  # fmt: skip
    tr = train.loc[train["type"].isin(relevant_types) & train["product_id"].notna()]
    popularity = Popularity.from_interactions(
        tr["user_id"].to_numpy(np.int64), tr["product_id"].to_numpy(np.int64)
    )
    if segments is None:
        seg = activity_segments(train, users, relevant_types)
    else:
        seg = np.array([segments.get(int(u), "unknown") for u in users])
    results = []
    for policy in policies:
        recs = recommend(policy, users, catalog, k)
        per_user = per_user_metrics(recs, relevance, k)
        per_user["novelty"] = novelty(recs, popularity, k, per_user=True)
        means = {m: float(np.nanmean(per_user[m])) for m in REPLAY_METRICS}
        means["coverage"] = catalog_coverage(recs, catalog, k)
        ci = {m: bootstrap_mean_ci(per_user[m], n_boot, seed=seed) for m in REPLAY_METRICS}
        per_segment = {
            str(s): {m: float(np.nanmean(per_user[m][seg == s])) for m in REPLAY_METRICS}
            | {"users": int((seg == s).sum())}
            for s in np.unique(seg)
        }
        results.append(ReplayResult(policy.name, k, means, ci, per_segment, per_user, int(users.size)))
    return results
