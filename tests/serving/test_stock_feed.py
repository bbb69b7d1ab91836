"""Stock levels from the brand's inventory system (``POST /products/stock``) change what is offered
while the service runs, in every worker and in a worker started later. Before, the stock was the
products table's, read once at the start: a product sold out during a live stream stayed in the
carousel and in pushes until a restart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from serving.errors import ConflictError
from serving.runtime import SlotcastApp
from serving.schemas import CarouselRequest, PushRequest
from serving.settings import ServingSettings
from tests.serving.conftest import in_process_service

CAROUSEL = {"user_id": 8, "stream_id": 1, "k": 20}


def _offered(c: TestClient) -> list[int]:
    r = c.post("/carousel", json=CAROUSEL)
    assert r.status_code == 200, r.text
    return [s["product_id"] for s in r.json()["slots"]]


def _ranked_on_air(c: TestClient) -> int:
    """A product the carousel ranks into its first slots (no pin, no exploration) and a push offers."""
    r = c.post("/carousel", json=CAROUSEL)
    product = next(s["product_id"] for s in r.json()["slots"] if s["reason"] == "ranked")
    assert c.post("/community/push", json={"community_id": 0, "product_id": product}).status_code == 200
    return int(product)


def _set(c: TestClient, *items: tuple[int, object]) -> object:
    return c.post("/products/stock", json={"items": [{"product_id": p, "stock": s} for p, s in items]})


@pytest.fixture()
def client(tmp_path: Path) -> Iterator[TestClient]:
    with in_process_service(tmp_path) as c:
        yield c


def test_sold_out_leaves_carousel_and_push_and_comes_back(client: TestClient) -> None:
    product = _ranked_on_air(client)
    r = _set(client, (product, 0))
    assert r.status_code == 200 and r.json() == {"updated": 1}, r.text  # type: ignore[attr-defined]
    assert product not in _offered(client)
    r = client.post("/community/push", json={"community_id": 0, "product_id": product})
    assert r.status_code == 409 and r.json()["field"] == "product_id", r.text
    assert "out of stock" in r.json()["error"]
    # Its products direction leaves it out too.
    r = client.post("/community/push", json={"community_id": 0, "k": 20})
    assert r.status_code == 200 and product not in [p["product_id"] for p in r.json()["products"]]
    # Back in stock; the same level sent twice is one update (absolute, nothing counted).
    assert _set(client, (product, 5)).status_code == 200  # type: ignore[attr-defined]
    assert _set(client, (product, 5)).status_code == 200  # type: ignore[attr-defined]
    assert product in _offered(client)
    assert client.post("/community/push", json={"community_id": 0, "product_id": product}).status_code == 200
    # A product given twice in one request: its last level.
    assert _set(client, (product, 0), (product, 3)).json() == {"updated": 1}  # type: ignore[attr-defined]
    assert product in _offered(client)


def test_an_unknown_product_is_404_naming_it_and_nothing_is_set(client: TestClient) -> None:
    product = _ranked_on_air(client)
    r = _set(client, (product, 0), (999_999, 4), (999_998, 1))
    assert r.status_code == 404, r.text  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert body["field"] == "items.1.product_id" and body["product_ids"] == [999_999, 999_998]
    assert "999999" in body["error"] and "999998" in body["error"]
    assert product in _offered(client)  # the known product's level was not set either


@pytest.mark.parametrize("bad", [-1, "0", 1.5, None, True])
def test_a_negative_or_non_integer_level_is_422_naming_the_field(client: TestClient, bad: object) -> None:
    product = _ranked_on_air(client)
    r = _set(client, (product, 0), (product, bad))
    assert r.status_code == 422 and r.json()["field"] == "items.1.stock", r.text  # type: ignore[attr-defined]
    assert product in _offered(client)  # nothing set


def test_another_worker_and_one_started_later_honour_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import serving.shared_events as shared_events

    monkeypatch.setattr(shared_events, "SHARED_REFRESH_S", 0.0)  # the next look, not within a second
    # A second worker on the same state directory and demo world as the in-process service.
    settings = ServingSettings(
        state_dir=tmp_path, model_source="demo", feature_source="demo", demo_users=500, demo_products=120
    )
    other = SlotcastApp.from_settings(settings)

    def offered_by(app: SlotcastApp) -> list[int]:
        return [s.product_id for s in app.carousel(CarouselRequest(**CAROUSEL)).slots]  # type: ignore[arg-type]

    with in_process_service(tmp_path) as c:
        product = _ranked_on_air(c)
        assert product in offered_by(other)
        assert _set(c, (product, 0)).status_code == 200  # type: ignore[attr-defined]
        assert product not in offered_by(other)
        with pytest.raises(ConflictError, match="out of stock"):
            other.push(PushRequest(community_id=0, product_id=product))
    other.close()
    with in_process_service(tmp_path) as c:  # started afterwards: reads the level before serving
        assert product not in _offered(c)
        assert c.post("/community/push", json={"community_id": 0, "product_id": product}).status_code == 409


def test_the_latest_level_taken_wins_whatever_order_it_is_read_in(tables, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Lines of other workers read late, twice or out of order: the level the service took last
    holds. A line without a level (not a stock line) is skipped."""
    from serving.catalog import Catalog
    from serving.stock import STOCK_TYPE, StockLevels

    catalog = Catalog(tables)
    pid = int(catalog.products.index[0])
    directory = tmp_path / "shared_events"
    (directory / STOCK_TYPE).mkdir(parents=True)
    line = {"w": "other", "type": STOCK_TYPE, "product_id": pid, "ts_us": 1}
    (directory / STOCK_TYPE / "20260101.jsonl").write_text(
        "".join(
            json.dumps(x) + "\n"
            for x in [
                {**line, "event_id": 2000, "stock": 7},
                {**line, "event_id": 1000, "stock": 0},
                {**line, "event_id": 3000},
                {**line, "event_id": 2000, "stock": 7},
            ]
        )
    )
    levels = StockLevels(catalog, directory, "me")
    assert catalog.product_frame(np.array([pid]))["stock"][0] == 7
    levels.set([(pid, 0)], 1500, 2)  # taken before the level in force: it does not replace it
    assert catalog.product_frame(np.array([pid]))["stock"][0] == 7
    levels.set([(pid, 0)], 4000, 3)
    assert catalog.product_frame(np.array([pid]))["stock"][0] == 0
    assert pid not in catalog.offered(2**62)


