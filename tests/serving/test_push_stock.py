"""A push never offers a product out of stock: in the users direction an out-of-stock campaign
product is given to no one, and a push of only out-of-stock products is refused (409 naming the
field). Before, a user whose best campaign product had stock 0 was given it."""

from __future__ import annotations

from starlette.testclient import TestClient

from serving.demo import demo_tables


def _stock() -> tuple[list[int], list[int]]:
    """(out of stock, in stock) product ids of the in-process service's demo world (conftest: 500
    users, 120 products, the settings' 5 streams of 100, seed 0)."""
    p = demo_tables(500, 120, 5, 100, seed=0)["products"].to_pandas()
    out, ok = p.loc[p["stock"] == 0, "product_id"].tolist(), p.loc[p["stock"] > 0, "product_id"].tolist()
    assert out and ok
    return out, ok


def test_no_user_is_given_an_out_of_stock_campaign_product(client: TestClient) -> None:
    out_of_stock, in_stock = _stock()
    # Community 0's members like categories c0 and c3; out-of-stock product 93 is a c3 (before: 75
    # of the 134 users answered were given it).
    campaign = out_of_stock + in_stock[:2]
    r = client.post("/community/push", json={"community_id": 0, "campaign_products": campaign})
    assert r.status_code == 200, r.text
    given = set(r.json()["users"]["product_id"])
    assert given and given <= set(in_stock[:2])


def test_a_push_of_out_of_stock_products_only_is_refused_naming_the_field(client: TestClient) -> None:
    out_of_stock, _ = _stock()
    r = client.post("/community/push", json={"community_id": 0, "product_id": out_of_stock[0]})
    assert r.status_code == 409 and r.json()["field"] == "product_id", r.text
    r = client.post("/community/push", json={"segment": "buyer", "campaign_products": out_of_stock})
    assert r.status_code == 409 and r.json()["field"] == "campaign_products", r.text
