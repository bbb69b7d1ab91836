"""Joins and leaves sent to `POST /events` change who a community push reaches, in every worker.

Before, the communities were the memberships table's as loaded at the start: a user who left a
community's group chat kept getting its pushes until the next import and restart."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from tests.serving.conftest import TOKEN, in_process_service

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with in_process_service(tmp_path_factory.mktemp("memberships")) as c:
        yield c


def _audience(client: TestClient, community: int) -> list[int]:
    r = client.post("/community/push", json={"community_id": community, "product_id": 5, "max_users": 10_000})
    assert r.status_code == 200, r.text
    return r.json()["users"]["user_id"]


def _send(client: TestClient, user: int, kind: str, community: int) -> None:
    r = client.post("/events", json={"events": [{"user_id": user, "type": kind, "community_id": community}]})
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text


def test_a_user_who_leaves_gets_no_more_of_the_communitys_pushes(client: TestClient) -> None:
    members = _audience(client, 1)
    assert members, "community 1 should have users who accept pushes"
    leaving = members[0]
    _send(client, leaving, "community_leave", 1)
    assert leaving not in _audience(client, 1)
    assert 1 not in client.get(f"/users/{leaving}/data", headers=AUTH).json()["communities"]
    _send(client, leaving, "community_join", 1)  # back again
    assert leaving in _audience(client, 1)


def test_a_user_who_joins_is_in_the_next_push(client: TestClient) -> None:
    inside = set(_audience(client, 1))
    outsider = next(u for u in _audience(client, 2) if u not in inside)  # accepts pushes, not in 1
    _send(client, outsider, "community_join", 1)
    assert outsider in _audience(client, 1)
    assert 1 in client.get(f"/users/{outsider}/data", headers=AUTH).json()["communities"]
    # A join naming a community the communities table does not list makes none up.
    _send(client, outsider, "community_join", 987_654)
    r = client.post("/community/push", json={"community_id": 987_654, "product_id": 5})
    assert r.status_code == 404 and "community_id" in r.text


def test_a_leave_through_one_replica_is_honoured_by_another(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import serving.shared_events as shared_events
    from serving.catalog import Catalog
    from serving.demo import demo_tables
    from serving.shared_events import SharedEvents

    def worker(name: str) -> Catalog:
        cat = Catalog(tables)
        cat.shared_events = SharedEvents(tmp_path / "shared_events", name, {}, cat.history_event_ids)
        return cat

    tables = demo_tables(n_users=200, n_products=30, n_streams=2, per_stream=10, seed=3)
    a, b = worker("a"), worker("b")
    community = next(c for c, m in a.communities.items() if len(m) >= 2)
    leaving = int(a.audience(None, community)[0])  # type: ignore[index]
    assert leaving in b.audience(None, community)  # type: ignore[operator]
    now_us = int(time.time() * 1e6)  # after the join the table gives them (a leave before it: history)
    a.apply_events(
        [{"user_id": leaving, "type": "community_leave", "community_id": community, "ts_us": now_us}]
    )
    assert leaving not in a.audience(None, community)  # type: ignore[operator]  # at once where it came in
    monkeypatch.setattr(shared_events, "SHARED_REFRESH_S", 0.0)  # b's next look at the shared files
    assert leaving not in b.audience(None, community)  # type: ignore[operator]
    assert community not in b.user_communities(leaving)
    # A worker started later reads every join and leave kept (for good, whatever their day); a
    # line being written waits.
    day = next((tmp_path / "shared_events" / "community_leave").glob("*.jsonl"))
    day.rename(day.with_name("20000101.jsonl"))
    with open(day.with_name("20000101.jsonl"), "a") as f:
        f.write('{"w": "a", "user_id": 1, "commun')
    c = worker("c")
    assert leaving not in c.audience(None, community)  # type: ignore[operator]
    assert np.array_equal(np.sort(c.communities[community]), np.sort(b.communities[community]))


def test_a_users_data_lists_their_joins_and_leaves(client: TestClient) -> None:
    """GET /users/{id}/data lists every membership record serving holds (a push replay reads them),
    not only the communities the user is in now: a user who left showed no trace of the community."""
    in_one = set(_audience(client, 1))
    member = next(u for u in _audience(client, 2) if u not in in_one)
    before = client.get(f"/users/{member}/data", headers=AUTH).json()["community_history"]
    assert {"community_id": 2, "type": "join"} in [
        {k: r[k] for k in ("community_id", "type")} for r in before
    ]
    _send(client, member, "community_leave", 2)
    _send(client, member, "community_join", 1)
    held = client.get(f"/users/{member}/data", headers=AUTH).json()
    assert 2 not in held["communities"] and 1 in held["communities"]
    sent = [(r["community_id"], r["type"]) for r in held["community_history"][len(before) :]]
    assert sent == [(2, "leave"), (1, "join")], held["community_history"]
    times = [r["ts"] for r in held["community_history"] if r["ts"] is not None]
    assert times == sorted(times)
    other = next(u for u in _audience(client, 2) if u != member)  # someone else's records: theirs only
    assert [r["type"] for r in _history(client, other) if r["community_id"] == 2] == ["join"]


def _history(client: TestClient, user: int) -> list[dict[str, object]]:
    return client.get(f"/users/{user}/data", headers=AUTH).json()["community_history"]  # type: ignore[no-any-return]
