"""The feeds' token (``SLOTCAST_FEED_TOKEN``): with it set, ``POST /events`` and ``POST
/products/stock`` take only requests bearing it (or the admin token). Before, anyone who reached the
service could set every product's stock to 0 (empty carousels) or forge events; without the
setting they stay open, as before, and say so."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from serving.event_log import read_all
from tests.serving.conftest import TOKEN, in_process_service

FEED = "feed-token-456"
CAROUSEL = {"user_id": 8, "stream_id": 1, "k": 20}
WRONG = [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Bearer {FEED[:-1]}"},
    {"Authorization": FEED},
    {"Authorization": f"Basic {FEED}"},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
]


def _offered(c: TestClient) -> list[int]:
    r = c.post("/carousel", json=CAROUSEL)
    assert r.status_code == 200, r.text
    return [s["product_id"] for s in r.json()["slots"]]


def _sold_out(c: TestClient, product: int, headers: dict[str, str]) -> object:
    return c.post("/products/stock", json={"items": [{"product_id": product, "stock": 0}]}, headers=headers)


def _purchase(c: TestClient, product: int, headers: dict[str, str]) -> object:
    ev = {"events": [{"user_id": 8, "type": "purchase", "product_id": product, "amount": 3.0}]}
    return c.post("/events", json=ev, headers=headers)


def _logged(c: TestClient) -> list[int]:
    """The products of the purchases in the service's event log."""
    return [e["product_id"] for e in read_all(Path(c.state_dir) / "serving" / "events")]  # type: ignore[attr-defined]


@pytest.mark.parametrize("admin", [TOKEN, ""])  # "": no admin token, so an empty bearer matches nothing
def test_with_a_feed_token_a_missing_or_wrong_one_is_401_and_nothing_is_applied(
    tmp_path: Path, admin: str
) -> None:
    with in_process_service(tmp_path, SLOTCAST_FEED_TOKEN=FEED, SLOTCAST_ADMIN_TOKEN=admin) as c:
        product = _offered(c)[0]
        for headers in WRONG:
            for r in (_sold_out(c, product, headers), _purchase(c, product, headers)):
                assert r.status_code == 401, (headers, r.text)  # type: ignore[attr-defined]
                assert r.json()["field"] == "authorization", r.text  # type: ignore[attr-defined]
        assert product in _offered(c)  # the stock level was not set
        assert _logged(c) == []  # no event logged
        assert not (tmp_path / "serving" / "shared_events" / "stock_level").exists()
        assert c.get("/status").json()["feeds_open"] is False


@pytest.mark.parametrize("token", [FEED, TOKEN])
def test_the_feed_token_or_the_admin_token_is_let_in(tmp_path: Path, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    with in_process_service(tmp_path, SLOTCAST_FEED_TOKEN=FEED) as c:
        product = _offered(c)[0]
        r = _sold_out(c, product, auth)
        assert r.status_code == 200 and r.json() == {"updated": 1}, r.text  # type: ignore[attr-defined]
        assert product not in _offered(c)
        r = _purchase(c, product, auth)
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text  # type: ignore[attr-defined]
        assert _logged(c) == [product]


def test_without_a_feed_token_the_feeds_stay_open_and_say_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "serving"), in_process_service(tmp_path) as c:
        product = _offered(c)[0]
        assert _sold_out(c, product, {}).status_code == 200  # type: ignore[attr-defined]
        assert product not in _offered(c)
        assert _purchase(c, product, {}).status_code == 200  # type: ignore[attr-defined]
        assert _logged(c) == [product]
        assert c.get("/status").json()["feeds_open"] is True
    warned = [r.getMessage() for r in caplog.records if "SLOTCAST_FEED_TOKEN" in r.getMessage()]
    assert len(warned) == 1 and "POST /products/stock" in warned[0], warned
