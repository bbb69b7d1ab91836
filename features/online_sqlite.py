"""Rows of several feature views from Feast's SQLite online store in one SQL statement.

Feast's ``online_read`` on SQLite costs one statement per view, and per view it encodes the keys
through EntityKey protos, reads *every* feature row of each key with its timestamp (which the
connection parses into a datetime, row by row) and parses every value proto, requested or not. A
carousel lookup reads four views (user profile, stream, live session, one user x category key per
distinct category): about 2 ms of CPU, most of the SQLite lookup (benchmarks/results/features.md).

``SqliteBatch`` reads the same rows from the same tables on the same connection, as one
``UNION ALL`` statement over the four views, asking only for the requested features and no timestamps (but
the live session's, whose rows expire: ``ViewRead.timed``), with the keys encoded straight from the
values (``online_reads.KeyCodec``, checked against Feast's encoder once per key shape). It uses
private names of Feast 0.67's SQLite store (``_get_conn``, ``_table_id``, ``_quote_id``);
``for_store`` answers None when they are missing and the caller reads one ``online_read`` per view
instead (same values).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import numpy as np

from features.online_reads import ROW_TS, KeyCodec, ViewRead, entity_keys, value_of

log = logging.getLogger(__name__)


class SqliteBatch:
    """Every ``ViewRead`` of a lookup in one statement on Feast's SQLite online store."""

    def __init__(self, store: Any, online: Any, table_id: Any, quote_id: Any) -> None:
        from feast.infra.key_encoding_utils import serialize_entity_key

        self._config = store.config
        self._online = online
        self._table_id, self._quote_id = table_id, quote_id
        self._tables: dict[str, str] = {}
        version = store.config.entity_key_serialization_version

        def feast_key(key: dict[str, Any]) -> bytes:
            out: bytes = serialize_entity_key(entity_keys([key])[0], entity_key_serialization_version=version)
            return out

        self._keys = KeyCodec(version, b"", feast_key)

    @classmethod
    def for_store(cls, store: Any) -> SqliteBatch | None:
        """A batch reader when ``store``'s online store is Feast's SQLite store, else None."""
        if getattr(store.config.online_store, "type", None) != "sqlite":
            return None
        online = store._get_provider().online_store
        import feast.infra.online_stores.sqlite as feast_sqlite

        table_id, quote_id = (
            getattr(feast_sqlite, "_table_id", None),
            getattr(feast_sqlite, "_quote_id", None),
        )
        if table_id is None or quote_id is None or not hasattr(online, "_get_conn"):
            log.warning("Feast's SQLite online store has changed; the fast path reads one view per call")
            return None
        return cls(store, online, table_id, quote_id)

    def sqlite_key(self, key: dict[str, Any]) -> bytes:
        """The ``entity_key`` column Feast's SQLite store writes for ``{join_key: value}``."""
        return self._keys(key)

    def _table(self, view: Any) -> str:
        if view.name not in self._tables:
            versioning = self._config.registry.enable_online_feature_view_versioning
            self._tables[view.name] = self._quote_id(self._table_id(self._config.project, view, versioning))
        return self._tables[view.name]

    def read(self, reads: list[ViewRead]) -> list[list[dict[str, Any]]]:
        """For each read, one ``{feature: value or NaN}`` per key, as ``read_rows`` returns them."""
        from feast.protos.feast.types.Value_pb2 import Value

        keys = [[self.sqlite_key(k) for k in r.keys] for r in reads]
        parts: list[str] = []
        params: list[Any] = []
        for i, (r, ks) in enumerate(zip(reads, keys, strict=True)):
            if not ks or not r.feats:
                continue
            # the row time as stored (an int: no datetime parsed), only where it is asked for
            ts = "CAST(event_ts AS INTEGER)" if r.timed else "NULL"
            parts.append(
                f"SELECT {i}, entity_key, feature_name, value, {ts} FROM {self._table(r.view)} "
                f"WHERE entity_key IN ({','.join('?' * len(ks))}) "
                f"AND feature_name IN ({','.join('?' * len(r.feats))})"
            )
            params += ks
            params += r.feats
        found: dict[tuple[int, bytes], dict[str, bytes]] = {}
        written: dict[tuple[int, bytes], int] = {}
        if parts:
            conn = self._online._get_conn(self._config)
            for i, key, name, raw, ts in conn.execute(" UNION ALL ".join(parts), params).fetchall():
                found.setdefault((i, key), {})[name] = raw
                if ts is not None:
                    written[(i, key)] = ts
        parse = Value.FromString
        out: list[list[dict[str, Any]]] = []
        for i, (r, ks) in enumerate(zip(reads, keys, strict=True)):
            rows = []
            for k in ks:
                got = found.get((i, k), {})
                row = {f: value_of(parse(got[f])) if f in got else np.nan for f in r.feats}
                if r.timed:
                    row[ROW_TS] = _row_time(written[(i, k)]) if (i, k) in written else np.nan
                rows.append(row)
            out.append(rows)
        return out


def _row_time(stored: int) -> float:
    """A row's time in epoch seconds from Feast's SQLite ``event_ts``: Feast stores a naive UTC
    time's ``timestamp()`` (local time on a host not on UTC) and reads it back as
    ``fromtimestamp`` then UTC, so the same here."""
    return datetime.fromtimestamp(stored).replace(tzinfo=UTC).timestamp()
