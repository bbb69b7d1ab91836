"""The durable event log and the rotated impression log."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from serving.errors import EventLogUnavailableError
from serving.event_log import EventLog, read_all
from serving.impressions import ImpressionLog, read_impressions


def test_events_survive_a_restart_and_rotate(tmp_path: Path) -> None:
    log = EventLog(tmp_path, rotate_bytes=200)
    for i in range(20):
        log.append([{"event_id": i, "type": "like"}])
    log.close()  # a restart: a new log object appends to new segments
    log2 = EventLog(tmp_path, rotate_bytes=200)
    log2.append([{"event_id": 20, "type": "like"}])
    assert [r["event_id"] for r in read_all(tmp_path)] == list(range(21))
    assert len(list(tmp_path.glob("events-*.jsonl"))) > 2


def test_a_failing_disk_refuses_the_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("/dev/full is needed to simulate a full disk")
    log = EventLog(tmp_path)
    log.append([{"event_id": 1}])

    def full_disk(self: EventLog) -> None:  # the next segment lands on a full disk
        self._fd = os.open("/dev/full", os.O_WRONLY)
        self._size = 0

    monkeypatch.setattr(EventLog, "_open_segment", full_disk)
    log._size = log.rotate_bytes  # force a new segment
    with pytest.raises(EventLogUnavailableError) as err:
        log.append([{"event_id": 2}])
    assert err.value.http_status == 503
    assert [r["event_id"] for r in read_all(tmp_path)] == [1]


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "events-0.jsonl").write_text('{"event_id": 1}\n{"event_id": 2')
    assert [r["event_id"] for r in read_all(tmp_path)] == [1]


def test_impressions_rotate_and_read_back(tmp_path: Path) -> None:
    log = ImpressionLog(tmp_path, rotate_bytes=1024)
    for i in range(100):
        assert log.write({"request_id": str(i), "items": [1, 2, 3]})
    log.close()
    assert [r["request_id"] for r in read_impressions(tmp_path)] == [str(i) for i in range(100)]
    assert len(list(tmp_path.glob("impressions-*.jsonl"))) >= 3


def test_impression_failure_never_fails_the_answer(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    log = ImpressionLog(blocker / "sub")
    assert log.write({"request_id": "1"}) is False and log.failures == 1


def test_a_new_segment_is_durable_in_its_directory_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync of a new file's data does not make the file's name durable: after a power cut the
    segment holding acknowledged events could be missing from the directory. The directory is
    fsynced once per new segment, before the first acknowledgement from it."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to name the fsynced descriptors")
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    log = EventLog(tmp_path / "events")
    log.append([{"event_id": 1}])
    segment = next((tmp_path / "events").glob("events-*.jsonl"))
    assert str(tmp_path / "events") in synced and str(segment) in synced, synced
