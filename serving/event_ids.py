"""The ids serving gives to events sent without one (``POST /events``).

An id is ``sequence * 1000 + tag``. The sequence is the microsecond clock, or the last sequence this
worker gave plus one when that is ahead (requests in the same microsecond, a batch of many events),
so ids increase within a worker. The tag, the id's last three digits, names the worker among every
worker of every replica: ``32 * replica + worker``, where the replica is ``SLOTCAST_REPLICA``
(``slotcast serve --replica N``, 0 to 30, one per ``slotcast serve`` process: on several hosts, or
several on one host) and the worker is its index in that replica (BentoML's
``server_context.worker_index``, 1 to 31). Two workers never give the same id, even in the same
microsecond and whichever replica they belong to, which the clock alone did not ensure
(``event_id`` is the events table's key: ``slotcast data append-events`` left the second of two
such events out as a clash), nor the worker index alone (every replica has a worker 1).

Why 31 x 31: the tag must stay below 1000 (next paragraph), and neither half is the obvious one
to give up: a host rarely runs more than its cores' worth of workers, and the scaling plan's
5k carousels/s is 6 replicas x 4 workers (docs/scaling.md). A stride of 32 keeps replica 0's tags
equal to the worker index, the tags before replicas had a number: a single replica gives the ids
it gave before. Outside BentoML (tests, a script) the worker is the process id modulo 31, plus 1.

The ids are of the old ids' size (microseconds * 1000, ~1.8e18 in 2026), so they stay above every
imported or simulated id (those count from 1), and below 2**63 until the year 2262 (a fourth digit
for the tag would overflow int64 in 1999). They meet no id logged before this scheme nor before
a restart: a worker restarted with the same tag (or the first time with one) starts from its clock
again, and could meet its predecessor's ids only if the restart took less time than the predecessor
ran ahead of the clock (a microsecond per event given faster than that: 10 ms after the largest
batch, 10,000 events)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

TAG_SLOTS = 1000  # an id's last three digits
REPLICA_STRIDE = 32  # tag = REPLICA_STRIDE * replica + worker
REPLICAS = 31  # replicas 0..30
WORKERS = 31  # workers 1..31 of each: the largest tag is 30 * 32 + 31 = 991
assert (REPLICAS - 1) * REPLICA_STRIDE + WORKERS < TAG_SLOTS and WORKERS < REPLICA_STRIDE


class IdLayoutError(ValueError):
    """A replica or worker number the ids have no room for; ``field`` is the setting to change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_replica(replica: int) -> int:
    if not 0 <= replica < REPLICAS:
        raise IdLayoutError(
            "SLOTCAST_REPLICA",
            f"SLOTCAST_REPLICA={replica}: event ids have room for replicas 0 to {REPLICAS - 1} "
            "(serving/event_ids.py)",
        )
    return replica


def check_workers(workers: int) -> int:
    """Refuse a worker count (``SLOTCAST_SERVICE_WORKERS``) the tags cannot tell apart."""
    if not 1 <= workers <= WORKERS:
        raise IdLayoutError(
            "SLOTCAST_SERVICE_WORKERS",
            f"SLOTCAST_SERVICE_WORKERS={workers}: event ids have room for 1 to {WORKERS} workers "
            f"per replica (serving/event_ids.py); run more replicas instead (SLOTCAST_REPLICA, "
            f"0 to {REPLICAS - 1})",
        )
    return workers


def tag_of(replica: int, worker: int | None) -> int:
    """The tag of ``worker`` (1-based; None: this process, outside BentoML) of ``replica``."""
    check_replica(replica)
    if worker is None:
        worker = os.getpid() % WORKERS + 1
    elif not 1 <= worker <= WORKERS:
        raise IdLayoutError(
            "SLOTCAST_SERVICE_WORKERS",
            f"worker {worker} does not fit: event ids have room for workers 1 to {WORKERS} per "
            "replica (SLOTCAST_SERVICE_WORKERS at most that; more replicas instead, SLOTCAST_REPLICA)",
        )
    return REPLICA_STRIDE * replica + worker


def owner_name(replica: int, worker: int | None) -> str:
    """This worker's name in file names under the state directory (event log segments, pending
    live events): ``r<replica>w<worker>``, or ``r<replica>p<pid>`` outside BentoML."""
    return f"r{replica}w{worker}" if worker is not None else f"r{replica}p{os.getpid()}"


class DuplicateWorkerError(RuntimeError):
    """Another live process holds this replica and worker number on the same state directory."""


CLAIM_WAIT_S = 10.0  # a sweeping worker holds a stopped worker's name for one push (live_pending.py)


def claim(directory: Path, owner: str, wait_s: float | None = None) -> int:
    """Hold ``owner``'s name under ``directory`` for this process's life (an exclusive ``flock``,
    freed by the kernel when the process dies; returns the descriptor to keep). Two ``slotcast
    serve`` sharing a state directory with the same ``SLOTCAST_REPLICA`` (the default 0 for both)
    would give the same ids and write the same pending file: the second one refuses to start.

    It waits up to ``wait_s`` (CLAIM_WAIT_S) for the name first: another worker may hold a stopped
    worker's name for a moment, pushing the live events that worker left waiting."""
    deadline = time.monotonic() + (CLAIM_WAIT_S if wait_s is None else wait_s)
    while (fd := try_claim(directory, owner)) is None:
        if time.monotonic() >= deadline:
            raise DuplicateWorkerError(
                f"replica and worker {owner} already runs with this state directory ({directory}): "
                "give each `slotcast serve` sharing it its own replica number (SLOTCAST_REPLICA, "
                "--replica)"
            )
        time.sleep(0.05)
    return fd


def try_claim(directory: Path, owner: str) -> int | None:
    """``owner``'s name held (the descriptor to release), or None when a live process holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / f"{owner}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def release(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def wall_clock_us() -> int:
    return time.time_ns() // 1000


class EventIds:
    def __init__(
        self, worker: int | None, replica: int = 0, clock_us: Callable[[], int] = wall_clock_us
    ) -> None:
        self.tag = tag_of(replica, worker)
        self._clock_us = clock_us
        self._next = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> range:
        """``n`` new ids, increasing, for one request."""
        with self._lock:
            first = max(self._next, self._clock_us())
            self._next = first + n
        return range(first * TAG_SLOTS + self.tag, (first + n) * TAG_SLOTS, TAG_SLOTS)
