"""A live session expires: its (user, stream) totals are read only within the live_session view's
ttl (LIVE_SESSION_ONLINE_WINDOW, 24 h) after they were last written, point-in-time and online.

User 2's session on stream 100 (tests/features/world.py): a 40-minute view from day 30 10:15, two
clicks and a cart, the last event at 10:54. Before, the view had no ttl: a training row a day
later, or a week later, read that session as if it were still live.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.live import ingest_live_events
from features.online_fast import FastOnlineReader
from features.retrieval import FeastFeatureReader
from features.settings import FeatureSettings
from features.views import LIVE_SESSION_ONLINE_WINDOW, VIEW_SPECS
from tests.features.conftest import _build
from tests.features.world import day

LIVE = ["live_clicks", "live_carts", "live_watch_seconds"]
IN_SESSION = [2.0, 1.0, 2400.0]
LAST_EVENT = day(30, 10.9)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, world_dir: Path) -> Iterator[FeatureSettings]:
    """A store of its own (as of day 31, 00:00): the shared ones get live events pushed."""
    yield _build(tmp_path_factory.mktemp("state-live-ttl"), world_dir)


def test_the_views_ttl_is_the_window_serving_and_the_build_keep_sessions_for() -> None:
    assert VIEW_SPECS["live_session"][3] == LIVE_SESSION_ONLINE_WINDOW == timedelta(hours=24)
    assert all(not ttl for name, (_, _, _, ttl) in VIEW_SPECS.items() if name != "live_session")


@pytest.mark.parametrize("engine", ["feast", "duckdb"])
def test_a_training_row_a_day_after_the_session_reads_no_live_features(
    store: FeatureSettings, engine: str
) -> None:
    times = [
        day(30, 11),
        LAST_EVENT + LIVE_SESSION_ONLINE_WINDOW - pd.Timedelta(minutes=1),
        day(31, 11),
        day(37),
    ]
    entity = pd.DataFrame(
        {"user_id": 2, "product_id": [11, 11, 11, 10], "stream_id": 100, "event_timestamp": times}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = FeastFeatureReader(store, offline_engine=engine).historical(entity)
    assert len(out) == 4 and list(out["event_timestamp"]) == times  # no row lost, input order
    assert out.loc[0, LIVE].tolist() == IN_SESSION  # during the session
    assert out.loc[1, LIVE].tolist() == IN_SESSION  # a minute before it expires
    assert out.loc[[2, 3], LIVE].isna().all().all()  # a day after its last event, and a week after
    assert out.loc[2, "monetary_90d"] == out.loc[1, "monetary_90d"]  # the other views as before


def _live(reader: FeastFeatureReader, at: datetime | None) -> list[float]:
    return reader.online(2, [11], stream_id=100, at=at).loc[11, LIVE].astype(float).tolist()


def test_serving_reads_an_expired_session_as_absent(store: FeatureSettings) -> None:
    for reader in (FeastFeatureReader(store), FastOnlineReader(store)):
        assert _live(reader, day(30, 11)) == IN_SESSION  # the build loaded the session (ended < 24 h before)
        assert np.isnan(_live(reader, day(31, 11))).all()  # a day after its last event
        assert np.isnan(_live(reader, None)).all()  # now, months later
    values, names = FastOnlineReader(store).online_matrix(2, [11], stream_id=100, at=day(31, 11))
    assert np.isnan(values[0, [list(names).index(f) for f in LIVE]]).all()


def test_an_event_after_the_session_expired_starts_a_new_one(store: FeatureSettings) -> None:
    """The totals are not carried on from a session that is over (2 clicks on day 30)."""
    fast = FastOnlineReader(store)
    ingest_live_events(fast, [{"user_id": 2, "stream_id": 100, "type": "product_click"}])
    assert _live(fast, None) == [1.0, 0.0, 0.0]
    ingest_live_events(fast, [{"user_id": 2, "stream_id": 100, "type": "add_to_cart"}])
    assert _live(FeastFeatureReader(store), None) == [1.0, 1.0, 0.0]  # within it: added up
