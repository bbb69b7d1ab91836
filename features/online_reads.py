"""Rows of several feature views from Feast's online store: per view (any store) or, on Redis, all
of them in one round trip.

The fast path (``features.online_fast``) reads four request-dependent views per lookup (user
profile, stream, live session, one user x category key per distinct category). Through the online
store's ``online_read`` that is one redis-py pipeline, so one network round trip, per view: four
per lookup, most of the Redis path's cost (benchmarks/results/features.md). ``RedisBatch`` sends
every HMGET of a lookup in one pipeline instead, with the keys and hash fields of Feast's own Redis
store (so it reads exactly the bytes ``online_read`` would), skips the per-key timestamp field but
where a read asks for it (``ViewRead.timed``: the live session, whose rows expire), and decodes one
``ValueProto`` per requested field. Building the ~15 keys of a lookup through EntityKey protos
cost about 0.4 ms CPU, as much as the round trips saved, so the keys are encoded straight from the
values (Feast's version-3 layout, checked against Feast's own encoder once per key shape).
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

log = logging.getLogger(__name__)


ROW_TS = "_row_ts"  # a timed read's row time, in whole epoch seconds (NaN: no row); not a feature


class ViewRead(NamedTuple):
    """``feats`` of ``view`` (a Feast FeatureView) for each entity key in ``keys``; ``timed``:
    each row also says when it was written (``ROW_TS``), for a view whose rows expire."""

    view: Any
    keys: list[dict[str, Any]]
    feats: list[str]
    timed: bool = False


def value_of(v: Any) -> Any:
    """A Feast ``ValueProto``'s Python value; NaN when it is unset or null."""
    kind = v.WhichOneof("val")
    if kind is None or kind == "null_val":
        return np.nan
    return getattr(v, kind)


def entity_keys(keys: list[dict[str, Any]]) -> list[Any]:
    """Feast ``EntityKey`` protos for ``{join_key: value}`` dicts (str values as strings, else int64)."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    protos = []
    for key in keys:
        names = sorted(key)  # Feast serializes entity keys with sorted join keys
        vals = [
            Value(string_val=key[n]) if isinstance(key[n], str) else Value(int64_val=int(key[n]))
            for n in names
        ]
        protos.append(EntityKey(join_keys=names, entity_values=vals))
    return protos


def read_rows(
    store: Any, view: Any, keys: list[dict[str, Any]], feats: list[str], timed: bool = False
) -> list[dict[str, Any]]:
    """Read ``feats`` of ``keys`` from the online store with its own ``online_read`` (NaN when
    absent); ``timed``: with each row's time (``ViewRead``)."""
    online = store._get_provider().online_store
    rows = online.online_read(
        store.config, view, entity_keys(keys), list(feats)
    )  # a copy: the Redis store appends to it
    out = []
    for ts, got in rows:
        row = {f: value_of(got[f]) if got and f in got else np.nan for f in feats}
        if timed:  # whole seconds, as Feast's online response gives them (Redis keeps nanos)
            # no value stored: no row (Feast's Redis store answers an absent key with empty values)
            stored = got and any(got[f].WhichOneof("val") is not None for f in feats if f in got)
            row[ROW_TS] = float(math.floor(ts.timestamp())) if stored and ts is not None else np.nan
        out.append(row)
    return out


