"""A token-protected route refuses a caller without the token before it looks at the body: a bad
body (not JSON, the wrong shape, a bad user id in the path) from a caller without the token is a 401
naming ``authorization``, not a 422 describing what the body should hold. With the token, the same
request is the 422 it always was; the open routes are untouched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from serving.service import TOKEN_ROUTES, web
from serving.token_guard import TokenGuard
from tests.serving.conftest import TOKEN, in_process_service

FEED = "feed-token-789"
# A request per protected route that the route refuses with its token too, and that refusal's status
# and field: a body that is not JSON, of the wrong shape or of another type, a bad path.
BAD: dict[tuple[str, str], tuple[dict[str, Any], int, str]] = {
    ("POST", "/events"): ({"content": b"{not json"}, 422, "body"),
    ("POST", "/products/stock"): ({"json": {"items": "none"}}, 422, "items"),
    ("POST", "/admin/reload"): ({}, 200, ""),  # takes no body: with the token it reloads
    ("GET", "/users/{user_id}/data"): ({"path": "/users/not-a-number/data"}, 422, "user_id"),
    ("DELETE", "/users/{user_id}"): ({"path": "/users/-5"}, 422, "user_id"),
    ("PUT", "/users/{user_id}/consent"): (
        {"content": b'{"personalization": true}', "headers": {"content-type": "text/plain"}},
        415,
        "content-type",
    ),
    ("POST", "/users/delete"): ({"json": {"user_ids": "everyone"}}, 422, "user_ids"),
}
NO_TOKEN: list[dict[str, str]] = [{}, {"Authorization": "Bearer wrong"}]


def _send(c: TestClient, method: str, template: str, headers: dict[str, str]) -> Any:
    spec = dict(BAD[(method, template)][0])
    path = spec.pop("path", template.replace("{user_id}", "7"))
    return c.request(method, path, headers={**spec.pop("headers", {}), **headers}, **spec)


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[TestClient]:
    with in_process_service(tmp_path, SLOTCAST_FEED_TOKEN=FEED) as c:
        yield c


def test_the_guarded_routes_are_the_routes_that_take_a_token() -> None:
    """TOKEN_ROUTES is a list beside the routes: it must name every route with an Authorization
    header, and only those (a new admin route left off it would validate before it authorizes)."""
    taking_a_token = {
        (method.upper(), path)
        for path, operations in web.openapi()["paths"].items()
        for method, op in operations.items()
        if any(p["name"] == "authorization" for p in op.get("parameters", ()))
    }
    assert taking_a_token == {(m, p) for m, p, _ in TOKEN_ROUTES}
    assert set(BAD) == taking_a_token


@pytest.mark.parametrize(("method", "template", "kind"), TOKEN_ROUTES)
def test_without_the_token_a_bad_request_is_401_not_422(
    guarded: TestClient, method: str, template: str, kind: str
) -> None:
    for headers in NO_TOKEN:
        r = _send(guarded, method, template, headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.json()["field"] == "authorization", r.text
        assert r.headers["www-authenticate"] == "Bearer"
    good = FEED if kind == "feed" else TOKEN
    _, status, field = BAD[(method, template)]
    r = _send(guarded, method, template, {"Authorization": f"Bearer {good}"})
    assert r.status_code == status, r.text  # with the token: the request's own refusal
    if status != 200:
        assert r.json()["field"] == field, r.text


def test_a_feed_token_is_no_admin_token(guarded: TestClient) -> None:
    r = _send(guarded, "POST", "/users/delete", {"Authorization": f"Bearer {FEED}"})
    assert r.status_code == 401 and r.json()["field"] == "authorization", r.text


def test_open_routes_and_open_feeds_still_validate_first(tmp_path: Path) -> None:
    with in_process_service(tmp_path) as c:  # no feed token: the feeds are open
        r = _send(c, "POST", "/products/stock", {})
        assert r.status_code == 422 and r.json()["field"] == "items", r.text
        r = c.post("/carousel", json={"user_id": "x", "stream_id": 1})
        assert r.status_code in (400, 422) and "user_id" in r.text, r.text
        assert c.get("/users/7/segment").status_code == 200


def test_route_templates_match_one_path_segment_per_parameter() -> None:
    def refuse(kind: str, authorization: str | None) -> None:
        raise AssertionError

    guard = TokenGuard(None, TOKEN_ROUTES, refuse)
    assert guard.kind("GET", "/users/12/data") == "admin"
    assert guard.kind("HEAD", "/users/12/data") == "admin"
    assert guard.kind("DELETE", "/users/12") == "admin"
    assert guard.kind("POST", "/events") == "feed"
    for method, path in [
        ("GET", "/users/12/data/more"),
        ("GET", "/users//data"),
        ("GET", "/users/12/segment"),
        ("DELETE", "/users/12/data"),
        ("POST", "/events/x"),
        ("GET", "/users/1\n/data"),  # no route: asgi_guard.py answers 400 naming the path
        ("DELETE", "/users/\x07"),
        ("POST", "/carousel"),
        ("GET", "/events"),
    ]:
        assert guard.kind(method, path) is None, (method, path)
