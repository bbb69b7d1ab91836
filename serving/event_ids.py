"""The ids serving gives to events sent without one (``POST /events``).

An id is ``sequence * 1000 + worker tag``. The sequence is the microsecond clock, or the last
sequence this worker gave plus one when that is ahead (requests in the same microsecond, a batch of
many events), so ids increase within a worker. The tag, the id's last three digits, is the worker's
index in the service (BentoML's ``server_context.worker_index``, 1-based; the process id outside
BentoML) modulo 1000: two workers never give the same id, even in the same microsecond, which the
clock alone did not ensure (``event_id`` is the events table's key: ``slotcast data append-events``
left the second of two such events out as a clash).

The ids are of the old ids' size (microseconds * 1000, ~1.8e18 in 2026), so they stay above every
imported or simulated id (those count from 1) and above the ids logged before this scheme, and below
2**63 until the year 2262. A worker restarted with the same index starts from its clock again: it
could meet its predecessor's ids only if the restart took less time than the predecessor ran ahead
of the clock (a microsecond per event given faster than that: 10 ms after the largest batch,
10,000 events)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

WORKER_SLOTS = 1000  # tags 0..999: unique for up to 1000 workers of one service


def wall_clock_us() -> int:
    return time.time_ns() // 1000


class EventIds:
    def __init__(self, worker: int, clock_us: Callable[[], int] = wall_clock_us) -> None:
        self.tag = worker % WORKER_SLOTS
        self._clock_us = clock_us
        self._next = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> range:
        """``n`` new ids, increasing, for one request."""
        with self._lock:
            first = max(self._next, self._clock_us())
            self._next = first + n
        return range(first * WORKER_SLOTS + self.tag, (first + n) * WORKER_SLOTS, WORKER_SLOTS)
