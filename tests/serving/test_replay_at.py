"""A carousel asked ``at`` a past moment (a replay) reads nothing the user did at or after it: not
the purchases the bought-recently and repurchase-due rules read, not the events folded into their
factors. Before, a purchase made an hour after ``at`` hid the product from the replay of ``at``,
and clicks sent after ``at`` made the replay of a then-unknown user personal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from features.privacy import DeletionLedger
from serving.adapters import DirModelSource, make_policy
from serving.catalog import US, Catalog
from serving.demo import DemoFeatureSource
from serving.runtime import SlotcastApp
from serving.schemas import CarouselRequest, EventsRequest
from serving.settings import ServingSettings
from tests.serving.conftest import fit_bundle

T = datetime(2026, 3, 1, 12, tzinfo=UTC)
HOUR, DAY = 3_600 * US, 86_400 * US
T_US = int(T.timestamp() * US)
DURABLE, CONSUMABLE = 1, 2  # products: no repurchase cycle / a 10-day one


def _tiny_catalog() -> Catalog:
    """User 7 buys the durable an hour after T, and the consumable 20 days before T and again an
    hour after it."""
    buys = [(T_US + HOUR, DURABLE), (T_US - 20 * DAY, CONSUMABLE), (T_US + HOUR, CONSUMABLE)]
    return Catalog(
        {
            "users": pa.table({"user_id": [7], "region": ["eu"], "consent_personalization": [True],
                               "consent_marketing": [True]}),
            "products": pa.table({"product_id": [DURABLE, CONSUMABLE], "category": ["a", "b"],
                                  "price": [10.0, 5.0], "margin": [0.3, 0.3], "stock": [5, 5],
                                  "repurchase_cycle_days": [None, 10.0]}),
            "events": pa.table({"ts": pa.array([t for t, _ in buys], pa.timestamp("us", "UTC")),
                                "user_id": [7] * 3, "type": ["purchase"] * 3, "product_id": [p for _, p in buys]}),
        }
    )  # fmt: skip


def test_purchases_after_at_are_not_read_by_a_replay_of_at() -> None:
    catalog = _tiny_catalog()
    ids = np.array([DURABLE, CONSUMABLE])

    def flags(now_us: int, replay: bool) -> list[list[bool]]:
        got = catalog.purchase_flags(7, ids, now_us, 90.0, before_us=now_us if replay else None)
        return [g.tolist() for g in got[:2]]  # bought_recently, consumable_due

    # At T: the durable is not bought yet; the consumable was bought 20 days ago, so it is due.
    assert flags(T_US, replay=True) == [[False, True], [False, True]]
    # The answer as of now (no cut) does hold both purchases: the replay's answer differs by the cut.
    assert flags(T_US, replay=False) == [[True, True], [False, False]]
    # After the purchases, a replay sees them: the durable bought recently, the consumable not due.
    assert flags(T_US + 2 * HOUR, replay=True) == [[True, True], [False, False]]
    # A purchase applied again (another worker, a retried event) is one purchase.
    catalog.apply_events([{"type": "purchase", "user_id": 7, "product_id": CONSUMABLE, "ts_us": T_US + HOUR}])
    assert catalog.repeat_purchases[7][CONSUMABLE] == [T_US - 20 * DAY, T_US + HOUR]
    assert flags(T_US, replay=True) == [[False, True], [False, True]]
    catalog.forget_purchases(7)  # a deletion: nothing of theirs is left to read
    assert 7 not in catalog.last_purchase and 7 not in catalog.repeat_purchases


def test_a_durable_bought_after_at_is_still_offered_at_at(world) -> None:  # type: ignore[no-untyped-def]
    rec, catalog = world["rec"], world["catalog"]
    user = 8  # consents to personalization
    p = catalog.products
    fresh = p.index[p["repurchase_cycle_days"].isna() & (p["stock"] > 0)].difference(
        list(catalog.last_purchase.get(user, {}))
    )  # durables in stock the user never bought
    durable, other = int(fresh[0]), int(fresh[1])
    at = datetime.now(UTC) - timedelta(days=2)
    at_us = int(at.timestamp() * US)
    catalog.apply_events(
        [{"type": "purchase", "user_id": user, "product_id": durable, "ts_us": at_us + HOUR}]
    )

    def offered(when: datetime) -> set[int]:
        out = rec.carousel(CarouselRequest(user_id=user, candidates=[durable, other], k=2, at=when))
        return {s.product_id for s in out.slots}

    assert durable in offered(at)  # bought an hour later: not yet bought at ``at``
    assert durable not in offered(at + timedelta(hours=2))  # bought an hour ago: left out
    assert other in offered(at)


@pytest.fixture(scope="module")
def bundle(tables: dict[str, pa.Table], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle fitted on every demo user but 0..9, with training's event weights."""
    weights = {"product_click": 1.0, "add_to_cart": 3.0, "purchase": 8.0, "watch_log_scale": 0.5}
    return fit_bundle(tables, tmp_path_factory.mktemp("bundle"), range(10), {"event_weights": weights})


def test_events_sent_after_at_are_not_folded_in_for_a_replay_of_at(
    tables: dict[str, pa.Table], bundle: Path, tmp_path: Path
) -> None:
    settings = ServingSettings(
        state_dir=tmp_path, model_source="dir", bundle_dir=bundle, feature_source="demo", epsilon=0.0
    )
    app = SlotcastApp(settings, DirModelSource(bundle, make_policy(settings)), DemoFeatureSource(tables),
                      Catalog(tables), DeletionLedger(tmp_path))  # fmt: skip
    app.reload()
    user = 1  # not in the bundle, consents to personalization
    clicked = datetime.now(UTC) - timedelta(hours=3)
    app.events(EventsRequest(events=[
        {"user_id": user, "type": "product_click", "product_id": p, "ts": clicked} for p in (1, 7, 13, 19)
    ]))  # fmt: skip

    def fallback(at: datetime | None) -> str | None:
        return app.carousel(CarouselRequest(user_id=user, k=6, at=at)).fallback  # the whole catalogue

    assert fallback(clicked - timedelta(minutes=1)) == "cold_start"  # nothing of theirs before ``at``
    assert fallback(clicked + timedelta(minutes=1)) is None  # their clicks folded in
    assert fallback(None) is None  # now, and cached as before
    assert fallback(clicked - timedelta(minutes=1)) == "cold_start"  # the cache holds no cut factors
    app.close()
