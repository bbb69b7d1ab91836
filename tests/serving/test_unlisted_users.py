"""Users the users table does not list (signed up since it was loaded, known from live events only)
can still withdraw consent or be deleted: their carousel is then the anonymous one, not a cold start
that reads their purchases."""

from __future__ import annotations

from pathlib import Path

from tests.serving.conftest import TOKEN, in_process_service

AUTH = {"Authorization": f"Bearer {TOKEN}"}
UNLISTED = 10**6  # the demo world lists users 0..499


def _carousel(client, user_id: int) -> dict:  # type: ignore[no-untyped-def]
    r = client.post("/carousel", json={"user_id": user_id, "stream_id": 1, "k": 5})
    assert r.status_code == 200, r.text
    return r.json()


def test_an_unlisted_user_who_withdrew_consent_gets_the_anonymous_answer(tmp_path: Path) -> None:
    with in_process_service(tmp_path, SLOTCAST_EPSILON="0") as c:  # no exploration: answers comparable
        anonymous = [s["product_id"] for s in _carousel(c, UNLISTED)["slots"]]
        bought = anonymous[1]  # a slot the anonymous answer fills
        events = {"events": [{"user_id": UNLISTED, "type": "purchase", "product_id": bought}]}
        assert c.post("/events", json=events).status_code == 200
        assert bought not in [s["product_id"] for s in _carousel(c, UNLISTED)["slots"]]  # bought recently
        r = c.put(f"/users/{UNLISTED}/consent", json={"personalization": False}, headers=AUTH)
        assert r.status_code == 200 and r.json()["personalization"] is False
        out = _carousel(c, UNLISTED)
        # Before: "cold_start", and the purchase still took the product out of their slots.
        assert out["fallback"] == "no_consent" and not out["personalized"]
        assert [s["product_id"] for s in out["slots"]] == anonymous


def test_an_unlisted_deleted_user_is_answered_as_deleted(tmp_path: Path) -> None:
    with in_process_service(tmp_path) as c:
        events = {"events": [{"user_id": UNLISTED, "type": "product_click", "product_id": 3}]}
        assert c.post("/events", json=events).status_code == 200
        assert c.delete(f"/users/{UNLISTED}", headers=AUTH).status_code == 200
        out = _carousel(c, UNLISTED)
        assert out["fallback"] == "deleted" and not out["personalized"]  # before: "cold_start"
