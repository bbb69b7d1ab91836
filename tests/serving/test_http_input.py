"""Input the service refuses over HTTP (in-process, on the demo world), each a 4xx whose JSON body
names the field: implausible times, unknown candidate products, strings where numbers belong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from serving.event_log import read_all


def names(r: httpx.Response, field: str) -> bool:
    """The refusal names ``field`` ("events.0.ts"): as its ``field``, or as a ``loc`` of its
    ``detail`` (BentoML's typed APIs answer schema errors with a detail list only)."""
    body = r.json()
    parts = field.split(".")
    return body.get("field") == field or any(
        [str(x) for x in d["loc"]][-len(parts) :] == parts for d in body.get("detail") or ()
    )


def _in(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


@pytest.mark.parametrize(
    "ts",
    # The third is in 1969 in UTC; the last more than a day ahead.
    ["0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "1970-01-01T01:00:00+02:00", "9999-12-31T00:00:00Z"],
)
def test_implausible_event_times_are_refused_and_nothing_is_logged(client: TestClient, ts: str) -> None:
    """Events dated year 1 or year 9999 were accepted, logged and pushed to the online store. An
    event time lies after 1970-01-01 and at most SLOTCAST_MAX_CLOCK_SKEW_S (a day) ahead; a request
    with one implausible event is refused whole."""
    log_dir = Path(client.state_dir) / "serving" / "events"  # type: ignore[attr-defined]
    before = len(read_all(log_dir)) if log_dir.exists() else 0
    ev = [{"user_id": 1, "type": "like"}, {"user_id": 2, "type": "like", "ts": ts}]
    r = client.post("/events", json={"events": ev})
    assert r.status_code == 422 and names(r, "events.1.ts"), r.text
    assert (len(read_all(log_dir)) if log_dir.exists() else 0) == before


def test_plausible_event_times_are_accepted(client: TestClient) -> None:
    for ts in ("1970-01-01T00:00:00Z", "1969-12-31T23:00:00-02:00", _in(-400), _in(0.5)):
        r = client.post("/events", json={"events": [{"user_id": 1, "type": "like", "ts": ts}]})
        assert r.status_code == 200, (ts, r.text)


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "9999-12-31T00:00:00Z"])
def test_a_carousel_at_an_implausible_time_is_refused(client: TestClient, at: str) -> None:
    """``at`` year 1 answered an empty carousel (nothing on air), year 9999 one of the products
    whose air time has no end: the same bounds as an event's time."""
    r = client.post("/carousel", json={"user_id": 1, "stream_id": 0, "at": at})
    assert 400 <= r.status_code < 500 and names(r, "at"), r.text


def test_a_carousel_at_a_past_time_is_a_replay(client: TestClient) -> None:
    for at in ("2025-01-06T21:00:00Z", _in(-30), _in(0.5)):
        r = client.post("/carousel", json={"user_id": 1, "stream_id": 0, "at": at})
        assert r.status_code == 200, (at, r.text)


def test_unknown_candidate_products_are_404_naming_them(client: TestClient) -> None:
    """A stream-less carousel's candidates the catalogue does not know were served as slots (with
    no price, category or stock); push refuses an unknown product with 404, and so does this."""
    r = client.post("/carousel", json={"user_id": 8, "candidates": [3, 5000, 4, 6001, 5000], "k": 3})
    assert r.status_code == 404 and r.json()["field"] == "candidates", r.text
    assert "5000, 6001" in r.json()["error"]
    many = list(range(1000, 1030))
    r = client.post("/carousel", json={"user_id": 8, "candidates": [3, *many]})
    assert r.status_code == 404 and "1019 and 10 more" in r.json()["error"], r.text
    r = client.post("/carousel", json={"user_id": 8, "candidates": [3, 4, 5, 6], "k": 3})
    assert r.status_code == 200 and {s["product_id"] for s in r.json()["slots"]} <= {3, 4, 5, 6}
    # With a stream the list is ignored (docs/serving.md), as before.
    r = client.post("/carousel", json={"user_id": 8, "stream_id": 0, "candidates": [5000]})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [("/carousel", {"user_id": "42", "stream_id": 1}, "user_id"),
     ("/carousel", {"user_id": 42, "stream_id": "1"}, "stream_id"),
     ("/carousel", {"user_id": 42, "stream_id": 1, "k": "5"}, "k"),
     ("/carousel", {"user_id": 42, "candidates": ["3", 4]}, "candidates"),
     ("/carousel", {"user_id": 42, "stream_id": 1, "exclude": [3, "4"]}, "exclude"),
     ("/noop/carousel", {"user_id": "42"}, "user_id"),
     ("/community/push", {"community_id": "1", "product_id": 4}, "community_id"),
     ("/community/push", {"segment": "buyer", "product_id": "4"}, "product_id"),
     ("/community/push", {"segment": "buyer", "campaign_products": ["4"]}, "campaign_products"),
     ("/community/push", {"segment": "buyer", "product_id": 4, "max_users": "7"}, "max_users"),
     ("/events", {"events": [{"user_id": "1", "type": "like"}]}, "events.0.user_id"),
     ("/events", {"events": [{"user_id": 1, "type": "like", "event_id": "5"}]}, "events.0.event_id"),
     ("/events", {"events": [{"user_id": 1, "type": "purchase", "product_id": 3, "amount": "1.5"}]},
      "events.0.amount"),
     ("/events", {"events": [{"user_id": 1, "type": "stream_view", "stream_id": 0, "watch_seconds": "3"}]},
      "events.0.watch_seconds")],
)  # fmt: skip
def test_strings_are_not_numbers(client: TestClient, path: str, body: dict, field: str) -> None:
    """Lax validation read digit strings as numbers: {"user_id": "42"} got user 42's personal
    carousel, and an event of {"user_id": "1"} was logged as user 1's."""
    r = client.post(path, json=body)
    assert 400 <= r.status_code < 500 and names(r, field), r.text
    assert "a string is not a number" in r.text


def test_strings_where_strings_belong_are_still_read(client: TestClient) -> None:
    """Fields declared as text (segment, event type, context) and times as ISO strings."""
    body = {"user_id": 8, "stream_id": 1, "context": {"page": "home"}, "at": _in(-0.01)}
    assert client.post("/carousel", json=body).status_code == 200
    assert client.post("/community/push", json={"segment": "buyer", "k": 3}).status_code == 200
    ev = {"user_id": 1, "type": "purchase", "product_id": 3, "amount": 1.5, "ts": "2025-01-06T21:00:00+01:00"}
    assert client.post("/events", json={"events": [ev]}).status_code == 200


def test_a_request_model_keeps_text_and_flags() -> None:
    """The refusal is for fields declared as numbers (also optional, bounded, or as list items)."""
    from pydantic import ValidationError

    from serving.schemas import IdItem, _Strict

    class Mixed(_Strict):
        n: float | None = None
        ids: list[IdItem] = []
        name: str | None = None
        flag: bool = False

    assert Mixed(name="42", flag=True).name == "42"
    for bad in ({"n": "1.5"}, {"ids": [1, "2"]}, {"n": True}):
        with pytest.raises(ValidationError, match="is not a number"):
            Mixed.model_validate(bad)
    assert Mixed.model_validate({"n": 2, "ids": [1, 2]}).n == 2.0
