"""A push never offers a product before its launch (``products.launch_ts``): in the users direction
of ``POST /community/push`` one launching later is treated as out of stock (tests/serving/
test_push_stock.py), given to no one, and a push of nothing else is refused (409 naming the field and
the launch time). The carousel and the products direction already left it out
(tests/serving/test_launch.py); before, the users direction ranked the audience for it and gave it
to every user."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from tests.serving.conftest import in_process_service


def test_a_push_of_a_product_before_its_launch_gives_it_to_no_one(
    tables: dict[str, pa.Table], bundle_dir: Path, tmp_path: Path
) -> None:
    from features.data_model import write_table

    p = tables["products"].to_pandas()
    in_stock, out_of_stock = p.loc[p["stock"] > 0, "product_id"], p.loc[p["stock"] == 0, "product_id"]
    later, launched, gone = int(in_stock.iloc[0]), int(in_stock.iloc[1]), int(out_of_stock.iloc[0])
    launch = datetime.now(UTC).replace(microsecond=0) + timedelta(days=10)
    column = [launch if pid == later else t for pid, t in zip(p["product_id"], p["launch_ts"], strict=True)]
    kind = tables["products"].schema.field("launch_ts").type
    products = tables["products"].set_column(
        p.columns.get_loc("launch_ts"), "launch_ts", pa.array(column, kind)
    )
    for name, table in {**tables, "products": products}.items():  # the catalogue the service reads
        write_table(tmp_path / "data", name, table)
    with in_process_service(tmp_path, SLOTCAST_MODEL_SOURCE="dir", SLOTCAST_BUNDLE_DIR=str(bundle_dir)) as c:
        r = c.post("/community/push", json={"community_id": 0, "product_id": later})
        assert r.status_code == 409, r.text
        not_yet = f"product {later} not launched until {launch.isoformat()}"
        assert r.json() == {"error": not_yet, "field": "product_id"}

        # Among others: dropped, the others given.
        r = c.post("/community/push", json={"community_id": 0, "campaign_products": [later, launched]})
        assert r.status_code == 200, r.text
        given = r.json()["users"]["product_id"]
        assert given and set(given) == {launched}

        # None left, one out of stock and one not launched: refused, each reason said.
        r = c.post("/community/push", json={"segment": "buyer", "campaign_products": [later, gone]})
        assert r.status_code == 409, r.text
        assert r.json() == {"error": f"out of stock: product {gone}; {not_yet}", "field": "campaign_products"}
