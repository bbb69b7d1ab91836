"""Event ids of several workers of several replicas never meet; what does not fit is refused."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from pydantic import ValidationError

from features.privacy import DeletionLedger
from serving.catalog import Catalog
from serving.demo import DemoFeatureSource, DemoModelSource
from serving.event_ids import DuplicateWorkerError, EventIds, IdLayoutError
from serving.event_log import read_all
from serving.runtime import SlotcastApp
from serving.schemas import Event, EventsRequest
from serving.settings import ServingSettings

NOW = 1_800_000_000_000_000  # microseconds, ~2027


def _given(ids: dict[tuple[int, int], EventIds], now: list[int]) -> dict[tuple[int, int], list[int]]:
    """Every generator takes batches of the same sizes on the same clock, one giving a big batch
    that runs it ahead of the clock while the others give one."""
    given: dict[tuple[int, int], list[int]] = {k: [] for k in ids}
    for n in (1, 3, 2500, 1, 7, 1):
        for k, gen in ids.items():
            given[k] += gen.take(1 if n == 2500 and k != next(iter(ids)) else n)
        now[0] += 1
    return given


def test_event_ids_of_two_workers_in_the_same_microsecond_never_meet() -> None:
    """Workers tag their ids with their index: the same clock, batches of any size, and one worker
    running ahead of the clock (a big batch) still give disjoint ids, increasing within a worker."""
    now = [NOW]
    given = _given({(0, w): EventIds(w, clock_us=lambda: now[0]) for w in (1, 2)}, now)
    for ids in given.values():
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert ids[0] >= 1_800_000_000_000_000_000 and ids[-1] < 2**63  # the clock's size, int64
    assert not set(given[(0, 1)]) & set(given[(0, 2)])
    # replica 0 gives what the single service gave before replicas had numbers: tag = worker
    assert {i % 1000 for i in given[(0, 1)]} == {1} and {i % 1000 for i in given[(0, 2)]} == {2}


def test_the_same_worker_of_two_replicas_never_gives_the_same_id() -> None:
    """Two `slotcast serve` processes (hosts) each have a worker 1, 2 ...: with the worker index
    alone as the tag, the same microsecond gave both the same id, and append-events dropped one
    as a clash. Frozen clock, batches that run ahead of it, the corners of the layout."""
    now = [NOW]
    keys = list(itertools.product((0, 1, 17, 30), (1, 2, 31)))
    gens = {(r, w): EventIds(w, replica=r, clock_us=lambda: now[0]) for r, w in keys}
    given = _given(gens, now)
    every = [i for ids in given.values() for i in ids]
    assert len(set(every)) == len(every), "two workers gave the same id"
    assert len({g.tag for g in gens.values()}) == len(gens) and max(g.tag for g in gens.values()) == 991
    assert max(every) < 2**63
    for (r, w), ids in given.items():
        assert ids == sorted(ids) and {i % 1000 for i in ids} == {32 * r + w}


def test_what_the_tags_cannot_hold_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for worker, replica, field in ((32, 0, "SLOTCAST_SERVICE_WORKERS"), (1, 31, "SLOTCAST_REPLICA")):
        with pytest.raises(IdLayoutError, match=field) as err:
            EventIds(worker, replica=replica)
        assert err.value.field == field
    with pytest.raises(ValidationError, match="replica") as bad:
        ServingSettings(replica=31)
    assert "SLOTCAST_REPLICA=31" in str(bad.value) and "0 to 30" in str(bad.value)
    monkeypatch.setenv("SLOTCAST_REPLICA", "-1")
    with pytest.raises(ValidationError, match="SLOTCAST_REPLICA=-1"):
        ServingSettings()
    monkeypatch.setenv("SLOTCAST_REPLICA", "30")
    assert ServingSettings().replica == 30
    # BentoML's config is refused before any worker starts
    from serving.service import _service_config

    monkeypatch.setenv("SLOTCAST_SERVICE_WORKERS", "32")
    with pytest.raises(IdLayoutError, match="SLOTCAST_SERVICE_WORKERS=32"):
        _service_config()


def _app(tables, state: Path, replica: int = 0, worker: int | None = None) -> SlotcastApp:  # type: ignore[no-untyped-def]
    settings = ServingSettings(state_dir=state, model_source="demo", feature_source="demo", replica=replica)
    source = DemoModelSource(600, 120, 0.1, 3, seed=1)
    app = SlotcastApp(
        settings, source, DemoFeatureSource(tables), Catalog(tables), DeletionLedger(state), worker=worker
    )
    app.reload()
    return app


def test_two_replicas_sharing_a_state_dir_log_apart_and_their_ids_never_meet(
    tables, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker 1 of replica 0 and of replica 1 on one state directory, every request in the same
    microsecond: each writes its own segments (names hold the replica and worker), and every id
    differs, so append-events keeps every event."""
    import serving.event_ids as event_ids

    monkeypatch.setattr(event_ids.time, "time_ns", lambda: NOW * 1000)
    one, two = _app(tables, tmp_path, 0, 1), _app(tables, tmp_path, 1, 1)
    batch = EventsRequest(events=[Event(user_id=1, type="like")] * 1500)
    for app in (one, two, one, two):
        app.events(batch)
    one.close()
    two.close()
    names = sorted(p.name for p in one.settings.events_dir.iterdir())
    assert len(names) == 2 and any("-r0w1-" in n for n in names) and any("-r1w1-" in n for n in names)
    ids = [e["event_id"] for e in read_all(one.settings.events_dir)]
    assert len(ids) == 6000 and len(set(ids)) == 6000
    assert {i % 1000 for i in ids} == {1, 33}


