"""What a deletion reaches when the catalogue does not know the user: the service's own logs name
them all the same (events they sent, answers it gave them), and `DELETE /users/{id}` must record
them so that `slotcast privacy purge` erases those lines. It answered 404 "unknown user" and
recorded nothing, so the lines stayed on disk for good."""

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
