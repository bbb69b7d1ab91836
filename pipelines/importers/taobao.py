"""Alibaba Taobao UserBehavior.csv: ``user_id,item_id,category_id,behavior_type,timestamp`` (no header).

Behaviours map to events: pv -> product_click, fav -> like, cart -> add_to_cart, buy -> purchase.
The category id becomes the product's category; timestamps are epoch seconds.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.importers.mapping import (
    FileSpec,
    LogFormat,
    Mapped,
    epoch_to_ts,
    find_in_dir,
    first_reason,
    map_values,
    reason_where,
    trim,
)

BEHAVIOURS = {"pv": "product_click", "fav": "like", "cart": "add_to_cart", "buy": "purchase"}
FIELDS = ["user_id", "item_id", "category_id", "behavior_type", "timestamp"]


def _to_events(f: pa.Table) -> Mapped:
    ts, ts_reason = epoch_to_ts(f.column("timestamp"), "s", "timestamp")
    types, type_reason = map_values(f.column("behavior_type"), BEHAVIOURS, "behavior_type")
    return Mapped(
        events={"ts": ts, "user_id": f.column("user_id"), "type": types, "product_id": f.column("item_id")},
        # A fav (-> like) is the one behaviour the canonical model allows without a product; the source never does.
        reason=first_reason(
            reason_where(pc.equal(trim(f.column("item_id")), ""), "missing item_id"), type_reason, ts_reason
        ),
        category=trim(f.column("category_id")),
    )


def _spec_for(path: Path) -> FileSpec:
    return FileSpec("UserBehavior.csv", ",", FIELDS, 0, _to_events)


def _find(path: Path) -> list[Path]:
    return find_in_dir(path, ["UserBehavior.csv"], "taobao")


FORMAT = LogFormat(
    name="taobao",
    find_files=_find,
    spec_for=_spec_for,
    description="Alibaba UserBehavior.csv (user_id,item_id,category_id,behavior_type,timestamp; no header)",
)
