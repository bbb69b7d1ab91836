"""A reload through one worker reaches every worker (and replica) sharing the state directory.

``POST /admin/reload`` lands on whichever worker accepts the connection (BentoML's workers share
one socket), so "call it on each worker" cannot be done from outside: with two workers, four
reloads in a row all reached worker 1 and worker 2 kept serving the old champion. The worker whose
reload succeeds rewrites ``$STATE/serving/reload.requested``; every worker looks at the file at
most once a second from its request path and, when it changed, reloads in a background thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

RELOAD_CHECK_S = 1.0


class ReloadSignal:
    def __init__(self, path: Path, reload: Callable[[], object], check_s: float | None = None) -> None:
        self.path, self._reload = Path(path), reload
        self.check_s = RELOAD_CHECK_S if check_s is None else check_s
        self._seen = self._stamp()  # a request made before this worker started is not ours to follow
        self._checked = time.monotonic()
        self._lock = threading.Lock()
        self._running = False

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_ino

    def announce(self) -> None:
        """Tell the other workers to reload (this one has)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.write_text(f"{time.time_ns()} pid {os.getpid()}\n")
        os.replace(tmp, self.path)  # a new inode: a change even within the clock's resolution
        with self._lock:
            self._seen = self._stamp()

    def poll(self) -> None:
        """Start a background reload when another worker announced one; cheap on every request."""
        now = time.monotonic()
        if now - self._checked < self.check_s:
            return
        with self._lock:
            if now - self._checked < self.check_s:
                return
            self._checked = now
            stamp = self._stamp()
            if stamp == self._seen or self._running:
                return
            self._seen, self._running = stamp, True
        threading.Thread(target=self._follow, name="slotcast-reload", daemon=True).start()

    def _follow(self) -> None:
        try:
            self._reload()
        except Exception as exc:  # noqa: BLE001 - logged by reload; the old model keeps serving
            log.warning("reload announced by another worker failed: %s", exc)
        finally:
            self._running = False
