"""The service over HTTP, in-process: BentoML's ASGI app (the real routes, validation and error
mapping) driven by starlette's TestClient, on the demo world."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.serving.conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_carousel(client: TestClient) -> None:
    r = client.post("/carousel", json={"user_id": 8, "stream_id": 1, "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["slots"]) == 5 and body["personalized"] and not body["degraded"]
    assert body["variant"] == "champion" and body["model_version"].startswith("demo-")
    assert {"product_id", "slot", "score", "p_convert", "expected_value", "reason"} <= set(body["slots"][0])


@pytest.mark.parametrize(
    ("body", "field"),
    [({"user_id": 1, "k": 21}, "k"), ({"user_id": 1, "k": 0}, "k"), ({"user_id": "abc"}, "user_id"),
     ({"stream_id": 1}, "user_id"), ({"user_id": -5}, "user_id"), ({"user_id": 1, "bogus": 1}, "bogus")],
)  # fmt: skip
def test_bad_carousel_input_is_4xx_naming_the_field(client: TestClient, body: dict, field: str) -> None:
    r = client.post("/carousel", json=body)
    assert 400 <= r.status_code < 500, r.text
    assert field in r.text and "Traceback" not in r.text


def test_garbled_json_is_4xx(client: TestClient) -> None:
    r = client.post("/carousel", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]


def test_unknown_stream_is_404_and_unknown_user_cold_starts(client: TestClient) -> None:
    r = client.post("/carousel", json={"user_id": 1, "stream_id": 4242})
    assert r.status_code == 404 and r.json()["field"] == "stream_id"
    r = client.post("/carousel", json={"user_id": 10**12, "stream_id": 1})
    assert r.status_code == 200 and r.json()["fallback"] == "cold_start"


def test_push_both_directions(client: TestClient) -> None:
    r = client.post("/community/push", json={"community_id": 1, "product_id": 5, "max_users": 7})
    assert r.status_code == 200, r.text
    assert r.json()["direction"] == "users" and len(r.json()["users"]["user_id"]) == 7
    r = client.post("/community/push", json={"segment": "buyer", "k": 3})
    assert r.status_code == 200 and len(r.json()["products"]) == 3
    r = client.post("/community/push", json={"segment": "buyer", "community_id": 1})
    assert r.status_code in (400, 422) and "exactly one" in r.text


def test_events_are_validated_and_logged(client: TestClient) -> None:
    r = client.post("/events", json={"events": [{"user_id": 1, "type": "purchase"}]})
    assert r.status_code == 422 and "product_id" in r.json()["error"]
    r = client.post("/events", json={"events": [{"user_id": 1, "type": "teleport"}]})
    assert r.status_code == 422 and r.json()["field"] == "events.0.type"
    r = client.post("/events", json={"events": [{"user_id": 1, "type": "purchase", "product_id": 3}]})
    assert r.status_code == 200 and r.json()["accepted"] == 1
    from serving.event_log import read_all

    assert any(e["product_id"] == 3 for e in read_all(Path(client.state_dir) / "serving" / "events"))  # type: ignore[attr-defined]


def test_segments(client: TestClient) -> None:
    r = client.get("/segments")
    assert r.status_code == 200 and {s["segment"] for s in r.json()} >= {"new", "buyer"}
    r = client.get("/users/5/segment")
    assert r.status_code == 200 and r.json()["known"]
    assert client.get("/users/nope/segment").status_code == 422


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
def test_private_endpoints_refuse_a_missing_or_wrong_token(client: TestClient, headers: dict) -> None:
    assert client.get("/users/5/data", headers=headers).status_code == 401
    assert client.delete("/users/5", headers=headers).status_code == 401
    assert client.post("/users/delete", json={"user_ids": [5]}, headers=headers).status_code == 401
    assert client.post("/admin/reload", headers=headers).status_code == 401


def test_user_data_and_deletion(client: TestClient) -> None:
    r = client.get("/users/15/data", headers=AUTH)
    assert r.status_code == 200 and r.json()["known"] and not r.json()["deleted"]
    assert r.json()["profile"] and r.json()["segment"] != "new", r.json()  # something to hide afterwards
    version = client.post("/carousel", json={"user_id": 15, "stream_id": 1}).json()["model_version"]
    assert r.json()["model_versions"] == [version], r.json()  # factors learnt from them
    assert client.delete("/users/15", headers=AUTH).json() == {"user_id": 15, "deleted": True}
    held = client.get("/users/15/data", headers=AUTH).json()
    assert held["model_versions"] == [], held  # the loaded model's factors of theirs are zeroed
    # Serving shows nothing it no longer uses: no profile, segment, communities, purchases or features.
    assert held["deleted"] and not held["known"] and held["profile"] == {} and held["communities"] == [], held
    assert held["segment"] == "new" and held["recent_purchases"] == [] and held["online_features"] == {}, held
    assert client.get("/users/15/segment").json() == {"user_id": 15, "segment": "new", "known": False}
    r = client.post("/carousel", json={"user_id": 15, "stream_id": 1})
    assert r.json()["personalized"] is False and r.json()["fallback"] == "deleted"
    assert client.delete("/users/123456789", headers=AUTH).status_code == 404


def test_many_users_deleted_in_one_call(client: TestClient) -> None:
    """`POST /users/delete`: the users serving holds are deleted as one by one, the others listed
    as unknown and not recorded; bad bodies are 422 naming the field."""
    for u in (18, 19):
        assert client.post("/carousel", json={"user_id": u, "stream_id": 1}).json()["personalized"] is True
    r = client.post("/users/delete", json={"user_ids": [18, 123456789, 19, 18]}, headers=AUTH)
    assert r.status_code == 200 and r.json() == {"deleted": [18, 19], "unknown": [123456789]}
    for u in (18, 19):
        r = client.post("/carousel", json={"user_id": u, "stream_id": 1}).json()
        assert r["personalized"] is False and r["fallback"] == "deleted"
        assert client.get(f"/users/{u}/data", headers=AUTH).json()["deleted"] is True
    assert client.get("/users/123456789/data", headers=AUTH).json()["deleted"] is False
    for body, field in (({"user_ids": []}, "user_ids"), ({"user_ids": [-1]}, "user_ids"), ({}, "user_ids"),
                        ({"user_ids": list(range(10_001))}, "user_ids"), ({"user_ids": [1], "x": 1}, "x")):  # fmt: skip
        r = client.post("/users/delete", json=body, headers=AUTH)
        assert r.status_code == 422 and field in r.text, (body, r.text[:300])


def test_reload_swaps_the_model(client: TestClient) -> None:
    before = client.post("/carousel", json={"user_id": 2, "stream_id": 0}).json()["model_version"]
    r = client.post("/admin/reload", headers=AUTH)
    assert r.status_code == 200 and r.json()["reloaded"]
    after = client.post("/carousel", json={"user_id": 2, "stream_id": 0}).json()["model_version"]
    assert after == r.json()["model_version"] != before


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    status = client.get("/status").json()
    assert status["ready"] and status["reason"] == "ready" and status["model_version"].startswith("demo-")
    assert client.post("/noop", json={"x": 3}).json() == {"x": 3}
    # The carousel-shaped baseline: a carousel request in, an 8-slot answer out, bad input refused.
    noop = client.post("/noop/carousel", json={"user_id": 2, "stream_id": 0, "k": 8})
    assert noop.status_code == 200 and len(noop.json()["slots"]) == 8
    bad = client.post("/noop/carousel", json={"user_id": -1})
    assert bad.status_code in (400, 422) and "user_id" in bad.text


def test_where_the_carousel_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/carousel runs on the event loop unless its lookups can wait on the network (Redis): a
    stalled connection must not hold the loop that answers /healthz and /readyz."""
    from serving.adapters import FeastFeatureSource
    from serving.service import carousel_on_loop

    sqlite = FeastFeatureSource(tmp_path)  # opens nothing until a lookup
    monkeypatch.setenv("SLOTCAST_ONLINE_STORE", "redis")
    redis = FeastFeatureSource(tmp_path)
    assert not sqlite.networked and redis.networked
    assert carousel_on_loop("auto", sqlite) and not carousel_on_loop("auto", redis)
    assert carousel_on_loop("auto", object())  # the demo world's features: in memory
    assert carousel_on_loop("loop", redis) and not carousel_on_loop("thread", sqlite)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [("/events", {"events": [{"user_id": 1, "type": "like", "ts": "0001-01-01T00:00:00+14:00"}]}, "events.0.ts"),
     ("/events", {"events": [{"user_id": 1, "type": "like", "ts": "9999-12-31T23:59:59-14:00"}]}, "events.0.ts"),
     ("/events", {"events": [{"user_id": 1, "type": "like", "ts": "2026-01-01T12:00:00"}]}, "events.0.ts"),
     ("/carousel", {"user_id": 1, "stream_id": 0, "at": "9999-12-31T23:59:59-14:00"}, "at"),
     ("/carousel", {"user_id": 1, "stream_id": 0, "at": "2026-01-01T12:00:00"}, "at")],
)  # fmt: skip
def test_times_without_a_zone_or_beyond_utc_are_refused_naming_the_field(
    client: TestClient, path: str, body: dict, field: str
) -> None:
    """A time must carry its zone and exist in UTC: one at the calendar's edge (9999-12-31 at
    -14:00 is year 10000 in UTC) was a 500 from /events, which converts every ts to UTC."""
    r = client.post(path, json=body)
    assert 400 <= r.status_code < 500, r.text
    assert any(d["loc"][-len(field.split(".")) :] == field.split(".") for d in r.json()["detail"]), r.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/carousel", 405), ("GET", "/community/push", 405), ("PUT", "/noop", 405),
     ("GET", "/nope", 404), ("POST", "/users", 404)],
)  # fmt: skip
def test_unrouted_requests_get_a_json_reason(client: TestClient, method: str, path: str, status: int) -> None:
    """A path no route serves, or a method a BentoML route does not take, is answered by BentoML's
    own router: it was a plain-text "Not Found" / "Method Not Allowed", not the JSON every other
    refusal is."""
    r = client.request(method, path)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/json"), r.text
    assert r.json()["error"]
    assert int(r.headers["content-length"]) == len(r.content)


