"""RetailRocket events.csv: header ``timestamp,visitorid,event,itemid,transactionid``.

view -> product_click, addtocart -> add_to_cart, transaction -> purchase. Timestamps are epoch
milliseconds; the visitor is the user. The file has no category or price (those are in the
separate item_properties files), so products carry neither.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from pipelines.importers.mapping import (
    FileSpec,
    LogFormat,
    Mapped,
    epoch_to_ts,
    find_in_dir,
    first_reason,
    map_values,
)
from pipelines.importers.reading import InputFormatError, first_line

EVENTS = {"view": "product_click", "addtocart": "add_to_cart", "transaction": "purchase"}
REQUIRED = ("timestamp", "visitorid", "event", "itemid")


def _to_events(f: pa.Table) -> Mapped:
    ts, ts_reason = epoch_to_ts(f.column("timestamp"), "ms", "timestamp")
    types, type_reason = map_values(f.column("event"), EVENTS, "event")
    return Mapped(
        events={"ts": ts, "user_id": f.column("visitorid"), "type": types, "product_id": f.column("itemid")},
        reason=first_reason(type_reason, ts_reason),
    )


def _spec_for(path: Path) -> FileSpec:
    header = [h.strip().lower() for h in first_line(path).split(",")]
    missing = [c for c in REQUIRED if c not in header]
    if missing or len(set(header)) != len(header):
        raise InputFormatError(
            path,
            1,
            f"not a RetailRocket events.csv: the header must name {', '.join(REQUIRED)}; found {','.join(header)[:200]!r}",
        )
    return FileSpec("events.csv", ",", header, 1, _to_events)


def _find(path: Path) -> list[Path]:
    return find_in_dir(path, ["events.csv"], "retailrocket")


FORMAT = LogFormat(
    name="retailrocket",
    find_files=_find,
    spec_for=_spec_for,
    description="RetailRocket events.csv (header: timestamp in ms, visitorid, event, itemid, transactionid)",
)
