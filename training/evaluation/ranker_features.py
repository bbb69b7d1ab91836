"""Features for scoring the ranker offline: the FeatureService's point-in-time features plus the
context features training adds (als_score, als_rank, on_air, slot; see training.dataset).

All pairs are looked up as of one time, the start of the held-out window: features never see the
window being evaluated (no leakage), at the price of being up to a window old for late requests.

``on_air`` is True for every pair by default, which is right off-policy (a logged request's
candidates are the products on air in its stream). Replay ranks the whole catalogue per user,
where a constant on_air hides the ranker's strongest feature (it learned "on air in the stream
being watched" from training queries); ``with_watched_on_air`` gives replay that context: a product
is on air for a user when it was on air in a stream while the user watched it in the held-out window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from training.dataset import CONTEXT_FEATURES as TRAINING_CONTEXT
from training.evaluation.logs import LoggedRequests
from training.evaluation.metrics import PAD
from training.evaluation.policies import MAX_CELLS, MIN_CHUNK, FeatureFn, Policy, RankerPolicy


def historical_feature_fn(
    reader: Any, service: str, as_of: pd.Timestamp, chunk: int = 1_000_000
) -> FeatureFn:
    """A FeatureFn over ``reader.historical`` (features.retrieval.FeatureReader or a fake)."""

    def fn(
        users: np.ndarray, products: np.ndarray, als_score: np.ndarray, als_rank: np.ndarray
    ) -> pd.DataFrame:
        parts = []
        for lo in range(0, len(users), chunk):
            sl = slice(lo, lo + chunk)
            entity = pd.DataFrame(
                {
                    "user_id": users[sl].astype(np.int64),
                    "product_id": products[sl].astype(np.int64),
                    "stream_id": pd.array([pd.NA] * len(users[sl]), dtype="Int64"),
                    "event_timestamp": as_of,
                }
            )
            parts.append(reader.historical(entity, service=service).reset_index(drop=True))
        out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        out["als_score"] = als_score
        out["als_rank"] = als_rank
        # Evaluated candidates are treated as on air and unpinned, as serving sees on-air products.
        out["on_air"] = True
        out["slot"] = np.nan
        return out

    return fn


class PointInTimeFeatures:
    """``historical_feature_fn`` with a cache: each (user, product) pair is looked up once as of ``as_of``.

    A Feast point-in-time call on the file offline store reads every source table whatever the number
    of rows asked, so its cost is per call. Evaluation therefore ``prefetch``es every pair all its
    policies, replay and off-policy alike, will need in one call; later calls are array lookups, and
    a pair not prefetched costs one call for all the missing pairs of that call. The cache holds one
    as-of time (the object's), so the key is (user, product, as_of) and point-in-time correctness is
    the reader's: the rows returned are exactly those a direct lookup as of ``as_of`` returns.
    """

    def __init__(self, reader: Any, service: str, as_of: pd.Timestamp, chunk: int = 1_000_000) -> None:
        self.reader, self.service, self.as_of, self.chunk = reader, service, as_of, chunk
        self.lookups = 0  # reader calls made (each one reads the source tables)
        self.rows_looked_up = 0
        self._keys = np.zeros(0, dtype=np.int64)  # sorted pair keys
        self._values: pd.DataFrame | None = None  # feature rows in the order of _keys

    @staticmethod
    def _key(users: np.ndarray, products: np.ndarray) -> np.ndarray:
        # one int64 holds a pair while ids are in [0, 2**31) (int32 vocabularies); say so otherwise
        # rather than mix two pairs' keys
        u, p = np.asarray(users, np.int64), np.asarray(products, np.int64)
        if u.size and (min(u.min(), p.min()) < 0 or max(u.max(), p.max()) >= 2**31):
            raise ValueError("PointInTimeFeatures needs user and product ids in [0, 2**31)")
        return (u << 32) | p

    def _positions(self, keys: np.ndarray) -> np.ndarray:
        """Index of each key in the cache, -1 where absent."""
        if self._keys.size == 0:
            return np.full(keys.shape, -1, dtype=np.int64)
        pos = np.clip(np.searchsorted(self._keys, keys), 0, self._keys.size - 1)
        return np.where(self._keys[pos] == keys, pos, -1)

    def prefetch(self, users: np.ndarray, products: np.ndarray) -> int:
        """Look up every pair not cached yet, in one reader call; returns how many pairs were new."""
        keys = np.unique(self._key(users, products))
        new = keys[self._positions(keys) < 0]
        if new.size == 0:
            return 0
        fetched = historical_feature_fn(self.reader, self.service, self.as_of, self.chunk)(
            new >> 32, new & 0xFFFFFFFF, np.zeros(new.size), np.zeros(new.size)
        )
        feats = fetched.drop(columns=[c for c in (*ENTITY, *CONTEXT_FEATURES) if c in fetched.columns])
        self.lookups += 1
        self.rows_looked_up += int(new.size)
        keys_all = np.concatenate([self._keys, new])
        values = feats if self._values is None else pd.concat([self._values, feats], ignore_index=True)
        order = np.argsort(keys_all, kind="stable")
        self._keys = keys_all[order]
        self._values = values.iloc[order].reset_index(drop=True)
        return int(new.size)

    def __call__(
        self, users: np.ndarray, products: np.ndarray, als_score: np.ndarray, als_rank: np.ndarray
    ) -> pd.DataFrame:
        keys = self._key(users, products)
        pos = self._positions(keys)
        if (pos < 0).any():
            self.prefetch(np.asarray(users)[pos < 0], np.asarray(products)[pos < 0])
            pos = self._positions(keys)
        assert self._values is not None
        out = self._values.iloc[pos].reset_index(drop=True)
        out.insert(0, "user_id", np.asarray(users, np.int64))
        out.insert(1, "product_id", np.asarray(products, np.int64))
        out["als_score"] = als_score
        out["als_rank"] = als_rank
        out["on_air"] = True  # as historical_feature_fn: evaluated candidates are on air, unpinned
        out["slot"] = np.nan
        return out


ENTITY = ("user_id", "product_id", "stream_id", "event_timestamp")
CONTEXT_FEATURES = tuple(TRAINING_CONTEXT)  # training.dataset adds these to every row


def context_feature_fn() -> FeatureFn:
    """For a ranker trained on context features only (``slotcast train --no-features``): no store needed."""

    def fn(
        users: np.ndarray, products: np.ndarray, als_score: np.ndarray, als_rank: np.ndarray
    ) -> pd.DataFrame:
        return pd.DataFrame({"als_score": als_score, "als_rank": als_rank, "on_air": True, "slot": np.nan},
                            index=pd.RangeIndex(len(users)))  # fmt: skip

    return fn


def watched_on_air(events: pd.DataFrame, stream_products: pd.DataFrame) -> pd.DataFrame:
    """(user_id, product_id) pairs: on air in a stream while the user watched it, per ``stream_view`` in ``events``."""
    views = events.loc[(events["type"] == "stream_view") & events["stream_id"].notna()]
    if views.empty or stream_products.empty:
        return pd.DataFrame(
            {"user_id": pd.Series([], dtype=np.int64), "product_id": pd.Series([], dtype=np.int64)}
        )
    v = pd.DataFrame({
        "user_id": views["user_id"].to_numpy(np.int64),
        "stream_id": views["stream_id"].to_numpy(np.int64),
        "start": views["ts"].to_numpy(),
        "end": (views["ts"] + pd.to_timedelta(views["watch_seconds"].fillna(0.0), unit="s")).to_numpy(),
    })  # fmt: skip
    sp = stream_products[["stream_id", "product_id", "on_air_from", "on_air_to"]].astype(
        {"stream_id": np.int64}
    )
    m = v.merge(sp, on="stream_id")
    to = m["on_air_to"].fillna(pd.Timestamp.max.tz_localize("UTC"))
    m = m.loc[(m["on_air_from"] <= m["end"]) & (to > m["start"])]
    return m[["user_id", "product_id"]].astype(np.int64).drop_duplicates().reset_index(drop=True)


def with_watched_on_air(features: FeatureFn, pairs: pd.DataFrame) -> FeatureFn:
    """``features`` with on_air = (user, product) in ``pairs`` instead of True."""
    known = pd.MultiIndex.from_frame(pairs[["user_id", "product_id"]].astype(np.int64))

    def fn(
        users: np.ndarray, products: np.ndarray, als_score: np.ndarray, als_rank: np.ndarray
    ) -> pd.DataFrame:
        out = features(users, products, als_score, als_rank)
        asked = pd.MultiIndex.from_arrays([np.asarray(users, np.int64), np.asarray(products, np.int64)])
        out["on_air"] = asked.isin(known)
        return out

    return fn


def prefetch_features(
    policies: Iterable[Policy],
    users: np.ndarray,
    catalog: np.ndarray,
    logs: Iterable[LoggedRequests],
    say: Callable[[str], None] = lambda _m: None,
) -> dict[str, int]:
    """One point-in-time lookup per feature cache for every pair the evaluation will score.

    Replay: each user's ALS shortlist of the catalogue (the only pairs a ranker policy looks up).
    Off-policy: every (user, candidate) and (user, logged item) pair of each log, which holds both
    the target policies' shortlists and the pairs DR's ranker reward model scores. Caches are shared
    by identity, so policies on one feature service and as-of time share one lookup.
    """
    logs = list(logs)
    caches: dict[int, Any] = {}
    pairs: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for p in policies:
        cache = getattr(p, "features", None)
        if not isinstance(p, RankerPolicy) or not hasattr(cache, "prefetch"):
            continue
        caches[id(cache)] = cache
        got = pairs.setdefault(id(cache), [])
        chunk = max(MIN_CHUNK, MAX_CELLS // max(catalog.size, 1))
        for lo in range(0, users.size, chunk):
            u = users[lo : lo + chunk]
            _, rows, cols, _ = p.shortlist(u, np.broadcast_to(catalog, (u.size, catalog.size)))
            got.append((u[rows], catalog[cols]))
    for key in caches:
        for lr in logs:
            req_users = lr.requests["user_id"].to_numpy(np.int64)
            r_idx, c_idx = np.nonzero(lr.candidates != PAD)
            pairs[key].append((req_users[r_idx], lr.candidates[r_idx, c_idx].astype(np.int64)))
            pairs[key].append((req_users[lr.log.request], lr.log.item.astype(np.int64)))
    looked_up = {}
    for key, cache in caches.items():
        u = np.concatenate([a for a, _ in pairs[key]])
        prod = np.concatenate([b for _, b in pairs[key]])
        say(f"features: one point-in-time lookup for {u.size:,} (user, product) rows")
        looked_up[f"{cache.service} as of {cache.as_of}"] = cache.prefetch(u, prod)
    return looked_up
