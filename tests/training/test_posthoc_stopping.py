"""Early stopping after the fact picks what LightGBM's own early stopping picks.

The check: with ``deterministic`` LightGBM and one thread, a fit of N trees without a validation
set grows the same first trees as a fit that stops early, so choosing the tree count afterwards
must land on the in-process best iteration, with the same curve and the same predictions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.errors import ModelFitError
from models.ranker import LightGBMRanker, RankerConfig
from training.posthoc_stopping import choose_iteration, stopping_metric, stopping_point, validation_curves


def frame(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=["affinity", "price", "noise_a", "noise_b"])
    X["slot"] = rng.integers(0, 3, n)  # a coarse column: ties in the early trees' scores
    y = (rng.random(n) < 1 / (1 + np.exp(-(2 * X.affinity - X.price - 2)))).astype(int)
    return X, y


def queries(n: int, rng: np.random.Generator) -> np.ndarray:
    """Query sizes 1..19 summing to n; the small ones often hold no positive (ndcg counts them 1)."""
    g = rng.integers(1, 20, n)
    g = g[np.cumsum(g) <= n]
    return np.append(g, n - g.sum()) if g.sum() < n else g


@pytest.mark.parametrize(
    ("curve", "higher", "patience", "expected"),
    [
        ([0.5, 0.4, 0.3, 0.35, 0.31, 0.29, 0.3], False, 2, (3, 5)),  # stops 2 rounds after the best
        ([0.5, 0.4, 0.3, 0.35, 0.31, 0.29, 0.3], False, 3, (6, 7)),  # patient enough to see 0.29
        ([0.5, 0.4, 0.4, 0.4], False, 5, (2, 4)),  # equal is no improvement: the first best stays
        ([0.1, 0.3, 0.2, 0.2, 0.2], True, 2, (2, 4)),  # ndcg: higher is better
        ([0.5, 0.4, 0.3], False, None, (3, 3)),  # no early stopping: every tree
    ],
)
def test_stopping_point_follows_lightgbm_rule(
    curve: list[float], higher: bool, patience: int | None, expected: tuple[int, int]
) -> None:
    assert stopping_point(curve, higher, patience) == expected


def test_an_empty_curve_is_a_fit_error() -> None:
    with pytest.raises(ModelFitError):
        stopping_point([], False, 5)


@pytest.mark.parametrize("base_feature", [None, "affinity"])  # boosted from a baseline or not
@pytest.mark.parametrize("objective", ["binary", "lambdarank"])
def test_choosing_afterwards_matches_in_process_early_stopping(
    objective: str, base_feature: str | None, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    X, y = frame(2_000, rng)
    Xv, yv = frame(700, rng)
    rank = objective == "lambdarank"
    g, gv = (np.full(200, 10), queries(700, rng)) if rank else (None, None)
    base = {
        "objective": objective,
        "num_leaves": 4,
        "learning_rate": 0.2,
        "num_threads": 1,
        "n_estimators": 60,
        "base_feature": base_feature,
    }
    stopped = LightGBMRanker(RankerConfig(**base, early_stopping_rounds=5)).fit(
        X, y, group=g, valid=(Xv, yv, gv)
    )
    full = LightGBMRanker(RankerConfig(**base, early_stopping_rounds=None)).fit(
        X, y, group=g, valid=(Xv, yv, gv)
    )
    assert 1 < stopped.best_iteration < 50  # the frame makes early stopping matter
    assert (stopped.base is None) == (base_feature is None)

    # The curves are LightGBM's own, metric for metric (logloss and AUC, or ndcg@5 and ndcg@10).
    curves = validation_curves(full, Xv, yv, gv)
    assert set(curves) == set(full.evals_result["valid"])
    for m, values in curves.items():
        np.testing.assert_allclose(values, full.evals_result["valid"][m], rtol=0, atol=1e-9, err_msg=m)
    assert stopping_metric(full.config) == (("ndcg@5", True) if rank else ("binary_logloss", False))

    # Fitted without a validation set (as on Dask), then stopped afterwards with the same patience.
    posthoc = LightGBMRanker(RankerConfig(**base, early_stopping_rounds=5)).fit(X, y, group=g)
    assert posthoc.booster.current_iteration() == 60
    choose_iteration(posthoc, Xv, yv, gv)
    assert posthoc.best_iteration == stopped.best_iteration
    name, higher = stopping_metric(posthoc.config)
    curve = posthoc.evals_result["valid"][name]
    assert len(curve) == len(stopped.evals_result["valid"][name])  # up to where fitting stopped
    assert posthoc.best_iteration == 1 + int(np.argmax(curve) if higher else np.argmin(curve))

    # It predicts, and saves, as the in-process ranker that stopped there.
    assert posthoc.booster.current_iteration() == posthoc.best_iteration
    np.testing.assert_array_equal(posthoc.predict(Xv), stopped.predict(Xv))
    posthoc.save(tmp_path / "r")
    loaded = LightGBMRanker.load(tmp_path / "r")
    assert loaded.best_iteration == stopped.best_iteration
    np.testing.assert_array_equal(loaded.predict(Xv), stopped.predict(Xv))
