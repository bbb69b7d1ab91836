"""Live events accepted while the online store was down reach the live totals once it is back.

``POST /events`` logged them and answered ``online: false``; their live-session totals were never
pushed afterwards, so the live features missed them until the next features build. Real stores: a
redis-server this test kills and restarts (append-only file: it comes back with its data, as a
production Redis does), and Feast's SQLite file held by another connection's exclusive lock."""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.runtime import SlotcastApp
from serving.schemas import Event, EventsRequest
from serving.settings import ServingSettings
from tests.conftest import RedisProc, started_redis

pytestmark = pytest.mark.integration
COLS = ["live_clicks", "live_carts", "live_watch_seconds"]
STREAM = 300  # no session of the feature world's streams: every total starts from nothing


def _build(state: Path, **store: str) -> None:
    from features.settings import FeatureSettings
    from features.store import build_feature_store
    from tests.features.world import build_world

    data = state / "data" if (state / "data").exists() else build_world(state / "data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_feature_store(data, FeatureSettings(state_dir=state, **store))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProc]:
    with started_redis(tmp_path_factory.mktemp("redis-live")) as r:  # its own: the tests stop it
        yield r


@pytest.fixture()
def redis_state(redis: RedisProc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if redis.proc is None:
        redis.start()
    monkeypatch.setenv("SLOTCAST_ONLINE_STORE", "redis")
    monkeypatch.setenv("SLOTCAST_REDIS_URL", redis.url)
    _build(tmp_path, online_store="redis", redis_url=redis.url)
    return tmp_path


def _start(state: Path) -> SlotcastApp:
    """The service's start (``from_settings``): demo models and catalogue, the real online store."""
    settings = ServingSettings(
        state_dir=state, model_source="demo", feature_source="feast", demo_users=100, demo_products=30,
        live_retry_interval_s=0,
    )  # fmt: skip
    return SlotcastApp.from_settings(settings)


def _send(
    app: SlotcastApp, user: int, clicks: int = 0, carts: int = 0, watch: float = 0.0, **kw: Any
) -> bool:
    events = [Event(user_id=user, type="product_click", product_id=1, stream_id=STREAM, **kw)] * clicks
    events += [Event(user_id=user, type="add_to_cart", product_id=1, stream_id=STREAM, **kw)] * carts
    if watch:
        events.append(Event(user_id=user, type="stream_view", stream_id=STREAM, watch_seconds=watch, **kw))
    out = app.events(EventsRequest(events=events))
    assert out.accepted == len(events)
    return out.online


def _totals(app: SlotcastApp, user: int) -> list[float]:
    row = app.features.online(user, [12], stream_id=STREAM, service="ranker_v1").loc[12, COLS]
    return row.astype(float).tolist()


def _waiting(app: SlotcastApp) -> list[dict[str, Any]]:
    from serving.live_pending import read_waiting

    assert app.live is not None
    return read_waiting(app.live.path)[0]  # what the file holds: what a restart would push


def test_events_accepted_while_redis_was_down_are_counted_once_it_is_back(
    redis: RedisProc, redis_state: Path
) -> None:
    app = _start(redis_state)
    assert _send(app, 21, clicks=2, carts=1, watch=30.0) is True
    redis.kill()
    assert _send(app, 21, clicks=3) is False
    assert _send(app, 22, clicks=1, watch=12.5) is False
    assert _send(app, 23, clicks=4) is False
    assert app.events(EventsRequest(events=[Event(user_id=24, type="like")])).online is True  # not live
    app.delete_user(23)  # while the store is down: the ledger has them, their rows wait for a build
    assert _send(app, 21, carts=1) is False  # another failed push drops the deleted user's events
    waiting = _waiting(app)
    assert {e["user_id"] for e in waiting} == {21, 22} and len(waiting) == 3 + 2 + 1
    assert not app.ready()[0]

    redis.start()
    assert app.ready() == (True, "ready")  # the probe finds the store answering: what waits goes
    assert app.live is not None and app.live._retrying is not None
    app.live._retrying.join(30)  # in the background: the probe answers at once
    assert _waiting(app) == [] and len(app.live) == 0
    # Every event counted once, as if the store had never been down.
    assert _totals(app, 21) == [5.0, 2.0, 30.0]
    assert _totals(app, 22) == [1.0, 0.0, 12.5]
    assert np.isnan(_totals(app, 23)).all()  # deleted meanwhile: never pushed
    assert _send(app, 21, clicks=1) is True
    assert _totals(app, 21) == [6.0, 2.0, 30.0]
    app.close()


def test_what_waits_when_the_service_stops_is_pushed_at_its_next_start(
    redis: RedisProc, redis_state: Path
) -> None:
    app = _start(redis_state)
    redis.kill()
    assert _send(app, 31, clicks=2, watch=5.0) is False
    app.close()  # the service stops with the store still down
    redis.start()
    again = _start(redis_state)
    assert _waiting(again) == []
    assert _totals(again, 31) == [2.0, 0.0, 5.0]
    again.close()


def test_a_retry_whose_write_landed_although_it_failed_counts_once(
    redis: RedisProc, redis_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry itself half-fails: Redis stores every session, then the connection drops before
    the reply (the client sees an error). The events stay waiting; the next push finds them
    counted already (features/live.py) and does not count them again."""
    app = _start(redis_state)
    redis.kill()
    assert _send(app, 41, clicks=2) is False and _send(app, 42, carts=1) is False
    redis.start()
    online = app.features.reader.store._get_provider().online_store  # type: ignore[attr-defined]
    real = online.online_write_batch

    def reply_lost(*args: Any) -> None:
        real(*args)
        raise ConnectionError("Connection closed by server.")

    monkeypatch.setattr(online, "online_write_batch", reply_lost)
    assert _send(app, 41, clicks=1) is False  # pending and new: written, then "failed"
    assert len(_waiting(app)) == 4
    monkeypatch.setattr(online, "online_write_batch", real)
    assert _send(app, 42, clicks=1) is True
    assert _totals(app, 41) == [3.0, 0.0, 0.0]
    assert _totals(app, 42) == [1.0, 1.0, 0.0]
    app.close()


def test_what_a_worker_that_never_comes_back_left_waiting_is_pushed_by_another(
    redis: RedisProc, redis_state: Path
) -> None:
    """Worker 1 stops with events waiting (its replica retired, the workers scaled down) and never
    starts again: worker 2 pushes them once the store answers, counted once, and leaves a running
    worker's file alone. Worker 1 starting later finds nothing waiting and counts nothing twice."""
    settings = ServingSettings(
        state_dir=redis_state, model_source="demo", feature_source="feast", demo_users=100, demo_products=30,
        live_retry_interval_s=0,
    )  # fmt: skip
    one = SlotcastApp.from_settings(settings, worker=1)
    redis.kill()
    assert _send(one, 71, clicks=2, watch=4.0) is False and _send(one, 72, carts=1) is False
    redis.start()
    two = SlotcastApp.from_settings(settings, worker=2)  # its start sweeps: worker 1 still runs
    assert two.live is not None and one.live is not None
    assert len(_waiting(one)) == 4 and two.live.sweep() == 0
    one.close()  # stops for good, its events still waiting

    two.live.sweep_interval_s = 0.0
    assert two.ready() == (True, "ready")  # the readiness probe's thread sweeps
    assert two.live._retrying is not None
    two.live._retrying.join(30)
    assert not one.live.path.exists()
    assert _totals(two, 71) == [2.0, 0.0, 4.0] and _totals(two, 72) == [0.0, 1.0, 0.0]
    again = SlotcastApp.from_settings(settings, worker=1)
    assert _send(again, 71, clicks=1) is True
    assert _totals(two, 71) == [3.0, 0.0, 4.0] and _totals(two, 72) == [0.0, 1.0, 0.0]
    again.close()
    two.close()


@pytest.fixture()
def sqlite_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("SLOTCAST_ONLINE_STORE", raising=False)
    _build(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_sqlite_held_by_another_writer_then_free_again(sqlite_state: Path) -> None:
    """Another connection holds the SQLite store exclusively (a long write, a backup): each push
    fails after SQLite's 5 s busy wait. Released, the next push carries what waited, except an
    event older than the live window, which no features build would load either."""
    app = _start(sqlite_state)
    assert _send(app, 51, clicks=1) is True
    blocker = sqlite3.connect(sqlite_state / "features" / "online_store.db")
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        old = datetime.now(UTC) - timedelta(days=2)
        assert _send(app, 51, clicks=2, watch=8.0) is False
        assert _send(app, 52, carts=3, ts=old) is False  # the push is tried again, and fails
    finally:
        blocker.rollback()
        blocker.close()
    assert _send(app, 51, carts=1) is True
    assert _waiting(app) == []
    assert _totals(app, 51) == [3.0, 1.0, 8.0]
    assert np.isnan(_totals(app, 52)).all()
    app.close()


@pytest.mark.slow
def test_events_waiting_when_a_features_build_finishes_are_left_to_it(sqlite_state: Path) -> None:
    """A features build after the outage rewrote the live totals from the data directory (with the
    served events appended by `slotcast data append-events`, when the operator ran it): pushing
    what waited on top could count it twice, so it is dropped."""
    app = _start(sqlite_state)
    blocker = sqlite3.connect(sqlite_state / "features" / "online_store.db")
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        assert _send(app, 61, clicks=2) is False
    finally:
        blocker.rollback()
        blocker.close()
    _build(sqlite_state)
    assert _send(app, 61, carts=1) is True
    assert _waiting(app) == []
    assert _totals(app, 61) == [0.0, 1.0, 0.0]
    app.close()


def test_a_pending_file_torn_by_a_crash_keeps_its_whole_lines(tmp_path: Path) -> None:
    """A crash in the middle of an append leaves a torn last line (never acknowledged as waiting):
    the next start keeps the whole lines and cuts the torn one, so appends start on a new line."""
    import json
    import time

    from serving.event_ids import EventIds
    from serving.live_pending import LivePending, read_waiting

    directory = tmp_path / "live_pending"
    directory.mkdir()
    whole = {"user_id": 1, "stream_id": STREAM, "type": "product_click", "ts_us": int(time.time() * 1e6),
             "queued_at": time.time(), "push_writer": 1, "push_id": 5}  # fmt: skip
    (directory / "r0w1.jsonl").write_text(json.dumps(whole) + "\n" + '{"user_id": 2, "str')

    def store_down(events: Any) -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    live = LivePending(directory, "r0w1", EventIds(1), store_down, set)
    assert len(live) == 1 and read_waiting(live.path) == ([whole], False)
    click = {"user_id": 3, "stream_id": STREAM, "type": "product_click", "ts_us": whole["ts_us"]}
    assert live.push([click]) is False
    events, torn = read_waiting(live.path)
    assert [e["user_id"] for e in events] == [1, 3] and not torn
