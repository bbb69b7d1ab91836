"""A build replaces what the online store held: online reads agree with the offline tables of the
last build, whatever an earlier build of the same state dir wrote."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.retrieval import FeastFeatureReader
from features.settings import FeatureSettings
from features.store import build_feature_store
from tests.features.conftest import AS_OF, own_settings
from tests.features.world import day

EARLY = day(5, 0)  # before user 1's first purchase (day 10), user 2's events and stream 100 (day 30)


def _online_vs_historical(settings: FeatureSettings, at: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    reader = FeastFeatureReader(settings)
    rows = [(u, p) for u in (1, 2, 3, 4) for p in (10, 11, 12)]
    online = pd.concat(
        [reader.online(u, [p], stream_id=100, at=at).reset_index(drop=True) for u, p in rows],
        ignore_index=True,
    )
    entity = pd.DataFrame(
        {
            "user_id": [u for u, _ in rows],
            "product_id": [p for _, p in rows],
            "stream_id": [100] * len(rows),
            "event_timestamp": [at] * len(rows),
        }
    )
    historical = reader.historical(entity)[list(online.columns)]
    return online, historical


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.integration)])
def test_a_build_as_of_an_earlier_date_leaves_no_later_row_online(
    backend: str, world_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A full build, then one --as-of day 5: keys with no row by day 5 (user 1's purchases of
    product 10, stream 100, user 2's category affinities) kept the first build's rows online, so
    serving read a purchase and a live stream from after the store's date."""
    settings = own_settings(backend, tmp_path, request, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_feature_store(world_dir, settings, as_of=AS_OF)
        build_feature_store(world_dir, settings, as_of=EARLY)
        online, historical = _online_vs_historical(settings, EARLY)
    assert online["live_viewers"].isna().all()  # stream 100 starts on day 30
    assert online["repurchase_due_ratio"].isna().all()  # no purchase of 10 or 12 by day 5
    pd.testing.assert_frame_equal(online, historical, check_dtype=False)
    assert np.isfinite(online["days_since_launch"]).any()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.integration)])
def test_a_rebuild_keeps_live_sessions_pushed_since_and_drops_expired_ones(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Serving's live pushes (stamped when written) are in no build yet: a rebuild keeps them. A
    session the first build loaded that ended more than a day before the second one's date is
    offline only (features/README.md), and no longer online."""
    import pyarrow as pa

    from features.data_model import read_table, write_table
    from features.live import ingest_live_events
    from tests.features.world import build_world

    data = build_world(tmp_path / "data")
    settings = own_settings(backend, tmp_path / "state", request, 7)
    cols = ["live_clicks", "live_carts", "live_watch_seconds"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_feature_store(data, settings)  # as of the last event: day 30, 11:30
        reader = FeastFeatureReader(settings)
        # asked at the build's time: by now the session has expired (tests/features/test_live_ttl.py)
        at = day(30, 11.5)
        assert reader.online(2, [11], stream_id=100, at=at).loc[11, cols].tolist() == [2.0, 1.0, 2400.0]
        ingest_live_events(reader, [{"user_id": 3, "stream_id": 100, "type": "product_click"}])
        events = read_table(data, "events")
        later = {c: [None] for c in events.column_names} | {
            "event_id": [99],
            "ts": [day(33)],
            "user_id": [3],
            "type": ["product_click"],
            "product_id": [12],
        }
        write_table(data, "events", pa.concat_tables([events, pa.table(later, schema=events.schema)]))
        build_feature_store(data, settings)  # as of day 33: day 30's sessions have ended
        reader = FeastFeatureReader(settings)
        pushed = reader.online(3, [12], stream_id=100).loc[12, cols].tolist()
        expired = reader.online(2, [11], stream_id=100, at=at).loc[11, cols]  # gone, not only expired
    assert pushed == [1.0, 0.0, 0.0]
    assert expired.isna().all()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.integration)])
def test_a_user_idle_past_every_window_reads_the_builds_values_online(
    backend: str, world_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Users idle for over 90 days (the longest window) neither keep old values online nor lose
    them: each build writes every user's row as of its date, windows rolled to zero and recency
    counted to that date, after a build as of the data's end had written their busy values."""
    settings = own_settings(backend, tmp_path, request, 8)
    later = day(200, 0)  # user 4 last active on day 1, users 1-3 on day 30
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_feature_store(world_dir, settings, as_of=AS_OF)
        build_feature_store(world_dir, settings, as_of=later)
        online, historical = _online_vs_historical(settings, later)
        reader = FeastFeatureReader(settings)
        u4 = reader.online(4, [11], at=later).iloc[0]
        segments = {u: reader.segment(u) for u in (1, 2, 3, 4)}
    # Live sessions are online for 24 h only (features/README.md); offline, day 30's stays readable.
    live = ["live_clicks", "live_carts", "live_watch_seconds"]
    assert online[live].isna().all().all()
    pd.testing.assert_frame_equal(online.drop(columns=live), historical.drop(columns=live), check_dtype=False)
    windows = ["frequency_90d", "monetary_90d", "watch_minutes_30d", "product_clicks_7d"]
    assert (online[windows] == 0).all().all()
    affinity = online["category_affinity_30d"]  # NaN: a category the user never touched
    assert affinity.notna().any() and (affinity.dropna() == 0).all()
    assert (u4["recency_days"], u4["days_since_last_purchase"]) == (198.5, 198.5)
    assert segments == {1: "sleeping", 2: "sleeping", 3: "sleeping", 4: "sleeping"}