def test_a_second_service_with_the_same_replica_number_refuses_to_start(
    tables, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `slotcast serve` on one state directory, both left at replica 0: the second worker 1
    would give the first's ids and share its pending live events; it refuses, naming the setting.
    Another replica number starts; once the first is gone its number is free again."""
    import serving.event_ids as event_ids

    monkeypatch.setattr(event_ids, "CLAIM_WAIT_S", 0.2)  # how long it waits before refusing
    first = _app(tables, tmp_path, 0, 1)
    with pytest.raises(DuplicateWorkerError, match="SLOTCAST_REPLICA"):
        _app(tables, tmp_path, 0, 1)
    other = _app(tables, tmp_path, 1, 1)
    first.close()
    _app(tables, tmp_path, 0, 1).close()
    other.close()


def test_the_replica_reaches_the_ids_through_http(tmp_path: Path) -> None:
    from tests.serving.conftest import in_process_service

    with in_process_service(tmp_path, SLOTCAST_REPLICA="5") as c:
        r = c.post("/events", json={"events": [{"user_id": 3, "type": "like"}] * 3})
        assert r.status_code == 200, r.text
    ids = [e["event_id"] for e in read_all(tmp_path / "serving" / "events")]
    assert len(ids) == 3 and {i % 1000 // 32 for i in ids} == {5}


def test_a_worker_waits_for_its_name_while_another_holds_it_a_moment(tmp_path: Path) -> None:
    """A worker sweeping a stopped worker's pending live events holds that worker's name for one
    push (serving/live_pending.py): the stopped worker starting again meanwhile waits, not refuses."""
    import threading
    import time

    from serving.event_ids import claim, release, try_claim

    held = try_claim(tmp_path, "r0w1")
    assert held is not None and try_claim(tmp_path, "r0w1") is None
    with pytest.raises(DuplicateWorkerError):
        claim(tmp_path, "r0w1", wait_s=0.1)
    threading.Timer(0.3, release, args=(held,)).start()
    started = time.monotonic()
    fd = claim(tmp_path, "r0w1", wait_s=10.0)
    assert 0.2 < time.monotonic() - started < 10.0
    release(fd)
