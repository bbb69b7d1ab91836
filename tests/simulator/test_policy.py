"""The logged propensities are the logging policies' true ones, recomputed here from scratch.

For a sample of requests the deterministic slate is rebuilt in plain Python from the truth's
logging factors and the on-air schedule in stream_products (not from the simulator's code), and
every logged propensity must equal (1 - eps) * hit + eps / n_on_air.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from features.data_model import table_path


def _load(data_dir: Path, name: str):
    return pq.read_table(table_path(data_dir, name)).to_pandas()


def _truth(data_dir: Path):
    z = dict(np.load(data_dir / "truth" / "world.npz", allow_pickle=False))
    meta = json.loads((data_dir / "truth" / "truth.json").read_text())
    uix = {int(u): i for i, u in enumerate(z["user_id"])}
    pix = {int(p): i for i, p in enumerate(z["product_id"])}

    def score(user_id: int, product_ids) -> np.ndarray:
        u = z["user_log_factors"][uix[user_id]].astype(np.float64)
        idx = [pix[int(p)] for p in product_ids]
        return z["product_factors"][idx].astype(np.float64) @ u + z["product_bias"][idx]

    return z, meta, score


def test_carousel_propensities_match_the_formula(small_world: Path) -> None:
    imp = _load(small_world, "impressions")
    sp = _load(small_world, "stream_products")
    _, meta, score = _truth(small_world)
    eps, k = meta["carousel"]["epsilon"], meta["carousel"]["slots"]
    rng = np.random.default_rng(0)
    requests = rng.choice(imp["request_id"].unique(), size=300, replace=False)
    by_stream = dict(tuple(sp.groupby("stream_id")))
    checked = 0
    for rid in requests:
        rows = imp[imp["request_id"] == rid].sort_values("slot")
        assert list(rows["slot"]) == list(range(k))
        ts, user, stream = rows["ts"].iloc[0], int(rows["user_id"].iloc[0]), int(rows["stream_id"].iloc[0])
        s = by_stream[stream]
        on_air = s[(s["on_air_from"] <= ts) & (s["on_air_to"] > ts)]
        n = len(on_air)
        assert n >= k
        pinned = on_air[on_air["pinned_slot"].notna()]
        assert len(pinned) <= 1
        free = on_air[on_air["pinned_slot"].isna()]
        ranked = list(
            free["product_id"].to_numpy()[np.argsort(-score(user, free["product_id"]), kind="stable")]
        )
        if len(pinned):
            ranked.insert(int(pinned["pinned_slot"].iloc[0]), int(pinned["product_id"].iloc[0]))
        det = ranked[:k]
        expected = [(1 - eps) * (p == det[s]) + eps / n for s, p in enumerate(rows["product_id"])]
        np.testing.assert_allclose(rows["propensity"].to_numpy(), expected, rtol=1e-12)
        # over all on-air products, each slot's propensities sum to 1
        for slot in range(k):
            total = sum((1 - eps) * (p == det[slot]) + eps / n for p in on_air["product_id"])
            assert abs(total - 1.0) < 1e-12
        checked += 1
    assert checked == 300


def test_exploration_rate_is_epsilon(small_world: Path) -> None:
    imp = _load(small_world, "impressions")
    _, meta, _ = _truth(small_world)
    eps = meta["carousel"]["epsilon"]
    hit = imp["propensity"] > 0.5  # (1 - eps) + eps/n versus eps/n
    greedy_share = hit.groupby(imp["request_id"]).all().mean()
    # explored requests can still coincide with the greedy slate, but rarely (n >= 8, k = 6)
    assert 1 - eps - 0.02 <= greedy_share <= 1 - eps + 0.02


def test_push_propensities_match_the_formula(small_world: Path) -> None:
    pushes = _load(small_world, "pushes")
    products = _load(small_world, "products")
    communities = _load(small_world, "communities")
    z, meta, score = _truth(small_world)
    eps, m = meta["push"]["epsilon"], meta["push"]["candidates"]
    start = np.datetime64(meta["config"]["start"].replace("+00:00", "").replace("Z", ""), "us")
    bias = dict(zip(z["product_id"].tolist(), z["product_bias"].tolist(), strict=True))
    topic = dict(zip(communities["community_id"], communities["topic"], strict=True))
    sample = pushes.sample(200, random_state=1)
    for row in sample.itertuples():
        day = (np.datetime64(row.ts.tz_convert(None), "us") - start) // np.timedelta64(1, "D")
        day_start = (start + np.timedelta64(int(day), "D")).astype("datetime64[us]")
        category = topic[row.community_id].rsplit("-", 1)[0]
        pool = products[(products["category"] == category)]
        pool = pool[pool["launch_ts"].dt.tz_convert(None).to_numpy() <= day_start]
        ids = pool["product_id"].to_numpy()
        cands = ids[np.argsort([-bias[int(p)] for p in ids], kind="stable")[:m]]
        assert row.product_id in cands
        det = cands[int(np.argmax(score(int(row.user_id), cands)))]
        expected = (1 - eps) * (row.product_id == det) + eps / m
        assert abs(row.propensity - expected) < 1e-12
