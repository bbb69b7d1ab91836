"""HTTP tests that start their own in-process service (settings of their own, or two workers in
turn): one service runs at a time in a process, so these live apart from the modules that share the
``client`` fixture's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.serving.conftest import TOKEN, in_process_service

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_two_workers_never_give_the_same_event_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers of one service (BentoML's worker_index 1 and 2) numbering events in the same
    microsecond: ids from the clock alone (microseconds * 1000 + index) were the same in both, and
    ``slotcast data append-events`` kept only one of the two events (event_id is the table's key)."""
    import time

    import bentoml

    from serving.event_log import read_all

    frozen_ns = 1_800_000_000_123_456_789
    monkeypatch.setattr(time, "time_ns", lambda: frozen_ns)
    for worker in (1, 2):
        monkeypatch.setattr(bentoml.server_context, "worker_index", worker)
        with in_process_service(tmp_path) as c:  # the workers share the state directory
            for _ in range(2):
                ev = [{"user_id": worker, "type": "like"}] * 3
                assert c.post("/events", json={"events": ev}).status_code == 200
    logged = read_all(tmp_path / "serving" / "events")
    ids = [e["event_id"] for e in logged]
    assert len(ids) == 12 and len(set(ids)) == 12, ids
    for e in logged:  # the worker's index in the last digits, above the clock's microseconds * 1000
        assert e["event_id"] % 1000 == e["user_id"] and frozen_ns <= e["event_id"] < 2**63
    for worker in (1, 2):  # increasing within a worker, in the order given
        mine = [e["event_id"] for e in logged if e["user_id"] == worker]
        assert mine == sorted(mine)


def test_reload_without_any_model_is_503_and_a_reload_of_the_serving_one_swaps_nothing(
    tmp_path: Path, bundle_dir: Path
) -> None:
    """A reload that loads nothing, with nothing loaded before, answered 200 {"reloaded": false},
    as if the newest champion were serving: it is the 503 (with the reason) of every path that has
    no model. "reloaded": false is the answer when the versions loaded are those serving."""
    import shutil

    bundles = tmp_path / "bundles"
    bundles.mkdir()  # no bundle in it yet
    with in_process_service(tmp_path, SLOTCAST_MODEL_SOURCE="dir", SLOTCAST_BUNDLE_DIR=str(bundles)) as c:
        assert c.get("/status").json()["model_version"] is None
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 503 and r.headers["content-type"].startswith("application/json"), r.text
        assert "no model loaded" in r.json()["error"] and str(bundles) in r.json()["error"], r.text
        shutil.copytree(bundle_dir, bundles, dirs_exist_ok=True)
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 200 and r.json()["reloaded"] is True, r.text
        version = r.json()["model_version"]
        assert version.startswith("dir-") and c.get("/status").json()["model_version"] == version
        r = c.post("/admin/reload", headers=AUTH)  # the newest is serving already
        body = r.json()
        assert r.status_code == 200 and {k: body[k] for k in ("model_version", "challenger_version", "reloaded")} == {
            "model_version": version, "challenger_version": None, "reloaded": False
        }, r.text  # fmt: skip
        # No data directory here: each reload tries the catalogue again and says why it has none.
        assert body["catalogue_reloaded"] is False and "required table" in body["catalogue_error"], r.text
