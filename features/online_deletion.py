"""Removing a user's rows from the online store by their key bytes, without decoding every key.

Feast's version-3 entity key is a header (the number of join keys, then the sorted join key names)
followed by type, length and bytes per value in the same order. Every user-keyed view here has
``user_id`` as its last join key in that order (``category_id``, ``product_id``, ``stream_id`` all
sort before it), so a key of such a view belongs to user ``u`` exactly when it starts with the view's
header and ends with ``u``'s 16-byte value (type INT64, length 8, the id little-endian). That is
matched where the data lives:

- SQLite: one ``DELETE`` per view comparing those bytes in SQL (``substr``), a scan in C instead of
  a ``SELECT`` of every key into Python;
- Redis: a view keyed by the user alone is one ``DEL`` of a known key; the other shapes are one
  ``SCAN`` per user whose ``MATCH`` pattern (anything, then the user's value and the project) the
  server applies, so only the user's keys come back. Many users at once (a build finishing
  deletions the store missed) take one scan of the project's keys, matched on the client by slicing.

Decoding each key through Feast costs ~25 us (``benchmarks/bench_deletion.py``: a DELETE request on
a store of a million keys took ~25 s that way). A key shape this reasoning does not cover (``user_id``
not last, another serialization version, a header unlike Feast's own) is still handled by decoding.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

_INT64 = 4  # feast ValueType.INT64 (checked against Feast's encoder in ``_shapes``)
_VALUE = struct.Struct("<IIq")  # type, length 8, the int64
_PER_USER_SCAN = 16  # up to this many users: one server-filtered SCAN each; more: one scan per shape
SQL_CHUNK = 500  # values per IN (...) list, below SQLite's variable limit


def user_value(user_id: int) -> bytes:
    """The last 16 bytes of every key (of a shape ending in ``user_id``) that belongs to the user."""
    return _VALUE.pack(_INT64, 8, int(user_id))


def _shapes(store: Any, views: list[Any]) -> dict[tuple[str, ...], bytes | None]:
    """Sorted join key names of each view -> the key header, or None where keys must be decoded."""
    from feast.infra.key_encoding_utils import serialize_entity_key, serialize_entity_key_prefix

    from features.online_reads import entity_keys

    version = store.config.entity_key_serialization_version
    out: dict[tuple[str, ...], bytes | None] = {}
    for fv in views:
        names = tuple(sorted(fv.join_keys))
        if names in out:
            continue
        header = (
            serialize_entity_key_prefix(list(names), 3) if version >= 3 and names[-1] == "user_id" else None
        )
        if header is not None:
            sample = {n: 0 for n in names} | {"user_id": 123456789}
            key = serialize_entity_key(entity_keys([sample])[0], entity_key_serialization_version=version)
            if not (key.startswith(header) and key.endswith(user_value(123456789))):
                header = None  # Feast encodes this shape otherwise: decode its keys instead
        out[names] = header
    return out


def delete_sqlite(store: Any, views: list[Any], uids: set[int]) -> int:
    """Rows removed from the SQLite online store's view tables for ``uids``."""
    config = store.config
    shapes = _shapes(store, views)
    values = [user_value(u) for u in sorted(uids)]
    removed = 0
    con = connect_erasing(Path(config.online_store.path))
    try:
        for fv in views:
            table = f'"{config.project}_{fv.name}"'
            header = shapes[tuple(sorted(fv.join_keys))]
            try:
                if header is None:
                    removed += _delete_sqlite_decoding(
                        con, table, uids, config.entity_key_serialization_version
                    )
                    continue
                for chunk in chunks(values, SQL_CHUNK):
                    marks = ",".join("?" * len(chunk))
                    args: list[Any]
                    if len(fv.join_keys) == 1:  # keyed by the user alone: the primary key's index
                        sql = f"DELETE FROM {table} WHERE entity_key IN ({marks})"
                        args = [header + v for v in chunk]
                    else:
                        sql = (
                            f"DELETE FROM {table} WHERE substr(entity_key, 1, ?) = ?"
                            f" AND substr(entity_key, -16) IN ({marks})"
                        )
                        args = [len(header), header, *chunk]
                    removed += con.execute(sql, args).rowcount
            except sqlite3.OperationalError as exc:
                if "no such table" not in str(exc):
                    raise
                continue  # never materialized
        con.commit()
    finally:
        con.close()
    return removed


