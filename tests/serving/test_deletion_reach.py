"""What a deletion reaches, over HTTP: users the catalogue does not know but the service's logs
name (they answered 404 and their lines were never purged), and the audiences whose mean affinity
ranks a push's products (a deleted member counted in it)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from features.erasure import jsonl_files
from features.privacy import DeletionLedger
from pipelines.purge import purge
from tests.serving.conftest import TOKEN, in_process_service

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _lines_naming(state: Path, user_id: int) -> int:
    named = re.compile(rb'"user_id":\s*%d\b' % user_id)
    return sum(len(named.findall(p.read_bytes())) for p in jsonl_files(state / "serving"))


def test_users_known_only_from_the_service_logs_are_deleted_and_purged(tmp_path: Path) -> None:
    state = tmp_path / "state"
    clicker, viewer, nobody = 987_654_401, 987_654_402, 987_654_403
    with in_process_service(state) as c:
        events = [
            {"user_id": clicker, "type": "stream_view", "stream_id": 1},
            {"user_id": clicker, "type": "product_click", "product_id": 3, "stream_id": 1},
        ]
        assert c.post("/events", json={"events": events}).status_code == 200
        assert c.post("/carousel", json={"user_id": viewer, "stream_id": 1}).status_code == 200
        assert _lines_naming(state, clicker) == 2 and _lines_naming(state, viewer) == 1

        r = c.delete(f"/users/{clicker}", headers=AUTH)
        assert r.status_code == 200 and r.json() == {"user_id": clicker, "deleted": True}, r.text
        r = c.post("/users/delete", json={"user_ids": [viewer, nobody]}, headers=AUTH)
        assert r.status_code == 200 and r.json() == {"deleted": [viewer], "unknown": [nobody]}, r.text
        assert c.delete(f"/users/{nobody}", headers=AUTH).status_code == 404
        assert DeletionLedger(state).user_ids() == {clicker, viewer}

    purge(state, [], build_lock=contextlib.nullcontext)
    assert _lines_naming(state, clicker) == 0 and _lines_naming(state, viewer) == 0


def test_the_best_products_of_an_audience_count_no_deleted_member(tmp_path: Path) -> None:
    """`POST /community/push` with a community alone ranks products by its members' mean affinity;
    a deleted member must not count in it, as they are left out of the users direction. They
    counted (their zeroed factors as a score of 0), so with every member deleted the products still
    came back at the calibration's rate at 0, not at the 0 of an audience with no one to average."""
    with in_process_service(tmp_path / "state") as c:
        before = c.post("/community/push", json={"community_id": 2, "k": 5}).json()["products"]
        assert any(p["p_convert"] > 0 for p in before)
        members = [u for u in range(500) if u % 3 == 2]  # the demo world's community 2
        r = c.post("/users/delete", json={"user_ids": members}, headers=AUTH)
        assert r.status_code == 200 and r.json()["unknown"] == [], r.text
        after = c.post("/community/push", json={"community_id": 2, "k": 5}).json()["products"]
        assert [p["p_convert"] for p in after] == [0.0] * len(after), after
