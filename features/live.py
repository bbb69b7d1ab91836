"""Real-time live-session features: serving hands over events, we add them to running totals.

``ingest_live_events(store_or_reader, events)`` keeps, per (user, stream), the clicks, carts and
watch seconds so far in this stream; totals last written longer ago than the live_session view's
ttl (``features.views.LIVE_SESSION_ONLINE_WINDOW``) belong to a session that is over, and the
events start new ones, as online reads leave such a row out. It reads the current totals from the
online store, adds the new events and writes the sums back with the online store's own write (the
rows the ``live_session_push`` PushSource would write), so the next online lookup (same second)
sees them.
The read-modify-write holds a lock that every thread, worker and replica sharing the store respects
(``ingest_lock``): BentoML hands a user's requests to any worker, and without it concurrent events
lost increments (40 clicks sent at once through two workers left a total of 6).

Adding is not idempotent: a push retried after a failure counts its events again if the failed
write had landed after all (a reply lost on the way back, a Redis pipeline cut off after some of
its sessions). Events that carry ``push_writer`` (who pushes: serving's worker tag) and
``push_id`` (that writer's push, increasing) are counted once: each session stores, beside its
totals and in the same write (one Redis hash, one SQLite transaction), the highest push id of each
writer it counts (``_writers``, not a feature), and an event at or below its writer's mark is
skipped. That needs a writer to push in push-id order and to take every event it could not push
along into its next push (serving/live_pending.py does both).

An event sent again by the client (a retried ``POST /events`` whose reply was lost, through the
same worker or another) is a new push, so the marks do not catch it; its ``event_id`` does. Each
session also stores the ids of the last ``SEEN_MAX`` events it counted (``_event_ids``, not a
feature), and an event whose id is among them is skipped. Events without an id count every time.
"""

from __future__ import annotations

import contextlib
import threading
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from features.views import expired

LIVE_TYPES = ("stream_view", "product_click", "add_to_cart")
LIVE_FEATURES = ("live_clicks", "live_carts", "live_watch_seconds")
# Stored beside a session's totals, not a feature (no view lists it): per writer, the highest push id
# the totals count. Both are in every event a writer wants counted once.
WRITERS = "_writers"
# Stored beside a session's totals too: the ids of the last SEEN_MAX events counted (a client's
# retry comes soon after; 64 ids are 512 bytes a session, kept for the session's 24 h online).
SEEN, SEEN_MAX = "_event_ids", 64
# Redis: users hash into this many locks, so batches of different users rarely wait on each other.
LOCK_STRIPES = 64
# A holder that died frees its Redis lock after LOCK_TTL_S; a writer gives up after LOCK_WAIT_S
# (serving then answers `online: false`, the events being in its durable log already).
LOCK_TTL_S, LOCK_WAIT_S = 10.0, 5.0
_process_lock = threading.Lock()  # stores with no shared lock below: this process only


def _store_of(store_or_reader: Any) -> Any:
    return getattr(store_or_reader, "store", store_or_reader)


def _records(events: Any) -> list[dict[str, Any]]:
    if isinstance(events, pd.DataFrame):
        return events.to_dict("records")  # type: ignore[return-value]
    if hasattr(events, "to_pylist"):  # pyarrow table
        return list(events.to_pylist())
    return [dict(e) for e in events]


def _missing(x: Any) -> bool:
    return x is None or x is pd.NaT or (isinstance(x, float) and x != x)


class _Live(NamedTuple):
    """One live event, reduced to what the totals need."""

    session: tuple[int, int]  # (user_id, stream_id)
    ts: pd.Timestamp
    adds: tuple[float, float, float]  # in LIVE_FEATURES order
    writer: int  # -1: counted every time it is given
    push: int
    event_id: int  # -1: none given


