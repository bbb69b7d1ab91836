"""Feast feature views over the offline sources (and the live push source)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

# A live session is over 24 h after its last event: its (user, stream) totals are then not "live"
# any more. The live_session view's ttl, so that a point-in-time join for a training row and an
# online read (serving) leave an older session out (features.retrieval, features.online_fast); a
# build loads only the sessions active within it (features.store), and serving drops the queued
# live events older than it (serving/live_pending.py).
LIVE_SESSION_ONLINE_WINDOW = timedelta(hours=24)

# view name -> (entity names, source name, [(feature, dtype name)], ttl).
# Every other ttl is 0 (no expiry): staleness is handled in the data instead (windows roll to zero
# in the daily rows and a stream gets a closing "not live" row), because Feast's file offline store
# drops a training row outright when all of a view's candidate rows fall outside the ttl (for the
# live session, features.retrieval gives such a row nulls, as a row with no session).
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
        LIVE_SESSION_ONLINE_WINDOW,
    ),
}


def expired(view: str, row_ts: float, at: float) -> bool:
    """Whether a row of ``view`` written at ``row_ts`` is past the view's ttl at ``at`` (both epoch
    seconds): Feast's point-in-time rule (a row read at t lies in [t - ttl, t]), applied to online
    reads too, which Feast's online store does not do. NaN ``row_ts`` (no row): False."""
    ttl = VIEW_SPECS[view][3].total_seconds()
    return ttl > 0 and at - row_ts > ttl


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
