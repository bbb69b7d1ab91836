"""Training frames are point-in-time: no feature for a label sees an event at or after its timestamp."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from features.data_model import read_table, write_table
from features.retrieval import FeastFeatureReader, feature_names
from features.settings import FeatureSettings
from features.store import build_feature_store
from tests.features.world import build_world, day

LABEL = day(25, 12)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> FeatureSettings:
    """The tiny world plus a planted 1000.00 purchase of product 12 by user 1, one hour after LABEL."""
    root = tmp_path_factory.mktemp("pit")
    data = build_world(root / "data")
    events = read_table(data, "events")
    plant = {
        "event_id": [999],
        "ts": [day(25, 13)],
        "user_id": [1],
        "type": ["purchase"],
        "product_id": [12],
        "stream_id": [None],
        "community_id": [None],
        "watch_seconds": [None],
        "amount": [1000.0],
    }
    write_table(data, "events", pa.concat_tables([events, pa.table(plant, schema=events.schema)]))
    settings = FeatureSettings(state_dir=root / "state")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_feature_store(data, settings, as_of=day(31, 0))
    return settings


def test_no_feature_for_a_label_sees_a_later_event(planted: FeatureSettings) -> None:
    reader = FeastFeatureReader(planted)
    entity = pd.DataFrame(
        {
            "user_id": [1, 1, 1],
            "product_id": [12, 12, 10],
            "stream_id": [None, None, 100],
            "event_timestamp": [LABEL, day(27, 0), day(20, 12)],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = reader.historical(entity)
    assert list(out.columns) == [
        "user_id",
        "product_id",
        "stream_id",
        "event_timestamp",
        *feature_names("ranker_v1"),
    ]
    assert len(out) == 3 and list(out["product_id"]) == [12, 12, 10]  # input order kept, no row lost
    at_label, later, at_purchase = out.iloc[0], out.iloc[1], out.iloc[2]
    # Before the planted purchase: only the purchases of days 10 and 20 count.
    assert at_label["monetary_90d"] == 30.0 and at_label["frequency_90d"] == 2
    assert pd.isna(at_label["repurchase_due_ratio"])  # never bought product 12 before the label
    # The same query after the planted event does see it (so the check above can fail).
    assert later["monetary_90d"] == 1030.0
    assert later["repurchase_due_ratio"] == pytest.approx((27.0 - 25.5417) / 10.0, abs=1e-3)
    # A label at the very instant of a purchase (day 20 noon) does not see that purchase.
    assert at_purchase["monetary_90d"] == 10.0
    assert at_purchase["repurchase_due_ratio"] == pytest.approx((20.5 - 10.5) / 30.0)
    assert pd.isna(at_purchase["live_viewers"])  # the stream had not started


def test_no_product_feature_for_a_label_sees_a_later_event(planted: FeatureSettings) -> None:
    """The product view has its own daily snapshots: a purchase later on the label's day (the planted
    one, and user 1's day-20 purchase at the label's very instant) must not count towards it."""
    reader = FeastFeatureReader(planted)
    entity = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 1],
            "product_id": [12, 12, 10, 10],
            "stream_id": [None, None, None, None],
            "event_timestamp": [LABEL, day(27, 0), day(20, 12), day(22, 0)],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = reader.historical(entity)
    assert out["product_id"].tolist() == [12, 12, 10, 10]
    # product 12 was never bought before the plant; product 10's day-10 purchase is out of the 7 days
    assert out["popularity_7d"].tolist() == [0.0, 1.0, 0.0, 1.0]


def test_live_session_and_category_affinity_are_point_in_time(planted: FeatureSettings) -> None:
    """User 2 watches stream 100 from 10:15 on day 30, clicks product 11 (food) at 10:45 and 10:48:
    a label at the first click's instant sees no click yet, and the day's food interest reaches the
    category affinity only in the next day's snapshot."""
    reader = FeastFeatureReader(planted)
    entity = pd.DataFrame(
        {
            "user_id": [2, 2, 2, 2],
            "product_id": [11, 11, 11, 11],
            "stream_id": [100, 100, 100, 100],
            "event_timestamp": [day(30, 10.5), day(30, 10.75), day(30, 10.8), day(31, 0)],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = reader.historical(entity)
    assert out["live_clicks"].tolist() == [0.0, 0.0, 1.0, 2.0]
    assert out["live_watch_seconds"].tolist() == [2400.0] * 4  # the 10:15 view is in the past
    aff = out["category_affinity_30d"]
    assert aff.iloc[:3].isna().all()
    assert aff.iat[3] == pytest.approx(5 / 5.5)


def test_historical_and_online_agree_at_the_last_snapshot(planted: FeatureSettings) -> None:
    # Two rows with the same user and timestamp: Feast's file store collapses such rows unless each
    # view is joined on its own keys (features.retrieval._join_view); this caught that.
    reader = FeastFeatureReader(planted)
    entity = pd.DataFrame(
        {
            "user_id": [2, 2],
            "product_id": [11, 10],
            "stream_id": [100, 100],
            "event_timestamp": [day(31, 0), day(31, 0)],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hist = reader.historical(entity).set_index("product_id")[feature_names("ranker_v1")]
    # asked at the label's time: request-time features and the live session's expiry alike
    online = reader.online(2, [11, 10], stream_id=100, at=day(31, 0))
    assert online["live_clicks"].notna().all()  # the session of day 30 is compared, not expired
    pd.testing.assert_frame_equal(hist, online, check_names=False, check_dtype=False)


def test_entity_df_without_timestamps_is_refused(planted: FeatureSettings) -> None:
    with pytest.raises(ValueError, match="event_timestamp"):
        FeastFeatureReader(planted).historical(pd.DataFrame({"user_id": [1], "product_id": [1]}))


def test_reader_on_an_unbuilt_state_dir_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="slotcast features build"):
        FeastFeatureReader(FeatureSettings(state_dir=tmp_path)).online(1, [1])
