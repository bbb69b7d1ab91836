"""`slotcast privacy purge` takes a deleted user's records off the disk while the service runs.

Before, a deletion took the user out of every answer, training and evaluation, but their lines
stayed in the service's logs (events, impressions, shared events, consent changes) and their rows
in the data directory's tables."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pyarrow as pa
import pytest

from features.data_model import read_table, write_table
from pipelines.cli import main
from tests.serving.conftest import TOKEN, in_process_service

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _records(state: Path) -> list[tuple[Path, dict]]:
    out = []
    for path in sorted(state.rglob("*.jsonl")):
        for raw in path.read_bytes().splitlines():
            if raw.strip():
                with contextlib.suppress(ValueError):
                    out.append((path, json.loads(raw)))
    return out


def _mentions(rec: dict, user: int) -> bool:
    return rec.get("user_id") == user or user in (rec.get("users") or [])


def _ok(r) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == 200, r.text
    return r.json()


def test_purge_erases_a_deleted_user_from_logs_and_tables_while_serving(
    tables: dict[str, pa.Table], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    for name in ("users", "events", "memberships"):  # the data directory training reads
        write_table(state / "data", name, tables[name])
    with in_process_service(state) as client:
        audience = _ok(client.post("/community/push", json={"community_id": 1, "product_id": 5,
                                                            "max_users": 10_000}))["users"]["user_id"]  # fmt: skip
        gone, kept = audience[0], audience[1]
        for u in (gone, kept):
            events = [{"user_id": u, "type": "purchase", "product_id": 7},
                      {"user_id": u, "type": "push_sent", "product_id": 5, "community_id": 1},
                      {"user_id": u, "type": "community_join", "community_id": 2}]  # fmt: skip
            assert _ok(client.post("/events", json={"events": events}))["accepted"] == 3
            _ok(client.post("/carousel", json={"user_id": u, "stream_id": 1}))
            _ok(client.put(f"/users/{u}/consent", json={"marketing": True}, headers=AUTH))
        before = {p: p.stat().st_size for p, _ in _records(state)}
        places = {p.parent.name for p in before}
        assert {"events", "impressions", "purchase", "push_sent", "community_join", "privacy"} <= places
        assert sum(_mentions(r, gone) for _, r in _records(state)) >= 8
        # The right of access names those lines, log by log (GET /users/{id}/data).
        logs = _ok(client.get(f"/users/{gone}/data", headers=AUTH))["service_logs"]
        assert logs["events"] == 3 and logs["impressions"] == 2, logs  # the push and the carousel
        assert _ok(client.delete(f"/users/{gone}", headers=AUTH))["deleted"]
        held = _ok(client.get(f"/users/{gone}/data", headers=AUTH))
        assert held["deleted"] and held["model_versions"] == [] and held["service_logs"] == logs, held

        assert main(["privacy", "purge"]) == 0  # the service keeps running

        after = _records(state)
        assert not [(p.name, r) for p, r in after if _mentions(r, gone)]
        assert {p: p.stat().st_size for p in before} == before  # edited in place, same lengths
        assert sum(r.get("user_id") == kept for _, r in after) >= 8  # the other user's records stay
        pushed = [r["users"] for _, r in after if r.get("kind") == "push"]
        assert pushed == [audience[1:]]  # the audience's answer lost only the deleted user
        for name in ("users", "events", "memberships"):
            ids = read_table(state / "data", name).column("user_id").to_pylist()
            assert gone not in ids and kept in ids, name
        # The service goes on writing and reading the same files, and answers as before.
        _ok(client.post("/events", json={"events": [{"user_id": kept, "type": "purchase", "product_id": 9}]}))
        held = _ok(client.get(f"/users/{kept}/data", headers=AUTH))
        assert {7, 9} <= {p["product_id"] for p in held["recent_purchases"]}, held
        held = _ok(client.get(f"/users/{gone}/data", headers=AUTH))
        assert held["deleted"] is True and held["service_logs"] == {}, held  # off the disk now
    from serving.event_log import read_all

    logged = [(e["user_id"], e.get("product_id")) for e in read_all(state / "serving" / "events")]
    assert (kept, 9) in logged and gone not in {u for u, _ in logged}


def test_purge_with_an_empty_ledger_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("SLOTCAST_STATE_DIR", str(tmp_path))
    assert main(["privacy", "purge"]) == 0
    assert "nothing to purge" in capsys.readouterr().out
    assert main(["privacy", "purge", "--data", str(tmp_path / "nope")]) == 2
    assert "not a data directory" in " ".join(capsys.readouterr().err.split())


def test_purge_waits_for_no_build_and_says_what_it_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The offline snapshot is rewritten under the feature build's lock; while a build holds it,
    the purge does the rest, names what it skipped and exits 1 (that build leaves the user out)."""
    import pyarrow.parquet as pq

    from features.privacy import DeletionLedger
    from features.settings import FeatureSettings
    from features.store import build_lock

    monkeypatch.setenv("SLOTCAST_STATE_DIR", str(tmp_path))
    snapshot = tmp_path / "features" / "offline" / "user_features.parquet"
    snapshot.parent.mkdir(parents=True)
    pq.write_table(pa.table({"user_id": pa.array([4, 5, 4], pa.int64()), "f": [1.0, 2.0, 3.0]}), snapshot)
    DeletionLedger(tmp_path).add(4)
    with build_lock(FeatureSettings(state_dir=tmp_path)):
        assert main(["privacy", "purge"]) == 1
    assert "another `slotcast features build`" in " ".join(capsys.readouterr().out.split())
    assert pq.read_table(snapshot).num_rows == 3
    assert main(["privacy", "purge"]) == 0
    assert pq.read_table(snapshot).column("user_id").to_pylist() == [5]
    assert "purged 1 deleted user(s)" in capsys.readouterr().out


def test_an_unreadable_table_is_named_and_the_rest_still_purged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was a bare "Parquet magic bytes not found" naming no file, and nothing after it purged."""
    from features.privacy import DeletionLedger

    monkeypatch.setenv("SLOTCAST_STATE_DIR", str(tmp_path))
    data = tmp_path / "data"
    users = pa.table({"user_id": [4, 5], "signup_ts": pa.array([0, 0], pa.timestamp("us", "UTC")),
                      "consent_personalization": [True, True], "consent_marketing": [True, True]})  # fmt: skip
    write_table(data, "users", users)
    (data / "events.parquet").write_bytes(b"not parquet")
    DeletionLedger(tmp_path).add(4)
    assert main(["privacy", "purge"]) == 1
    printed = " ".join(capsys.readouterr().out.split())
    assert f"skipped {data / 'events.parquet'}: not purged, Parquet magic bytes" in printed
    assert read_table(data, "users").column("user_id").to_pylist() == [5]
