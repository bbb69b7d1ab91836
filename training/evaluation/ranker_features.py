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

from typing import Any

import numpy as np
import pandas as pd

from training.evaluation.policies import FeatureFn


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


CONTEXT_FEATURES = ("als_score", "als_rank", "on_air", "slot")  # training.dataset adds these to every row


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
