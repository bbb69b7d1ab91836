"""Feast entities: user, product, stream, and category (the (user, category) pair joins on both)."""

from __future__ import annotations

from typing import Any


def make_entities() -> dict[str, Any]:
    from feast import Entity, ValueType

    return {
        "user": Entity(
            name="user", join_keys=["user_id"], value_type=ValueType.INT64, description="a shopper/viewer"
        ),
        "product": Entity(
            name="product",
            join_keys=["product_id"],
            value_type=ValueType.INT64,
            description="a catalogue item",
        ),
        "stream": Entity(
            name="stream", join_keys=["stream_id"], value_type=ValueType.INT64, description="a livestream"
        ),
        "category": Entity(
            name="category",
            join_keys=["category"],
            value_type=ValueType.STRING,
            description="a product category; with user it keys the user x category affinity",
        ),
    }
