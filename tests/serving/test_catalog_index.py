"""The catalogue's purchase index and activity segments, computed in numpy (the per-group and
per-user pandas calls took 15 of the 26 s a 10M-event catalogue took to read), give what the plain
per-row definitions give: here against those definitions, written out, on random purchases with
repeats, identical duplicates, rows without a product and users with no purchase."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.purchases import index_purchases
from serving.segments import activity_segments


def _purchases(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "user_id": rng.integers(0, 40, n),
            "product_id": rng.integers(0, 15, n).astype(float),
            "ts_us": rng.integers(0, 30, n) * 1_000_000,
        }
    )
    df.loc[rng.random(n) < 0.05, "product_id"] = np.nan  # a purchase row without a product
    return pd.concat([df, df.sample(frac=0.2, random_state=seed)])  # identical rows sent twice


def _reference(buys: pd.DataFrame) -> tuple[dict, dict]:
    last: dict[int, dict[int, int]] = {}
    times: dict[tuple[int, int], set[int]] = {}
    for u, p, t in buys.itertuples(index=False):
        if pd.isna(p):
            continue
        key = (int(u), int(p))
        times.setdefault(key, set()).add(int(t))
    for (u, p), ts in times.items():
        last.setdefault(u, {})[p] = max(ts)
    repeats = {}
    for (u, p), ts in times.items():
        if len(ts) > 1:
            repeats.setdefault(u, {})[p] = sorted(ts)
    return last, repeats


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_purchase_index_is_the_latest_and_every_repeated_time(seed: int) -> None:
    buys = _purchases(seed, 400)
    last, repeats = index_purchases(buys)
    assert (last, repeats) == _reference(buys)
    assert repeats, "the data should hold products bought more than once"
    assert all(isinstance(k, int) for k in last) and all(
        isinstance(t, int) for d in last.values() for t in d.values()
    )


def test_no_purchases_index_to_nothing() -> None:
    empty = pd.DataFrame({"user_id": [], "product_id": [], "ts_us": []})
    assert index_purchases(empty) == ({}, {})


def test_activity_segments_follow_the_rule_per_user() -> None:
    buys = _purchases(3, 120)
    active = np.unique(np.r_[buys["user_id"].to_numpy(), [50, 51, 51]])  # 50, 51: events, no purchase
    users = np.arange(0, 60, dtype=np.int64)
    got = activity_segments(users, active, buys)
    counts = buys.groupby("user_id").size()
    for u in users.tolist():
        n = int(counts.get(u, 0))
        want = "loyal" if n >= 3 else "buyer" if n else "browser" if u in set(active.tolist()) else "new"
        assert got[u] == want, u
    assert {got[50], got[51], got[59]} == {"browser", "new"}
    assert activity_segments(users, active[:0], buys.iloc[:0]) == {u: "new" for u in users.tolist()}


def test_a_stock_change_reaches_every_stream_showing_the_product_and_no_other() -> None:
    """Each stream keeps its products' stock beside them; a change updates the streams showing the
    product (found through one index, not an isin per stream) and leaves the others' arrays as
    they were."""
    from serving.catalog import Catalog
    from serving.demo import demo_tables

    cat = Catalog(demo_tables(n_users=50, n_products=60, n_streams=6, per_stream=12, seed=3))
    shown = {sid: set(sp.product_ids.tolist()) for sid, sp in cat.on_air.items()}
    product = max(
        {p for ps in shown.values() for p in ps}, key=lambda p: sum(p in ps for ps in shown.values())
    )
    showing = {sid for sid, ps in shown.items() if product in ps}
    assert 1 < len(showing) < len(shown), "the data should show the product in some streams, not all"
    before = {sid: sp.attributes for sid, sp in cat.on_air.items()}
    cat.replace_stock(cat.product_rows(np.array([product])), np.array([0.0]))
    for sid, sp in cat.on_air.items():
        assert sp.attributes is not None
        if sid in showing:
            i = sp.product_ids.tolist().index(product)
            assert sp.attributes["stock"][i] == 0, sid
            others = np.delete(np.arange(len(sp.product_ids)), i)
            assert np.array_equal(sp.attributes["stock"][others], before[sid]["stock"][others])
        else:
            assert sp.attributes is before[sid], sid
