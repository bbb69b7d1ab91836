"""``POST /community/push`` with ``at``: the push judged as of that time (a replay of a past
campaign, a simulated world), as the carousel's ``at`` (tests/serving/test_replay_at.py). The
products on offer (launched by ``at``), the quiet hours and the frequency cap's window are taken at
``at``, and nothing sent at or after it is read: not the pushes sent, not the purchases and clicks
folded into users' factors. Before, a push had no ``at`` (refused as an unknown field) and was
always judged by the service's clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from starlette.testclient import TestClient

from serving.demo import N_CATEGORIES
from tests.serving.conftest import TOKEN, in_process_service
from tests.serving.test_http_input import names
from tests.serving.test_push_fold_in import PRODUCT, _service, bundle, new  # noqa: F401 - fixtures

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _push(client: TestClient, at: datetime | None = None, **req: Any) -> dict[str, Any]:
    body = {**req, **({"at": at.isoformat()} if at is not None else {})}
    r = client.post("/community/push", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_a_push_at_a_past_time_offers_what_was_launched_then(tmp_path: Path) -> None:
    """The demo world's products launch 100 days before the service starts."""
    now = datetime.now(UTC)
    before, after = now - timedelta(days=101), now - timedelta(days=99)
    with in_process_service(tmp_path) as c:
        r = c.post("/community/push", json={"community_id": 0, "product_id": 5, "at": before.isoformat()})
        assert r.status_code == 409 and r.json()["field"] == "product_id", r.text
        assert r.json()["error"].startswith("product 5 not launched until "), r.text
        assert set(_push(c, after, community_id=0, product_id=5)["users"]["product_id"]) == {5}
        assert set(_push(c, community_id=0, product_id=5)["users"]["product_id"]) == {5}  # no ``at``: now
        # The products direction offers nothing launched after ``at`` either.
        assert _push(c, before, segment="buyer", k=5)["products"] == []
        assert len(_push(c, after, segment="buyer", k=5)["products"]) == 5


def test_a_push_at_a_past_time_is_in_its_quiet_hours_and_too_far_ahead_is_refused(tmp_path: Path) -> None:
    """Quiet hours 22:00-08:00 UTC (the default): ``send_after`` is read on ``at``'s clock, so a
    replay says when the push would have gone out (a time that may be past)."""
    day = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    with in_process_service(tmp_path) as c:
        late = _push(c, day + timedelta(hours=23), community_id=0, product_id=5)
        assert late["send_after"] == (day + timedelta(days=1, hours=8)).isoformat().replace("+00:00", "Z")
        assert _push(c, day + timedelta(hours=12), community_id=0, product_id=5)["send_after"] is None
        ahead = (datetime.now(UTC) + timedelta(days=2)).isoformat()  # the skew allowed: a day
        r = c.post("/community/push", json={"community_id": 0, "product_id": 5, "at": ahead})
        assert r.status_code == 422 and names(r, "at"), r.text
        assert "ahead of the service's clock" in r.json()["error"]
        for bad in ("9999-12-31T00:00:00Z", "1969-12-31T23:59:59Z", "2026-01-01T12:00:00"):
            r = c.post("/community/push", json={"segment": "buyer", "at": bad})
            assert 400 <= r.status_code < 500 and names(r, "at"), (bad, r.text)


def test_a_replay_caps_by_the_pushes_sent_before_at_only(tmp_path: Path) -> None:
    """Cap 2 pushes in 7 days (the default). A user pushed twice two days ago is capped now and in a
    replay after those pushes, not in one before them (nor after only the first). A replay records no
    push: the service counts the client's ``push_sent`` events only."""
    sent = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
    req = {"community_id": 0, "product_id": 5, "max_users": 1000}
    times = {"before": sent - timedelta(hours=1), "between": sent + timedelta(seconds=30),
             "after": sent + timedelta(hours=1), "now": None}  # fmt: skip
    with in_process_service(tmp_path) as c:
        user = _push(c, **req)["users"]["user_id"][0]
        capped = {k: _push(c, at, **req)["suppressed"]["frequency_cap"] for k, at in times.items()}
        pushes = [{"user_id": user, "type": "push_sent", "product_id": 5, "event_id": 10**12 + i,
                   "ts": (sent + timedelta(minutes=i)).isoformat()} for i in range(2)]  # fmt: skip
        assert c.post("/events", json={"events": pushes}).status_code == 200
        for _ in range(2):  # replays, asked twice: they record nothing
            got = {k: _push(c, at, **req) for k, at in times.items()}
            reached = {k: user in g["users"]["user_id"] for k, g in got.items()}
            assert reached == {"before": True, "between": True, "after": False, "now": False}
            more = {k: g["suppressed"]["frequency_cap"] - capped[k] for k, g in got.items()}
            assert more == {"before": 0, "between": 0, "after": 1, "now": 1}
        r = c.get(f"/users/{user}/data", headers=AUTH)
        assert r.status_code == 200 and r.json()["recent_pushes"] == 2, r.text


