"""Feast feature services: each is a named, ordered feature contract for one consumer.

``ranker_v1`` is the ranker's feature list (numeric only, in this order); a new ranker version gets
a new service (``ranker_v2`` ...) rather than a changed one, so old bundles keep their contract.
"""

from __future__ import annotations

from typing import Any

# service -> [(view name, [features])], in the pinned order.
SERVICE_SPECS: dict[str, list[tuple[str, list[str]]]] = {
    "ranker_v1": [
        (
            "user_profile",
            [
                "recency_days",
                "frequency_90d",
                "monetary_90d",
                "avg_order_value",
                "days_since_last_purchase",
                "watch_minutes_7d",
                "watch_minutes_30d",
                "streams_watched_7d",
                "product_clicks_7d",
                "carts_7d",
                "comments_7d",
                "push_open_rate_30d",
            ],
        ),
        (
            "product_stats",
            [
                "price",
                "margin",
                "stock",
                "popularity_7d",
                "conversion_rate",
                "cart_rate",
                "days_since_launch",
            ],
        ),
        ("stream_live", ["live_viewers", "live_conversion_rate"]),
        ("user_category_affinity", ["category_affinity_30d"]),
        ("live_session", ["live_clicks", "live_carts", "live_watch_seconds"]),
        ("ranker_request_features", ["price_vs_user_aov", "repurchase_due_ratio"]),
    ],
    # What serving's slot policy needs besides the ranker score.
    "serving_context_v1": [
        ("product_stats", ["price", "margin", "stock", "product_category", "repurchase_cycle_days"]),
        ("user_profile", ["segment"]),
    ],
}


def make_feature_services(views: dict[str, Any]) -> dict[str, Any]:
    """``views`` holds feature views and on-demand views by name."""
    from feast import FeatureService

    return {
        name: FeatureService(name=name, features=[views[v][feats] for v, feats in spec])
        for name, spec in SERVICE_SPECS.items()
    }


def service_feature_names(service: str) -> list[str]:
    """The pinned feature order of ``service`` (no Feast import needed)."""
    if service not in SERVICE_SPECS:
        raise KeyError(f"unknown feature service {service!r}; known: {', '.join(SERVICE_SPECS)}")
    return [f for _, feats in SERVICE_SPECS[service] for f in feats]
