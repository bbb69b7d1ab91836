"""Consent changes received after the users table was loaded: a ledger every worker reads.

A user who opts out in the brand's app must stop getting personal carousels and pushes at once,
not at the next import of the users table and restart of the service. ``PUT /users/{id}/consent``
appends the change to ``$STATE/privacy/consent_changes.jsonl`` (one JSON line, fsynced); serving's
workers and replicas sharing the state directory re-read it at most once a second, and the latest
line of a user wins over the users table. A field left out of a change keeps what was in force.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import BinaryIO

# user_id -> (personalization, marketing); None: no change recorded for that flag.
Overrides = dict[int, tuple[bool | None, bool | None]]


class ConsentLedger:
    def __init__(self, state_dir: str | Path, name: str = "consent_changes.jsonl") -> None:
        self.path = Path(state_dir) / "privacy" / name
        self._cache: Overrides = {}
        self._withdrawn: dict[int, float] = {}
        self._stamp: tuple[int, int] | None = None

    def add(self, user_id: int, personalization: bool | None, marketing: bool | None) -> None:
        """Record a change durably (fsync) before anything acts on it."""
        line = {"user_id": int(user_id), "ts": time.time()}
        if personalization is not None:
            line["personalization"] = bool(personalization)
        if marketing is not None:
            line["marketing"] = bool(marketing)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            _cut_torn_tail(f)
            f.write(json.dumps(line).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def overrides(self) -> Overrides:
        """Per user, the flags in force by the changes recorded (re-read only when the file changed).

        A torn last line (a crash mid-append, never acknowledged) is skipped; any other line that
        is not a change is an error naming the file and line."""
        self._read()
        return dict(self._cache)

    def withdrawals(self) -> dict[int, float]:
        """Per user, when (epoch seconds) personalization consent was last withdrawn: what they
        sent before it is not to be used for them again, even once consent is given back. The same
        object until the file changes (not to be edited)."""
        self._read()
        return self._withdrawn

    def _read(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._cache, self._withdrawn, self._stamp = {}, {}, None
            return
        stamp = (st.st_mtime_ns, st.st_size)  # the size too: a coarse clock can give two writes one mtime
        if stamp == self._stamp:
            return
        data = self.path.read_bytes()
        out: Overrides = {}
        withdrawn: dict[int, float] = {}
        for n, raw in enumerate(data.splitlines(keepends=True), 1):
            if not raw.endswith(b"\n") or not raw.strip():
                continue
            try:
                change = json.loads(raw)
                uid = int(change["user_id"])
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{self.path}:{n}: not a consent change: {raw[:60]!r}") from None
            pers, mark = out.get(uid, (None, None))
            out[uid] = (change.get("personalization", pers), change.get("marketing", mark))
            if change.get("personalization") is False:
                withdrawn[uid] = float(change.get("ts") or 0.0)
        self._cache, self._withdrawn, self._stamp = out, withdrawn, stamp


def _cut_torn_tail(f: BinaryIO) -> None:
    """Drop a last line a crash left without its newline (never acknowledged), so the next
    change starts a line of its own instead of continuing the torn one."""
    size = f.seek(0, os.SEEK_END)
    if not size:
        return
    f.seek(max(0, size - 65_536))
    tail = f.read()
    if tail.endswith(b"\n"):
        return
    cut = tail.rfind(b"\n")
    f.truncate(size - len(tail) + cut + 1 if cut >= 0 else (0 if size <= 65_536 else size))
    f.seek(0, os.SEEK_END)
