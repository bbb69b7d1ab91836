"""The users deleted through ``DELETE /users/{id}``, as every worker and replica sees them.

The deletion ledger under the state directory (``features.privacy.DeletionLedger``) is the shared
truth; each process keeps a set re-read from it at most every ``DELETION_REFRESH_S`` (the ledger
re-reads its file only when it changed), so a carousel pays one set lookup. Whatever a process
learns of a deletion, from its own request or another worker's, goes to ``on_new`` once: serving
zeroes the user's factors in the models it holds (``forget_users``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from features.erasure import users_named

log = logging.getLogger(__name__)
DELETION_REFRESH_S = 1.0  # how stale another worker's deletion may be, at most


class DeletedUsers:
    def __init__(self, ledger: Any, on_new: Callable[[set[int]], None]) -> None:
        self.ledger = ledger
        self._on_new = on_new
        self._ids: set[int] = set(ledger.user_ids())
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def __contains__(self, user_id: object) -> bool:
        """Deleted through this process or any other worker or replica sharing the state directory."""
        return user_id in self.current()

    def known_here(self, user_id: int) -> bool:
        """Deleted as far as this process knows, without a look at the ledger."""
        return user_id in self._ids

    def mask(self, user_ids: np.ndarray) -> np.ndarray:
        """Membership for many users at once (a push audience can be a million): one ``isin``."""
        deleted = self.current()
        with self._lock:  # a copy ``add`` cannot change while it is taken
            ids = np.fromiter(deleted, np.int64, len(deleted))
        return np.isin(np.asarray(user_ids, np.int64), ids)

    def current(self) -> set[int]:
        """The deleted users, the ledger re-read at most once every ``DELETION_REFRESH_S``."""
        if time.monotonic() - self._checked >= DELETION_REFRESH_S:
            # One thread reads the ledger; the others wait for its answer instead of answering
            # from the set it is replacing (a request thread racing the refresh personalized a
            # deleted user after the documented second: tests/serving/test_runtime.py). The time
            # recorded is when the read began, and it is recorded after the new set is in place.
            with self._lock:
                start = time.monotonic()
                if start - self._checked >= DELETION_REFRESH_S:
                    new = self.ledger.user_ids() - self._ids
                    if new:  # deleted through another worker or replica
                        self._on_new(new)
                        self._ids = self._ids | new
                    self._checked = start
        return self._ids

    def add(self, user_id: int) -> None:
        """Record a deletion: durable in the ledger first (training excludes the user from now on)."""
        self.add_many([user_id])

    def add_many(self, user_ids: Iterable[int]) -> None:
        """Record deletions, one ledger write for all of them."""
        ids = {int(u) for u in user_ids}
        self.ledger.add_many(ids)
        with self._lock:  # not between a refresh's union and its assignment (it would be lost)
            self._ids = self._ids | ids
            self._on_new(ids)


def forget_users(models: Iterable[Any], user_ids: set[int]) -> None:
    """Zero deleted users' ALS factors and drop their segment labels in loaded models (answers
    already ignore them: this leaves nothing learnt from them in memory). The registered bundles'
    files keep them until ``slotcast privacy purge`` rewrites every version without them, and the
    next training run excludes them."""
    ids = np.fromiter(user_ids, np.int64, len(user_ids))
    for m in models:
        if m is None or not ids.size:
            continue
        forget = getattr(m.als, "forget", None)
        if forget is not None:
            forget(ids)
        drop = getattr(getattr(m, "popularity", None), "drop_users", None)
        if drop is not None:
            drop(ids)


def delete_users(
    catalog: Any, deleted: DeletedUsers, features: Any, state_dir: Path, user_ids: Iterable[int]
) -> dict[str, list[int]]:
    """Delete the users serving holds something about: the ledger first (one write), then this
    process's models and purchases, then the online rows (one pass over the store's keys for all of
    them: a user at a time, a list of 1,000 walked the keys 1,000 times). Held: in the catalogue
    (``holds_user``) or, for the rest, named by a line of the service's logs under
    ``$STATE/serving`` (a user only clicks or carousels made known: they answered 404 and their lines
    were never purged). Users held nowhere are listed as unknown and not recorded (``DELETE
    /users/{id}`` answers 404)."""
    ids = list(dict.fromkeys(int(u) for u in user_ids))
    held = {u for u in ids if catalog.holds_user(u) or deleted.known_here(u)}
    if len(held) < len(ids):  # the service's own logs may name them (events, answers): one scan
        held |= users_named(state_dir / "serving", set(ids) - held)
    known = [u for u in ids if u in held]
    if known:
        deleted.add_many(known)  # then this process's models forget them
        for u in known:
            catalog.forget_purchases(u)
        fn = getattr(features, "delete_users", None)
        if fn is not None:
            try:
                fn(known)
            except Exception as exc:  # noqa: BLE001 - the ledger already excludes them; retried by the next build
                from serving.adapters import pending_online_deletions

                pending_online_deletions(state_dir).add_many(known)
                log.warning("online store deletion failed, left to the next features build: %s", exc)
    known_set = set(known)
    return {"deleted": known, "unknown": [u for u in ids if u not in known_set]}
