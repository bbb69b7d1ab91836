"""Purchases and pushes sent through one worker count in every other: the push frequency cap and
the bought-recently rule hold across workers and replicas sharing the state directory. Before,
each worker counted only the events it took itself (four workers: up to four times the cap)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from features.privacy import DeletionLedger
from serving.catalog import Catalog
from serving.demo import DemoFeatureSource, DemoModelSource
from serving.runtime import SlotcastApp
from serving.schemas import Event, EventsRequest, PushRequest
from serving.settings import ServingSettings


def _app(tables, state: Path) -> SlotcastApp:  # type: ignore[no-untyped-def]
    settings = ServingSettings(state_dir=state, model_source="demo", feature_source="demo", push_cap=2)
    app = SlotcastApp(settings, DemoModelSource(600, 120, 0.0, 3, seed=1), DemoFeatureSource(tables),
                      Catalog(tables), DeletionLedger(state))  # fmt: skip
    app.reload()
    return app


@pytest.fixture(autouse=True)
def _every_look_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    import serving.shared_events as shared_events

    monkeypatch.setattr(shared_events, "SHARED_REFRESH_S", 0.0)  # the next look, not within a second


def _audience(app: SlotcastApp, community: int) -> tuple[list[int], int]:
    r = app.push(PushRequest(community_id=community, product_id=5, max_users=10_000))
    return r.users.user_id, r.suppressed["frequency_cap"]


def test_the_push_cap_holds_across_workers_and_a_restart(tables, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a, b = _app(tables, tmp_path), _app(tables, tmp_path)
    community = next(c for c in a.catalog.communities if len(_audience(a, c)[0]) >= 2)  # type: ignore[union-attr]
    users, capped = _audience(b, community)
    pushed = users[0]
    sent = [
        Event(user_id=pushed, type="push_sent", product_id=5, community_id=community)
    ] * 2  # cap: 2 a week
    a.events(EventsRequest(events=sent))  # through worker a only
    assert pushed not in _audience(a, community)[0]
    after, capped_after = _audience(b, community)
    assert pushed not in after and capped_after == capped + 1
    again = _app(tables, tmp_path)  # a worker started later reads what the others wrote
    assert pushed not in _audience(again, community)[0]
    assert b.user_data(pushed).recent_pushes == 2
    for app in (a, b, again):
        app.close()


def test_a_purchase_through_one_worker_is_bought_recently_in_another(tables, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a, b = _app(tables, tmp_path), _app(tables, tmp_path)
    user = int(a.catalog.users.index[0])  # type: ignore[union-attr]
    durables = np.flatnonzero(np.isnan(b.catalog.products["repurchase_cycle_days"].to_numpy(float)))  # type: ignore[union-attr]
    product = int(b.catalog.products.index[durables[0]])  # type: ignore[union-attr]
    now_us = int(datetime.now(UTC).timestamp() * 1e6)
    before = b.catalog.purchase_flags(user, np.array([product]), now_us, 90.0)[0]  # type: ignore[union-attr]
    assert not before[0]
    a.events(EventsRequest(events=[Event(user_id=user, type="purchase", product_id=product)]))
    assert b.catalog.purchase_flags(user, np.array([product]), now_us + 1, 90.0)[0][0]  # type: ignore[union-attr]
    a.close()
    b.close()


def test_a_deleted_users_lines_are_not_taken_in(
    tables, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Deleted through one worker after a purchase through it: another worker reading the shared
    lines later holds nothing of that purchase."""
    import serving.deletions as deletions

    monkeypatch.setattr(deletions, "DELETION_REFRESH_S", 0.0)
    a = _app(tables, tmp_path)
    user = int(a.catalog.users.index[1])  # type: ignore[union-attr]
    product = int(a.catalog.products.index[0])  # type: ignore[union-attr]
    a.events(EventsRequest(events=[Event(user_id=user, type="purchase", product_id=product)]))
    a.delete_user(user)
    b = _app(tables, tmp_path)  # starts after: reads every line, the deleted user's left out
    b.catalog.sync_shared()  # type: ignore[union-attr]
    assert product not in b.catalog.last_purchase.get(user, {})  # type: ignore[union-attr]
    a.close()
    b.close()


def test_what_the_events_table_holds_and_old_days_are_not_counted(tmp_path: Path) -> None:
    from serving.shared_events import SharedEvents

    directory = tmp_path / "shared_events"
    old = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y%m%d")
    today = datetime.now(UTC).strftime("%Y%m%d")
    (directory / "push_sent").mkdir(parents=True)
    line = {"w": "other", "type": "push_sent", "user_id": 7, "product_id": None, "ts_us": 1}
    (directory / "push_sent" / f"{old}.jsonl").write_text(json.dumps({**line, "event_id": 1}) + "\n")
    (directory / "push_sent" / f"{today}.jsonl").write_text(
        "".join(json.dumps({**line, "event_id": i}) + "\n" for i in (2, 3)) + '{"w": "other", "typ'
    )  # fmt: skip
    shared = SharedEvents(directory, "me", {"push_sent": 7.0, "purchase": 90.0}, np.array([3], np.int64))
    got: list[dict] = []
    shared.sync(got.extend, force=True)
    # Event 3 came with the events table (appended after serving); event 1 is older than the cap
    # looks back (its file is deleted); the torn last line waits for its end.
    assert [e["event_id"] for e in got] == [2]
    assert not (directory / "push_sent" / f"{old}.jsonl").exists()
    shared.record([{"event_id": 4, "type": "push_sent", "user_id": 7, "product_id": None, "ts_us": 2}])
    shared.sync(got.extend, force=True)
    assert [e["event_id"] for e in got] == [2]  # its own line is applied when taken, not read back


def test_a_burst_is_read_off_the_requests_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A campaign's pushes sent through another worker (here 30,000 lines, 3 MB): the look that
    finds them starts a reader thread and returns; they are applied once it has read them, in
    chunks (here of 64 KiB: lines cut at a chunk's end are read whole with the next)."""
    import serving.shared_events as shared_events
    from serving.shared_events import SharedEvents

    monkeypatch.setattr(shared_events, "CHUNK_BYTES", 1 << 16)

    directory = tmp_path / "shared_events"
    (directory / "push_sent").mkdir(parents=True)
    line = {"w": "other", "type": "push_sent", "product_id": 5, "ts_us": 1, "pad": "x" * 40}
    today = datetime.now(UTC).strftime("%Y%m%d")
    (directory / "push_sent" / f"{today}.jsonl").write_text(
        "".join(json.dumps({**line, "user_id": i, "event_id": i}) + "\n" for i in range(1, 30_001))
    )
    shared = SharedEvents(directory, "me", {"push_sent": 7.0, "purchase": 90.0}, np.empty(0, np.int64))
    got: list[dict] = []
    shared.sync(got.extend)
    assert shared._reading is not None
    shared._reading.join(30)
    assert len(got) == 30_000 and {e["user_id"] for e in got} == set(range(1, 30_001))
    shared.sync(got.extend, force=True)
    assert len(got) == 30_000  # read once
