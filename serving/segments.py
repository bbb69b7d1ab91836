"""User segments as serving shows them: the built-in activity rule (used when the feature store
gives no segments), each segment's members, and the segments' sizes less deleted users."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

NO_HISTORY_SEGMENT = "new"  # an unknown user's, and what a deleted user is shown as

SEGMENT_RULES = {
    "new": "no activity yet",
    "browser": "active, never bought",
    "buyer": "one or two purchases",
    "loyal": "three purchases or more",
}


def activity_segments(user_ids: np.ndarray, events: pd.DataFrame, purchases: pd.DataFrame) -> dict[int, str]:
    """Each user's segment by the built-in activity rule (``SEGMENT_RULES``)."""
    n_buys = purchases.groupby("user_id").size()
    active = set(events["user_id"].unique().tolist())
    segments = {}
    for uid in user_ids.tolist():
        nb = int(n_buys.get(uid, 0))
        segments[uid] = "loyal" if nb >= 3 else "buyer" if nb >= 1 else "browser" if uid in active else "new"
    return segments


def segment_members(segments: dict[int, str]) -> dict[str, np.ndarray]:
    """The user ids in each segment."""
    members: dict[str, np.ndarray] = {}
    seg_series = pd.Series(segments, dtype="object")
    for seg, g in seg_series.groupby(seg_series):
        members[str(seg)] = g.index.to_numpy(np.int64)
    return members


def segment_sizes(
    members: dict[str, np.ndarray],
    descriptions: dict[str, str],
    deleted: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """Each segment's size, less its users ``deleted`` (which of many) says are (it counted them)."""
    n = {s: len(m) - int(np.sum(deleted(m) if deleted else 0)) for s, m in members.items()}
    return [
        {
            "segment": s,
            "users": n.get(s, 0),
            "description": descriptions.get(s, s),
        }
        for s in sorted(set(members) | set(descriptions))
    ]
