"""A small synthetic world for serving without a trained model: canonical tables, a factor model
with the ALS generator's interface, popularity, a logistic ranker and an in-memory feature source.
Used by ``SLOTCAST_MODEL_SOURCE=demo`` (tests, benchmarks, trying the API); never in production.

The world has a known answer: user u likes category ``u % n_categories`` (factors are built that
way), so a carousel for u should lead with that category."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

from features.data_model import SCHEMAS, conform
from serving.simple_policy import SimplePolicy, SimplePolicyConfig
from serving.sources import Models, Policy

N_CATEGORIES = 6
FEATURES = ["als_score", "price", "product_conversion", "user_activity"]


def demo_tables(
    n_users: int = 2000, n_products: int = 300, n_streams: int = 5, per_stream: int = 100, seed: int = 0
) -> dict[str, pa.Table]:
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    pid = np.arange(n_products, dtype=np.int64)
    products = pa.table(
        {
            "product_id": pid,
            "category": [f"c{i % N_CATEGORIES}" for i in range(n_products)],
            "brand": ["b"] * n_products,
            "price": rng.uniform(5, 100, n_products).round(2),
            "margin": rng.uniform(0.1, 0.5, n_products).round(2),
            "stock": np.where(rng.random(n_products) < 0.05, 0, 50).astype(np.int64),
            "launch_ts": [now - timedelta(days=100)] * n_products,
            "repurchase_cycle_days": [30.0 if i % 10 == 0 else None for i in range(n_products)],
        }
    )
    uid = np.arange(n_users, dtype=np.int64)
    users = pa.table(
        {
            "user_id": uid,
            "signup_ts": [now - timedelta(days=200)] * n_users,
            "region": ["eu"] * n_users,
            # Every 7th user opted out of personalization, every 5th out of marketing.
            "consent_personalization": (uid % 7 != 3),
            "consent_marketing": (uid % 5 != 4),
        }
    )
    streams = pa.table(
        {
            "stream_id": np.arange(n_streams, dtype=np.int64),
            "host_id": np.zeros(n_streams, np.int64),
            "category": ["live"] * n_streams,
            "start_ts": [now - timedelta(hours=1)] * n_streams,
            "end_ts": [now + timedelta(hours=2)] * n_streams,
        }
    )
    sp_rows = []
    for s in range(n_streams):
        chosen = rng.choice(pid, size=min(per_stream, n_products), replace=False)
        for j, p in enumerate(chosen):
            sp_rows.append((s, int(p), now - timedelta(hours=1), None, 0 if j == 0 else None))
    sp = pd.DataFrame(sp_rows, columns=["stream_id", "product_id", "on_air_from", "on_air_to", "pinned_slot"])
    stream_products = pa.Table.from_pandas(sp, preserve_index=False)
    communities = pa.table({"community_id": np.arange(3, dtype=np.int64), "topic": ["a", "b", "c"]})
    # Members since the products' launch: a push replayed at a past moment (``at``) reaches them.
    joined = [now - timedelta(days=100)] * n_users
    members = pa.table({"community_id": uid % 3, "user_id": uid, "joined_ts": joined})
    n_ev = n_users * 2
    ev_users = rng.integers(0, n_users, n_ev)
    types = np.where(rng.random(n_ev) < 0.3, "purchase", "product_click")
    events = pa.table(
        {
            "event_id": np.arange(n_ev, dtype=np.int64),
            "ts": [now - timedelta(days=int(d)) for d in rng.integers(1, 60, n_ev)],
            "user_id": ev_users,
            "type": types,
            "product_id": (
                ev_users % N_CATEGORIES + N_CATEGORIES * rng.integers(0, n_products // N_CATEGORIES, n_ev)
            ).astype(np.int64),
        }
    )
    raw = {
        "products": products,
        "users": users,
        "streams": streams,
        "stream_products": stream_products,
        "communities": communities,
        "memberships": members,
        "events": events,
    }
    return {name: conform(name, t) if name in SCHEMAS else t for name, t in raw.items()}


class RangeVocab:
    """Ids 0..n-1 map to themselves (the IdVocab.index contract: -1 when unknown)."""

    def __init__(self, n: int) -> None:
        self.n = n

    @property
    def ids(self) -> np.ndarray:
        return np.arange(self.n, dtype=np.int64)

    def index(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        q = np.asarray(ids, np.int64)
        return np.where((q >= 0) & (q < self.n), q, -1)


class FactorModel:
    """ALS-shaped: user and item factors; unknown ids score NaN, like the real generator."""

    def __init__(self, n_users: int, n_products: int, dim: int = 16, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        base = rng.normal(0, 1, (N_CATEGORIES, dim)).astype(np.float32)
        self.item_factors = base[np.arange(n_products) % N_CATEGORIES] + 0.1 * rng.normal(
            size=(n_products, dim)
        ).astype(np.float32)
        self.user_factors = base[np.arange(n_users) % N_CATEGORIES] / dim
        self.n_users, self.n_products = n_users, n_products
        self.users, self.items = RangeVocab(n_users), RangeVocab(n_products)

    def score(
        self, user_ids: Sequence[int] | np.ndarray, product_ids: Sequence[int] | np.ndarray
    ) -> np.ndarray:
        u = np.asarray(user_ids, np.int64)
        p = np.asarray(product_ids, np.int64)
        ok = (u >= 0) & (u < self.n_users) & (p >= 0) & (p < self.n_products)
        out = np.full(len(u), np.nan, np.float32)
        out[ok] = np.einsum("ij,ij->i", self.user_factors[u[ok]], self.item_factors[p[ok]])
        return out

    def generate(
        self,
        user_id: int,
        n: int,
        candidates: Sequence[int] | None = None,
        exclude: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= user_id < self.n_users:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        return self.generate_for_vector(self.user_factors[user_id], n, candidates, exclude)

    def generate_for_vector(
        self,
        vector: np.ndarray,
        n: int,
        candidates: Sequence[int] | None = None,
        exclude: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(candidates if candidates is not None else np.arange(self.n_products), np.int64)
        if exclude:
            ids = ids[~np.isin(ids, np.asarray(exclude, np.int64))]
        s = self.score_vector(vector, ids)
        order = np.argsort(-s, kind="stable")[:n]
        return ids[order], s[order]

    def score_vector(self, vector: np.ndarray, product_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        p = np.asarray(product_ids, np.int64)
        ok = (p >= 0) & (p < self.n_products)
        out = np.full(len(p), np.nan, np.float32)
        out[ok] = self.item_factors[p[ok]] @ np.asarray(vector, np.float32)
        return out


class DemoPopularity:
    def __init__(self, n_products: int, seed: int = 0) -> None:
        self.counts = np.random.default_rng(seed + 1).pareto(1.5, n_products) + 1.0

    def top(
        self,
        n: int,
        segment: str | None = None,
        candidates: Sequence[int] | None = None,
        exclude: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(candidates if candidates is not None else np.arange(len(self.counts)), np.int64)
        if exclude:
            ids = ids[~np.isin(ids, np.asarray(exclude, np.int64))]
        ids = ids[(ids >= 0) & (ids < len(self.counts))]
        s = self.counts[ids] / self.counts.max()
        order = np.argsort(-s, kind="stable")[:n]
        return ids[order], s[order]


class LogisticRanker:
    feature_names = FEATURES

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        z = (
            2.0 * X["als_score"].fillna(0).to_numpy()
            + 3.0 * X["product_conversion"].fillna(0.05).to_numpy()
            - 2.5
        )
        return 1.0 / (1.0 + np.exp(-z))


class DemoFeatureSource:
    """Product and user features from the demo tables; ``fail`` simulates an online-store outage."""

    def __init__(self, tables: dict[str, pa.Table]) -> None:
        p = tables["products"].to_pandas().set_index("product_id")
        ev = tables["events"].to_pandas()
        buys = ev[ev["type"] == "purchase"].groupby("product_id").size()
        clicks = ev.groupby("product_id").size()
        self.product = pd.DataFrame(
            {"price": p["price"], "product_conversion": (buys / clicks).reindex(p.index).fillna(0.0)}
        )
        self.activity = ev.groupby("user_id").size()
        # Plain arrays and a dict: shared across request threads, where lazy pandas indexes race.
        self._price = self.product["price"].to_numpy(float)
        self._conv = self.product["product_conversion"].to_numpy(float)
        self._activity = {int(k): float(v) for k, v in self.activity.items()}
        self.fail = False

    def online(
        self,
        user_id: int | None,
        product_ids: Sequence[int],
        stream_id: int | None,
        service: str,
        at: datetime | None = None,
    ) -> pd.DataFrame:
        if self.fail:
            raise ConnectionError("demo online store is down")
        ids = np.asarray(product_ids, np.int64)
        ok = (ids >= 0) & (ids < len(self._price))
        safe = np.where(ok, ids, 0)
        activity = self._activity.get(user_id, np.nan) if user_id is not None else np.nan
        return pd.DataFrame(
            {
                "product_id": ids,
                "price": np.where(ok, self._price[safe], np.nan),
                "product_conversion": np.where(ok, self._conv[safe], np.nan),
                "user_activity": np.full(len(ids), float(activity)),
            }
        )

    def ping(self) -> bool:
        return not self.fail


class DemoModelSource:
    def __init__(
        self,
        n_users: int,
        n_products: int,
        epsilon: float,
        category_cap: int,
        seed: int = 0,
        policy: Policy | None = None,
    ) -> None:
        self.args = (n_users, n_products, seed)
        self.policy: Policy = policy or SimplePolicy(
            SimplePolicyConfig(epsilon=epsilon, category_cap=category_cap)
        )
        self.loads = 0

    def load(self, alias: str) -> Models:
        n_users, n_products, seed = self.args
        self.loads += 1
        return Models(
            version=f"demo-{alias}-{self.loads}",
            feature_service="ranker_v1",
            als=FactorModel(n_users, n_products, seed=seed + (alias != "champion")),
            ranker=LogisticRanker(),
            popularity=DemoPopularity(n_products, seed),
            policy=self.policy,
        )
