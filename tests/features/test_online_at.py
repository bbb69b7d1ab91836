"""Online lookups ``at`` a past moment (serving's replays) read no purchase at or after it.

User 1 bought product 10 (repurchase cycle 30 days) on day 10, day 20 and day 30 at 11:30, all
three in the store built as of day 31. Before, ``repurchase_due_ratio`` at day 25 read the day-30
purchase, five days in the future: a negative ratio no point-in-time training row can hold.
"""

from __future__ import annotations

import numpy as np
import pytest

from features.online_fast import FastOnlineReader
from features.retrieval import FeastFeatureReader
from features.settings import FeatureSettings
from tests.features.world import day


def _due(reader: FeastFeatureReader, at: object) -> float:
    return float(reader.online(1, [10], stream_id=100, at=at).loc[10, "repurchase_due_ratio"])  # type: ignore[arg-type]


def test_a_replay_reads_the_last_purchase_before_at(built_store: FeatureSettings) -> None:
    fast = FastOnlineReader(built_store)
    # day 25: the day-20 purchase is the last one before it (the day-30 one is still to come)
    assert _due(fast, day(25)) == pytest.approx(5.0 / 30.0)
    # at the very instant of the day-20 purchase: not before it, the day-10 one is the last
    assert _due(fast, day(20)) == pytest.approx(10.0 / 30.0)
    assert np.isnan(_due(fast, day(5)))  # before any purchase: never bought
    # after the last purchase every purchase counts, as before
    assert _due(fast, day(40)) == pytest.approx((day(40) - day(30, 11.5)).total_seconds() / 86400.0 / 30.0)
    values, names = fast.online_matrix(1, [10], stream_id=100, at=day(25))
    assert values[0, list(names).index("repurchase_due_ratio")] == pytest.approx(5.0 / 30.0)


def test_feasts_path_does_not_read_a_purchase_after_at(built_store: FeatureSettings) -> None:
    """Feast's online store holds each pair's latest purchase only: at or after ``at`` it is not
    known then, and the one before is not in the store, so the ratio is unknown (never negative)."""
    feast = FeastFeatureReader(built_store)
    assert np.isnan(_due(feast, day(25)))
    assert _due(feast, day(40)) == pytest.approx(_due(FastOnlineReader(built_store), day(40)))
