"""Features for scoring the ranker offline: the FeatureService's point-in-time features plus the
context features training adds (als_score, als_rank, on_air, slot; see training.dataset).

All pairs are looked up as of one time, the start of the held-out window: features never see the
window being evaluated (no leakage), at the price of being up to a window old for late requests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from training.evaluation.policies import FeatureFn


def historical_feature_fn(reader: Any, service: str, as_of: pd.Timestamp, chunk: int = 200_000) -> FeatureFn:
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
