"""Log lines for a dependency that fails on every call (the online store down under load) at a
bounded volume: the first failure at WARNING with its reason, then at most one WARNING summary per
interval with the count of failed calls and the last reason, and one INFO line when it answers
again. One line per request would be hundreds a second during an outage and bury everything else.

Calls overlap (several requests in flight), so each call says when it started: a failure of a call
that started before the dependency was last seen answering, or a success of one that started before
the outage was first seen, is the tail of the previous state, not a change; it is counted, never
taken for the start or the end of an outage (which would print a second "failing" line)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class OutageLog:
    def __init__(
        self,
        what: str,
        logger: logging.Logger,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        consequence: str = "answering degraded",
    ) -> None:
        self.what, self.log, self.interval_s, self.clock = what, logger, interval_s, clock
        self.consequence = consequence  # what the service does meanwhile, said in the first line
        self._lock = threading.Lock()
        self.down_since: float | None = None  # None while the dependency answers
        self._total = 0  # failed calls since down_since
        self._pending = 0  # failed calls not reported in a line yet
        self._last_line = 0.0
        self._last_reason = ""
        self._recovered_at = float("-inf")

    def failed(self, exc: BaseException, started: float | None = None) -> None:
        """A call that started at ``started`` (this log's clock; None: just now) failed with ``exc``."""
        reason = f"{type(exc).__name__}: {str(exc)[:200]}"
        with self._lock:
            now = self.clock()
            if self.down_since is None and started is not None and started < self._recovered_at:
                return  # began before the recovery was seen: the old outage's last straggler
            self._total += 1
            self._last_reason = reason
            if self.down_since is None:
                self.down_since, self._last_line, self._pending = now, now, 0
                first = True
            elif now - self._last_line >= self.interval_s:
                count, span, first = self._pending + 1, now - self._last_line, False
                self._pending, self._last_line = 0, now
            else:
                self._pending += 1
                return
        # Logged outside the lock: a slow handler must not serialize the requests behind it.
        if first:
            self.log.warning(
                "%s failing (%s); %s; further failures summarized every %.0f s",
                self.what, reason, self.consequence, self.interval_s,
            )  # fmt: skip
        else:
            self.log.warning(
                "%s still failing: %d failed calls in the last %.1f s (last: %s)",
                self.what,
                count,
                span,
                reason,
            )

    def ok(self, started: float | None = None) -> None:
        """A call that started at ``started`` (None: just now) succeeded."""
        if self.down_since is None:  # the hot path while healthy: one attribute read, no lock
            return
        with self._lock:
            if self.down_since is None or (started is not None and started < self.down_since):
                return  # none, or a call that began before the outage was seen: proves nothing
            now = self.clock()
            down_s, total = now - self.down_since, self._total
            self.down_since, self._total, self._pending, self._recovered_at = None, 0, 0, now
        self.log.info("%s answers again after %.1f s (%d failed calls)", self.what, down_s, total)
