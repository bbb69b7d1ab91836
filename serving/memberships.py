"""Community members, now and as of a past moment: a community push's audience.

Now: the memberships table's members, changed by the joins and leaves ``POST /events`` took (this
worker's and, through serving/shared_events.py, every other's). As of ``at`` (a push replay): the
table's members who joined before ``at`` (its ``joined_ts``; none given: always a member), changed
by the joins and leaves sent before ``at``, in their time order. A user who joined after ``at``
was not in the audience then; one who left after it was. A membership the table no longer holds
(left before the table was written) is not known, so not rewound.

Both are in time order, not in the order a worker read the changes: per user and community the
latest of the table's join (at its ``joined_ts``) and the changes holds, a tie going to the later
event id. A worker reads another's changes a second late, and a worker (re)started later reads every
join file before every leave file (serving/shared_events.py): applied as read, a member who left
and came back was out of the community's pushes there while the worker that took the join pushed
them, and a push asked ``at`` a moment after both reached another audience than one without.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

Change = tuple[int, int, int, bool]  # (time us, event id (-1: none), user, joined: True / left: False)
TABLE_ORDER = -1  # a table's join is taken before a change sent at the same microsecond
_UNKNOWN = np.iinfo(np.int64).min  # a table row's join time when the table gives none


class Memberships:
    def __init__(
        self, community_ids: np.ndarray, user_ids: np.ndarray, joined_us: np.ndarray, listed: Iterable[int]
    ) -> None:
        """The memberships table's rows (``joined_us``: the minimum int64 when unknown) and the
        communities the communities table lists (each one, with no member too)."""
        # Per community its members now: replaced, never changed in place (requests read them).
        self.current: dict[int, np.ndarray] = {}
        # Per community the table's members and their join times, sorted by user (``_joined``).
        self._by_user: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        order = np.argsort(community_ids, kind="stable")
        cids, uids, joined = community_ids[order], user_ids[order], joined_us[order]
        starts = np.flatnonzero(np.r_[True, cids[1:] != cids[:-1]]) if len(cids) else np.empty(0, int)
        ends = np.r_[starts[1:], len(cids)] if len(cids) else starts  # no table rows: no community
        for s, e in zip(starts, ends, strict=True):
            by_user = np.argsort(uids[s:e], kind="stable")
            self._by_user[int(cids[s])] = (uids[s:e][by_user], joined[s:e][by_user])
            self.current[int(cids[s])] = uids[s:e]
        for c in listed:
            self.current.setdefault(int(c), np.empty(0, np.int64))
        self._changes: dict[int, list[Change]] = {}
        # (community, user) -> (time us, event id) of what holds now, once a change named them.
        self._latest: dict[tuple[int, int], tuple[int, int]] = {}

    def apply(self, e: dict[str, Any]) -> None:
        """A join adds the user to the community's members, a leave takes them out (each
        idempotent), unless what holds for them is later (module docstring); a community the
        communities table does not list is not made up by a join. The caller serialises these (the
        catalogue's lock)."""
        if e.get("community_id") is None or (members := self.current.get(int(e["community_id"]))) is None:
            return
        cid, uid, joined = int(e["community_id"]), int(e["user_id"]), e["type"] == "community_join"
        if e.get("ts_us") is not None:
            key = (int(e["ts_us"]), -1 if e.get("event_id") is None else int(e["event_id"]))
            self._changes.setdefault(cid, []).append((*key, uid, joined))
            held = self._latest.get((cid, uid))
            if held is None and (since := self._joined(cid, uid)) is not None:
                held = (since, TABLE_ORDER)
            if held is not None and key < held:
                return  # older than the change (or the table's join) in force: history only
            self._latest[(cid, uid)] = key
        if joined and not np.any(members == uid):
            self.current[cid] = np.append(members, np.int64(uid))
        elif not joined and np.any(members == uid):
            self.current[cid] = members[members != uid]

    def members(self, community_id: int, before_us: int | None = None) -> np.ndarray | None:
        """The community's members now, or (``before_us``) as of that moment; None: unknown."""
        now = self.current.get(community_id)
        if before_us is None or now is None:
            return now
        users, joined = self._by_user.get(community_id, (np.empty(0, np.int64), np.empty(0, np.int64)))
        changes = [c for c in list(self._changes.get(community_id, ())) if c[0] < before_us]
        if not changes:  # the usual replay: the table's members who had joined, no set built
            return users[joined < before_us]
        then = set(users[joined < before_us].tolist())
        latest: dict[int, tuple[int, int, bool]] = {}  # user -> the latest (time, id, joined) before
        for ts, order, uid, join in changes:
            if uid not in latest:  # the table's join, when before ``at``, counts as the first change
                since = self._joined(community_id, uid)
                latest[uid] = (
                    (since, TABLE_ORDER, True)
                    if since is not None and since < before_us
                    else (ts, order, join)
                )
            if (ts, order) > latest[uid][:2]:
                latest[uid] = (ts, order, join)
        for uid, (_ts, _order, join) in latest.items():
            if join:
                then.add(uid)
            else:
                then.discard(uid)
        return np.fromiter(sorted(then), np.int64, len(then))

    def history(self, user_id: int) -> list[tuple[int, int | None, bool]]:
        """Every membership record of the user held here, in time order: the table's joins
        (community, ``joined_ts`` in us or None when unknown, True) and the joins and leaves sent
        since (community, time, joined). What ``GET /users/{id}/data`` shows: replays read them."""
        out: list[tuple[int, int | None, bool]] = []
        for cid in self._by_user:
            since = self._joined(cid, user_id)
            if since is not None:
                out.append((cid, None if since == _UNKNOWN else since, True))
        for cid, changes in list(self._changes.items()):
            out.extend((cid, ts, joined) for ts, _order, uid, joined in list(changes) if uid == user_id)
        return sorted(out, key=lambda r: (_UNKNOWN if r[1] is None else r[1], r[0]))

    def _joined(self, community_id: int, user_id: int) -> int | None:
        """When the memberships table says the user joined the community; None: not a member there."""
        users, joined = self._by_user.get(community_id, (np.empty(0, np.int64), np.empty(0, np.int64)))
        i = int(np.searchsorted(users, user_id))
        return int(joined[i]) if i < len(users) and users[i] == user_id else None
