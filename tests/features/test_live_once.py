"""Live-session totals count a writer's push once, even when a write that raised had landed.

Serving retries the live events the online store did not take (serving/live_pending.py); a retry
must not count again what a failed write stored anyway. Both backends, real stores."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from features.live import ingest_live_events
from features.retrieval import FeastFeatureReader
from features.settings import FeatureSettings

COLS = ["live_clicks", "live_carts", "live_watch_seconds"]


def _events(
    user: int, stream: int, writer: int | None, push: int | None, clicks: int = 2
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"user_id": user, "stream_id": stream, "type": "product_click", "ts": datetime.now(UTC)}
    ] * clicks
    out = [*out, {"user_id": user, "stream_id": stream, "type": "stream_view", "watch_seconds": 30.0}]
    if writer is not None:
        out = [{**e, "push_writer": writer, "push_id": push} for e in out]
    return out


def _totals(reader: Any, user: int, stream: int) -> list[float]:
    return reader.online(user, [12], stream_id=stream).loc[12, COLS].astype(float).fillna(0.0).tolist()


def test_a_push_given_twice_counts_once(built_store: FeatureSettings) -> None:
    """The same writer's push again counts nothing; its next push, another writer's push (even with
    a lower id) and events with no writer all count. The writers' marks stay out of the features."""
    from features.online_fast import FastOnlineReader

    reader = FastOnlineReader(built_store)
    user, stream = 7, 171
    assert ingest_live_events(reader, _events(user, stream, 33, 1_000)) == 1
    assert _totals(reader, user, stream) == [2.0, 0.0, 30.0]
    assert ingest_live_events(reader, _events(user, stream, 33, 1_000)) == 0  # again: nothing
    assert ingest_live_events(reader, _events(user, stream, 33, 999)) == 0  # older: counted already
    ingest_live_events(reader, _events(user, stream, 33, 1_001, clicks=1))
    ingest_live_events(reader, _events(user, stream, 65, 500, clicks=1))  # another writer
    ingest_live_events(reader, _events(user, stream, None, None, clicks=1))
    ingest_live_events(reader, _events(user, stream, None, None, clicks=1))  # no writer: each time
    assert _totals(reader, user, stream) == [6.0, 0.0, 150.0]
    feast = FeastFeatureReader(built_store).online(user, [12], stream_id=stream)
    assert feast.loc[12, COLS].tolist() == [6.0, 0.0, 150.0]
    assert not [c for c in feast.columns if c.startswith("_")]
    # A batch with old and new events of one writer counts the new ones only.
    mixed = _events(user, stream, 33, 1_001) + _events(user, stream, 33, 1_002, clicks=1)
    ingest_live_events(reader, mixed)
    assert _totals(reader, user, stream) == [7.0, 0.0, 180.0]


@pytest.mark.parametrize("landed", ["all", "first session"])
def test_a_write_that_landed_although_it_raised_is_not_counted_again(
    built_store: FeatureSettings, monkeypatch: pytest.MonkeyPatch, landed: str
) -> None:
    """The store's write raises after storing every session (a reply lost on the way back) or the
    first one only (a Redis pipeline is no transaction: cut short, some sessions are written): the
    retry of the same push counts each session's events once."""
    from features.online_fast import FastOnlineReader

    reader = FastOnlineReader(built_store)
    stream = 172 if landed == "all" else 173
    sessions = [(8, stream), (9, stream), (10, stream)]
    before = {s: _totals(reader, *s) for s in sessions}
    push = [e for u, s in sessions for e in _events(u, s, 97, 5_000 + stream)]
    online = reader.store._get_provider().online_store
    real = online.online_write_batch

    def cut_short(config, table, data, progress):  # type: ignore[no-untyped-def]
        real(config, table, data if landed == "all" else data[:1], progress)
        raise ConnectionError("Connection closed by server.")

    monkeypatch.setattr(online, "online_write_batch", cut_short)
    with pytest.raises(ConnectionError):
        ingest_live_events(reader, push)
    monkeypatch.setattr(online, "online_write_batch", real)
    ingest_live_events(reader, push)  # the retry
    ingest_live_events(reader, push)  # and once more, for good measure
    for s in sessions:
        assert _totals(reader, *s) == [before[s][0] + 2.0, before[s][1], before[s][2] + 30.0], s


def test_an_event_the_client_sends_again_counts_once(built_store: FeatureSettings) -> None:
    """A client retrying `POST /events` (its reply lost) sends the same events, ids included, and
    serving pushes them anew (another push id, maybe another worker): before, each copy counted,
    a click twice. The session keeps the ids it counted; events without an id count each time."""
    from features.online_fast import FastOnlineReader

    reader = FastOnlineReader(built_store)
    user, stream = 8, 174  # a session no other test writes
    batch = [{**e, "event_id": 9_000 + i} for i, e in enumerate(_events(user, stream, 33, 1))]
    assert ingest_live_events(reader, batch) == 1
    assert _totals(reader, user, stream) == [2.0, 0.0, 30.0]
    again = [{**e, "push_writer": 65, "push_id": 7} for e in batch]  # the retry, through worker 65
    assert ingest_live_events(reader, again) == 0
    assert ingest_live_events(reader, batch + batch) == 0  # twice in one batch, already counted
    twice = {"user_id": user, "stream_id": stream, "type": "add_to_cart", "event_id": 9_100}
    ingest_live_events(reader, [twice, twice])  # a new event twice in one batch: once
    ingest_live_events(reader, _events(user, stream, None, None, clicks=1))  # no ids: each time
    ingest_live_events(reader, _events(user, stream, None, None, clicks=1))
    assert _totals(reader, user, stream) == [4.0, 1.0, 90.0]
    # The ids kept are the last SEEN_MAX: a session's memory stays bounded.
    from features.live import SEEN_MAX

    many = [{"user_id": user, "stream_id": stream, "type": "product_click", "event_id": 10_000 + i}
            for i in range(SEEN_MAX + 10)]  # fmt: skip
    ingest_live_events(reader, many)
    assert ingest_live_events(reader, many[-SEEN_MAX:]) == 0  # the latest ones are remembered
    assert _totals(reader, user, stream)[0] == 4.0 + SEEN_MAX + 10
    feast = FeastFeatureReader(built_store).online(user, [12], stream_id=stream)
    assert not [c for c in feast.columns if c.startswith("_")]
