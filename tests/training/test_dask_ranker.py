"""The ranker fitted across a real 2-worker Dask LocalCluster matches the single-process fit in quality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.ranker import LightGBMRanker, RankerConfig
from training.dask_ranker import _query_aligned_bounds, dask_client, fit_ranker_dask


def planted(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Conversions driven by a known logistic rule on three of five features."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 5)), columns=["affinity", "price_rel", "pop", "noise_a", "noise_b"])
    logit = 2.0 * X.affinity - 1.0 * X.price_rel + 0.5 * X["pop"] - 2.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def auc(y: np.ndarray, s: np.ndarray) -> float:
    order = np.argsort(s)
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    pos = y == 1
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


@pytest.mark.slow
@pytest.mark.integration
def test_dask_fit_matches_single_process_quality(dask_scheduler: str) -> None:
    X, y = planted(12_000, seed=1)
    Xt, yt = planted(8_000, seed=2)
    cfg = RankerConfig(n_estimators=60, num_leaves=15, early_stopping_rounds=None)
    single = LightGBMRanker(cfg).fit(X, y)
    with dask_client(dask_scheduler) as client:
        dist = fit_ranker_dask(X, y, cfg, client=client)
        g = np.full(len(X) // 20, 20)
        rank = fit_ranker_dask(
            X, y, RankerConfig(objective="lambdarank", n_estimators=40), group=g, client=client
        )
    a_single, a_dist = auc(yt, single.predict(Xt)), auc(yt, dist.predict(Xt))
    # The rule is learnable: both clear a floor far above chance, and agree within noise.
    assert a_single > 0.78 and a_dist > 0.78
    assert abs(a_single - a_dist) < 0.015
    assert dist.feature_names == list(X.columns)
    # Lambdarank across partitions (queries of 20 candidates) learns the same rule.
    assert auc(yt, rank.predict(Xt)) > 0.75


def test_partitions_never_cut_a_query() -> None:
    g = np.array([3, 5, 2, 7, 1, 4])
    bounds = _query_aligned_bounds(g, 3)
    ends = set(np.cumsum(g).tolist()) | {0}
    assert bounds[0][0] == 0 and bounds[-1][1] == g.sum()
    assert all(a in ends and b in ends for a, b in bounds)
    assert all(b0 == a1 for (_, b0), (a1, _) in zip(bounds, bounds[1:], strict=False))
