"""A push_sent sent again with the same event_id (a client retrying a batch whose reply it lost) is
one push: the frequency cap counts it once, in the worker that took it twice and in the others.
Before, each copy counted, and a user pushed once was capped (cap 2) as if pushed twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.schemas import Event, EventsRequest
from tests.serving.conftest import in_process_service
from tests.serving.test_shared_events import _app, _audience

PUSH = {"community_id": 0, "product_id": 5, "max_users": 1000}


def test_a_retried_push_sent_counts_once_over_http(tmp_path: Path) -> None:
    with in_process_service(tmp_path) as c:
        first = c.post("/community/push", json=PUSH).json()
        user = first["users"]["user_id"][0]
        sent = {"events": [{"event_id": 10**12, "user_id": user, "type": "push_sent", "product_id": 5}]}
        for _ in range(2):  # the same event, sent twice
            assert c.post("/events", json=sent).status_code == 200
        after = c.post("/community/push", json=PUSH).json()
        assert user in after["users"]["user_id"]  # one push of a cap of 2
        assert after["suppressed"]["frequency_cap"] == first["suppressed"]["frequency_cap"]
        # A second, different push reaches the cap.
        sent["events"][0]["event_id"] += 1
        assert c.post("/events", json=sent).status_code == 200
        capped = c.post("/community/push", json=PUSH).json()
        assert user not in capped["users"]["user_id"]
        assert capped["suppressed"]["frequency_cap"] == first["suppressed"]["frequency_cap"] + 1


def test_a_push_sent_retried_through_another_worker_counts_once(
    tables, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import serving.shared_events as shared_events

    monkeypatch.setattr(shared_events, "SHARED_REFRESH_S", 0.0)
    a, b = _app(tables, tmp_path), _app(tables, tmp_path)
    users, _ = _audience(a, 0)
    user = users[0]
    sent = EventsRequest(events=[Event(event_id=10**12, user_id=user, type="push_sent", product_id=5)])
    a.events(sent)
    b.events(sent)  # the retry lands on the other worker
    for app in (a, b, _app(tables, tmp_path)):  # and a worker started later
        assert user in _audience(app, 0)[0] and app.user_data(user).recent_pushes == 1
        app.close()
