"""Community joins and leaves sent to ``POST /events``, as every worker and replica sees them.

The catalogue's communities come from the memberships table at the service's start, and a join or
leave sent to the service changed nothing: a user who left a community's group chat kept getting
its pushes until the next import and restart. Now the worker that takes such events appends them
to ``$STATE/serving/membership_changes.jsonl`` (fsynced; they are in the event log too) and every
worker applies the file's new lines to its catalogue at most once a second, this one at once.
Each worker reads the file from where it stopped (whole lines only), so the file is read once
overall; applying a change twice changes nothing (a join of a member, a leave of a non-member).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
MEMBERSHIP_TYPES = ("community_join", "community_leave")
MEMBERSHIP_REFRESH_S = 1.0  # how stale another worker's join or leave may be, at most


class MembershipChanges:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._offset = 0
        self._checked = -float("inf")

    def record(self, events: Iterable[dict[str, Any]]) -> None:
        """Append the joins and leaves among ``events`` (durable before the request is answered)."""
        lines = [
            json.dumps(
                {"user_id": int(e["user_id"]), "community_id": int(e["community_id"]), "type": e["type"]}
            )
            for e in events
            if e.get("type") in MEMBERSHIP_TYPES and e.get("community_id") is not None
        ]
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        with open(self.path, "ab") as f:
            f.write(("\n".join(lines) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())
        if fresh:
            from serving.event_log import fsync_dir  # it imports the catalogue, which imports this

            fsync_dir(self.path.parent)

    def sync(self, apply: Callable[[list[dict[str, Any]]], None], force: bool = False) -> None:
        """Hand the changes appended since the last call to ``apply`` (at most once a second
        unless ``force``); a file shorter than what was read (replaced) is read from the start."""
        if not force and time.monotonic() - self._checked < MEMBERSHIP_REFRESH_S:
            return
        with self._lock:
            self._checked = time.monotonic()
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                return
            if size < self._offset:
                self._offset = 0
            if size == self._offset:
                return
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read(size - self._offset)
            whole = data[: data.rfind(b"\n") + 1]  # a line still being written waits
            changes = []
            for line in whole.splitlines():
                try:
                    changes.append(json.loads(line))
                except ValueError:
                    log.warning("skipped a line of %s that is not a membership change", self.path)
            self._offset += len(whole)
            if changes:
                apply(changes)