def test_a_level_the_disk_refuses_is_503_and_not_set(tables, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Only what the other workers can read is applied: a level this worker alone held would
    differ between workers."""
    from serving.catalog import Catalog
    from serving.stock import STOCK_TYPE, StockLevels, StockLogUnavailableError

    catalog = Catalog(tables)
    pid = int(catalog.products.index[0])
    before = catalog.product_frame(np.array([pid]))["stock"][0]
    (tmp_path / STOCK_TYPE).write_text("")  # a file where the directory of its lines must be
    levels = StockLevels(catalog, tmp_path, "me")
    with pytest.raises(StockLogUnavailableError) as refused:
        levels.set([(pid, 0 if before else 5)], 1, 1)
    assert refused.value.http_status == 503
    assert catalog.product_frame(np.array([pid]))["stock"][0] == before


def test_a_products_table_written_after_a_level_wins_over_it(tables, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A restart on a newer products table (restocked) serves the table's stock, not a level the
    feed set before the table was written; a level set after the table still wins."""
    import os

    from features.data_model import table_path, write_table
    from serving.catalog import Catalog
    from serving.stock import StockLevels

    data = tmp_path / "data"
    for name in ("users", "products", "events", "streams", "stream_products", "communities", "memberships"):
        if name in tables:
            write_table(data, name, tables[name])
    products = table_path(data, "products")
    written_s = 1_800_000_000  # 2027-01-15
    os.utime(products, (written_s, written_s))
    catalog = Catalog.from_data_dir(data)
    assert catalog.products_written_us == written_s * 1_000_000
    pid = int(catalog.products.index[0])
    in_table = catalog.product_frame(np.array([pid]))["stock"][0]
    assert in_table > 0

    directory = tmp_path / "shared_events"
    levels = StockLevels(catalog, directory, "me")
    levels.set([(pid, 0)], 1000, written_s * 1_000_000 - 1)  # taken before the table was written
    assert catalog.product_frame(np.array([pid]))["stock"][0] == in_table
    levels.set([(pid, 0)], 2000, written_s * 1_000_000 + 1)  # taken after it
    assert catalog.product_frame(np.array([pid]))["stock"][0] == 0

    restarted = Catalog.from_data_dir(data)  # the same table: the later level holds
    StockLevels(restarted, directory, "me-again")
    assert restarted.product_frame(np.array([pid]))["stock"][0] == 0
    newer = written_s + 10
    os.utime(products, (newer, newer))  # the table written again after both levels
    restocked = Catalog.from_data_dir(data)
    StockLevels(restocked, directory, "me-third")
    assert restocked.product_frame(np.array([pid]))["stock"][0] == in_table
