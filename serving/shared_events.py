"""What one worker is told through ``POST /events`` that every worker and replica must count.

The catalogue keeps each user's last purchase per product (the carousel's bought-recently and
repurchase-due rules), the times pushes were sent (the push frequency cap) and the communities'
members (push audiences). Loaded from the tables at the start, they then changed only with the
events a worker took itself: with four workers a user could be pushed up to four times the cap,
shown a product just bought through another worker, and a community leave or join changed nothing
at all. Now the worker that takes such events also appends them to
``$STATE/serving/shared_events/<type>/<YYYYMMDD>.jsonl`` (a file a day, by the day written), and
every worker applies the lines other processes wrote at most once a second, reading each file
from where it stopped. Files older than the rules look back (``push_cap_days`` for pushes,
``bought_recently_days`` for purchases, plus a day) are no longer read, and are deleted; joins and
leaves are kept (a membership lasts). A purchase or push the events table held at the start (served
events appended with ``slotcast data append-events``) is not counted twice: its event id is known;
a join or leave applied twice changes nothing. The event log stays the durable record; of these
files only the joins and leaves are fsynced (a lost leave would go on pushing a user who left).
Stock levels (``POST /products/stock``, serving/stock.py) go the same way under ``stock_level/``,
fsynced like joins and leaves, in lines of their own fields, a file per day they were taken; a
worker starting deletes the days the products table supersedes (serving/stock.py). A file another
worker deletes while this one reads is harmless: one opened already is read to its end, one gone
before is skipped (``_tail``, ``_size``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
COUNTED_TYPES = ("push_sent", "purchase")  # counted once each: their event ids are checked
MEMBERSHIP_TYPES = ("community_join", "community_leave")  # kept for good, applied idempotently
SHARED_TYPES = COUNTED_TYPES + MEMBERSHIP_TYPES
LINE_FIELDS = ("event_id", "type", "user_id", "product_id", "community_id", "ts_us")
SHARED_REFRESH_S = 1.0  # how stale another worker's events may be, at most
BACKGROUND_BYTES = 1 << 20  # more than this waiting is read off the request's path
CHUNK_BYTES = 8 << 20  # read and applied this much at a time
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SharedEvents:
    def __init__(
        self,
        directory: Path,
        writer: str,
        keep_days: dict[str, float],
        known_ids: np.ndarray,
        deleted: Callable[[], set[int]] = set,
        types: tuple[str, ...] = SHARED_TYPES,
        fields: tuple[str, ...] = LINE_FIELDS,
        durable: tuple[str, ...] = MEMBERSHIP_TYPES,
    ) -> None:
        """``writer``: this process's tag (its own lines are applied when taken, not read back);
        ``keep_days``: how far back the rules look, per counted type (joins and leaves: for good);
        ``known_ids``: sorted ids of the purchases and pushes the catalogue loaded from the events
        table; ``deleted()``: users whose lines are left unread (deleted since they were written);
        ``types`` / ``fields``: the event types shared and the fields a line keeps (another set of
        files, such as serving/fold_in.py's or serving/stock.py's, shares others); ``durable``: the
        types fsynced before ``record`` returns (those kept for good)."""
        self.directory, self.writer, self.keep_days = Path(directory), writer, keep_days
        self.types, self.fields, self.durable = types, fields, durable
        self.known_ids = np.asarray(known_ids, np.int64)
        self.deleted = deleted
        self._lock = threading.Lock()
        self._offsets: dict[Path, int] = {}
        self._checked = -float("inf")
        self._reading: threading.Thread | None = None

    def record(self, events: Iterable[dict[str, Any]], taken_us: int | None = None) -> None:
        """Append this worker's events of the shared types, one file per type and day: today's, or
        with ``taken_us`` (microseconds since the epoch) the UTC day of that time, so that a file
        holds only what was taken that day even when the day turns between taking and writing."""
        by_type: dict[str, list[str]] = {}
        for e in events:
            if e.get("type") in self.types:
                line = {k: e.get(k) for k in self.fields}
                by_type.setdefault(e["type"], []).append(json.dumps({"w": self.writer, **line}))
        when = datetime.now(UTC) if taken_us is None else EPOCH + timedelta(microseconds=taken_us)
        day = when.strftime("%Y%m%d")
        for kind, lines in by_type.items():
            path = self.directory / kind / f"{day}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as f:
                f.write(("\n".join(lines) + "\n").encode())
                if kind in self.durable:
                    f.flush()
                    os.fsync(f.fileno())

    def sync(self, apply: Callable[[list[dict[str, Any]]], None], force: bool = False) -> None:
        """Hand the lines other processes appended since the last call to ``apply`` (at most once
        a second unless ``force``). More than ``BACKGROUND_BYTES`` waiting (a campaign's million
        pushes sent through another worker) are read in a thread of their own: the request that
        found them does not wait a second for them."""
        if not force and time.monotonic() - self._checked < SHARED_REFRESH_S:
            return
        if self._reading is not None and self._reading.is_alive():
            return
        with self._lock:
            self._checked = time.monotonic()
            paths = self._current_paths()
            waiting = sum(max(0, _size(p) - self._offsets.get(p, 0)) for p in paths)
        if waiting > BACKGROUND_BYTES and not force:
            self._reading = threading.Thread(
                target=self._read, args=(paths, apply), name="shared-events", daemon=True
            )
            self._reading.start()
        elif waiting:
            self._read(paths, apply)

    def _current_paths(self) -> list[Path]:
        """The files the rules still look back on; older ones are deleted."""
        paths = []
        for kind in self.types:
            keep = self.keep_days.get(kind)
            oldest = "" if keep is None else (datetime.now(UTC) - timedelta(days=keep + 1)).strftime("%Y%m%d")
            for path in sorted((self.directory / kind).glob("*.jsonl")):
                if path.stem < oldest:
                    self._forget(path)
                else:
                    paths.append(path)
        return paths

    def _read(self, paths: list[Path], apply: Callable[[list[dict[str, Any]]], None]) -> None:
        with self._lock:
            for path in paths:
                for chunk in self._tail(path):
                    apply(chunk)

    def _tail(self, path: Path) -> Iterator[list[dict[str, Any]]]:
        """The other processes' new whole lines of ``path``, in chunks of at most CHUNK_BYTES read
        (a week of a large deployment's pushes is not held in memory at once)."""
        start = self._offsets.get(path, 0)
        try:
            f = open(path, "rb")  # noqa: SIM115 - read in chunks below, closed at the end
        except FileNotFoundError:
            return
        with f:
            f.seek(start)
            carry = b""
            while data := f.read(CHUNK_BYTES):
                data = carry + data
                cut = data.rfind(b"\n") + 1  # a line still being written waits
                whole, carry = data[:cut], data[cut:]
                self._offsets[path] = self._offsets.get(path, start) + len(whole)
                if whole:
                    yield self._others(path, whole)

    def _others(self, path: Path, whole: bytes) -> list[dict[str, Any]]:
        out = []
        gone = self.deleted()
        for raw in whole.splitlines():
            if not raw.strip():  # a deleted user's line, erased in place (`slotcast privacy purge`)
                continue
            try:
                e = json.loads(raw)
            except ValueError:
                log.warning("skipped a line of %s that is not an event", path)
                continue
            if e.get("w") != self.writer and e.get("user_id") not in gone:
                out.append(e)
        if out and len(self.known_ids):
            ids = np.array([e.get("event_id") or -1 for e in out], np.int64)
            pos = np.minimum(np.searchsorted(self.known_ids, ids), len(self.known_ids) - 1)
            out = [e for e, seen in zip(out, self.known_ids[pos] == ids, strict=True) if not seen]
        return out

    def _forget(self, path: Path) -> None:
        self._offsets.pop(path, None)
        with contextlib.suppress(OSError):
            os.unlink(path)  # older than any rule looks back: every worker may delete it


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