def connect_erasing(path: Path) -> sqlite3.Connection:
    """A connection to the SQLite online store whose deletes zero the rows' bytes: by default
    (unless SQLite was built with SQLITE_SECURE_DELETE) a deleted row is only unlinked and its
    bytes stay in the file's free space until the page is reused."""
    con = sqlite3.connect(str(path))
    con.execute("PRAGMA secure_delete = ON")
    return con


def _delete_sqlite_decoding(con: sqlite3.Connection, table: str, uids: set[int], version: int) -> int:
    keys = {row[0] for row in con.execute(f"SELECT DISTINCT entity_key FROM {table}")}
    return sum(
        con.execute(f"DELETE FROM {table} WHERE entity_key = ?", (k,)).rowcount
        for k in keys
        if _decode_user(k, version) in uids
    )


def delete_redis(store: Any, views: list[Any], uids: set[int]) -> int:
    """Keys removed from the Redis online store (one hash per entity key holds all its views).

    One server-filtered SCAN per user covers every shape at once: the pattern is the user's value and
    the project at the end of the key, and the client keeps the keys that start with a user-keyed
    header (a product keyed alone whose id equals the user's also ends that way)."""
    client = store._get_provider().online_store._get_client(store.config.online_store)
    project = store.config.project.encode()
    values = {user_value(u) for u in uids}
    shapes = _shapes(store, views)
    removed = 0
    if any(h is None for h in shapes.values()):
        removed += _delete_redis_decoding(
            client, project, uids, store.config.entity_key_serialization_version
        )
    alone = shapes.get(("user_id",))
    if alone is not None and values:
        removed += int(client.delete(*[alone + v + project for v in values]))
    headers = tuple(h for names, h in shapes.items() if h is not None and names != ("user_id",))
    if not headers:
        return removed
    if len(values) <= _PER_USER_SCAN:
        for v in values:
            keys = client.scan_iter(match=b"*" + _escape(v + project), count=10_000)
            removed += _delete_keys(client, (k for k in keys if k.startswith(headers)))
    else:
        end = -len(project) or None
        keys = client.scan_iter(match=b"*" + _escape(project), count=10_000)
        removed += _delete_keys(
            client, (k for k in keys if k.startswith(headers) and k[-16 - len(project) : end] in values)
        )
    return removed


def _delete_redis_decoding(client: Any, project: bytes, uids: set[int], version: int) -> int:
    keys = client.scan_iter(match=b"*" + _escape(project), count=10_000)
    return _delete_keys(client, (k for k in keys if _decode_user(k[: -len(project)], version) in uids))


def _delete_keys(client: Any, keys: Iterable[bytes]) -> int:
    removed = 0
    for chunk in chunks(list(keys), 1000):
        removed += int(client.delete(*chunk))
    return removed


def _escape(raw: bytes) -> bytes:
    out = bytearray()
    for b in raw:
        if b in b"*?[]\\":
            out.append(0x5C)
        out.append(b)
    return bytes(out)


def _decode_user(key_bytes: bytes, version: int) -> int | None:
    from feast.infra.key_encoding_utils import deserialize_entity_key

    try:
        ek = deserialize_entity_key(key_bytes, entity_key_serialization_version=version)
    except Exception:  # noqa: BLE001 - a foreign key in a shared Redis is not ours to judge
        return None
    for name, val in zip(ek.join_keys, ek.entity_values, strict=False):
        if name == "user_id":
            return int(val.int64_val)
    return None


def chunks(xs: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(xs), n):
        yield xs[i : i + n]
