"""Real-time live-session features: serving hands over events, we push running totals to Feast.

``ingest_live_events(store_or_reader, events)`` keeps, per (user, stream), the clicks, carts and
watch seconds so far in this stream. It reads the current totals from the online store, adds the
new events and writes the sums through the ``live_session_push`` PushSource (``store.push``), so
the next online lookup (same second) sees them. The read-modify-write holds a lock that every
thread, worker and replica sharing the store respects (``ingest_lock``): BentoML hands a user's
requests to any worker, and without it concurrent events lost increments (40 clicks sent at once
through two workers left a total of 6).
"""

from __future__ import annotations

import contextlib
import threading
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.sources import LIVE_PUSH_SOURCE

LIVE_TYPES = ("stream_view", "product_click", "add_to_cart")
LIVE_FEATURES = ("live_clicks", "live_carts", "live_watch_seconds")
# Redis: users hash into this many locks, so batches of different users rarely wait on each other.
LOCK_STRIPES = 64
# A holder that died frees its Redis lock after LOCK_TTL_S; a writer gives up after LOCK_WAIT_S
# (serving then answers `online: false`, the events being in its durable log already).
LOCK_TTL_S, LOCK_WAIT_S = 10.0, 5.0
_process_lock = threading.Lock()  # stores with no shared lock below: this process only


def _store_of(store_or_reader: Any) -> Any:
    return getattr(store_or_reader, "store", store_or_reader)


def _as_frame(events: Any) -> pd.DataFrame:
    if isinstance(events, pd.DataFrame):
        return events
    if hasattr(events, "to_pandas"):  # pyarrow table
        return events.to_pandas()
    return pd.DataFrame(list(events))


def session_increments(events: Any) -> pd.DataFrame:
    """Per (user_id, stream_id): clicks, carts and watch seconds in ``events``, and the last ts."""
    df = _as_frame(events)
    missing = [c for c in ("user_id", "stream_id", "type") if c not in df.columns]
    if missing:
        raise ValueError(f"live events lack column(s) {missing}")
    df = df[df["stream_id"].notna() & df["type"].isin(LIVE_TYPES)]
    if df.empty:
        return pd.DataFrame(columns=["user_id", "stream_id", "ts", *LIVE_FEATURES])
    ws = df["watch_seconds"] if "watch_seconds" in df.columns else pd.Series(0.0, index=df.index)
    ts = (
        pd.to_datetime(df["ts"], utc=True)
        if "ts" in df.columns
        else pd.Series(pd.Timestamp.now(tz="UTC"), index=df.index)
    )
    frame = pd.DataFrame(
        {
            "user_id": df["user_id"].astype("int64"),
            "stream_id": df["stream_id"].astype("int64"),
            "ts": ts,
            "live_clicks": (df["type"] == "product_click").astype("float64"),
            "live_carts": (df["type"] == "add_to_cart").astype("float64"),
            "live_watch_seconds": np.where(
                df["type"] == "stream_view", pd.to_numeric(ws, errors="coerce").fillna(0.0), 0.0
            ),
        }
    )
    return frame.groupby(["user_id", "stream_id"], as_index=False).agg(
        ts=("ts", "max"),
        live_clicks=("live_clicks", "sum"),
        live_carts=("live_carts", "sum"),
        live_watch_seconds=("live_watch_seconds", "sum"),
    )


def ingest_live_events(store_or_reader: Any, events: Any, ledger: Any = None) -> int:
    """Add ``events`` to the live-session totals in the online store; returns sessions updated.

    ``events`` are canonical event rows (DataFrame, pyarrow Table or dicts) with at least user_id,
    stream_id, type, and optionally ts and watch_seconds; rows without a stream or of other types
    are ignored. Users in ``ledger`` (a DeletionLedger) are skipped.
    """
    from feast.data_source import PushMode

    inc = session_increments(events)
    if ledger is not None and not inc.empty:
        gone = ledger.user_ids()
        inc = inc[~inc["user_id"].isin(gone)]
    if inc.empty:
        return 0
    from features.online_fast import read_rows

    store = _store_of(store_or_reader)
    keys = [
        {"user_id": u, "stream_id": s}
        for u, s in zip(inc["user_id"].tolist(), inc["stream_id"].tolist(), strict=True)
    ]
    with ingest_lock(store, inc["user_id"].tolist()):
        current = read_rows(store, store.get_feature_view("live_session"), keys, list(LIVE_FEATURES))
        out = inc[["user_id", "stream_id"]].copy()
        for f in LIVE_FEATURES:
            before = pd.Series([row[f] for row in current], index=inc.index, dtype="float64").fillna(0.0)
            out[f] = before + inc[f]
        # Never older than now: a total written later must win over the one it was computed from.
        now = pd.Timestamp(datetime.now(UTC))
        out["event_timestamp"] = inc["ts"].where(inc["ts"] > now, now)
        store.push(LIVE_PUSH_SOURCE, out, to=PushMode.ONLINE)
    return len(out)


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
