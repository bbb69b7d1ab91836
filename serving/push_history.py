"""The pushes sent to users (``push_sent`` events), as the push frequency cap counts them.

Kept as three aligned arrays (user, time, event id) from the event history plus the live events
``POST /events`` took; a push judged ``at`` a past moment (a replay) counts only the pushes sent
strictly before it, as the carousel's replay reads no purchase at or after its ``at``
(serving/purchases.py). The service records no push itself: a push counts once the client
sends its ``push_sent``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class PushHistory:
    """Pushes sent, per user and time; each event id counts once."""

    def __init__(self, pushes: pd.DataFrame, with_ids: bool) -> None:
        """``pushes``: push_sent rows (user_id, ts_us and, ``with_ids``, event_id)."""
        users = pushes["user_id"].to_numpy(np.int64)
        # Each push's event id (-1: none), so that a push_sent sent again is counted once.
        ids = (
            pushes["event_id"].fillna(-1).to_numpy(np.int64)
            if with_ids
            else np.full(len(users), -1, np.int64)
        )
        # One tuple, replaced whole by ``add``: a reader takes all three arrays of one moment.
        self._arrays = (users, pushes["ts_us"].to_numpy(np.int64), ids)

    @property
    def users(self) -> np.ndarray:
        """Every pushed user, once per push."""
        return self._arrays[0]

    def add(self, users: list[int], ts_us: list[int], event_ids: list[int]) -> None:
        """Pushes sent since (an event id -1: none). Callers serialise their adds (the catalogue's
        lock); readers need none."""
        u, t, i = self._arrays
        self._arrays = (
            np.concatenate([u, np.array(users, np.int64)]),
            np.concatenate([t, np.array(ts_us, np.int64)]),
            np.concatenate([i, np.array(event_ids, np.int64)]),
        )

    def counts(self, user_ids: np.ndarray, since_us: int, before_us: int | None = None) -> np.ndarray:
        """push_sent events per user since ``since_us`` (and strictly before ``before_us``, when
        given: a replay of that moment), vectorised; an event id counts once. A client that sends
        a push_sent again (its reply lost, a retried batch, through this worker or another)
        counted it twice: a user pushed once was capped as pushed twice."""
        pu, pt, pi = self._arrays
        window = pt >= since_us
        if before_us is not None:
            window &= pt < before_us
        pu, pi = pu[window], pi[window]
        once = pi < 0  # no id: each counts
        once[np.unique(pi, return_index=True)[1]] = True
        recent = np.sort(pu[once])
        return np.searchsorted(recent, user_ids, side="right") - np.searchsorted(
            recent, user_ids, side="left"
        )
