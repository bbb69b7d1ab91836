"""A product is not offered before its launch (``products.launch_ts``): not in a carousel at a time
before it (a replay's ``at``, a candidate list naming it), not among an audience's best products.
Before, serving never read the launch time: a replay before a launch, or a catalogue announcing a
product, served it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
from starlette.testclient import TestClient

from serving.catalog import Catalog
from serving.schemas import PushRequest

# The demo world's products all launched 100 days ago.
BEFORE_LAUNCH = (datetime.now(UTC) - timedelta(days=150)).isoformat()
AFTER_LAUNCH = (datetime.now(UTC) - timedelta(days=50)).isoformat()


def test_a_carousel_before_the_launch_offers_none_of_the_products(client: TestClient) -> None:
    for body in ({"candidates": [1, 2, 3, 4]}, {}):  # a candidate list, the whole catalogue
        after = client.post("/carousel", json={"user_id": 8, "k": 4, "at": AFTER_LAUNCH, **body})
        assert after.status_code == 200 and len(after.json()["slots"]) == 4, after.text
        before = client.post("/carousel", json={"user_id": 8, "k": 4, "at": BEFORE_LAUNCH, **body})
        assert before.status_code == 200 and before.json()["slots"] == [], before.text


def test_an_audiences_best_products_leave_out_one_not_launched(world, tables) -> None:  # type: ignore[no-untyped-def]
    rec = world["rec"]
    best = rec.push(PushRequest(segment="buyer", k=3)).products[0].product_id
    products = tables["products"]
    ids = products.column("product_id").to_pylist()
    launch = [datetime.now(UTC) + timedelta(days=10) if p == best else None for p in ids]
    later = products.set_column(
        products.column_names.index("launch_ts"),
        "launch_ts",
        pa.array(launch, products.schema.field("launch_ts").type),
    )
    rec.catalog = Catalog({**tables, "products": later})
    after = [p.product_id for p in rec.push(PushRequest(segment="buyer", k=3)).products]
    assert best not in after and len(after) == 3
