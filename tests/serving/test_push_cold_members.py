"""A push member the model has no score for gets the bundle's cold rate and the audience's product.

The demo world's users of the segment "new" had no event when the bundle was fitted, so its ALS
does not hold them; those who sent nothing since have no score. Training measures how often such
users bought what they were pushed (the push calibration's ``cold_rate``). Before, the users
direction gave them p_convert 0 and the campaign's first product, and the products direction left
them out of its level. Known answer: community 1's members like category 1 or 4 (user u likes
u % 6), so its favourite campaign product is one of those two, never the first one (category 0)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from starlette.testclient import TestClient

from models.calibration import PlattCalibration
from serving.catalog import Catalog
from tests.serving.conftest import fit_bundle
from tests.serving.test_push_fold_in import CAMPAIGN, _service  # CAMPAIGN[c] is of category c

COLD = 0.06  # among the held members' p_convert (0.055 and up)
CALIBRATION = PlattCalibration(a=1.0, b=-3.0, n=5_000, base_rate=0.05)


@pytest.fixture(scope="module")
def bundles(tables: dict[str, pa.Table], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same fit twice: its calibration with a cold rate, and without one (an older bundle)."""
    out = {}
    with_rate = dataclasses.replace(CALIBRATION, cold_rate=COLD, n_cold=2_000)
    for name, cal in (("cold rate", with_rate), ("none", CALIBRATION)):
        out[name] = fit_bundle(
            tables, tmp_path_factory.mktemp("bundle"), (), {"push_calibration": cal.to_dict()}
        )
    return out


@pytest.fixture(scope="module")
def new(tables: dict[str, pa.Table]) -> set[int]:
    return {int(u) for u in Catalog(tables).segment_members["new"]}


def _push(client: TestClient, **req: Any) -> dict[str, Any]:
    r = client.post("/community/push", json=req)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_users_direction_gives_cold_members_the_cold_rate_and_the_audiences_product(
    tables: dict[str, pa.Table], bundles: dict[str, Path], new: set[int], tmp_path: Path
) -> None:
    ask = {"community_id": 1, "campaign_products": CAMPAIGN, "max_users": 10**6}
    answers = {}
    for name, bundle in bundles.items():
        with _service(tables, tmp_path / name, bundle) as client:
            answers[name] = _push(client, **ask)["users"]
    got = answers["cold rate"]
    rows = list(zip(got["user_id"], got["product_id"], got["p_convert"], got["personalized"], strict=True))
    cold = [(u, pid, p) for u, pid, p, personal in rows if u in new and personal]
    held = [(u, pid, p) for u, pid, p, personal in rows if u not in new and personal]
    assert len(cold) >= 10 and len(held) >= 50
    assert {p for _, _, p in cold} == {COLD}
    favourite = {pid for _, pid, _ in cold}
    assert len(favourite) == 1 and favourite <= {CAMPAIGN[1], CAMPAIGN[4]}, favourite
    evs = got["expected_value"]
    assert evs == sorted(evs, reverse=True)
    # They sit among the members the model holds, by expected value: not all last.
    rank = {u: i for i, u in enumerate(got["user_id"])}
    assert min(rank[u] for u, _, _ in cold) < max(rank[u] for u, _, _ in held)
    # The members the model holds are scored as before.
    before = answers["none"]
    was = {
        u: (pid, p)
        for u, pid, p in zip(before["user_id"], before["product_id"], before["p_convert"], strict=True)
    }
    assert all(was[u] == (pid, p) for u, pid, p in held)
    # A bundle without the figure: 0 for them, as before, but the audience's product all the same.
    assert {was[u][1] for u, _, _ in cold} == {0.0} and {was[u][0] for u, _, _ in cold} == favourite


def test_the_products_direction_counts_cold_members_at_the_cold_rate(
    tables: dict[str, pa.Table], bundles: dict[str, Path], tmp_path: Path
) -> None:
    answers: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name, bundle in bundles.items():
        with _service(tables, tmp_path / name, bundle) as client:
            answers[name] = {
                "new": _push(client, segment="new", k=10)["products"],
                "community": _push(client, community_id=1, k=10)["products"],
            }
    now, before = answers["cold rate"], answers["none"]
    # Nobody in "new" is scored: every product at the cold rate (before: 0), in the same order.
    assert {p["p_convert"] for p in now["new"]} == {COLD}
    assert {p["p_convert"] for p in before["new"]} == {0.0}
    assert [p["product_id"] for p in now["new"]] == [p["product_id"] for p in before["new"]]
    # A community of both: the scored members order the products, as before; the level is the
    # whole audience's, drawn towards the cold rate.
    assert [p["product_id"] for p in now["community"]] == [p["product_id"] for p in before["community"]]
    for a, b in zip(now["community"], before["community"], strict=True):
        assert min(b["p_convert"], COLD) < a["p_convert"] < max(b["p_convert"], COLD), (a, b)
        assert np.isclose(a["expected_value"] / a["p_convert"], b["expected_value"] / b["p_convert"])
