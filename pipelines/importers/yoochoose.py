"""YOOCHOOSE (RecSys Challenge 2015): clicks ``session,timestamp,item,category`` and buys
``session,timestamp,item,price,quantity`` (no header, ISO-8601 timestamps with ``Z``).

The log has no user ids: each session becomes one user (user_id = session id), so "users" are
really sessions and repeat-visit effects are invisible. Clicks -> product_click; buys -> purchase
with amount = price x quantity (a price or a quantity of 0 means unknown: amount null; the log
leaves both at 0 on a large share of its buys, which are purchases all the same). Category ``0`` means
"no category" (null); ``S`` (special offer), 1-12 and brand ids are kept as they are. Given a
directory, both files are read when present.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from features.validation_rules import parse_column
from pipelines.importers.mapping import (
    FileSpec,
    LogFormat,
    Mapped,
    constant,
    find_in_dir,
    first_reason,
    reason_where,
    trim,
)
from pipelines.importers.reading import InputFormatError

CLICK_FIELDS = ["session_id", "timestamp", "item_id", "category"]
BUY_FIELDS = ["session_id", "timestamp", "item_id", "price", "quantity"]


def _clicks(f: pa.Table) -> Mapped:
    cat = trim(f.column("category"))
    cat = pc.if_else(pc.equal(cat, "0"), pa.nulls(len(cat), pa.string()), cat)
    return Mapped(
        events={
            "ts": f.column("timestamp"),
            "user_id": f.column("session_id"),
            "type": constant(f.num_rows, "product_click"),
            "product_id": f.column("item_id"),
        },
        category=cat,
    )


def _buys(f: pa.Table) -> Mapped:
    price, bad_price = parse_column(f.column("price"), pa.float64())
    qty, bad_qty = parse_column(f.column("quantity"), pa.int64())
    known = pc.greater(price, 0.0)
    amount = pc.if_else(
        pc.fill_null(pc.and_(known, pc.greater(qty, 0)), False),
        pc.multiply(price, pc.cast(qty, pa.float64())),
        pa.nulls(f.num_rows, pa.float64()),
    )
    return Mapped(
        events={
            "ts": f.column("timestamp"),
            "user_id": f.column("session_id"),
            "type": constant(f.num_rows, "purchase"),
            "product_id": f.column("item_id"),
            "amount": amount,
        },
        # A negative price is not "unknown" (0): quarantined like any impossible value, as is a
        # negative quantity (which a price of 0 would otherwise let through with a null amount).
        reason=first_reason(
            reason_where(bad_price, "unparseable price"),
            reason_where(bad_qty, "unparseable quantity"),
            reason_where(pc.less(price, 0.0), "negative price"),
            reason_where(pc.less(qty, 0), "negative quantity"),
        ),
        price=pc.if_else(pc.fill_null(known, False), price, pa.nulls(f.num_rows, pa.float64())),
    )


def _spec_for(path: Path) -> FileSpec:
    if "buys" in path.name.lower():
        return FileSpec("yoochoose-buys.dat", ",", BUY_FIELDS, 0, _buys)
    return FileSpec("yoochoose-clicks.dat", ",", CLICK_FIELDS, 0, _clicks)


def _find(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = []
    for name in ("yoochoose-clicks.dat", "yoochoose-buys.dat"):
        try:
            files += find_in_dir(path, [name], "yoochoose")
        except InputFormatError:
            continue
    if not files:
        raise InputFormatError(path, None, "no yoochoose-clicks.dat or yoochoose-buys.dat in this directory")
    return files


FORMAT = LogFormat(
    name="yoochoose",
    find_files=_find,
    spec_for=_spec_for,
    description="YOOCHOOSE clicks (session, ISO timestamp, item, category) and optionally buys",
)