class RedisBatch:
    """Every HMGET of several ``ViewRead``s in one round trip: one EVALSHA of ``HMGET_ALL`` on a
    single Redis node, else (cluster, sentinel, GLIDE) one pipeline through Feast's store.

    Uses Feast's Redis online store for the key layout (entity key + project; one hash field per
    feature, murmur3 of ``view:feature``) and for the client (the same redis-py client, with
    whatever timeouts serving set on it; ``_read_hash_fields`` for the pipeline or GLIDE batch). Those are
    private methods of Feast 0.67's ``RedisOnlineStore``; ``for_store`` answers None when they are
    missing, and the caller falls back to one ``online_read`` per view (same values, more trips).
    """

    _NEEDED = ("_generate_redis_keys_for_entities", "_generate_hset_keys_for_features", "_read_hash_fields")

    def __init__(self, store: Any, online: Any) -> None:
        from feast.infra.online_stores.redis import _versioned_fv_name

        self._config = store.config
        self._online = online
        self._script: Any = None  # HMGET_ALL on the store's client; None: Feast's pipeline
        cfg = store.config.online_store
        if getattr(cfg, "redis_type", None) == "redis" and getattr(cfg, "client", "redis") == "redis":
            # one node and redis-py: a script's keys may span slots, and GLIDE has its own batch
            self._script = online._get_client(cfg).register_script(HMGET_ALL)
        self._versioned = _versioned_fv_name
        self._project = store.config.project.encode("utf-8")
        self._fields: dict[tuple[str, tuple[str, ...], bool], list[Any]] = {}
        self._keys = KeyCodec(store.config.entity_key_serialization_version, self._project, self._feast_key)

    @classmethod
    def for_store(cls, store: Any) -> RedisBatch | None:
        """A batch reader when ``store``'s online store is Feast's Redis store, else None."""
        if getattr(store.config.online_store, "type", None) != "redis":
            return None
        online = store._get_provider().online_store
        if not all(hasattr(online, m) for m in cls._NEEDED):
            log.warning(
                "Feast's Redis online store lacks %s; the fast path reads one view per round trip",
                [m for m in cls._NEEDED if not hasattr(online, m)],
            )
            return None
        return cls(store, online)

    def _hash_fields(self, view: Any, feats: list[str], timed: bool = False) -> list[Any]:
        """The hash field names of ``feats`` in ``view`` (cached: they depend on names only), and
        last the row timestamp's when ``timed``."""
        key = (view.name, tuple(feats), timed)
        if key not in self._fields:
            _, fields = self._online._generate_hset_keys_for_features(
                view, list(feats), fv_name_override=self._versioned(view, self._config)
            )
            self._fields[key] = fields if timed else fields[:-1]  # Feast appends the timestamp's
        return self._fields[key]

    def _feast_key(self, key: dict[str, Any]) -> bytes:
        keys: list[bytes] = self._online._generate_redis_keys_for_entities(self._config, entity_keys([key]))
        return keys[0]

    def redis_key(self, key: dict[str, Any]) -> bytes:
        """The Redis key Feast's store uses for the entity key ``{join_key: value}``."""
        return self._keys(key)

    def _fetch(self, commands: list[tuple[bytes, list[Any]]]) -> list[list[Any]]:
        """One HMGET reply per (key, fields): one EVALSHA on a single node (redis-py's Script loads
        the script again if the server lost it), else Feast's own pipeline."""
        if self._script is None:
            replies: list[list[Any]] = self._online._read_hash_fields(self._config, commands)
            return replies
        args: list[Any] = []
        for _, fields in commands:
            args.append(len(fields))
            args.extend(fields)
        return list(self._script(keys=[k for k, _ in commands], args=args))

    def read(self, reads: list[ViewRead]) -> list[list[dict[str, Any]]]:
        """For each read, one ``{feature: value or NaN}`` per key, as ``read_rows`` returns them."""
        from feast.protos.feast.types.Value_pb2 import Value
        from google.protobuf.timestamp_pb2 import Timestamp

        commands: list[tuple[bytes, list[Any]]] = []
        for r in reads:
            fields = self._hash_fields(r.view, r.feats, r.timed)
            commands += [(self.redis_key(k), fields) for k in r.keys]
        replies = self._fetch(commands) if commands else []
        out: list[list[dict[str, Any]]] = []
        at = 0
        parse = Value.FromString
        for r in reads:
            rows = []
            n = len(r.feats)
            for reply in replies[at : at + len(r.keys)]:
                values = reply[:n]
                row = {
                    f: np.nan if raw is None else value_of(parse(raw))
                    for f, raw in zip(r.feats, values, strict=True)
                }
                if r.timed:  # no feature stored: no row, as Feast's online_read says
                    ts = reply[n] if any(raw is not None for raw in values) else None
                    row[ROW_TS] = float(Timestamp.FromString(ts).seconds) if ts else np.nan
                rows.append(row)
            at += len(r.keys)
            out.append(rows)
        return out


class KeyCodec:
    """Feast's serialized entity keys (version 3: a header of the sorted join key names, then type,
    length and bytes per value), encoded straight from ``{join_key: value}`` plus ``suffix`` (Redis
    appends the project; SQLite nothing). Building EntityKey protos for Feast's encoder cost about
    0.4 ms CPU a lookup. Each key shape is checked once against ``reference`` (Feast's own encoding
    of the same key); a shape that differs, or an older serialization version, goes through it."""

    def __init__(self, version: int, suffix: bytes, reference: Callable[[dict[str, Any]], bytes]) -> None:
        self._version = version
        self._suffix = suffix
        self._reference = reference
        # sorted join key names -> Feast's encoded key header, or None: encode through Feast
        self._headers: dict[tuple[str, ...], bytes | None] = {}

    def _header(self, names: tuple[str, ...], sample: dict[str, Any]) -> bytes | None:
        if names not in self._headers:
            from feast.infra.key_encoding_utils import serialize_entity_key_prefix

            header: bytes | None = None
            if self._version >= 3:
                header = serialize_entity_key_prefix(list(names), 3)
                if _encode(header, names, sample, self._suffix) != self._reference(sample):
                    log.warning("entity key %s encodes unlike Feast's encoder; using Feast's", names)
                    header = None
            self._headers[names] = header
        return self._headers[names]

    def __call__(self, key: dict[str, Any]) -> bytes:
        names = tuple(sorted(key))
        header = self._header(names, key)
        return self._reference(key) if header is None else _encode(header, names, key, self._suffix)


# Every HMGET of a lookup in one server-side call: KEYS are the entity keys, ARGV per key the number
# of fields then the fields. A pipeline of ~15 HMGETs costs ~330 us of client CPU in redis-py's
# per-command bookkeeping, one EVALSHA ~165 us (benchmarks/results/features.md); the server does
# the same HMGETs either way. Missing fields come back nil, as from HMGET.
HMGET_ALL = """
local out, at = {}, 1
for i, key in ipairs(KEYS) do
  local n = tonumber(ARGV[at])
  out[i] = redis.call('HMGET', key, unpack(ARGV, at + 1, at + n))
  at = at + n + 1
end
return out
"""

_STRING, _INT64 = 2, 4  # feast.types.Value_pb2.ValueType.STRING / INT64


def _encode(header: bytes, names: tuple[str, ...], key: dict[str, Any], suffix: bytes) -> bytes:
    """Feast's version-3 entity key (header, then type, length, bytes per value) + ``suffix``."""
    parts = [header]
    for n in names:
        v = key[n]
        if isinstance(v, str):
            raw = v.encode("utf8")
            parts.append(struct.pack("<II", _STRING, len(raw)) + raw)
        else:
            parts.append(struct.pack("<IIq", _INT64, 8, int(v)))
    parts.append(suffix)
    return b"".join(parts)