def test_a_body_that_is_not_json_names_the_body(client: TestClient) -> None:
    """FastAPI locates a JSON decode error at ("body", <character position>): the refusal named
    field "1" for the body b"{nope", a field no request has."""
    r = client.post("/events", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["field"] == "body", r.text
    assert "JSON" in r.json()["error"] and "1" not in r.json()["error"].split(":")[0]
    for body in (b"", b"[1]", b'"events"'):  # no body, or not an object: the body is named too
        r = client.post("/events", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["field"] == "body", (body, r.text)


@pytest.mark.parametrize("path", ["/carousel", "/community/push", "/events", "/noop/carousel"])
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml", "multipart/form-data"],
)
def test_a_body_declared_as_something_other_than_json_is_415(
    client: TestClient, path: str, content_type: str
) -> None:
    """The typed BentoML APIs parsed any body as JSON whatever its declared type, and a form as
    their fields (user_id=1 as a form got a carousel): a body declared as not JSON is refused."""
    body = {"/carousel": {"user_id": 1}, "/noop/carousel": {"user_id": 1}, "/community/push": {"segment": "buyer"},
            "/events": {"events": [{"user_id": 1, "type": "like"}]}}[path]  # fmt: skip
    import json

    r = client.post(path, content=json.dumps(body).encode(), headers={"Content-Type": content_type})
    assert r.status_code == 415, r.text
    assert r.json()["field"] == "content-type" and "application/json" in r.json()["error"]
    ok = client.post(
        path, content=json.dumps(body).encode(), headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert ok.status_code == 200, ok.text


def test_a_user_only_live_events_know_can_be_deleted(client: TestClient) -> None:
    """Live events may name users the catalogue has no row for; what the service holds about them
    shows in GET /users/{id}/data, and DELETE must then honour it: it answered 404 unknown user."""
    u = 987_654_321
    ev = [
        {"user_id": u, "type": "purchase", "product_id": 3},
        {"user_id": u, "type": "push_sent", "product_id": 3},
    ]
    assert client.post("/events", json={"events": ev}).status_code == 200
    held = client.get(f"/users/{u}/data", headers=AUTH).json()
    assert not held["known"] and held["recent_purchases"] and held["recent_pushes"] == 1
    assert held["service_logs"]["events"] == 2 and held["model_versions"] == [], held
    r = client.delete(f"/users/{u}", headers=AUTH)
    assert r.status_code == 200 and r.json() == {"user_id": u, "deleted": True}, r.text
    after = client.get(f"/users/{u}/data", headers=AUTH).json()
    assert after["deleted"] and after["recent_purchases"] == []
    assert client.delete(f"/users/{u + 1}", headers=AUTH).status_code == 404  # nothing held: unknown


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [("/carousel", {"user_id": True, "stream_id": 1}, "user_id"),
     ("/carousel", {"user_id": 1, "stream_id": 1, "k": True}, "k"),
     ("/carousel", {"user_id": 1, "candidates": [3, False]}, "candidates"),
     ("/community/push", {"community_id": True, "product_id": 4}, "community_id"),
     ("/community/push", {"segment": "buyer", "product_id": 4, "max_users": True}, "max_users"),
     ("/events", {"events": [{"user_id": False, "type": "like"}]}, "user_id"),
     ("/events", {"events": [{"user_id": 1, "type": "purchase", "product_id": 3, "amount": True}]}, "amount")],
)  # fmt: skip
def test_true_and_false_are_not_numbers(client: TestClient, path: str, body: dict, field: str) -> None:
    """JSON true/false where a number belongs is a wrong type: pydantic's lax mode read them as 1/0,
    so {"user_id": true} got user 1's personal carousel and an event of {"user_id": false} was
    logged as user 0's."""
    r = client.post(path, json=body)
    assert 400 <= r.status_code < 500, r.text
    assert any(field in d["loc"] for d in r.json()["detail"]), r.text


def test_a_request_field_declared_bool_still_takes_true_and_false() -> None:
    """The refusal of true/false is for numbers only: a request model's bool field keeps them."""
    from pydantic import ValidationError

    from serving.schemas import _Strict

    class WithFlag(_Strict):
        n: int
        flag: bool

    assert WithFlag(n=1, flag=True).flag is True
    with pytest.raises(ValidationError, match="true/false is not a number"):
        WithFlag(n=True, flag=False)
