"""A user's consent changed after the users table was loaded (`PUT /users/{id}/consent`) is honoured
at once: carousels turn non-personal, push audiences leave the user out, and every worker or
replica sharing the state directory follows within a second. Before, a change needed a new users
table and a restart of the service."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from features.consent import ConsentLedger
from tests.serving.conftest import TOKEN, in_process_service

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with in_process_service(tmp_path_factory.mktemp("consent")) as c:
        yield c


def _audience(client: TestClient, community: int) -> tuple[list[int], dict[str, int]]:
    r = client.post("/community/push", json={"community_id": community, "product_id": 5, "max_users": 10_000})
    assert r.status_code == 200, r.text
    return r.json()["users"]["user_id"], r.json()["suppressed"]


def test_personalization_withdrawn_and_given_again_over_http(client: TestClient) -> None:
    user = 22  # consents in the demo world (users u % 7 == 3 do not)
    assert client.post("/carousel", json={"user_id": user, "stream_id": 1}).json()["personalized"] is True
    r = client.put(f"/users/{user}/consent", json={"personalization": False}, headers=AUTH)
    assert r.status_code == 200 and r.json()["personalization"] is False, r.text
    answer = client.post("/carousel", json={"user_id": user, "stream_id": 1}).json()
    assert answer["personalized"] is False and answer["fallback"] == "no_consent"
    profile = client.get(f"/users/{user}/data", headers=AUTH).json()["profile"]
    assert profile["consent_personalization"] is False
    client.put(f"/users/{user}/consent", json={"personalization": True}, headers=AUTH)
    assert client.post("/carousel", json={"user_id": user, "stream_id": 1}).json()["personalized"] is True


def test_marketing_withdrawn_leaves_the_push_audience(client: TestClient) -> None:
    users, suppressed = _audience(client, 1)
    assert users, "community 1 should have users who accept pushes"
    leaving = users[0]
    r = client.put(f"/users/{leaving}/consent", json={"marketing": False}, headers=AUTH)
    assert r.json() == {"user_id": leaving, "personalization": True, "marketing": False}, r.text
    after, suppressed_after = _audience(client, 1)
    assert leaving not in after and len(after) == len(users) - 1
    assert suppressed_after["no_consent"] == suppressed["no_consent"] + 1
    # Carousels are about personalization, not marketing: still personal.
    assert client.post("/carousel", json={"user_id": leaving, "stream_id": 1}).json()["personalized"] is True


def test_a_push_audience_does_not_rank_a_user_by_a_profile_they_withdrew(client: TestClient) -> None:
    """Consent to pushes (marketing) without consent to personalization: the user stays in the
    audience but is ranked as the audience's average consenting member, not by their own ALS
    affinity. Before, their personal score ranked them like everyone else's."""

    def push() -> dict[str, list]:
        r = client.post("/community/push", json={"community_id": 2, "product_id": 5, "max_users": 10_000})
        assert r.status_code == 200, r.text
        return r.json()["users"]

    before = push()
    ranked = [u for u, pers in zip(before["user_id"], before["personalized"], strict=True) if pers]
    own = {u: p for u, p in zip(before["user_id"], before["p_convert"], strict=True)}
    first = ranked[0]
    second = next(u for u in reversed(ranked) if own[u] < own[first])
    assert own[first] != own[second]
    for u in (first, second):
        client.put(f"/users/{u}/consent", json={"personalization": False}, headers=AUTH)
    after = push()
    rows = {u: i for i, u in enumerate(after["user_id"])}
    assert first in rows and second in rows  # still pushed: marketing consent stands
    personal = [p for p, pers in zip(after["p_convert"], after["personalized"], strict=True) if pers]
    for u in (first, second):
        assert after["personalized"][rows[u]] is False
        assert after["p_convert"][rows[u]] == pytest.approx(float(np.mean(personal)), rel=1e-9)
    for u in (first, second):
        client.put(f"/users/{u}/consent", json={"personalization": True}, headers=AUTH)
    again = push()
    back = {u: p for u, p in zip(again["user_id"], again["p_convert"], strict=True)}
    assert back[first] == pytest.approx(own[first]) and back[second] == pytest.approx(own[second])


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "personalization"), ({"marketing": "no"}, "marketing"), ({"personalization": 0}, "personalization"),
     ({"marketing": False, "extra": 1}, "extra")],
)  # fmt: skip
def test_bad_consent_bodies_are_422_naming_the_field(client: TestClient, body: dict, field: str) -> None:
    r = client.put("/users/5/consent", json=body, headers=AUTH)
    assert r.status_code == 422 and field in r.text, r.text


