"""Community members, now and as of a past moment: a community push's audience.

Now: the memberships table's members, changed by the joins and leaves ``POST /events`` took (this
worker's and, through serving/shared_events.py, every other's). As of ``at`` (a push replay): the
table's members who joined before ``at`` (its ``joined_ts``; none given: always a member), changed
by the joins and leaves sent before ``at``, in their time order. A user who joined after ``at``
was not in the audience then; one who left after it was. A membership the table no longer holds
(left before the table was written) is not known, so not rewound.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

Change = tuple[int, int, bool]  # (time us, user, joined: True / left: False)


class Memberships:
    def __init__(
        self, community_ids: np.ndarray, user_ids: np.ndarray, joined_us: np.ndarray, listed: Iterable[int]
    ) -> None:
        """The memberships table's rows (``joined_us``: the minimum int64 when unknown) and the
        communities the communities table lists (each one, with no member too)."""
        # Per community its members now: replaced, never changed in place (requests read them).
        self.current: dict[int, np.ndarray] = {}
        self._table: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # members, join times
        order = np.argsort(community_ids, kind="stable")
        cids, uids, joined = community_ids[order], user_ids[order], joined_us[order]
        starts = np.flatnonzero(np.r_[True, cids[1:] != cids[:-1]]) if len(cids) else np.empty(0, int)
        ends = np.r_[starts[1:], len(cids)] if len(cids) else starts  # no table rows: no community
        for s, e in zip(starts, ends, strict=True):
            self._table[int(cids[s])] = (uids[s:e], joined[s:e])
            self.current[int(cids[s])] = uids[s:e]
        for c in listed:
            self.current.setdefault(int(c), np.empty(0, np.int64))
        self._changes: dict[int, list[Change]] = {}

    def apply(self, e: dict[str, Any]) -> None:
        """A join adds the user to the community's members, a leave takes them out (each
        idempotent); a community the communities table does not list is not made up by a join.
        The caller serialises these (the catalogue's lock)."""
        if e.get("community_id") is None or (members := self.current.get(int(e["community_id"]))) is None:
            return
        cid, uid, joined = int(e["community_id"]), int(e["user_id"]), e["type"] == "community_join"
        if e.get("ts_us") is not None:
            self._changes.setdefault(cid, []).append((int(e["ts_us"]), uid, joined))
        if joined and not np.any(members == uid):
            self.current[cid] = np.append(members, np.int64(uid))
        elif not joined and np.any(members == uid):
            self.current[cid] = members[members != uid]

    def members(self, community_id: int, before_us: int | None = None) -> np.ndarray | None:
        """The community's members now, or (``before_us``) as of that moment; None: unknown."""
        now = self.current.get(community_id)
        if before_us is None or now is None:
            return now
        users, joined = self._table.get(community_id, (np.empty(0, np.int64), np.empty(0, np.int64)))
        changes = sorted(c for c in list(self._changes.get(community_id, ())) if c[0] < before_us)
        if not changes:  # the usual replay: the table's members who had joined, no set built
            return users[joined < before_us]
        then = set(users[joined < before_us].tolist())
        for _ts, uid, join in changes:
            if join:
                then.add(uid)
            else:
                then.discard(uid)
        return np.fromiter(sorted(then), np.int64, len(then))
