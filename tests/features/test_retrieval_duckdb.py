"""The DuckDB point-in-time engine (evaluation's) returns what Feast's file offline store returns,
row for row, and sees no event at or after a row's timestamp."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from features.retrieval import FeastFeatureReader
from features.settings import FeatureSettings
from tests.features.test_point_in_time import LABEL, planted  # noqa: F401 - the planted-purchase store
from tests.features.world import day


def _both(settings: FeatureSettings, entity: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        feast = FeastFeatureReader(settings).historical(entity)
    duck = FeastFeatureReader(settings, offline_engine="duckdb").historical(entity)
    return feast, duck


def test_engines_agree_on_every_view_at_any_time(planted: FeatureSettings) -> None:  # noqa: F811
    rng = np.random.default_rng(0)
    n = 400
    # users 0..5 and products 9..13 include unknown ids; times from before the first snapshot to after
    # the last, some on the exact instant of an event (day d, noon)
    ts = [
        day(float(d), float(h))
        for d, h in zip(rng.integers(-1, 40, n), rng.choice([0, 12, 13.5], n), strict=True)
    ]
    entity = pd.DataFrame(
        {
            "user_id": rng.integers(0, 6, n),
            "product_id": rng.integers(9, 14, n),
            "stream_id": pd.array(np.where(rng.random(n) < 0.5, 100, None), dtype="Int64"),
            "event_timestamp": ts,
        }
    )
    feast, duck = _both(planted, entity)
    pd.testing.assert_frame_equal(feast, duck, check_dtype=False)
    filled = duck.drop(columns=["user_id", "product_id", "stream_id", "event_timestamp"]).notna().any()
    assert filled.all(), f"features never filled here, so not compared: {list(filled[~filled].index)}"


def test_duckdb_engine_sees_no_later_event(planted: FeatureSettings) -> None:  # noqa: F811
    entity = pd.DataFrame(
        {
            "user_id": [1, 1, 1],
            "product_id": [12, 12, 10],
            "stream_id": [None, None, 100],
            "event_timestamp": [LABEL, day(27, 0), day(20, 12)],
        }
    )
    _, out = _both(planted, entity)
    at_label, later, at_purchase = out.iloc[0], out.iloc[1], out.iloc[2]
    assert at_label["monetary_90d"] == 30.0  # the planted purchase an hour later is not seen
    assert later["monetary_90d"] == 1030.0  # after it, it is
    assert at_purchase["monetary_90d"] == 10.0  # a purchase at the row's very instant is not seen


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="offline_engine"):
        FeastFeatureReader(offline_engine="spark")
