"""A shop whose catalogue has no prices (the importers' logs: MovieLens, Taobao, RetailRocket) is
served in the ranker's order. The slot policy ranks by p_convert x price; a product without a
price had no key, so such a shop's carousel came in the first stage's (ALS) order and the ranker's
p_convert changed nothing. An unknown price now counts as 1, as the push ranking counts it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tests.serving.conftest import in_process_service, with_ranker

USER = 20  # a known, consenting viewer of the demo world


@pytest.fixture(scope="module")
def unpriced_state(tables: dict[str, pa.Table], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo world's tables with no price or margin, and a Feast store (SQLite) built on them."""
    from features.data_model import write_table
    from features.settings import FeatureSettings
    from features.store import build_feature_store

    state = tmp_path_factory.mktemp("unpriced")
    products = tables["products"]
    for column in ("price", "margin"):
        at = products.column_names.index(column)
        products = products.set_column(at, column, pa.nulls(products.num_rows, pa.float64()))
    for name, table in {**tables, "products": products}.items():
        write_table(state / "data", name, table)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_feature_store(state / "data", FeatureSettings(state_dir=state))  # type: ignore[call-arg]
    return state


@pytest.fixture(scope="module")
def rate_ranker_bundle(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The serving tests' ALS, with a ranker whose P(convert) rises with the product's conversion
    rate: an order unrelated to the ALS scores."""
    from features.retrieval import feature_names

    names = feature_names("ranker_v1")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.random((4000, len(names))), columns=names)
    X["conversion_rate"] = rng.uniform(0.25, 0.6, len(X))  # the demo products' range: 0.29 .. 0.57
    y = (rng.random(len(X)) < (X["conversion_rate"] - 0.25) / 0.35).astype(int)
    return with_ranker(bundle_dir, tmp_path_factory.mktemp("rate-ranker"), X, y, trees=40)


def test_a_shop_without_prices_gets_the_rankers_order(
    unpriced_state: Path, rate_ranker_bundle: Path, tables: dict[str, pa.Table]
) -> None:
    products = tables["products"].to_pandas()
    plain = products.loc[products["repurchase_cycle_days"].isna(), "product_id"]  # no repurchase boost
    candidates = [int(p) for p in plain.head(40)]
    settings = {
        "SLOTCAST_MODEL_SOURCE": "dir", "SLOTCAST_BUNDLE_DIR": str(rate_ranker_bundle),
        "SLOTCAST_FEATURE_SOURCE": "feast", "SLOTCAST_EPSILON": "0", "SLOTCAST_CATEGORY_CAP": "100",
    }  # fmt: skip
    with in_process_service(unpriced_state, **settings) as c:
        r = c.post("/carousel", json={"user_id": USER, "candidates": candidates, "k": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["personalized"] and not body["degraded"], body
    slots = body["slots"]
    assert len(slots) == 10 and {s["reason"] for s in slots} == {"ranked"}, slots
    p = np.array([s["p_convert"] for s in slots])
    assert np.all(np.diff(p) <= 0), p  # the ranker's order
    assert p[0] > p[-1]  # ... which orders something here
    np.testing.assert_allclose([s["expected_value"] for s in slots], p)  # value 1: the p_convert
    score = np.array([s["score"] for s in slots])
    assert np.any(np.diff(score) > 0), score  # not the first stage's order, which was served before
