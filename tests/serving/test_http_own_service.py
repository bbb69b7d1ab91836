"""HTTP tests that start their own in-process service (settings of their own, or two workers in
turn): one service runs at a time in a process, so these live apart from the modules that share the
``client`` fixture's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.serving.conftest import in_process_service


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
