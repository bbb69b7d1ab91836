"""Deleting users from the online store by key bytes (features.online_deletion), on SQLite and Redis."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from features.live import ingest_live_events
from features.online_deletion import _escape, _shapes, user_value
from features.privacy import delete_user_online
from features.retrieval import FeastFeatureReader
from features.settings import FeatureSettings


def _clicks(reader: FeastFeatureReader, users: list[int], stream: int = 100) -> list[float]:
    return [float(reader.online(u, [12], stream_id=stream).loc[12, "live_clicks"]) for u in users]


def _click(reader: FeastFeatureReader, users: list[int], stream: int = 100) -> None:
    ingest_live_events(reader, [{"user_id": u, "stream_id": stream, "type": "product_click"} for u in users])


def test_a_user_whose_id_bytes_are_glob_characters_takes_no_one_else(built_store: FeatureSettings) -> None:
    """User 42 is the byte '*': unescaped in Redis's MATCH pattern it matched every user 0-255 of
    the same key shape. 63 '?', 91 '[', 92 '\\' and 93 ']' are the other glob characters."""
    reader = FeastFeatureReader(built_store)
    glob_users, others = [42, 63, 91, 92, 93], [41, 200, 42 + 256, 255]
    _click(reader, glob_users + others)
    assert not np.isnan(_clicks(reader, glob_users + others)).any()
    for u in glob_users:
        assert delete_user_online(reader.store, u) >= 1
    assert np.isnan(_clicks(reader, glob_users)).all()
    assert _clicks(reader, others) == [1.0] * len(others), "another user's live row went too"


def test_many_users_at_once(built_store: FeatureSettings) -> None:
    """More users than the per-user scans handle (a build finishing a backlog): one pass per shape."""
    reader = FeastFeatureReader(built_store)
    doomed, kept = list(range(1000, 1040)), [999, 1040, 1000 + 2**32]
    _click(reader, doomed + kept, stream=101)
    removed = delete_user_online(reader.store, set(doomed))
    assert removed >= len(doomed)
    assert np.isnan(_clicks(reader, doomed, stream=101)).all()
    assert _clicks(reader, kept, stream=101) == [1.0] * len(kept)


def test_key_shapes_the_byte_match_does_not_cover_get_no_header(built_store: FeatureSettings) -> None:
    """A view whose join keys do not end in user_id once sorted gets no header (its keys go to the
    decoding path); one that does gets Feast's own header."""
    reader = FeastFeatureReader(built_store)
    views = [
        SimpleNamespace(join_keys=["user_id", "zone"]),
        SimpleNamespace(join_keys=["product_id", "user_id"]),
    ]
    shapes = _shapes(reader.store, views)
    assert shapes[("user_id", "zone")] is None
    header = shapes[("product_id", "user_id")]
    assert header is not None and header.endswith(b"user_id")
    assert user_value(42) == bytes.fromhex("0400000008000000") + b"*" + bytes(7)
    assert _escape(b"a*b?[c]\\") == b"a\\*b\\?\\[c\\]\\\\"


def test_the_decoding_fallback_removes_the_user_and_no_one_else(built_store: FeatureSettings) -> None:
    """The path for key shapes the byte match does not cover, on the real store."""
    import sqlite3

    from features import online_deletion as od
    from features.privacy import _user_keyed_views

    reader = FeastFeatureReader(built_store)
    store, cfg = reader.store, reader.store.config
    _click(reader, [2001, 2002], stream=102)
    version = cfg.entity_key_serialization_version
    if cfg.online_store.type == "redis":
        client = store._get_provider().online_store._get_client(cfg.online_store)
        removed = od._delete_redis_decoding(client, cfg.project.encode(), {2001}, version)
    else:
        con = sqlite3.connect(cfg.online_store.path)
        tables = [f'"{cfg.project}_{v.name}"' for v in _user_keyed_views(store) if v.name == "live_session"]
        removed = sum(od._delete_sqlite_decoding(con, t, {2001}, version) for t in tables)
        con.commit()
        con.close()
    assert removed >= 1
    assert np.isnan(_clicks(reader, [2001], stream=102)).all()
    assert _clicks(reader, [2002], stream=102) == [1.0]


def test_a_deleted_users_bytes_leave_the_sqlite_file(
    sqlite_store: FeatureSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unless SQLite was built with SQLITE_SECURE_DELETE (this Python's is; many are not), it only
    unlinks a deleted row: its bytes stay in the file's free space, readable with a hex editor,
    until the page is reused. The deletion turns ``secure_delete`` on itself, which zeroes them;
    here every connection starts with it off, as on such a build."""
    import sqlite3
    from pathlib import Path

    import features.online_deletion as od

    real = sqlite3.connect

    def connect(*args: Any, **kw: Any) -> sqlite3.Connection:
        con = real(*args, **kw)
        con.execute("PRAGMA secure_delete = OFF")
        return con

    monkeypatch.setattr(od.sqlite3, "connect", connect)
    reader = FeastFeatureReader(sqlite_store)
    u = 0x3C3C5AA5C3C35AA5  # bytes found nowhere else in the file
    _click(reader, [u, u + 1], stream=102)
    path = Path(reader.store.config.online_store.path)
    assert user_value(u) in path.read_bytes()
    assert delete_user_online(reader.store, u) >= 1
    assert user_value(u) not in path.read_bytes()
    assert _clicks(reader, [u + 1], stream=102) == [1.0]
