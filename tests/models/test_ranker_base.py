"""A ranker boosted from a baseline feature (RankerConfig.base_feature): the logistic baseline is
every row's starting score, the trees learn only what improves on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from models import IncompatibleBundleError, LightGBMRanker, ModelFitError, RankerConfig
from models.ranker import fit_base


def auc(y: np.ndarray, p: np.ndarray) -> float:
    r = rankdata(p)
    pos = y == 1
    return float((r[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


def world(n: int, seed: int, a_effect: float) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Conversion from a popularity-like ``pop`` (and ``a`` with ``a_effect``); three noise columns."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"pop": rng.exponential(1.0, n), "a": rng.normal(size=n)})
    for j in range(3):
        X[f"noise{j}"] = rng.normal(size=n)
    logit = -4.0 + 1.2 * X["pop"].to_numpy() + a_effect * X["a"].to_numpy()
    p = 1.0 / (1.0 + np.exp(-logit))
    return X, (rng.random(n) < p).astype(int), p


def fit(X: pd.DataFrame, y: np.ndarray, Xv: pd.DataFrame, yv: np.ndarray, **kw: object) -> LightGBMRanker:
    cfg = RankerConfig(n_estimators=400, early_stopping_rounds=30, num_threads=1, **kw)  # type: ignore[arg-type]
    return LightGBMRanker(cfg).fit(X, y, valid=(Xv, yv))


def test_fit_base_recovers_a_planted_logistic() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=200_000)
    y = (rng.random(x.size) < 1.0 / (1.0 + np.exp(-(-2.0 + 0.7 * x)))).astype(int)
    a, b = fit_base(x, y)
    assert a == pytest.approx(-2.0, abs=0.03) and b == pytest.approx(0.7, abs=0.03)


def test_with_only_noise_to_add_the_ranker_keeps_the_baselines_order() -> None:
    """Little data (about 60 positives), nothing beyond ``pop`` to learn: a free ranker fits noise,
    the boosted one stays on the baseline's order and its AUC."""
    X, y, _ = world(2000, 1, a_effect=0.0)
    Xv, yv, _ = world(1000, 2, a_effect=0.0)
    Xt, yt, pt = world(20_000, 3, a_effect=0.0)
    based = fit(X, y, Xv, yv, base_feature="pop")
    free = fit(X, y, Xv, yv)
    p = based.predict(Xt)
    order_kept = np.corrcoef(rankdata(p), rankdata(Xt["pop"]))[0, 1]
    assert order_kept > 0.95, order_kept
    assert auc(yt, p) >= auc(yt, pt) - 0.01
    assert auc(yt, p) > auc(yt, free.predict(Xt))
    assert abs(p.mean() - pt.mean()) < 0.01  # binary: still a calibrated probability


def test_the_trees_learn_what_the_baseline_misses() -> None:
    X, y, _ = world(20_000, 4, a_effect=1.0)
    Xv, yv, _ = world(5000, 5, a_effect=1.0)
    Xt, yt, pt = world(20_000, 6, a_effect=1.0)
    based = fit(X, y, Xv, yv, base_feature="pop", learning_rate=0.1)
    p = based.predict(Xt)
    base_only = based.base_margin(Xt)
    assert base_only is not None
    assert auc(yt, p) >= auc(yt, pt) - 0.02
    assert auc(yt, p) > auc(yt, base_only) + 0.05  # ``a`` learned on top of ``pop``


def test_save_load_and_the_matrix_path_keep_the_baseline(tmp_path: Path) -> None:
    X, y, _ = world(3000, 7, a_effect=1.0)
    Xv, yv, _ = world(1000, 8, a_effect=1.0)
    model = fit(X, y, Xv, yv, base_feature="pop")
    model.save(tmp_path / "r")
    loaded = LightGBMRanker.load(tmp_path / "r")
    assert loaded.base == model.base and loaded.base is not None
    np.testing.assert_allclose(loaded.predict(Xv), model.predict(Xv))
    np.testing.assert_allclose(loaded.predict_matrix(Xv[loaded.feature_names].to_numpy(np.float64)),
                               model.predict(Xv), rtol=1e-12)  # fmt: skip
    # lambdarank: a raw score, the baseline added the same way
    groups = np.full(300, 10)
    rank = LightGBMRanker(
        RankerConfig(objective="lambdarank", base_feature="pop", n_estimators=20, num_threads=1)
    ).fit(X, y, group=groups)
    np.testing.assert_allclose(rank.predict_matrix(X[rank.feature_names].to_numpy(np.float64)),
                               rank.predict(X), rtol=1e-12)  # fmt: skip


def test_a_missing_or_text_base_feature_is_refused(tmp_path: Path) -> None:
    X, y, _ = world(500, 9, a_effect=0.0)
    with pytest.raises(ModelFitError, match="base_feature 'popularity_score'"):
        LightGBMRanker(RankerConfig(base_feature="popularity_score", n_estimators=5)).fit(X, y)
    with pytest.raises(ModelFitError, match="base_feature 'c'"):
        LightGBMRanker(RankerConfig(base_feature="c", n_estimators=5)).fit(
            X.assign(c=pd.Categorical(np.where(y > 0, "u", "v"))), y
        )
    model = LightGBMRanker(RankerConfig(base_feature="pop", n_estimators=5)).fit(X, y)
    model.save(tmp_path / "r")
    meta = json.loads((tmp_path / "r" / "ranker.json").read_text())
    meta["base"] = None
    (tmp_path / "r" / "ranker.json").write_text(json.dumps(meta))
    with pytest.raises(IncompatibleBundleError, match="base and base_feature disagree"):
        LightGBMRanker.load(tmp_path / "r")