def _live_events(events: Any) -> list[_Live]:
    """The live events among ``events`` (a stream, a live type); plain Python: a push is a handful
    of events, for which a pandas groupby cost ~10 ms."""
    rows = _records(events)
    if isinstance(events, pd.DataFrame):
        names = set(events.columns)
    else:
        names = set().union(*rows) if rows else {"user_id", "stream_id", "type"}
    missing = [c for c in ("user_id", "stream_id", "type") if c not in names]
    if missing:
        raise ValueError(f"live events lack column(s) {missing}")
    now = pd.Timestamp.now(tz="UTC")
    out = []
    for e in rows:
        kind, stream = e.get("type"), e.get("stream_id")
        if kind not in LIVE_TYPES or _missing(stream):
            continue
        ts = now if _missing(e.get("ts")) else pd.Timestamp(e["ts"])
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        ws = pd.to_numeric(e.get("watch_seconds"), errors="coerce")
        adds = (
            float(kind == "product_click"),
            float(kind == "add_to_cart"),
            float(ws) if kind == "stream_view" and not _missing(ws) else 0.0,
        )
        labelled = not (_missing(e.get("push_writer")) or _missing(e.get("push_id")))
        out.append(
            _Live(
                (int(e["user_id"]), int(e["stream_id"])), ts, adds, int(e["push_writer"]) if labelled else -1,
                int(e["push_id"]) if labelled else -1,
                -1 if _missing(e.get("event_id")) else int(e["event_id"]),
            )
        )  # fmt: skip
    return out


def _per_session(events: list[_Live]) -> dict[tuple[int, int], tuple[pd.Timestamp, list[float]]]:
    """Per session: the last event's time and the sums of its events' increments."""
    out: dict[tuple[int, int], tuple[pd.Timestamp, list[float]]] = {}
    for e in events:
        ts, sums = out.get(e.session, (e.ts, [0.0, 0.0, 0.0]))
        out[e.session] = (max(ts, e.ts), [a + b for a, b in zip(sums, e.adds, strict=True)])
    return out


def ingest_live_events(store_or_reader: Any, events: Any, ledger: Any = None) -> int:
    """Add ``events`` to the live-session totals in the online store; returns sessions updated.

    ``events`` are canonical event rows (DataFrame, pyarrow Table or dicts) with at least user_id,
    stream_id, type, and optionally ts and watch_seconds; rows without a stream or of other types
    are ignored. Users in ``ledger`` (a DeletionLedger) are skipped. Events with ``push_writer``
    and ``push_id`` are counted at most once (module doc); the others every time they are given.
    """
    live = _live_events(events)
    if ledger is not None and live:
        gone = ledger.user_ids()
        live = [e for e in live if e.session[0] not in gone]
    if not live:
        return 0
    store = _store_of(store_or_reader)
    view = store.get_feature_view("live_session")
    with ingest_lock(store, sorted({e.session[0] for e in live})):
        sessions = list(dict.fromkeys(e.session for e in live))
        stored = dict(zip(sessions, _read_sessions(store, view, sessions), strict=True))
        live = _not_counted_yet(live, stored)
        now = pd.Timestamp(datetime.now(UTC))
        data = []
        for session, (last, adds) in _per_session(live).items():
            totals, marks, seen, written_at = stored[session]
            # Never older than now (a total written later must win over the one it was computed
            # from), nor than the stored row: Feast's Redis store skips a write whose time is not
            # after the stored one, and another host's clock may run ahead of this one.
            at = max(last, now, written_at + pd.Timedelta(microseconds=1))
            if expired("live_session", written_at.timestamp(), at.timestamp()):
                totals = dict.fromkeys(LIVE_FEATURES, 0.0)  # that session is over: this one starts
            values = {f: _double(totals[f] + a) for f, a in zip(LIVE_FEATURES, adds, strict=True)}
            if marks:
                values[WRITERS] = _marks_value(marks)
            if seen:
                values[SEEN] = _ints_value(seen[-SEEN_MAX:])
            data.append((_entity_key(session), values, at.to_pydatetime(), None))
        if data:
            store._get_provider().online_write_batch(store.config, view, data, None)
    return len(data)


def _entity_key(session: tuple[int, int]) -> Any:
    from features.online_reads import entity_keys

    return entity_keys([{"user_id": session[0], "stream_id": session[1]}])[0]


def _double(x: float) -> Any:
    from feast.protos.feast.types.Value_pb2 import Value

    return Value(double_val=float(x))


