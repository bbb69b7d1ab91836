"""What a community push may reach and offer, for both directions of ``POST /community/push``: the
audience's users it may target, and the campaign products it may give them. Kept apart from the
ranking (serving/push.py) so that the two directions cannot drift apart on either."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np

from serving.catalog import US, Catalog
from serving.errors import ConflictError, NotFoundError
from serving.schemas import PushRequest


def push_targets(
    catalog: Catalog,
    deleted_mask: Callable[[np.ndarray], np.ndarray],
    audience: np.ndarray,
    by_segment: bool,
    since_us: int,
    cap: int,
    before_us: int | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """(the users of ``audience`` the push may target, how many each rule removed). Out: no
    marketing consent, deleted (erasure), ``cap`` pushes or more since ``since_us`` (and before
    ``before_us``, when given: a replay counts no push sent at or after its ``at``), and for a
    segment no personalization consent: a segment (RFM, behaviour) is a profile of the user's
    history and may not pick them out, as the carousel does not use it; a community is something
    the user joined, and its members without it stay (ranked as its average member). The
    audience's size in an answer counts these users only: it counted the deleted and opted-out
    members too."""
    users = np.unique(audience)
    rules: list[tuple[str, Callable[[np.ndarray], np.ndarray]]] = [
        ("no_consent", lambda u: ~np.asarray(catalog.marketing_consent(u), bool)),
        ("deleted", deleted_mask),
    ]
    if by_segment:
        rules.append(("no_personalization", lambda u: ~np.asarray(catalog.personalization_consent(u), bool)))
    rules.append(("frequency_cap", lambda u: catalog.push_counts(u, since_us, before_us) >= cap))
    suppressed: dict[str, int] = {}
    for name, out in rules:
        gone = np.asarray(out(users), bool)
        suppressed[name] = int(gone.sum())
        users = users[~gone]
    return users, suppressed


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
