"""The durable event log of ``POST /events``: JSON lines appended with one ``write`` and an
``fsync`` before the request is acknowledged, so an accepted event survives a crash or restart.
A failing write raises ``EventLogUnavailableError`` (503): the caller retries, nothing is lost.

Segments rotate by size under ``$STATE/serving/events/``, one writer each: a segment's name holds
its worker's replica and worker number and process id (two replicas or workers never append to
the same file, even on a shared volume, where process ids can repeat); ``read_all`` reads every
``events-*.jsonl`` back in order. Live events reach the model at once through the online store's
live-session features; ``slotcast data append-events`` (``pipelines/commands/data_events.py``)
appends the log to a data directory's events table so that the next training run learns from them."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from serving.catalog import US
from serving.errors import EventLogUnavailableError


def event_records(events: Iterable[Any], ids: Iterable[int], now: datetime) -> list[dict[str, Any]]:
    """The log's records of ``POST /events``'s events (pydantic ``Event``s): ``ts`` in UTC (absent:
    ``now``), also in microseconds (``ts_us``), and serving's id where the client sent none."""
    records = []
    for e, event_id in zip(events, ids, strict=True):
        r = e.model_dump()
        ts = (e.ts or now).astimezone(UTC)
        r["ts"], r["ts_us"] = ts.isoformat(), int(ts.timestamp() * US)
        if r["event_id"] is None:  # serving's ids (serving/event_ids.py), above any import
            r["event_id"] = event_id
        records.append(r)
    return records


class EventLog:
    def __init__(self, directory: Path, rotate_bytes: int = 64 * 1024 * 1024, owner: str = "") -> None:
        """``owner``: the writing worker's name (serving/event_ids.py ``owner_name``)."""
        self.directory = Path(directory)
        self.owner = owner
        self.rotate_bytes = rotate_bytes
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0

    def _open_segment(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # Time, owner and pid keep segment names unique across replicas, workers and restarts.
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        who = f"{self.owner}-" if self.owner else ""
        name = f"events-{stamp}-{who}{os.getpid()}-{time.monotonic_ns()}.jsonl"
        self._path = self.directory / name
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = 0
        # The new name durable too: an fsync of the file's data does not persist its directory
        # entry, and a power cut could drop a whole segment of acknowledged events.
        fsync_dir(self.directory)

    def append(self, records: list[dict[str, Any]]) -> None:
        """Append ``records`` durably (all or none visible as whole lines) or raise 503."""
        payload = "".join(json.dumps(r, separators=(",", ":"), default=str) + "\n" for r in records).encode()
        with self._lock:
            try:
                if self._fd is None or self._size >= self.rotate_bytes:
                    self.close_segment()
                    self._open_segment()
                assert self._fd is not None
                written = os.write(self._fd, payload)
                if written != len(payload):
                    raise OSError(f"short write ({written} of {len(payload)} bytes)")
                os.fsync(self._fd)
                self._size += written
            except OSError as exc:
                # The segment may hold a torn line now; start a new one next time. read_all skips
                # torn lines, and those events were never acknowledged.
                self.close_segment()
                raise EventLogUnavailableError(f"event log write failed: {exc.strerror or exc}") from exc

    def close_segment(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None

    def close(self) -> None:
        with self._lock:
            self.close_segment()

    def writable(self) -> bool:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            return os.access(self.directory, os.W_OK)
        except OSError:
            return False


def read_all(directory: Path) -> Iterator[dict[str, Any]]:
    """Every complete record in the log, oldest segment first; a torn last line is skipped."""
    for path in sorted(Path(directory).glob("events-*.jsonl")):
        with path.open("rb") as fh:
            for line in fh:
                if not line.endswith(b"\n"):
                    break
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue


def fsync_dir(directory: Path) -> None:
    """Make the names in ``directory`` durable (a new file, a rename): an fsync of a file's data
    does not persist its directory entry."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
