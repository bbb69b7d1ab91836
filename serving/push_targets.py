"""What a community push may offer: the campaign products of ``POST /community/push`` it may give
an audience's users. Kept apart from the ranking (serving/push.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from serving.catalog import US, Catalog
from serving.errors import ConflictError, NotFoundError
from serving.schemas import PushRequest


def campaign_products(catalog: Catalog, req: PushRequest, now: datetime) -> np.ndarray:
    """The request's products (``product_id`` or ``campaign_products``, each once) that a push may
    offer at ``now``: known (404 otherwise), in stock (or of unknown stock) and launched, as the
    carousel and the products direction offer them. The others are given to no one; with none
    left the push is refused (409 naming the field). Before, a product launching later was pushed."""
    field = "product_id" if req.product_id is not None else "campaign_products"
    given = [req.product_id] if req.product_id is not None else req.campaign_products
    products = np.asarray(list(dict.fromkeys(given or [])), np.int64)
    unknown = products[catalog.product_rows(products) < 0]
    if len(unknown):
        raise NotFoundError(f"unknown product {int(unknown[0])}", field=field)
    pf = catalog.product_frame(products)
    in_stock = np.isnan(pf["stock"]) | (pf["stock"] > 0)
    launched = pf["launch_us"] <= int(now.timestamp() * US)
    if (in_stock & launched).any():
        return products[in_stock & launched]
    reasons = []
    if (~in_stock).any():
        out = products[~in_stock][:20].tolist()
        reasons.append(f"out of stock: product{'s' if len(out) > 1 else ''} {', '.join(map(str, out))}")
    later = ~launched & in_stock
    for p, t in zip(products[later][:20].tolist(), pf["launch_us"][later][:20].tolist(), strict=True):
        when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=t)
        reasons.append(f"product {p} not launched until {when.isoformat()}")
    raise ConflictError("; ".join(reasons), field=field)
