"""Consent changes (``PUT /users/{id}/consent``) as every worker and replica sees them.

The ledger under the state directory (``features.consent.ConsentLedger``) is the shared truth; each
process re-reads it at most every ``CONSENT_REFRESH_S`` (the ledger re-reads its file only when it
changed) and keeps the overrides both per user (a carousel's one lookup) and as sorted arrays (a
push audience of a million users is one ``searchsorted``). A change made through this process is
in force here at once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from features.consent import ConsentLedger

CONSENT_REFRESH_S = 1.0  # how stale another worker's consent change may be, at most


class ConsentChanges:
    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger
        self._lock = threading.Lock()
        self._checked = -float("inf")
        # (per user, sorted user ids, their (personalization, marketing) flags as two int8 columns:
        # 1 yes, 0 no, -1 no change recorded), replaced whole, so a reader never sees the ids of one
        # read with the flags of another.
        self._state: tuple[dict[int, tuple[bool | None, bool | None]], np.ndarray, np.ndarray] = (
            {}, np.empty(0, np.int64), np.empty((0, 2), np.int8),
        )  # fmt: skip
        self._withdrawn: dict[int, float] = {}

    def add(self, user_id: int, personalization: bool | None, marketing: bool | None) -> None:
        """Record a change: durable in the ledger first, then in force in this process."""
        self.ledger.add(user_id, personalization, marketing)
        with self._lock:
            self._checked = -float("inf")  # the next look re-reads the ledger, this change with it

    def of(self, user_id: int) -> tuple[bool | None, bool | None]:
        """(personalization, marketing) changed for ``user_id``; None where nothing was recorded."""
        self._refresh()
        return self._state[0].get(int(user_id), (None, None))

    def withdrawn_at(self) -> dict[int, float]:
        """Per user, when personalization consent was last withdrawn (epoch seconds): the same
        object until a change is read (not to be edited)."""
        self._refresh()
        return self._withdrawn

    def marketing(self, user_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each user: whether a marketing change is recorded, and the flag it set."""
        return self._flags(user_ids, 1)

    def personalization(self, user_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each user: whether a personalization change is recorded, and the flag it set."""
        return self._flags(user_ids, 0)

    def _flags(self, user_ids: np.ndarray, column: int) -> tuple[np.ndarray, np.ndarray]:
        self._refresh()
        _, ids, flags = self._state
        q = np.asarray(user_ids, np.int64)
        if not len(ids):
            return np.zeros(len(q), bool), np.zeros(len(q), bool)
        pos = np.minimum(np.searchsorted(ids, q), len(ids) - 1)
        f = flags[pos, column]
        return (ids[pos] == q) & (f >= 0), f == 1

    def _refresh(self) -> None:
        if time.monotonic() - self._checked < CONSENT_REFRESH_S:
            return
        with self._lock:
            start = time.monotonic()
            if start - self._checked < CONSENT_REFRESH_S:
                return
            by_user = self.ledger.overrides()
            ids = np.fromiter(by_user, np.int64, len(by_user))
            order = np.argsort(ids)
            flags = np.array(
                [[_flag(by_user[int(u)][0]), _flag(by_user[int(u)][1])] for u in ids[order]], np.int8
            ).reshape(-1, 2)
            self._state = (by_user, ids[order], flags)
            withdrawals = getattr(self.ledger, "withdrawals", None)
            self._withdrawn = withdrawals() if withdrawals is not None else {}
            self._checked = start


def _flag(value: bool | None) -> int:
    return -1 if value is None else int(bool(value))


def consent_changes(state_dir: str | Path) -> ConsentChanges:
    """The consent changes of the deployment sharing ``state_dir``."""
    return ConsentChanges(ConsentLedger(state_dir))
