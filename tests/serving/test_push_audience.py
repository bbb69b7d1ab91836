"""Who a push's audience is, over HTTP: in both directions of ``POST /community/push`` only the users
the push may target (marketing consent, not deleted, under the frequency cap; for a segment, with
personalization consent). ``audience_size`` counts them and ``suppressed`` the others. Before, the
products direction's size counted every member, deleted and opted-out ones included (the users
direction's too: the deleted were in ``suppressed`` and in the size), and its products were ranked
by the affinity of members who never receive the push (no marketing consent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from tests.serving.conftest import TOKEN, in_process_service

AUTH = {"Authorization": f"Bearer {TOKEN}"}
# The in-process service's demo world: 500 users, user u in community u % 3, without marketing
# consent when u % 5 == 4, without personalization consent when u % 7 == 3; no push sent yet.
USERS = range(500)


def _push(client: TestClient, **body: Any) -> dict[str, Any]:
    r = client.post("/community/push", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def _sizes(client: TestClient, **audience: Any) -> tuple[int, int]:
    """The audience's size in the products direction and in the users direction."""
    products = _push(client, k=3, **audience)
    users = _push(client, product_id=5, max_users=10**6, **audience)
    assert products["suppressed"] == users["suppressed"]
    return products["audience_size"], users["audience_size"]


def test_the_audience_size_counts_only_the_members_a_push_may_target(tmp_path: Path) -> None:
    members = [u for u in USERS if u % 3 == 0]
    may = [u for u in members if u % 5 != 4]
    with in_process_service(tmp_path / "state") as c:
        users = _push(c, community_id=0, product_id=5, max_users=10**6)
        assert sorted(users["users"]["user_id"]) == may
        assert _sizes(c, community_id=0) == (len(may), len(may))
        no_consent = len(members) - len(may)
        assert users["suppressed"] == {"no_consent": no_consent, "deleted": 0, "frequency_cap": 0}

        gone, refused, capped = may[:3]
        assert c.delete(f"/users/{gone}", headers=AUTH).status_code == 200
        assert _sizes(c, community_id=0) == (len(may) - 1, len(may) - 1)
        r = c.put(f"/users/{refused}/consent", json={"marketing": False}, headers=AUTH)
        assert r.status_code == 200, r.text
        assert _sizes(c, community_id=0) == (len(may) - 2, len(may) - 2)
        sent = [{"user_id": capped, "type": "push_sent", "product_id": 5}] * 2  # the cap: 2 in 7 days
        assert c.post("/events", json={"events": sent}).status_code == 200
        assert _sizes(c, community_id=0) == (len(may) - 3, len(may) - 3)
        suppressed = _push(c, community_id=0, k=3)["suppressed"]
        assert suppressed == {"no_consent": no_consent + 1, "deleted": 1, "frequency_cap": 1}

        # A segment: its members with personalization consent only (a profile may not pick out
        # the others), in both directions alike.
        seg = _push(c, segment="buyer", k=3)
        assert seg["audience_size"] == _push(c, segment="buyer", product_id=5)["audience_size"]
        assert seg["suppressed"]["no_personalization"] > 0


def test_the_best_products_of_an_audience_count_no_member_who_refused_pushes(tmp_path: Path) -> None:
    """The products direction ranks by the members' mean affinity: those without marketing consent
    never receive the push and do not count in it. With every member's marketing consent withdrawn
    there is no one to average (p_convert 0 for every product, as with every member deleted:
    tests/serving/test_deletion_reach.py); before, their affinities still ranked the products."""
    with in_process_service(tmp_path / "state") as c:
        before = _push(c, community_id=2, k=5)
        assert any(p["p_convert"] > 0 for p in before["products"]) and before["audience_size"] > 0
        for u in (u for u in USERS if u % 3 == 2):
            r = c.put(f"/users/{u}/consent", json={"marketing": False}, headers=AUTH)
            assert r.status_code == 200, r.text
        after = _push(c, community_id=2, k=5)
        assert after["audience_size"] == 0 and after["products"]
        assert [p["p_convert"] for p in after["products"]] == [0.0] * len(after["products"])


def test_a_segments_size_counts_no_deleted_user(tmp_path: Path) -> None:
    """``GET /segments`` lists each segment's size, what a push to it starts from: a deleted user
    is no longer counted in the segment their history put them in (before, they were, though
    ``GET /users/{id}/segment`` shows them as ``new``, unknown)."""
    with in_process_service(tmp_path / "state") as c:

        def sizes() -> dict[str, int]:
            r = c.get("/segments")
            assert r.status_code == 200, r.text
            return {s["segment"]: s["users"] for s in r.json()}

        before = sizes()
        segment = c.get("/users/5/segment").json()["segment"]
        assert before[segment] > 0
        assert c.delete("/users/5", headers=AUTH).status_code == 200
        assert sizes() == {**before, segment: before[segment] - 1}