def _marks_value(marks: dict[int, int]) -> Any:
    return _ints_value([x for w in sorted(marks) for x in (w, marks[w])])


def _ints_value(values: list[int]) -> Any:
    from feast.protos.feast.types.Value_pb2 import Int64List, Value

    return Value(int64_list_val=Int64List(val=values))


_EPOCH = pd.Timestamp(0, tz="UTC")
# (totals, writers' marks, ids of the last events counted, oldest first, the row's time)
_Stored = tuple[dict[str, float], dict[int, int], list[int], pd.Timestamp]


def _read_sessions(store: Any, view: Any, sessions: list[tuple[int, int]]) -> list[_Stored]:
    """Per session: its stored totals (0 when absent), its writers' marks, the ids of the last
    events it counted, and the row's time."""
    from features.online_reads import entity_keys, value_of

    keys = entity_keys([{"user_id": u, "stream_id": s} for u, s in sessions])
    online = store._get_provider().online_store
    out = []
    for written_at, got in online.online_read(store.config, view, keys, [*LIVE_FEATURES, WRITERS, SEEN]):
        values = got or {}
        totals = {}
        for f in LIVE_FEATURES:
            v = value_of(values[f]) if f in values else np.nan
            totals[f] = 0.0 if v != v else float(v)  # NaN: nothing stored yet
        flat = list(values[WRITERS].int64_list_val.val) if WRITERS in values else []
        marks = dict(zip(flat[::2], flat[1::2], strict=True))
        seen = list(values[SEEN].int64_list_val.val) if SEEN in values else []
        at = _EPOCH if written_at is None else pd.Timestamp(written_at).tz_convert("UTC")
        out.append((totals, marks, seen, at))
    return out


def _not_counted_yet(live: list[_Live], stored: dict[tuple[int, int], _Stored]) -> list[_Live]:
    """The events above their writer's mark in their session (events with no writer: all) whose id
    the session has not counted (events without one: all); the marks and ids in ``stored`` are
    raised to what the write will hold."""
    kept = []
    seen_sets = {session: set(st[2]) for session, st in stored.items()}
    for e in live:
        _, marks, seen, _ = stored[e.session]
        if e.writer >= 0 and e.push <= marks.get(e.writer, -1):
            continue
        if e.event_id >= 0:
            if e.event_id in seen_sets[e.session]:
                continue  # the client sent it again
            seen_sets[e.session].add(e.event_id)
            seen.append(e.event_id)
        kept.append(e)
    for e in kept:
        if e.writer >= 0:
            marks = stored[e.session][1]
            marks[e.writer] = max(e.push, marks.get(e.writer, -1))
    return kept


@contextlib.contextmanager
def ingest_lock(store: Any, user_ids: list[int]) -> Iterator[None]:
    """Hold the live-session totals of ``user_ids`` against every other writer of the store.

    Redis: one lock per stripe of users (the batch's stripes in sorted order, so two batches never
    wait on each other crosswise), shared by every worker and replica. SQLite: an exclusive
    ``flock`` on a file beside the database (one host; SQLite serializes writes anyway).
    """
    cfg = store.config.online_store
    if cfg.type == "sqlite":
        with open(Path(cfg.path).with_suffix(".live.lock"), "a") as f:
            import fcntl

            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        return
    client = store._get_provider().online_store._get_client(cfg) if cfg.type == "redis" else None
    if client is None or not hasattr(client, "lock"):
        with _process_lock:
            yield
        return
    stripes = sorted({zlib.crc32(str(int(u)).encode()) % LOCK_STRIPES for u in user_ids})
    with contextlib.ExitStack() as held:
        for stripe in stripes:
            lock = client.lock(
                f"{store.config.project}:live_session:lock:{stripe}",
                timeout=LOCK_TTL_S,
                blocking_timeout=LOCK_WAIT_S,
            )
            if not lock.acquire():
                raise TimeoutError(f"live-session lock {stripe} still held after {LOCK_WAIT_S:g} s")
            held.callback(_release, lock)
        yield


def _release(lock: Any) -> None:
    from redis.exceptions import LockError

    with contextlib.suppress(LockError):  # expired (held past LOCK_TTL_S): someone else's now
        lock.release()
