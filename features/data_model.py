"""The canonical tables of slotcast: names, typed schemas and the closed vocabularies.

Every table is one parquet file named after it (``events.parquet``, ``users.parquet`` ...) in a
data directory. The simulator and the importers write these, the feature build and training read
them, and serving appends events in the same shape. docs/data-model.md explains each column.

IDs are int64 everywhere (importers map external string Ids to ints and keep the mapping).
Timestamps are UTC microseconds. Nullable columns are marked in ``NULLABLE``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

EVENT_TYPES: tuple[str, ...] = (
    "stream_view",
    "comment",
    "like",
    "share",
    "product_click",
    "add_to_cart",
    "purchase",
    "push_sent",
    "push_open",
    "push_click",
    "community_join",
    "community_leave",
)

# Event types that must name a product / a stream / a community.
EVENTS_NEEDING_PRODUCT = frozenset(
    {"product_click", "add_to_cart", "purchase", "push_sent", "push_open", "push_click"}
)
EVENTS_NEEDING_COMMUNITY = frozenset({"community_join", "community_leave"})

SCHEMAS: dict[str, pa.Schema] = {
    "users": pa.schema(
        [
            ("user_id", pa.int64()),
            ("signup_ts", TS),
            ("region", pa.string()),
            ("consent_personalization", pa.bool_()),
            ("consent_marketing", pa.bool_()),
        ]
    ),
    "products": pa.schema(
        [
            ("product_id", pa.int64()),
            ("category", pa.string()),
            ("brand", pa.string()),
            ("price", pa.float64()),
            ("margin", pa.float64()),
            ("stock", pa.int64()),
            ("launch_ts", TS),
            ("repurchase_cycle_days", pa.float64()),
        ]
    ),
    "streams": pa.schema(
        [
            ("stream_id", pa.int64()),
            ("host_id", pa.int64()),
            ("category", pa.string()),
            ("start_ts", TS),
            ("end_ts", TS),
        ]
    ),
    "stream_products": pa.schema(
        [
            ("stream_id", pa.int64()),
            ("product_id", pa.int64()),
            ("on_air_from", TS),
            ("on_air_to", TS),
            ("pinned_slot", pa.int32()),
        ]
    ),
    "communities": pa.schema([("community_id", pa.int64()), ("topic", pa.string())]),
    "memberships": pa.schema([("community_id", pa.int64()), ("user_id", pa.int64()), ("joined_ts", TS)]),
    "events": pa.schema(
        [
            ("event_id", pa.int64()),
            ("ts", TS),
            ("user_id", pa.int64()),
            ("type", pa.string()),
            ("product_id", pa.int64()),
            ("stream_id", pa.int64()),
            ("community_id", pa.int64()),
            ("watch_seconds", pa.float64()),
            ("amount", pa.float64()),
        ]
    ),
    "impressions": pa.schema(
        [
            ("ts", TS),
            ("request_id", pa.string()),
            ("user_id", pa.int64()),
            ("stream_id", pa.int64()),
            ("product_id", pa.int64()),
            ("slot", pa.int32()),
            ("policy", pa.string()),
            ("propensity", pa.float64()),
            ("clicked", pa.bool_()),
            ("purchased", pa.bool_()),
        ]
    ),
    # One row per push decision of a logging policy: the push-side twin of impressions, so that
    # push campaigns can be evaluated off-policy as well. The matching push_sent/open/click events
    # are in events too.
    "pushes": pa.schema(
        [
            ("ts", TS),
            ("push_id", pa.string()),
            ("user_id", pa.int64()),
            ("product_id", pa.int64()),
            ("community_id", pa.int64()),
            ("policy", pa.string()),
            ("propensity", pa.float64()),
            ("opened", pa.bool_()),
            ("clicked", pa.bool_()),
            ("purchased", pa.bool_()),
        ]
    ),
}

NULLABLE: dict[str, frozenset[str]] = {
    "users": frozenset({"region", "signup_ts"}),
    "products": frozenset(
        {"category", "brand", "price", "margin", "stock", "launch_ts", "repurchase_cycle_days"}
    ),
    "streams": frozenset({"host_id", "category", "end_ts"}),
    "stream_products": frozenset({"pinned_slot", "on_air_to"}),
    "communities": frozenset({"topic"}),
    "memberships": frozenset({"joined_ts"}),
    "events": frozenset({"product_id", "stream_id", "community_id", "watch_seconds", "amount"}),
    "impressions": frozenset({"stream_id"}),
    "pushes": frozenset({"community_id"}),
}

PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "products": ("product_id",),
    "streams": ("stream_id",),
    "stream_products": ("stream_id", "product_id", "on_air_from"),
    "communities": ("community_id",),
    "memberships": ("community_id", "user_id"),
    "events": ("event_id",),
    "impressions": ("request_id", "product_id"),
    "pushes": ("push_id",),
}

# Tables every data directory must have; the rest may be absent (imported shop logs have no
# streams, communities, impressions or pushes) and then read as empty tables.
REQUIRED_TABLES: tuple[str, ...] = ("users", "products", "events")
TABLES: tuple[str, ...] = tuple(SCHEMAS)


class TableSchemaError(KeyError):
    """A table file whose columns are not the canonical table's (a required one absent, a type that
    does not cast). A KeyError, as conform's own error always was; exit code 2 at the CLI."""

    exit_code = 2

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def table_path(data_dir: str | Path, table: str) -> Path:
    """Where ``table`` lives in ``data_dir``."""
    if table not in SCHEMAS:
        raise KeyError(f"unknown table {table!r}; known: {', '.join(TABLES)}")
    return Path(data_dir) / f"{table}.parquet"


