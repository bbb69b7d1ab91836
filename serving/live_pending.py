"""Live events the online store did not take, kept until it does.

``POST /events`` logs every event durably (serving/event_log.py), then adds the live ones to the
live-session totals in the online store (features/live.py). When that push fails (the store is
down, its lock held too long), the response says ``online: false`` and the live events wait in this
worker's pending file, ``$STATE/serving/live_pending/<worker>.jsonl`` (appended and fsynced). They
go with this worker's next push, which takes them along before the request's own events; when a
readiness probe finds the store answering (in a thread of its own: the probe answers at once); and
at the worker's next start (the file is named for the replica and worker, so a restarted worker
finds its predecessor's). After a failure, pushes wait ``retry_interval_s`` before trying the store
again (a long queue is not re-sent per request while the store is down): meanwhile new live events
join the queue untried.

Counted once, whatever failed: each push carries this worker's tag and a new push id
(``push_writer``, ``push_id``), and the store keeps, per session and writer, the highest push id its
totals count (features/live.py). A push whose write landed although it raised (a reply lost, a
Redis pipeline cut short after some sessions) is therefore not counted again by the retry. That
holds because one worker pushes one batch at a time, in push-id order, each taking every event
still waiting along.

Dropped instead of pushed, and from the file: events of users deleted meanwhile (the deletion
ledger), events older than the live window (``features.views.LIVE_SESSION_ONLINE_WINDOW``: a
features build loads only sessions active within it), and events queued before a features build
finished (its totals replace the live ones, and count served events appended to the data with
``slotcast data append-events``; pushing them too could count them twice).

A worker that never comes back (its replica retired, the workers scaled down) would leave its file
waiting for ever: each worker therefore also sweeps the pending files of the other BentoML workers
(``r<replica>w<worker>.jsonl``) whose name no process holds (``serving/event_ids.claim``: a live
worker keeps an exclusive lock on ``$STATE/serving/workers/<owner>.lock``), at its start and, at most
every ``sweep_interval_s``, when a readiness probe finds the store answering. It takes that worker's
lock, pushes the file as its owner's next start would (same push tags: counted once) and deletes it
when the store took it, then lets the lock go; a worker starting meanwhile waits for its name
(``CLAIM_WAIT_S``). Files of processes outside BentoML (``r<replica>p<pid>``) hold no lock and are
never swept: such a process pushes its own at its next start with the same process id only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from features.live import LIVE_TYPES
from features.views import LIVE_SESSION_ONLINE_WINDOW
from serving.event_ids import EventIds, release, try_claim
from serving.event_log import fsync_dir

log = logging.getLogger(__name__)
KEPT = ("event_id", "user_id", "stream_id", "type", "ts", "ts_us", "watch_seconds")
SWEPT_OWNER = re.compile(r"r\d+w\d+")  # BentoML workers' names: they hold a lock while alive


class LivePending:
    def __init__(
        self,
        directory: Path,
        owner: str,
        ids: EventIds,
        ingest: Callable[[Any], Any],
        deleted: Callable[[], set[int]],
        built_at: Callable[[], float | None] = lambda: None,
        window_s: float = LIVE_SESSION_ONLINE_WINDOW.total_seconds(),
        retry_interval_s: float = 1.0,
        workers_dir: Path | None = None,
        sweep_interval_s: float = 30.0,
    ) -> None:
        """``ingest(events)`` adds events to the live totals (raises when it cannot); ``deleted()``
        the deleted users; ``built_at()`` when the last features build finished (epoch seconds);
        ``workers_dir`` where workers hold their names (None: no sweeping of other files)."""
        self.owner = owner
        self.path = Path(directory) / f"{owner}.jsonl"
        self.ids, self.ingest, self.deleted, self.built_at = ids, ingest, deleted, built_at
        self.window_s, self.retry_interval_s = window_s, retry_interval_s
        self.workers_dir, self.sweep_interval_s = workers_dir, sweep_interval_s
        self._lock = threading.Lock()
        self._failed_at = -math.inf
        self._swept_at = -math.inf
        self._retrying: threading.Thread | None = None
        self._events: list[dict[str, Any]] = []
        self._events = self._load()

    def __len__(self) -> int:
        return len(self._events)

    def push(self, records: list[dict[str, Any]]) -> bool:
        """Add the live ones of ``records`` to the totals, after every event still waiting; False
        (and they wait too) when the store does not take them."""
        live = [{k: r.get(k) for k in KEPT} for r in records if _is_live(r)]
        if not live:
            self.retry()  # nothing of this request's to push; what waits may go now
            return True
        with self._lock:
            push_id = self.ids.take(1)[0]
            now = time.time()
            new = [{**r, "push_writer": self.ids.tag, "push_id": push_id, "queued_at": now} for r in live]
            if self._events and time.monotonic() - self._failed_at < self.retry_interval_s:
                self._queue(new)  # the store failed a moment ago: behind the others, untried
                return False
            return self._push(new)

    def retry(self) -> bool:
        """Push what waits (nothing new); True when nothing waits any more."""
        with self._lock:
            if not self._events:
                return True
            if time.monotonic() - self._failed_at < self.retry_interval_s:
                return False
            return self._push([])

    def retry_in_background(self) -> threading.Thread | None:
        """``retry`` (then ``sweep`` when due) in a thread of its own when there is something to do
        (a readiness probe must answer at once, and a long queue takes a while); None when nothing
        waits, no sweep is due, or one runs already."""
        with self._lock:
            sweep_due = time.monotonic() - self._swept_at >= self.sweep_interval_s and bool(self._orphans())
            if not (self._events or sweep_due) or (self._retrying is not None and self._retrying.is_alive()):
                return None
            self._retrying = threading.Thread(
                target=self._retry_then_sweep, name="live-pending-retry", daemon=True
            )
            self._retrying.start()
            return self._retrying

    def _retry_then_sweep(self) -> None:
        if self.retry() and time.monotonic() - self._swept_at >= self.sweep_interval_s:
            self.sweep()

    def sweep(self) -> int:
        """Push the pending files of stopped workers (module doc); how many events they held."""
        self._swept_at = time.monotonic()
        if self.workers_dir is None:
            return 0
        pushed = 0
        for path in self._orphans():
            fd = try_claim(self.workers_dir, path.stem)
            if fd is None:
                continue  # its worker runs: it pushes its own
            try:
                theirs = LivePending(
                    path.parent, path.stem, self.ids, self.ingest, self.deleted, self.built_at, self.window_s, 0.0
                )  # fmt: skip
                n = len(theirs)
                if not n:
                    theirs._done()  # nothing whole in it: nothing to push
                elif not theirs.retry():
                    break  # the store failed: the rest can wait too
                else:
                    pushed += n
                    log.info("took the %d live events stopped worker %s left waiting", n, path.stem)
            finally:
                release(fd)
        return pushed

    def _orphans(self) -> list[Path]:
        """Other workers' pending files (held by a live worker or not)."""
        if self.workers_dir is None:
            return []
        try:
            paths = sorted(self.path.parent.glob("r*w*.jsonl"))
        except OSError:
            return []
        return [p for p in paths if p.stem != self.owner and SWEPT_OWNER.fullmatch(p.stem)]

    def _push(self, new: list[dict[str, Any]]) -> bool:
        waiting: list[dict[str, Any]] = []
        try:
            waiting = self._keep()
            if waiting or new:
                self.ingest(waiting + new)
        except Exception as exc:  # noqa: BLE001 - logged durably already; pushed later
            self._failed_at = time.monotonic()
            self._queue(new)
            log.warning(
                "live events not pushed to the online store (%d waiting, retried at the next push): %s",
                len(self._events),
                exc,
            )
            return False
        if waiting:
            log.info("pushed %d live events that waited for the online store", len(waiting))
        return self._done()

    def _done(self) -> bool:
        self._events = []
        self._failed_at = -math.inf
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a crash before this line: the next start pushes them, counted once
        return True

    def _keep(self) -> list[dict[str, Any]]:
        """The waiting events still worth pushing; the file is rewritten when some are dropped."""
        if not self._events:
            return []
        gone = self.deleted()
        oldest_us = (time.time() - self.window_s) * 1e6
        built = self.built_at() or -math.inf
        kept = [
            e
            for e in self._events
            if e["user_id"] not in gone and (e.get("ts_us") or 0) >= oldest_us and e["queued_at"] > built
        ]
        if len(kept) < len(self._events):
            log.info(
                "dropped %d waiting live events (users deleted, older than the live window, or "
                "queued before the last features build)",
                len(self._events) - len(kept),
            )
            self._events = kept
            self._rewrite()
        return kept

    # --- the file -------------------------------------------------------------------------------
    def _load(self) -> list[dict[str, Any]]:
        events, torn = read_waiting(self.path)
        if torn:
            self._events = events
            self._rewrite()  # appends must not continue the torn line
        return events

    def _queue(self, new: list[dict[str, Any]]) -> None:
        if not new:
            return
        self._events += new
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.path.exists()
            with open(self.path, "ab") as f:
                f.write(_lines(new))
                f.flush()
                os.fsync(f.fileno())
            if fresh:
                fsync_dir(self.path.parent)
        except OSError as exc:  # they are in the event log; this process still retries them
            log.warning("cannot keep waiting live events in %s: %s", self.path, exc)

    def _rewrite(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(_lines(self._events))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent)
        except OSError as exc:
            log.warning("cannot rewrite %s: %s", self.path, exc)


def read_waiting(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The events a pending file holds, and whether its last line was torn (a crash mid-append:
    never acknowledged as waiting, left out)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], False
    out = []
    for line in data.splitlines(keepends=True):
        if line.endswith(b"\n"):
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
    return out, not data.endswith(b"\n") and bool(data)


def _is_live(r: dict[str, Any]) -> bool:
    return r.get("stream_id") is not None and r.get("type") in LIVE_TYPES


def _lines(events: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events).encode()


def live_pending(
    features: Any,
    directory: Path,
    owner: str,
    ids: EventIds,
    deleted: Callable[[], set[int]],
    retry_interval_s: float,
    workers_dir: Path | None = None,
) -> LivePending | None:
    """The pending queue of a feature source that takes live events (``ingest``); None otherwise."""
    ingest = getattr(features, "ingest", None)
    if ingest is None:
        return None
    built_at = getattr(features, "built_at", lambda: None)
    return LivePending(
        directory,
        owner,
        ids,
        ingest,
        deleted,
        built_at,
        retry_interval_s=retry_interval_s,
        workers_dir=workers_dir,
    )
