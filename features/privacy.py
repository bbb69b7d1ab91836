"""The right to be forgotten: a deletion ledger, and removal of a user's rows from the online store.

The ledger is an append-only text file (one user id per line, fsynced) under
``$STATE/privacy/deleted_users.txt``: the feature build and training exclude its users, serving
checks it before answering anything personal.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from numbers import Integral
from pathlib import Path
from typing import Any

from features.online_deletion import delete_redis, delete_sqlite


class DeletionLedger:
    def __init__(self, state_dir: str | Path, name: str = "deleted_users.txt") -> None:
        self.path = Path(state_dir) / "privacy" / name
        self._cache: set[int] | None = None
        self._stamp: tuple[int, int] | None = None

    def add(self, user_id: int) -> None:
        """Record a deletion durably (fsync) before anything else acts on it."""
        self.add_many([user_id])

    def add_many(self, user_ids: Iterable[int]) -> list[int]:
        """Record deletions durably, one append and one fsync for all; the ids newly recorded."""
        known = self.user_ids()
        new = [u for u in dict.fromkeys(int(x) for x in user_ids) if u not in known]
        if not new:
            return []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="ascii") as f:
            f.write("".join(f"{u}\n" for u in new))
            f.flush()
            os.fsync(f.fileno())
        self._cache = None
        return new

    def user_ids(self) -> set[int]:
        """Every deleted user id (re-read only when the file changed); a copy the caller may edit."""
        return set(self._ids())

    def _ids(self) -> set[int]:
        """The cached set itself, re-read only when the file changed (not to be edited)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return set()
        stamp = (st.st_mtime_ns, st.st_size)  # the size too: a coarse clock can give two writes one mtime
        if self._cache is None or stamp != self._stamp:
            ids: set[int] = set()
            for n, line in enumerate(self.path.read_text(encoding="ascii").splitlines(), 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    ids.add(int(line))
                except ValueError:
                    raise ValueError(f"{self.path}:{n}: not a user id: {line[:40]!r}") from None
            self._cache, self._stamp = ids, stamp
        return self._cache

    def contains(self, user_id: int) -> bool:
        """One lookup in the cached set (no copy of it: serving asks this per request)."""
        return int(user_id) in self._ids()

    def __contains__(self, user_id: object) -> bool:
        # Any integer, numpy's included (ids read from arrays and frames are np.int64); not bools.
        return isinstance(user_id, Integral) and not isinstance(user_id, bool) and int(user_id) in self._ids()


def _user_keyed_views(store: Any) -> list[Any]:
    return [fv for fv in store.list_feature_views() if "user" in fv.entities]


def pending_online_deletions(state_dir: str | Path) -> DeletionLedger:
    """Users whose online rows could not be removed at their deletion (the store was down):
    ``features build`` removes them (``retry_online_deletions``). Same format as the ledger."""
    return DeletionLedger(state_dir, "online_deletions_pending.txt")


def retry_online_deletions(store: Any, state_dir: str | Path) -> int:
    """Remove the online rows of every pending user; returns users handled.

    The list is taken first (renamed aside), so a deletion serving records meanwhile starts a new
    list for the next build instead of being dropped with this one; a taken list whose removal
    failed (or was cut short) stays aside and is taken again by the next build.
    """
    pending = pending_online_deletions(state_dir)
    with contextlib.suppress(FileNotFoundError):
        os.replace(pending.path, pending.path.with_name(f"{pending.path.name}.{os.getpid()}.taken"))
    taken = sorted(pending.path.parent.glob(f"{pending.path.name}.*.taken"))
    ids = set().union(*(DeletionLedger(state_dir, p.name).user_ids() for p in taken))
    if ids:
        delete_user_online(store, ids)
    for p in taken:
        p.unlink()
    return len(ids)


def delete_user_online(store: Any, user_id: int | set[int]) -> int:
    """Remove every online row keyed by ``user_id`` (or any of a set of ids; SQLite or Redis);
    returns rows removed.

    Rows keyed by the user alone are deleted by key; rows keyed by (user, x) — category affinity,
    per-product history, live sessions — are matched on the user's bytes at the end of the stored
    key, since the other half is not known here (``features.online_deletion``).
    """
    config = store.config
    uids = {int(u) for u in user_id} if isinstance(user_id, set) else {int(user_id)}
    views = _user_keyed_views(store)
    if config.online_store.type == "sqlite":
        return delete_sqlite(store, views, uids)
    if config.online_store.type == "redis":
        return delete_redis(store, views, uids)
    raise NotImplementedError(f"user deletion for online store {config.online_store.type!r}")