def files_digest(files: Iterable[tuple[str, Path]]) -> str:
    """sha256 (16 hex digits) of each file's name and bytes, in the order given, read in 1 MiB
    blocks; a file that does not exist is left out. One read of each: what a run records to tell
    its inputs from another run's (training.rerun, features.offline_inputs)."""
    import hashlib

    h = hashlib.sha256()
    for name, path in files:
        if not path.is_file():
            continue
        h.update(name.encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def empty_table(table: str) -> pa.Table:
    """An empty table with the canonical schema."""
    return SCHEMAS[table].empty_table()


def floor_timestamps(arr: Any, unit: str) -> Any:
    """Timestamps of a finer unit than ``unit`` (pandas' nanoseconds) floored to it: the canonical
    microseconds are a cast Arrow refuses as lossy otherwise. Other arrays come back as they are."""
    order = ["s", "ms", "us", "ns"]
    if not pa.types.is_timestamp(arr.type) or order.index(arr.type.unit) <= order.index(unit):
        return arr
    import pyarrow.compute as pc

    step = {"s": "second", "ms": "millisecond", "us": "microsecond"}[unit]
    return pc.cast(pc.floor_temporal(arr, unit=step), pa.timestamp(unit, arr.type.tz), safe=False)


def conform(table: str, data: pa.Table) -> pa.Table:
    """Select and cast ``data``'s columns to the canonical schema of ``table`` (missing nullable columns become nulls)."""
    schema = SCHEMAS[table]
    cols = []
    for field in schema:
        if field.name in data.column_names:
            try:
                col = data.column(field.name)
                if pa.types.is_timestamp(field.type):
                    col = floor_timestamps(col, field.type.unit)
                cols.append(col.cast(field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise type(exc)(f"column {field.name!r} is not {field.type}: {exc}") from exc
        elif field.name in NULLABLE[table]:
            cols.append(pa.nulls(data.num_rows, type=field.type))
        else:
            raise KeyError(f"table {table!r} lacks required column {field.name!r}")
    return pa.Table.from_arrays(cols, schema=schema)


def read_table(data_dir: str | Path, table: str, columns: list[str] | None = None) -> pa.Table:
    """Read one canonical table; an optional table that is absent reads as empty."""
    import pyarrow.parquet as pq

    path = table_path(data_dir, table)
    if not path.exists():
        if table in REQUIRED_TABLES:
            raise FileNotFoundError(f"{path}: required table {table!r} is missing from {data_dir}")
        t = empty_table(table)
        return t.select(columns) if columns else t
    raw = pq.read_table(path)
    try:
        data = conform(table, raw)
    except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        # Was a bare KeyError naming neither the file nor the directory: a traceback in `features build`.
        reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise TableSchemaError(f"{path}: {reason}") from exc
    return data.select(columns) if columns else data


def write_table(data_dir: str | Path, table: str, data: pa.Table) -> Path:
    """Write one canonical table (cast to its schema) and return its path."""
    path = table_path(data_dir, table)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_parquet(conform(table, data), path)
    return path


def atomic_write_parquet(table: pa.Table, path: Path) -> None:
    """Write next to ``path`` and rename, so that a crash never leaves half a table behind (Ctrl-C
    in `data append-events` left an events table cut short, that no longer reads)."""
    import os

    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def data_lock(data_dir: str | Path) -> Iterator[None]:
    """Hold ``data_dir``'s write lock (an ``flock`` on ``.write.lock`` in it, so one host) while
    reading tables and writing them back: `data validate`, `data append-events` and `privacy
    purge` each rewrite whole tables, and two at once would lose one's rows (or bring a purged
    user's back). Waits for the holder."""
    import fcntl

    with open(Path(data_dir) / ".write.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
