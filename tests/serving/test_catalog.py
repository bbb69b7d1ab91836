"""Catalogue lookups on the carousel's hot path: product columns and one user's purchase flags."""

from __future__ import annotations

import numpy as np
import pytest

from serving.catalog import US, Catalog

DAY = 86_400 * US


def _flags_one_by_one(catalog: Catalog, user: int, pids: np.ndarray, now: int, recent: float) -> tuple:
    """The rules spelled out per product (the loop the vectorised lookup replaced)."""
    cycle = catalog.product_frame(pids)["repurchase_cycle_days"]
    last = catalog.last_purchase.get(user, {})
    bought, due = [], []
    for pid, c in zip(pids.tolist(), cycle.tolist(), strict=True):
        ts = last.get(pid)
        age = None if ts is None else (now - ts) / DAY
        bought.append(age is not None and (age <= recent or not np.isnan(c)))
        due.append(age is not None and not np.isnan(c) and age >= c)
    return np.array(bought), np.array(due), ~np.isnan(cycle)


def test_purchase_flags_match_the_rules_per_product(tables) -> None:
    catalog = Catalog(tables)
    rng = np.random.default_rng(3)
    now = 1_800_000_000 * US
    known = catalog.products.index.to_numpy(np.int64)
    # Purchases at ages from 0 to 200 days, on both consumables and not, plus unknown products.
    for user in range(40):
        buys = rng.choice(known, size=rng.integers(0, 25), replace=False)
        catalog.apply_events(
            {"type": "purchase", "user_id": user, "product_id": int(p), "ts_us": now - int(rng.uniform(0, 200) * DAY)}
            for p in buys
        )  # fmt: skip
    hits = 0
    for user in range(45):  # 40..44: no purchases at all
        pids = np.concatenate([rng.choice(known, 60, replace=False), [10**9, -5]])
        got = catalog.purchase_flags(user, pids, now, 90.0)
        want = _flags_one_by_one(catalog, user, pids, now, 90.0)
        for g, w in zip(got, want, strict=True):
            assert g.dtype == bool and np.array_equal(g, w), user
        cycle = catalog.product_frame(pids)["repurchase_cycle_days"]
        assert all(
            np.array_equal(a, b)
            for a, b in zip(got, catalog.purchase_flags(user, pids, now, 90.0, cycle), strict=True)
        )
        hits += int(got[0].sum() + got[1].sum())
    assert hits > 0  # the purchases did reach some candidates


def test_product_frame_fills_unknown_products(tables) -> None:
    catalog = Catalog(tables)
    pid = int(catalog.products.index[0])
    pf = catalog.product_frame(np.array([pid, 10**9]))
    row = catalog.products.loc[pid]
    assert pf["price"][0] == row["price"] and pf["category"][0] == row["category"]
    assert np.isnan(pf["price"][1]) and np.isnan(pf["stock"][1]) and pf["category"][1] == "unknown"
    assert np.isnan(pf["repurchase_cycle_days"][1]) and np.isnan(pf["margin"][1])


def test_stream_attributes_are_the_product_frame_and_read_only(tables) -> None:
    cat = Catalog(tables)
    assert cat.on_air
    for sp in cat.on_air.values():
        assert sp.attributes is not None
        want = cat.product_frame(sp.product_ids)
        assert set(sp.attributes) == set(want)
        for name, col in want.items():
            np.testing.assert_array_equal(sp.attributes[name], col)
            with pytest.raises(ValueError):  # shared by every request: never written in place
                sp.attributes[name][:1] = sp.attributes[name][:1]