def test_a_user_known_only_by_a_consent_change_can_be_deleted(client: TestClient) -> None:
    """Signed up and opted out in the app before any data reached the service: the consent change
    is something held about them, so `DELETE` deletes them (it answered 404, "unknown user")."""
    stranger = 10**12
    assert client.delete(f"/users/{stranger + 1}", headers=AUTH).status_code == 404  # nothing held
    client.put(f"/users/{stranger}/consent", json={"marketing": False}, headers=AUTH)
    held = client.get(f"/users/{stranger}/data", headers=AUTH).json()
    assert held["profile"] == {"consent_personalization": True, "consent_marketing": False}, held
    assert client.delete(f"/users/{stranger}", headers=AUTH).json() == {"user_id": stranger, "deleted": True}
    assert client.get(f"/users/{stranger}/data", headers=AUTH).json()["profile"] == {}


def test_consent_changes_need_the_token(client: TestClient) -> None:
    assert client.put("/users/5/consent", json={"marketing": False}).status_code == 401


def test_a_change_through_one_replica_is_honoured_by_another(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Workers and replicas share the state directory: the ledger, not a process's memory, decides."""
    import serving.consents as consents
    from serving.catalog import Catalog
    from serving.consents import consent_changes
    from serving.demo import demo_tables

    tables = demo_tables(n_users=200, n_products=30, n_streams=2, per_stream=10, seed=3)
    a, b = Catalog(tables), Catalog(tables)
    a.consent_changes, b.consent_changes = consent_changes(tmp_path), consent_changes(tmp_path)
    users = a.users.index.to_numpy(np.int64)
    yes = users[a.marketing_consent(users)][:3]
    assert len(yes) == 3 and b.marketing_consent(yes).all()
    a.consent_changes.add(int(yes[1]), None, False)
    assert a.marketing_consent(yes).tolist() == [True, False, True]  # at once where it was made
    monkeypatch.setattr(consents, "CONSENT_REFRESH_S", 0.0)  # b's next look at the shared ledger
    assert b.marketing_consent(yes).tolist() == [True, False, True]
    assert b.consent(int(yes[1]))[1] is False and b.consent(int(yes[0]))[1] is True


def test_the_ledger_keeps_the_latest_of_each_flag_and_skips_a_torn_line(tmp_path: Path) -> None:
    ledger = ConsentLedger(tmp_path)
    ledger.add(1, False, None)
    ledger.add(1, None, True)
    ledger.add(2, True, False)
    with open(ledger.path, "a") as f:
        f.write('{"user_id": 3, "personaliz')  # a crash mid-append: never acknowledged
    assert ConsentLedger(tmp_path).overrides() == {1: (False, True), 2: (True, False)}
    ledger.add(4, False, False)  # the next change cuts the torn line: a line of its own
    assert ConsentLedger(tmp_path).overrides() == {1: (False, True), 2: (True, False), 4: (False, False)}
    with open(ledger.path, "a") as f:
        f.write("not json\n")  # a whole line that is not a change: corruption, said with its place
    with pytest.raises(ValueError, match="consent_changes.jsonl:5: not a consent change"):
        ConsentLedger(tmp_path).overrides()


def test_a_segment_audience_does_not_target_a_user_by_a_profile_they_withdrew(client: TestClient) -> None:
    """A segment (RFM, behaviour) is a profile of the user's history: a push to a segment's users
    must not pick out a user without personalization consent by it, as the carousel does not use
    their segment. A community is something the user joined, and keeps them (test above). Before,
    the segment's push listed them (``personalized: false``) like any member."""

    def push(segment: str) -> tuple[list[int], dict[str, int]]:
        body = {"segment": segment, "product_id": 5, "max_users": 10_000}
        r = client.post("/community/push", json=body)
        assert r.status_code == 200, r.text
        return r.json()["users"]["user_id"], r.json()["suppressed"]

    users, suppressed = push("buyer")
    user = next(u for u in users if u % 7 != 3)  # consents to both in the demo world
    client.put(f"/users/{user}/consent", json={"personalization": False}, headers=AUTH)
    try:
        after, suppressed_after = push("buyer")
        assert user not in after and len(after) == len(users) - 1
        assert suppressed_after["no_personalization"] == suppressed.get("no_personalization", 0) + 1
        for u in after:
            assert client.get(f"/users/{u}/data", headers=AUTH).json()["profile"]["consent_personalization"]
    finally:
        client.put(f"/users/{user}/consent", json={"personalization": True}, headers=AUTH)
    assert user in push("buyer")[0]
