"""Security and privacy over real HTTP: bearer tokens on admin and user-data endpoints, no user
ids or tokens in the service's INFO log, opt-out and deletion end to end (down to the next
training set)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipelines.service_process import running_service
from tests.reliability.conftest import TOKEN, auth, demo_env, feast_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Requests whose tokens must all be refused: none, wrong, a prefix of the right one, the right one
# with one more character, the right one under another scheme, and an empty bearer.
WRONG = [
    {},
    {"Authorization": "Bearer nope"},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},
    {"Authorization": "Bearer"},
]
PROTECTED = [("POST", "/admin/reload"), ("GET", "/users/{u}/data"), ("DELETE", "/users/{u}")]
SECRET_USERS = (287, 263, 251)  # ids used only below, so a hit in the log is one of these requests


def _user_id_in(log: str, uid: int) -> list[str]:
    pat = re.compile(rf"(?<![\w.:-]){uid}(?![\w.:-])")
    return [line for line in log.splitlines() if pat.search(line)]


def test_tokens_and_logs(tmp_path: Path) -> None:
    log_path = tmp_path / "service.log"
    with running_service(env=demo_env(tmp_path), log_path=log_path) as base, httpx.Client(base_url=base) as c:
        u = SECRET_USERS[0]
        for method, path in PROTECTED:
            for headers in WRONG:
                r = c.request(method, path.format(u=u), headers=headers)
                assert r.status_code in (401, 403), (method, path, headers, r.status_code)
                assert r.json().get("error"), r.text
        # The user was not deleted by any refused call.
        assert c.get(f"/users/{u}/data", headers=auth()).json()["deleted"] is False
        # The right token is let in everywhere.
        assert c.post("/admin/reload", headers=auth()).json()["reloaded"] is True
        data = c.get(f"/users/{u}/data", headers=auth())
        assert data.status_code == 200 and data.json()["user_id"] == u
        # Traffic that names users, good and bad, so that the log has every chance to leak them.
        for uid in SECRET_USERS:
            assert c.post("/carousel", json={"user_id": uid, "stream_id": 0, "k": 5}).status_code == 200
            assert c.post("/carousel", json={"user_id": uid, "stream_id": 0, "k": 99}).status_code == 400
            assert c.get(f"/users/{uid}/segment").status_code == 200
            ev = {"events": [{"user_id": uid, "type": "purchase", "product_id": 3, "amount": 5.0}]}
            assert c.post("/events", json=ev).status_code == 200
            bad = {"events": [{"user_id": uid, "type": "purchase", "product_id": "x"}]}
            assert c.post("/events", json=bad).status_code == 422
        assert c.delete(f"/users/{SECRET_USERS[2]}", headers=auth()).status_code == 200
        assert c.delete("/users/99999", headers=auth()).status_code == 404
    log = log_path.read_text()
    assert "INFO" in log, "the log captured nothing at INFO: the check below would prove nothing"
    assert TOKEN not in log and TOKEN[:8] not in log
    leaks = {uid: _user_id_in(log, uid) for uid in (*SECRET_USERS, 99999)}
    assert not any(leaks.values()), leaks


def test_admin_endpoints_refuse_everyone_without_a_configured_token(tmp_path: Path) -> None:
    env = {**demo_env(tmp_path), "SLOTCAST_ADMIN_TOKEN": ""}
    with (
        running_service(env=env, log_path=tmp_path / "service.log") as base,
        httpx.Client(base_url=base) as c,
    ):
        for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer anything"}):
            r = c.post("/admin/reload", headers=headers)
            assert r.status_code in (401, 403) and "SLOTCAST_ADMIN_TOKEN" in r.json()["error"], r.text


def _online_profile(world: dict[str, Any], uid: int) -> dict[str, Any] | None:
    """The user's user_profile row read straight from Redis through Feast (None: no row)."""
    from features.online_fast import USER_FEATURES
    from features.settings import FeatureSettings
    from features.store import open_store

    settings = FeatureSettings(state_dir=world["state"], online_store="redis", redis_url=world["redis"].url)
    got = (
        open_store(settings)
        .get_online_features(
            features=[f"user_profile:{f}" for f in USER_FEATURES], entity_rows=[{"user_id": uid}]
        )
        .to_dict()
    )
    row = {f: got[f][0] for f in USER_FEATURES}
    return None if all(v is None for v in row.values()) else row


def test_opt_out_and_deletion_end_to_end(feast_world: dict[str, Any], tmp_path: Path) -> None:
    """On the Feast + Redis world: an opted-out user gets a flagged non-personal answer; a deleted
    user gets none personal afterwards, sits in the ledger, loses their online rows and is absent
    from the interaction matrix the next training run builds."""
    from features.privacy import DeletionLedger
    from training.interactions import build_interactions, deleted_users, load_events
    from training.settings import EventWeights

    state: Path = feast_world["state"]
    opted_out, victim, other = 3, 9, 11  # demo world: user u opts out when u % 7 == 3
    before = build_interactions(load_events(state / "data", deleted_users(state)), EventWeights())
    assert victim in before.user_ids and other in before.user_ids, "pick users who have interactions"
    with (
        running_service(env=feast_env(feast_world), log_path=tmp_path / "service.log") as base,
        httpx.Client(base_url=base, timeout=30) as c,
    ):
        r = c.post("/carousel", json={"user_id": opted_out, "stream_id": 0, "k": 5}).json()
        assert r["personalized"] is False and r["fallback"] == "no_consent", r
        r = c.post("/carousel", json={"user_id": victim, "stream_id": 0, "k": 5}).json()
        assert r["personalized"] is True and r["fallback"] is None, r
        held = c.get(f"/users/{victim}/data", headers=auth()).json()
        assert held["known"] and held["online_features"], "the store should hold features before deletion"
        assert c.delete(f"/users/{victim}", headers=auth()).json() == {"user_id": victim, "deleted": True}
        r = c.post("/carousel", json={"user_id": victim, "stream_id": 0, "k": 5}).json()
        assert r["personalized"] is False and r["fallback"] == "deleted", r
        held = c.get(f"/users/{victim}/data", headers=auth()).json()
        assert held["deleted"] is True and held["recent_purchases"] == [], held
        # The online store (Redis) no longer holds the user's rows; the other user keeps theirs.
        assert _online_profile(feast_world, victim) is None
        assert _online_profile(feast_world, other) is not None
        # Someone else is untouched.
        assert c.post("/carousel", json={"user_id": other, "stream_id": 0, "k": 5}).json()["personalized"]
        # Many at once (POST /users/delete): the same, with one pass over Redis's keys for all.
        batch = [int(u) for u in sorted(before.user_ids) if u not in (victim, other) and u % 7 != 3][:3]
        assert all(_online_profile(feast_world, u) is not None for u in batch)
        r = c.post("/users/delete", json={"user_ids": [*batch, 10**12]}, headers=auth()).json()
        assert r == {"deleted": batch, "unknown": [10**12]}, r
        for u in batch:
            assert _online_profile(feast_world, u) is None
            r = c.post("/carousel", json={"user_id": u, "stream_id": 0, "k": 5}).json()
            assert r["personalized"] is False and r["fallback"] == "deleted", r
        assert _online_profile(feast_world, other) is not None
    # Survives a restart: the ledger is durable and the next server still refuses personalization.
    assert {victim, *batch} <= DeletionLedger(state).user_ids()
    after = build_interactions(load_events(state / "data", deleted_users(state)), EventWeights())
    assert victim not in after.user_ids and other in after.user_ids
    assert not set(batch) & set(after.user_ids)
