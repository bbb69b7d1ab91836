"""Turning simulated columns into canonical parquet tables, day by day, in timestamp order.

The big tables (events, impressions, pushes) are produced one simulated day at a time. Rows whose
timestamp falls after the day (a stream running past midnight, a late purchase) are carried into the
next day's batch, so every file is globally sorted by ``ts`` and ``event_id`` follows time.
Each batch is cast with ``features.data_model.conform`` and appended as a parquet row group.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.data_model import EVENT_TYPES, SCHEMAS, conform, table_path

EVENT_CODE = {name: i for i, name in enumerate(EVENT_TYPES)}
NO_ID = -1  # internal marker for a null id


def event_columns(
    ts: np.ndarray,
    user: np.ndarray,
    etype: str | np.ndarray,
    product: np.ndarray | int = NO_ID,
    stream: np.ndarray | int = NO_ID,
    community: np.ndarray | int = NO_ID,
    watch: np.ndarray | float = np.nan,
    amount: np.ndarray | float = np.nan,
) -> dict[str, np.ndarray]:
    """One batch of events as internal columns (indices, -1 for null ids, nan for null floats)."""
    n = len(ts)

    def full(x, dtype):
        return np.broadcast_to(np.asarray(x, dtype=dtype), (n,))

    code = np.full(n, EVENT_CODE[etype], np.int8) if isinstance(etype, str) else etype.astype(np.int8)
    return {
        "ts": np.asarray(ts, np.int64),
        "user": np.asarray(user, np.int64),
        "type": code,
        "product": full(product, np.int64),
        "stream": full(stream, np.int64),
        "community": full(community, np.int64),
        "watch": full(watch, np.float64),
        "amount": full(amount, np.float64),
    }


def concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    parts = [p for p in parts if p and len(p["ts"])]
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _ids(x: np.ndarray) -> pa.Array:
    """Internal index (-1 = null) to an int64 id (index + 1)."""
    return pa.array(x + 1, type=pa.int64(), mask=x < 0)


def _floats(x: np.ndarray) -> pa.Array:
    return pa.array(x, type=pa.float64(), mask=np.isnan(x))


def _prefixed(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers, pa.int64()), pa.string()), "")


def to_events(c: dict[str, np.ndarray], first_event_id: int) -> pa.Table:
    n = len(c["ts"])
    return pa.table(
        {
            "event_id": np.arange(first_event_id, first_event_id + n, dtype=np.int64),
            "ts": c["ts"],
            "user_id": c["user"] + 1,
            "type": pc.take(pa.array(EVENT_TYPES), pa.array(c["type"].astype(np.int32))),
            "product_id": _ids(c["product"]),
            "stream_id": _ids(c["stream"]),
            "community_id": _ids(c["community"]),
            "watch_seconds": _floats(c["watch"]),
            "amount": _floats(c["amount"]),
        }
    )


def to_impressions(c: dict[str, np.ndarray], policy: str) -> pa.Table:
    return pa.table(
        {
            "ts": c["ts"],
            "request_id": _prefixed("r", c["request"]),
            "user_id": c["user"] + 1,
            "stream_id": _ids(c["stream"]),
            "product_id": c["product"] + 1,
            "slot": c["slot"].astype(np.int32),
            "policy": pa.repeat(policy, len(c["ts"])),
            "propensity": c["propensity"],
            "clicked": c["clicked"],
            "purchased": c["purchased"],
        }
    )


def to_pushes(c: dict[str, np.ndarray], policy: str) -> pa.Table:
    n = len(c["ts"])
    return pa.table(
        {
            "ts": c["ts"],
            "push_id": _prefixed("p", c["push"]),
            "user_id": c["user"] + 1,
            "product_id": c["product"] + 1,
            "community_id": _ids(c["community"]),
            "policy": pa.repeat(policy, n),
            "propensity": c["propensity"],
            "opened": c["opened"],
            "clicked": c["clicked"],
            "purchased": c["purchased"],
        }
    )


class SortedTableWriter:
    """Append batches of one table in ts order, carrying rows that belong to a later day."""

    def __init__(self, data_dir: Path, table: str, convert) -> None:
        self.table = table
        self.path = table_path(data_dir, table)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._convert = convert  # (columns, first_row_number) -> pa.Table
        # Dictionary-encode only the low-cardinality strings: trying it on ids and floats costs
        # time and then falls back to plain encoding anyway.
        low_card = [c for c in ("type", "policy") if c in SCHEMAS[table].names]
        self._writer = pq.ParquetWriter(
            self.path, SCHEMAS[table], compression="zstd", use_dictionary=low_card
        )
        self._carry: dict[str, np.ndarray] = {}
        self.rows = 0

    def add(self, batch: dict[str, np.ndarray], until_us: int | None) -> None:
        """Queue ``batch`` and write every queued row with ts < ``until_us`` (None: all)."""
        cols = concat([self._carry, batch]) if self._carry else batch
        if not cols:
            return
        order = np.argsort(cols["ts"], kind="stable")
        cols = {k: v[order] for k, v in cols.items()}
        cut = len(order) if until_us is None else int(np.searchsorted(cols["ts"], until_us, side="left"))
        self._carry = {k: v[cut:] for k, v in cols.items()}
        if cut:
            out = {k: v[:cut] for k, v in cols.items()}
            self._writer.write_table(conform(self.table, self._convert(out, self.rows)))
            self.rows += cut

    def close(self) -> None:
        self.add({}, None)
        self._writer.close()
