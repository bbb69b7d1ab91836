from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata, spearmanr

from models import FeatureMismatchError, IncompatibleBundleError, LightGBMRanker, ModelFitError, RankerConfig


def auc(y: np.ndarray, p: np.ndarray) -> float:
    r = rankdata(p)
    pos = y == 1
    return float((r[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


def planted(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Conversion driven by a, b and category 'x'; 'noise' carries nothing. Returns X, y, true p."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "noise": rng.normal(size=n),
            "cat": rng.choice(["x", "y", "z"], size=n),
        }
    )
    logit = 1.5 * X["a"] - 1.0 * X["b"] + 1.2 * (X["cat"] == "x") - 1.5
    p = 1.0 / (1.0 + np.exp(-logit.to_numpy()))
    return X, (rng.random(n) < p).astype(int), p


@pytest.fixture(scope="module")
def binary_model() -> tuple[LightGBMRanker, pd.DataFrame, np.ndarray, np.ndarray]:
    X, y, _ = planted(4000, 1)
    Xv, yv, _ = planted(1500, 2)
    cfg = RankerConfig(
        n_estimators=300,
        learning_rate=0.1,
        categorical_features=["cat"],
        early_stopping_rounds=20,
        num_threads=1,
    )
    model = LightGBMRanker(cfg).fit(X, y, valid=(Xv, yv))
    Xt, yt, pt = planted(3000, 3)
    return model, Xt, yt, pt


def test_learns_the_planted_rule(
    binary_model: tuple[LightGBMRanker, pd.DataFrame, np.ndarray, np.ndarray],
) -> None:
    model, Xt, yt, pt = binary_model
    p = model.predict(Xt)
    oracle = auc(yt, pt)
    assert auc(yt, p) >= oracle - 0.03, f"AUC {auc(yt, p):.3f} vs oracle {oracle:.3f}"
    assert abs(p.mean() - yt.mean()) < 0.03  # binary objective: calibrated on average
    gain = model.feature_importance()
    assert gain["noise"] < min(gain["a"], gain["b"])
    # the categorical effect is learned: category x converts better, all else equal
    assert model.predict(Xt.assign(cat="x")).mean() - model.predict(Xt.assign(cat="y")).mean() > 0.08


def test_early_stopping_records_the_curve(
    binary_model: tuple[LightGBMRanker, pd.DataFrame, np.ndarray, np.ndarray],
) -> None:
    model = binary_model[0]
    assert set(model.evals_result) == {"train", "valid"}
    curve = model.evals_result["valid"]["binary_logloss"]
    assert model.best_iteration < 300 and len(curve) >= model.best_iteration
    assert min(curve) == pytest.approx(curve[model.best_iteration - 1])


def test_predict_takes_columns_by_name(
    binary_model: tuple[LightGBMRanker, pd.DataFrame, np.ndarray, np.ndarray],
) -> None:
    model, Xt, _, _ = binary_model
    shuffled = Xt[["cat", "noise", "b", "a"]].assign(extra=1.0)
    np.testing.assert_array_equal(model.predict(shuffled), model.predict(Xt))


def test_missing_feature_is_named(
    binary_model: tuple[LightGBMRanker, pd.DataFrame, np.ndarray, np.ndarray],
) -> None:
    model, Xt, _, _ = binary_model
    with pytest.raises(FeatureMismatchError, match=r"\['b'\]"):
        model.predict(Xt.drop(columns="b"))


def test_a_feature_given_twice_is_named(
    binary_model: tuple[LightGBMRanker, pd.DataFrame, np.ndarray, np.ndarray],
) -> None:
    # regression: a frame holding a pinned feature twice failed with an AttributeError from pandas
    # (or could feed LightGBM the wrong column), not a FeatureMismatchError naming it
    model, Xt, _, _ = binary_model
    with pytest.raises(FeatureMismatchError, match=r"\['a'\]"):
        model.predict(pd.concat([Xt, Xt[["a"]]], axis=1))


def test_save_load_round_trip(
    binary_model: tuple[LightGBMRanker, pd.DataFrame, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    model, Xt, _, _ = binary_model
    model.save(tmp_path / "r")
    loaded = LightGBMRanker.load(tmp_path / "r")
    np.testing.assert_array_equal(loaded.predict(Xt), model.predict(Xt))
    assert loaded.feature_names == model.feature_names and loaded.categorical_features == ["cat"]
    assert loaded.config == model.config


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("feature_names", ["b", "a", "noise", "cat"], "ranker.json lists"),
        # regression: the load passed and every predict then failed with a KeyError from pandas
        ("categorical_features", ["cat", "colour"], r"categorical features \['colour'\]"),
    ],
)
def test_load_refuses_a_ranker_json_that_disagrees(
    binary_model: tuple[LightGBMRanker, pd.DataFrame, np.ndarray, np.ndarray],
    tmp_path: Path,
    field: str,
    value: list[str],
    message: str,
) -> None:
    binary_model[0].save(tmp_path / "r")
    meta_path = tmp_path / "r" / "ranker.json"
    meta = json.loads(meta_path.read_text())
    meta[field] = value
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(IncompatibleBundleError, match=message):
        LightGBMRanker.load(tmp_path / "r")


def test_lambdarank_orders_within_queries() -> None:
    rng = np.random.default_rng(0)
    n_q, per_q = 300, 10
    X = pd.DataFrame({"signal": rng.normal(size=n_q * per_q), "noise": rng.normal(size=n_q * per_q)})
    rel = np.digitize(X["signal"] + rng.normal(scale=0.3, size=len(X)), [0.0, 1.0])  # 0, 1, 2
    group = np.full(n_q, per_q)
    cfg = RankerConfig(objective="lambdarank", n_estimators=60, min_child_samples=5, num_threads=1)
    model = LightGBMRanker(cfg).fit(X, rel, group=group)
    Xt = pd.DataFrame({"signal": rng.normal(size=per_q * 50), "noise": rng.normal(size=per_q * 50)})
    s = model.predict(Xt).reshape(50, per_q)
    signal = Xt["signal"].to_numpy().reshape(50, per_q)
    # the planted order is the signal's: within each query the scores must follow it closely
    rho = [spearmanr(s[q], signal[q]).statistic for q in range(50)]
    assert np.mean(rho) >= 0.8


def test_bad_training_input_is_refused() -> None:
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    with pytest.raises(ModelFitError, match="single class"):
        LightGBMRanker().fit(X, [0, 0, 0, 0])
    with pytest.raises(ModelFitError, match="0/1"):
        LightGBMRanker().fit(X, [0, 2, 1, 0])
    with pytest.raises(ModelFitError, match="query sizes"):
        LightGBMRanker(RankerConfig(objective="lambdarank")).fit(X, [0, 1, 2, 0])
    with pytest.raises(ModelFitError, match="sum to 4"):
        LightGBMRanker(RankerConfig(objective="lambdarank")).fit(X, [0, 1, 2, 0], group=[2, 3])
    with pytest.raises(FeatureMismatchError, match="text"):
        LightGBMRanker().fit(X.assign(t=["u", "v", "u", "v"]), [0, 1, 0, 1])


@pytest.mark.parametrize("objective", ["binary", "lambdarank"])
def test_predict_matrix_equals_the_plain_predict(objective: str, tmp_path: Path) -> None:
    """The C-API fast path gives exactly Booster.predict's values (NaNs, a truncated forest, one
    row, a reloaded model), and refuses a matrix of the wrong width."""
    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.normal(size=(2000, 4)), columns=["a", "b", "als_score", "slot"])
    X.loc[::5, "slot"] = np.nan
    y = (X["a"] - X["b"] + rng.normal(size=2000) > 0).astype(int).to_numpy()
    group = np.full(100, 20) if objective == "lambdarank" else None
    cfg = RankerConfig(objective=objective, n_estimators=60, early_stopping_rounds=None, num_threads=1)
    model = LightGBMRanker(cfg).fit(X, y, group=group)
    model.save(tmp_path)
    truncated = LightGBMRanker.load(tmp_path)
    truncated.best_iteration = 25  # as early stopping leaves it: fewer trees than the booster holds
    for m in (model, LightGBMRanker.load(tmp_path), truncated):
        for rows in (X.iloc[:50], X.iloc[7:8], X.iloc[:0]):
            M = rows.to_numpy(np.float64)
            np.testing.assert_array_equal(m.predict_matrix(M), m.predict(rows))
            if len(rows):
                plain = m.booster.predict(M, num_iteration=m.best_iteration, num_threads=1)
                np.testing.assert_array_equal(m.predict_matrix(M), plain)
    M = X.iloc[:50].to_numpy(np.float64)
    assert not np.array_equal(truncated.predict_matrix(M), model.predict_matrix(M))
    with pytest.raises(FeatureMismatchError):
        model.predict_matrix(X.to_numpy()[:, :3])


def test_predict_matrix_refuses_categorical_features(binary_model) -> None:
    model, Xt, _, _ = binary_model
    with pytest.raises(FeatureMismatchError):
        model.predict_matrix(np.zeros((2, len(model.feature_names))))
