"""A tiny hand-built canonical world whose feature values are known by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from features.data_model import write_table

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def day(d: float, hour: float = 12.0) -> datetime:
    return T0 + timedelta(days=d, hours=hour)


def build_world(data_dir: Path) -> Path:
    """Write users, products, streams and events; return data_dir.

    user 1: buys product 10 three times (10, 20, 30) on days 10, 20, 30 -> monetary 60, AOV 20.
    user 2: watches stream 100 on day 30 (40 minutes), clicks product 11 twice, never buys.
    user 3: signed up on day 29, one click -> "new".
    user 4: one purchase of product 11 on day 1 only -> sleeping by day 70.
    """
    users = pa.table(
        {
            "user_id": [1, 2, 3, 4],
            "signup_ts": [day(0), day(0), day(29), day(0)],
            "region": ["eu", "eu", "us", "us"],
            "consent_personalization": [True, True, True, True],
            "consent_marketing": [True, True, True, False],
        }
    )
    products = pa.table(
        {
            "product_id": [10, 11, 12],
            "category": ["beauty", "food", "beauty"],
            "brand": ["a", "b", "a"],
            "price": [20.0, 50.0, 10.0],
            "margin": [0.3, 0.2, 0.5],
            "stock": [5, 0, 100],
            "launch_ts": [day(0, 0), day(0, 0), day(20, 0)],
            "repurchase_cycle_days": [30.0, None, 10.0],
        }
    )
    streams = pa.table(
        {
            "stream_id": [100],
            "host_id": [7],
            "category": ["beauty"],
            "start_ts": [day(30, 10)],
            "end_ts": [day(30, 12)],
        }
    )
    rows = [
        # (ts, user, type, product, stream, watch_seconds, amount)
        (day(10), 1, "purchase", 10, None, None, 10.0),
        (day(20), 1, "purchase", 10, None, None, 20.0),
        (day(30, 11.5), 1, "purchase", 10, 100, None, 30.0),
        (day(30, 10.5), 1, "stream_view", None, 100, 600.0, None),
        (day(30, 10.25), 2, "stream_view", None, 100, 2400.0, None),
        (day(30, 10.75), 2, "product_click", 11, 100, None, None),
        (day(30, 10.8), 2, "product_click", 11, 100, None, None),
        (day(30, 10.9), 2, "add_to_cart", 11, 100, None, None),
        (day(30, 9), 3, "product_click", 12, None, None, None),
        (day(1), 4, "purchase", 11, None, None, 50.0),
        (day(29), 1, "push_sent", 10, None, None, None),
        (day(29, 13), 1, "push_open", 10, None, None, None),
        (day(29), 2, "push_sent", 10, None, None, None),
    ]
    events = pa.table(
        {
            "event_id": list(range(1, len(rows) + 1)),
            "ts": [r[0] for r in rows],
            "user_id": [r[1] for r in rows],
            "type": [r[2] for r in rows],
            "product_id": [r[3] for r in rows],
            "stream_id": [r[4] for r in rows],
            "community_id": [None] * len(rows),
            "watch_seconds": [r[5] for r in rows],
            "amount": [r[6] for r in rows],
        }
    )
    for name, t in (("users", users), ("products", products), ("streams", streams), ("events", events)):
        write_table(data_dir, name, t)
    return data_dir
