"""A community's members now follow the joins and leaves in their time order, as a replay's members
(``at``, serving/memberships.py) do, whatever order a worker reads them in.

Before, a worker applied them in the order it read them: a worker (re)started later reads every
join file, then every leave file (serving/shared_events.py), so a member who left and came back
was out of the community's pushes there while the worker that took the join pushed them; and a
push asked ``at`` a moment after both gave another audience than the same push without ``at``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from tests.serving.conftest import in_process_service

PUSH = {"community_id": 0, "product_id": 5, "max_users": 10_000}


def _members(client: TestClient, **at: Any) -> set[int]:
    r = client.post("/community/push", json={**PUSH, **at})
    assert r.status_code == 200, r.text
    return set(r.json()["users"]["user_id"])


def _send(client: TestClient, *events: dict[str, Any]) -> None:
    r = client.post("/events", json={"events": list(events)})
    assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text


def _change(user: int, kind: str, ts: datetime) -> dict[str, Any]:
    return {"user_id": user, "type": f"community_{kind}", "community_id": 0, "ts": ts.isoformat()}


def test_a_member_who_left_and_came_back_is_a_member_after_a_restart(tmp_path: Path) -> None:
    left = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    state = tmp_path / "state"
    with in_process_service(state) as c:
        user = min(_members(c))
        _send(c, _change(user, "leave", left))
        _send(c, _change(user, "join", left + timedelta(hours=1)))
        assert user in _members(c)  # the worker that took them
    with in_process_service(state) as c:  # a worker started later reads the same lines
        assert user in _members(c)
        assert user in _members(c, at=datetime.now(UTC).isoformat())
        assert user not in _members(c, at=(left + timedelta(minutes=30)).isoformat())


def test_changes_sent_out_of_their_time_order_end_as_their_time_order_says(tmp_path: Path) -> None:
    """A client that sends a leave after a later join (a retried batch, two feeds): the latest in
    time holds, now as in a replay of any moment after both."""
    t = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    with in_process_service(tmp_path / "state") as c:
        user = min(_members(c))
        _send(c, _change(user, "leave", t))
        _send(c, _change(user, "join", t + timedelta(minutes=20)))
        _send(c, _change(user, "leave", t + timedelta(minutes=10)))  # sent last, happened before the join
        after = (t + timedelta(minutes=30)).isoformat()
        assert user in _members(c, at=after)
        assert user in _members(c)


def test_a_leave_from_before_the_tables_join_leaves_the_member_in(tmp_path: Path) -> None:
    """The demo world's members joined 100 days before the service started (the memberships
    table's ``joined_ts``): a leave dated 200 days back happened before that join, so they are
    members now and in a replay of 50 days back. It is history: a replay before the join leaves them
    out (as it would without it)."""
    now = datetime.now(UTC)
    with in_process_service(tmp_path / "state") as c:
        user = min(_members(c))
        _send(c, _change(user, "leave", now - timedelta(days=200)))
        assert user in _members(c)
        assert user in _members(c, at=(now - timedelta(days=50)).isoformat())
        r = c.post("/community/push", json={"community_id": 0, "at": (now - timedelta(days=150)).isoformat()})
        assert r.status_code == 200 and r.json()["audience_size"] == 0, r.text  # nobody had joined
