"""Feast feature views over the offline sources (and the live push source)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

# view name -> (entity names, source name, [(feature, dtype name)], ttl).
# Every ttl is 0 (no expiry) on purpose: Feast's file offline store drops a training row outright
# when all of a view's candidate rows fall outside the ttl. Staleness is handled in the data
# instead: windows roll to zero in the daily rows and a stream gets a closing "not live" row.
VIEW_SPECS: dict[str, tuple[tuple[str, ...], str, list[tuple[str, str]], timedelta]] = {
    # One view for everything keyed by the user alone (RFM, engagement, segment): each view is a
    # separate write per key at materialization and a separate read per request.
    "user_profile": (
        ("user",),
        "user",
        [
            ("recency_days", "Float64"),
            ("frequency_90d", "Float64"),
            ("monetary_90d", "Float64"),
            ("avg_order_value", "Float64"),
            ("days_since_last_purchase", "Float64"),
            ("purchases_total", "Float64"),
            ("tenure_days", "Float64"),
            ("watch_minutes_7d", "Float64"),
            ("watch_minutes_30d", "Float64"),
            ("streams_watched_7d", "Float64"),
            ("product_clicks_7d", "Float64"),
            ("carts_7d", "Float64"),
            ("comments_7d", "Float64"),
            ("push_open_rate_30d", "Float64"),
            ("segment", "String"),
        ],
        timedelta(0),
    ),
    "product_stats": (
        ("product",),
        "product",
        [
            ("price", "Float64"),
            ("margin", "Float64"),
            ("stock", "Float64"),
            ("product_category", "String"),
            ("repurchase_cycle_days", "Float64"),
            ("popularity_7d", "Float64"),
            ("clicks_30d", "Float64"),
            ("conversion_rate", "Float64"),
            ("cart_rate", "Float64"),
            ("days_since_launch", "Float64"),
        ],
        timedelta(0),
    ),
    # Hourly while live, plus one closing row with no viewers after the stream ends.
    "stream_live": (
        ("stream",),
        "stream",
        [("live_viewers", "Float64"), ("live_conversion_rate", "Float64")],
        timedelta(0),
    ),
    "user_category_affinity": (
        ("user", "category"),
        "user_category",
        [("category_affinity_30d", "Float64")],
        timedelta(0),
    ),
    "user_product_history": (
        ("user", "product"),
        "user_product",
        [("last_purchase_epoch_days", "Float64")],
        timedelta(0),
    ),
    "live_session": (
        ("user", "stream"),
        "live_push",
        [("live_clicks", "Float64"), ("live_carts", "Float64"), ("live_watch_seconds", "Float64")],
        timedelta(0),
    ),
}


def make_views(entities: dict[str, Any], sources: dict[str, Any]) -> dict[str, Any]:
    from feast import FeatureView, Field
    from feast import types as ft

    return {
        name: FeatureView(
            name=name,
            entities=[entities[e] for e in ents],
            schema=[Field(name=f, dtype=getattr(ft, t)) for f, t in fields],
            source=sources[src],
            ttl=ttl,
            online=True,
        )
        for name, (ents, src, fields, ttl) in VIEW_SPECS.items()
    }