def test_a_replay_folds_in_no_purchase_made_at_or_after_at(
    tables: dict[str, pa.Table],
    bundle: Path,  # noqa: F811 - the fixture imported above
    new: np.ndarray,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A user the bundle does not hold (segment "new") buys products of their category (the
    product's) three hours ago: folded in, the push ranks them by those purchases (p_convert > 0);
    a replay of a moment before the purchases scores them as unknown (0), as then."""
    user = int(next(u for u in new if u % 3 == 1 and u % N_CATEGORIES == PRODUCT % N_CATEGORIES))
    bought = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    earlier, later = bought - timedelta(minutes=1), bought + timedelta(minutes=1)
    req = {"community_id": 1, "product_id": PRODUCT, "max_users": 10**6}  # community 1: user % 3 == 1
    with _service(tables, tmp_path, bundle) as c:

        def p_convert(at: datetime | None) -> float:
            users = _push(c, at, **req)["users"]
            return float(users["p_convert"][users["user_id"].index(user)])

        def best(at: datetime | None) -> float:  # the products direction: the mean over "new"
            return max(p["p_convert"] for p in _push(c, at, segment="new", k=5)["products"])

        buys = [{"user_id": user, "type": "purchase", "product_id": user % N_CATEGORIES + N_CATEGORIES * j,
                 "ts": bought.isoformat()} for j in range(4)]  # fmt: skip
        assert c.post("/events", json={"events": buys}).status_code == 200
        assert p_convert(None) > 0 and best(None) > 0  # now: folded in
        assert p_convert(later) == p_convert(None) and best(later) == best(None)
        assert p_convert(earlier) == 0.0 and best(earlier) == 0.0  # nothing of theirs before ``at``
        assert p_convert(None) > 0  # the cut factors were not cached for later answers


def test_a_replay_reaches_the_community_members_of_at(tmp_path: Path) -> None:
    """The demo world's members joined 100 days before the service started. A member who left two
    days ago is in a replay of three days ago and not in one of a day ago; one who joined two days
    ago the other way round. Before the members joined, the community had none."""
    moved = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
    earlier, later = moved - timedelta(days=1), moved + timedelta(days=1)
    req = {"community_id": 0, "product_id": 5, "max_users": 1000}
    with in_process_service(tmp_path) as c:
        members = _push(c, **req)["users"]["user_id"]
        leaver = members[0]
        joiner = next(u for u in _push(c, **{**req, "community_id": 1})["users"]["user_id"] if u % 3 == 1)
        changes = [{"user_id": leaver, "type": "community_leave", "community_id": 0, "ts": moved.isoformat()},
                   {"user_id": joiner, "type": "community_join", "community_id": 0, "ts": moved.isoformat()}]  # fmt: skip
        assert c.post("/events", json={"events": changes}).status_code == 200
        reached = {k: set(_push(c, at, **req)["users"]["user_id"]) for k, at in
                   {"earlier": earlier, "later": later, "now": None}.items()}  # fmt: skip
        assert {k: (leaver in r, joiner in r) for k, r in reached.items()} == {
            "earlier": (True, False),
            "later": (False, True),
            "now": (False, True),
        }
        assert reached["earlier"] - {leaver} == reached["later"] - {joiner}  # nobody else moved
        long_ago = datetime.now(UTC) - timedelta(days=101)
        assert _push(c, long_ago, community_id=0)["audience_size"] == 0
        assert _push(c, long_ago + timedelta(days=2), community_id=0)["audience_size"] == len(members)
