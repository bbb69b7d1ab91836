"""Removing the online rows a build no longer has: keys an earlier build wrote that this one does not.

``store.materialize`` writes the latest row of every key the build's offline tables hold; a key
that only an earlier build had kept its row: a purchase, a stream or a category affinity from after
the date of a later ``--as-of`` build, an entity of a data directory built before, a live session
of a build long ago. Serving then read values the offline tables (and training) never had.
``prune_view`` removes, after a view is written, every stored key of the view that the build did
not write, unless ``keep`` (called with the stored row's event time) says to leave it: live
sessions pushed by serving since are not in any build yet.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from features.online_deletion import SQL_CHUNK, chunks, connect_erasing
from features.online_reads import KeyCodec, entity_keys


def _codec(store: Any, suffix: bytes) -> KeyCodec:
    from feast.infra.key_encoding_utils import serialize_entity_key

    version = store.config.entity_key_serialization_version

    def feast_key(key: dict[str, Any]) -> bytes:
        out: bytes = serialize_entity_key(entity_keys([key])[0], entity_key_serialization_version=version)
        return out + suffix

    return KeyCodec(version, suffix, feast_key)


def written_keys(store: Any, rows: pd.DataFrame, join_keys: list[str], suffix: bytes = b"") -> set[bytes]:
    """The serialized entity keys (plus ``suffix``) of ``rows``' join key columns."""
    codec = _codec(store, suffix)
    cols = [rows[k].tolist() for k in join_keys]
    return {codec(dict(zip(join_keys, vals, strict=True))) for vals in zip(*cols, strict=True)}


def prune_view(
    store: Any, view: Any, rows: pd.DataFrame, keep: Callable[[datetime | None], bool] | None = None
) -> int:
    """Remove ``view``'s stored keys that are not among ``rows`` (the build's, just written) and that
    ``keep`` (given the stored event time, UTC) does not keep; returns the keys removed."""
    kind = getattr(store.config.online_store, "type", None)
    join_keys = list(view.join_keys)
    if kind == "sqlite":
        return _prune_sqlite(store, view, written_keys(store, rows, join_keys), keep)
    if kind == "redis":
        suffix = store.config.project.encode("utf8")
        return _prune_redis(store, view, written_keys(store, rows, join_keys, suffix), keep)
    return 0  # another online store: nothing we know how to list


def _prune_sqlite(
    store: Any, view: Any, written: set[bytes], keep: Callable[[datetime | None], bool] | None
) -> int:
    config = store.config
    table = f'"{config.project}_{view.name}"'
    con = connect_erasing(Path(config.online_store.path))  # pruned rows may be a deleted user's
    try:
        try:
            stored = con.execute(
                f"SELECT entity_key, max(event_ts) FROM {table} GROUP BY entity_key"
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return 0
            raise
        stale = [k for k, ts in stored if k not in written and not (keep and keep(_sqlite_ts(ts)))]
        removed = 0
        for chunk in chunks(stale, SQL_CHUNK):
            marks = ",".join("?" * len(chunk))
            con.execute(f"DELETE FROM {table} WHERE entity_key IN ({marks})", chunk)
            removed += len(chunk)
        con.commit()
        return removed
    finally:
        con.close()


def _sqlite_ts(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, int | float) or str(value).replace(".", "", 1).isdigit():
        return datetime.fromtimestamp(float(value), UTC)  # Feast 0.67 stores epoch seconds
    ts = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _prune_redis(
    store: Any, view: Any, written: set[bytes], keep: Callable[[datetime | None], bool] | None
) -> int:
    from feast.infra.online_stores.redis import _mmh3, _redis_key_prefix, _versioned_fv_name

    config = store.config
    client = store._get_provider().online_store._get_client(config.online_store)
    name = _versioned_fv_name(view, config)
    ts_field = f"_ts:{name}".encode()
    pattern = _redis_key_prefix(view.join_keys) + b"*" + config.project.encode("utf8")
    candidates = [k for k in client.scan_iter(match=pattern, count=10_000) if k not in written]
    if not candidates:
        return 0
    with client.pipeline(transaction=False) as pipe:
        for k in candidates:
            pipe.hkeys(k)
            pipe.hget(k, ts_field)
        replies = pipe.execute()
    fields = [_mmh3(f"{name}:{f.name}") for f in view.features] + [ts_field]
    removed = 0
    with client.pipeline(transaction=False) as pipe:
        for k, hkeys, ts in zip(candidates, replies[::2], replies[1::2], strict=True):
            views = {h[4:] for h in hkeys if h.startswith(b"_ts:")}
            if ts_field[4:] not in views or (keep and keep(_redis_ts(ts))):
                continue
            if len(views) == 1:
                pipe.delete(k)  # the whole hash is this view's (with its side fields, e.g. live _writers)
            else:
                pipe.hdel(k, *fields)
            removed += 1
        pipe.execute()
    return removed


def _redis_ts(raw: bytes | None) -> datetime | None:
    if raw is None:
        return None
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.ParseFromString(raw)
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, UTC)
