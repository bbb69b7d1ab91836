"""The LightGBM conversion ranker with its feature list pinned in the artifact.

Saved as LightGBM's own text model plus a small JSON (feature names and order, objective,
categorical features, config): no pickle, readable with any LightGBM 4.x.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from models._io import read_json, write_json
from models.errors import FeatureMismatchError, IncompatibleBundleError, ModelFitError

log = logging.getLogger(__name__)

Objective = Literal["binary", "lambdarank"]


class RankerConfig(BaseModel):
    """LightGBM hyperparameters; ``model_dump()`` goes into MLflow params."""

    model_config = ConfigDict(extra="forbid")

    objective: Objective = "binary"
    num_leaves: int = Field(default=31, ge=2)
    learning_rate: float = Field(default=0.05, gt=0.0, le=1.0)
    n_estimators: int = Field(default=500, ge=1)
    early_stopping_rounds: int | None = Field(default=50, ge=1)
    min_child_samples: int = Field(default=20, ge=1)
    feature_fraction: float = Field(default=0.9, gt=0.0, le=1.0)
    bagging_fraction: float = Field(default=1.0, gt=0.0, le=1.0)
    bagging_freq: int = Field(default=0, ge=0)
    lambda_l2: float = Field(default=0.0, ge=0.0)
    max_depth: int = -1
    eval_at: list[int] = Field(default_factory=lambda: [5, 10])
    categorical_features: list[str] = Field(default_factory=list)
    random_state: int = 42
    num_threads: int = Field(default=0, ge=0)
    # Boost from a baseline: a logistic fit of the label on this one feature is every row's starting
    # score (LightGBM's init score), so the trees learn only what improves on it on the valid split
    # and early stopping starts from it (for example the bundle's popularity, ``popularity_score``).
    base_feature: str | None = None

    def lgb_params(self) -> dict[str, Any]:
        p: dict[str, Any] = {
            "objective": self.objective,
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": self.bagging_freq,
            "lambda_l2": self.lambda_l2,
            "max_depth": self.max_depth,
            "seed": self.random_state,
            "deterministic": True,
            "num_threads": self.num_threads,
            "verbosity": -1,
        }
        if self.objective == "binary":
            p["metric"] = ["binary_logloss", "auc"]
        else:
            p["metric"] = ["ndcg"]
            p["eval_at"] = list(self.eval_at)
        return p


def _raw_predict_for_mat() -> Any:
    """A function (booster, C-contiguous float64 matrix, num_iteration, num_threads) -> predictions
    through LightGBM's C API, or None when this LightGBM's Python module lacks the handles used."""
    global _RAW_PREDICT
    if _RAW_PREDICT is not None:
        return _RAW_PREDICT or None
    try:
        import ctypes

        from lightgbm.basic import (
            _C_API_DTYPE_FLOAT64,
            _C_API_IS_ROW_MAJOR,
            _C_API_PREDICT_NORMAL,
            _C_API_PREDICT_RAW_SCORE,
            _LIB,
            _safe_call,
        )
    except ImportError:
        _RAW_PREDICT = False
        return None
    params = {t: f"num_threads={t}".encode() for t in (1, 2, 4)}
    c_double_p = ctypes.POINTER(ctypes.c_double)

    def predict(
        booster: Any, X: np.ndarray, num_iteration: int, num_threads: int, raw: bool = False
    ) -> np.ndarray:
        n = X.shape[0]
        out = np.empty(n, dtype=np.float64)
        got = ctypes.c_int64(0)
        _safe_call(
            _LIB.LGBM_BoosterPredictForMat(
                booster._handle,
                X.ctypes.data_as(ctypes.c_void_p),
                ctypes.c_int(_C_API_DTYPE_FLOAT64),
                ctypes.c_int32(n),
                ctypes.c_int32(X.shape[1]),
                ctypes.c_int(_C_API_IS_ROW_MAJOR),
                ctypes.c_int(_C_API_PREDICT_RAW_SCORE if raw else _C_API_PREDICT_NORMAL),
                ctypes.c_int(0),  # start_iteration
                ctypes.c_int(num_iteration),  # <= 0: every tree
                params.get(num_threads) or f"num_threads={num_threads}".encode(),
                ctypes.byref(got),
                out.ctypes.data_as(c_double_p),
            )
        )
        if got.value != n:
            raise ModelFitError(f"LightGBM answered {got.value} values for {n} rows")
        return out

    _RAW_PREDICT = predict
    return predict


_RAW_PREDICT: Any = None  # the function above once built; False when unavailable

ValidSet = tuple[pd.DataFrame, npt.ArrayLike] | tuple[pd.DataFrame, npt.ArrayLike, npt.ArrayLike | None]


def fit_base(x: npt.ArrayLike, y: npt.ArrayLike, ridge: float = 1e-6) -> tuple[float, float]:
    """(intercept, slope) of a logistic regression of ``y > 0`` on ``x`` (NaN read as 0), by Newton."""
    xv = np.nan_to_num(np.asarray(x, dtype=np.float64).ravel())
    yv = (np.asarray(y, dtype=np.float64).ravel() > 0).astype(np.float64)
    rate = float(np.clip(yv.mean(), 1e-6, 1 - 1e-6)) if yv.size else 0.5
    w = np.array([np.log(rate / (1 - rate)), 0.0])
    design = np.column_stack([np.ones_like(xv), xv])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(design @ w)))
        grad = design.T @ (yv - p) - ridge * w
        hess = (design * (p * (1 - p))[:, None]).T @ design + ridge * np.eye(2)
        step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        w += step
        if np.abs(step).max() < 1e-9:
            break
    if not np.isfinite(w).all():
        raise ModelFitError("the baseline's logistic fit did not converge (non-finite coefficients)")
    return float(w[0]), float(w[1])


class LightGBMRanker:
    """``fit`` / ``predict`` / ``feature_importance`` / ``save`` / ``load`` over a pinned feature list."""

    def __init__(self, config: RankerConfig | None = None) -> None:
        self.config = config or RankerConfig()
        self.booster: Any = None
        self.feature_names: list[str] = []
        self.categorical_features: list[str] = []
        self.evals_result: dict[str, dict[str, list[float]]] = {}
        self.best_iteration: int = 0
        self.base: tuple[float, float] | None = None  # (intercept, slope) on config.base_feature
        self._one_output_checked: Any = None  # the booster predict_matrix last checked

    @property
    def objective(self) -> Objective:
        return self.config.objective

    @property
    def is_fitted(self) -> bool:
        return self.booster is not None

    def fit(
        self,
        X: pd.DataFrame,
        y: npt.ArrayLike,
        group: npt.ArrayLike | None = None,
        valid: ValidSet | None = None,
    ) -> LightGBMRanker:
        """Fit on ``X`` (its column order becomes the pinned feature order).

        ``group``: query sizes in row order (required for lambdarank). ``valid``: ``(X, y)`` or
        ``(X, y, group)``, a later time split: early stopping and ``evals_result`` use it.
        """
        import lightgbm as lgb

        if not isinstance(X, pd.DataFrame):
            raise ModelFitError(f"X must be a pandas DataFrame, got {type(X).__name__}")
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ModelFitError(f"cannot fit the ranker on an empty frame (shape {X.shape})")
        names = [str(c) for c in X.columns]
        if len(set(names)) != len(names):
            raise ModelFitError(
                f"duplicate feature names: {sorted({n for n in names if names.count(n) > 1})}"
            )
        self.feature_names = names
        cats = set(self.config.categorical_features) | {
            c for c in names if isinstance(X[c].dtype, pd.CategoricalDtype)
        }
        unknown = sorted(cats - set(names))
        if unknown:
            raise ModelFitError(f"categorical_features {unknown} are not columns of X")
        self.categorical_features = [c for c in names if c in cats]
        Xt = self._prepare(X)
        yt = self._labels(y, len(Xt), "y")
        gt = self._groups(group, len(Xt), "group")
        params = self.config.lgb_params()
        self.base = None
        if self.config.base_feature is not None:
            base = self.config.base_feature
            if base not in names or base in self.categorical_features:
                raise ModelFitError(f"base_feature {base!r} is not a numeric column of X (columns: {names})")
            self.base = fit_base(Xt[base].to_numpy(np.float64), yt)
        train = lgb.Dataset(Xt, label=yt, group=gt, categorical_feature=self.categorical_features or "auto",
                            init_score=self.base_margin(Xt), free_raw_data=False)  # fmt: skip
        valid_sets, valid_names, callbacks = [train], ["train"], []
        self.evals_result = {}
        callbacks.append(lgb.record_evaluation(self.evals_result))
        if valid is not None:
            Xv = self._prepare(valid[0])
            yv = self._labels(valid[1], len(Xv), "valid y")
            gv = self._groups(valid[2] if len(valid) > 2 else None, len(Xv), "valid group")
            valid_sets.append(
                lgb.Dataset(Xv, label=yv, group=gv, init_score=self.base_margin(Xv), reference=train)
            )
            valid_names.append("valid")
            if self.config.early_stopping_rounds:
                callbacks.append(
                    lgb.early_stopping(
                        self.config.early_stopping_rounds, first_metric_only=True, verbose=False
                    )
                )
        try:
            self.booster = lgb.train(
                params,
                train,
                num_boost_round=self.config.n_estimators,
                valid_sets=valid_sets,
                valid_names=valid_names,
                callbacks=callbacks,
            )
        except lgb.basic.LightGBMError as exc:
            raise ModelFitError(f"LightGBM fit failed: {exc}") from exc
        self.best_iteration = int(self.booster.best_iteration or self.booster.current_iteration())
        if self.booster.feature_name() != self.feature_names:
            raise ModelFitError(
                f"LightGBM renamed features {self.booster.feature_name()} (given {self.feature_names}); "
                "use names of letters, digits and underscores"
            )
        log.info(
            "ranker fitted: %d rows, %d features, best iteration %d", len(Xt), len(names), self.best_iteration
        )
        return self

    def base_margin(self, X: pd.DataFrame | np.ndarray) -> np.ndarray | None:
        """Each row's starting score from the baseline (None without one); ``X``: prepared columns."""
        if self.base is None or self.config.base_feature is None:
            return None
        if isinstance(X, pd.DataFrame):
            x = X[self.config.base_feature].to_numpy(np.float64)
        else:
            x = np.asarray(X, dtype=np.float64)[:, self.feature_names.index(self.config.base_feature)]
        return self.base[0] + self.base[1] * np.nan_to_num(x)

    def _finish(self, raw: np.ndarray, margin: np.ndarray | None) -> np.ndarray:
        """Raw tree scores plus the baseline, as probabilities for the binary objective."""
        if margin is None:
            return raw
        raw = raw + margin
        return 1.0 / (1.0 + np.exp(-raw)) if self.objective == "binary" else raw

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        """Select and order the pinned features; categorical columns as pandas categories."""
        if not isinstance(X, pd.DataFrame):
            raise FeatureMismatchError(f"features must be a pandas DataFrame, got {type(X).__name__}")
        missing = [c for c in self.feature_names if c not in X.columns]
        if missing:
            raise FeatureMismatchError(
                f"the feature frame lacks {len(missing)} feature(s) the ranker was trained on: {missing}"
            )
        twice = sorted({str(c) for c in X.columns[X.columns.duplicated()]} & set(self.feature_names))
        if twice:
            raise FeatureMismatchError(f"the feature frame holds feature(s) {twice} more than once")
        out = X.loc[:, self.feature_names].copy()
        for c in self.categorical_features:
            if not isinstance(out[c].dtype, pd.CategoricalDtype):
                out[c] = out[c].astype("category")
        bad = [c for c in self.feature_names if c not in self.categorical_features and out[c].dtype == object]
        if bad:
            raise FeatureMismatchError(f"features {bad} are text; declare them in categorical_features")
        return out

    def _labels(self, y: npt.ArrayLike, n: int, what: str) -> np.ndarray:
        arr = np.asarray(y, dtype=np.float64).ravel()
        if arr.size != n:
            raise ModelFitError(f"{what} has {arr.size} labels for {n} rows")
        if not np.isfinite(arr).all():
            raise ModelFitError(f"{what} holds NaN or infinite labels")
        if self.objective == "binary":
            if not np.isin(arr, (0.0, 1.0)).all():
                raise ModelFitError(f"{what} must be 0/1 for the binary objective")
            if what == "y" and np.unique(arr).size < 2:
                raise ModelFitError(f"{what} has a single class ({arr[0]:g}); there is nothing to learn")
        elif (arr < 0).any() or (arr != np.round(arr)).any():
            raise ModelFitError(f"{what} must be non-negative integer relevance for lambdarank")
        return arr

    def _groups(self, group: npt.ArrayLike | None, n: int, what: str) -> np.ndarray | None:
        if group is None:
            if self.objective == "lambdarank":
                raise ModelFitError(f"{what} (query sizes) is required for the lambdarank objective")
            return None
        g = np.asarray(group, dtype=np.int64).ravel()
        if (g <= 0).any() or int(g.sum()) != n:
            raise ModelFitError(f"{what} sizes must be positive and sum to {n} rows, got sum {int(g.sum())}")
        return g

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """P(convert) for the binary objective, the raw ranking score for lambdarank.

        Columns are taken by name in the pinned order; extra columns are ignored; a missing one
        raises FeatureMismatchError naming it.
        """
        if not self.is_fitted:
            raise ModelFitError("the ranker is not fitted or loaded")
        Xp = self._prepare(X)
        if len(Xp) == 0:
            return np.empty(0, dtype=np.float64)
        margin = self.base_margin(Xp)
        out = self.booster.predict(
            Xp, num_iteration=self.best_iteration or None, raw_score=margin is not None
        )
        return self._finish(np.asarray(out, dtype=np.float64), margin)

    def predict_matrix(self, X: np.ndarray, num_threads: int = 1) -> np.ndarray:
        """``predict`` for a float64 matrix whose columns are ``feature_names`` in order (no
        categorical features), the same values as ``booster.predict(X, num_threads=...)``.

        For serving's ~50-row requests: ``Booster.predict`` spends ~60-90 us per call in Python
        (a predictor object, parameter copies, shape checks) around ~45 us of fixed C cost and
        ~9 us a row; this calls LightGBM's ``LGBM_BoosterPredictForMat`` directly. LightGBM's
        private ctypes handles are used, so any surprise falls back to ``booster.predict``."""
        if not self.is_fitted:
            raise ModelFitError("the ranker is not fitted or loaded")
        if self.categorical_features:
            raise FeatureMismatchError("predict_matrix takes no categorical features; use predict")
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise FeatureMismatchError(
                f"the matrix has shape {X.shape}; the ranker needs {len(self.feature_names)} columns"
            )
        n = X.shape[0]
        if n == 0:
            return np.empty(0, dtype=np.float64)
        num_iteration = self.best_iteration or self.booster.best_iteration
        if self._one_output_checked is not self.booster:
            # One value per row is what the output buffer below holds: checked once per booster.
            if self.booster.num_model_per_iteration() != 1:
                raise FeatureMismatchError("predict_matrix serves single-output models only")
            self._one_output_checked = self.booster
        margin = self.base_margin(X)
        raw = margin is not None
        call = _raw_predict_for_mat()
        if call is None:
            out = self.booster.predict(
                X, num_iteration=num_iteration or None, num_threads=num_threads, raw_score=raw
            )
            return self._finish(np.asarray(out, dtype=np.float64), margin)
        out = call(self.booster, np.ascontiguousarray(X, dtype=np.float64), num_iteration, num_threads, raw)
        return self._finish(out, margin)

    def feature_importance(self, importance_type: Literal["gain", "split"] = "gain") -> pd.Series:
        """Importance per feature, largest first."""
        if not self.is_fitted:
            raise ModelFitError("the ranker is not fitted or loaded")
        values = self.booster.feature_importance(
            importance_type=importance_type, iteration=self.best_iteration
        )
        return pd.Series(values, index=self.feature_names, name=importance_type).sort_values(ascending=False)

    # ----- persistence -----------------------------------------------------------------------
    FILES = ("ranker.txt", "ranker.json")

    def save(self, directory: str | Path) -> None:
        if not self.is_fitted:
            raise ModelFitError("the ranker is not fitted")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(d / "ranker.txt"), num_iteration=self.best_iteration)
        write_json(
            d / "ranker.json",
            {
                "feature_names": self.feature_names,
                "categorical_features": self.categorical_features,
                "objective": self.objective,
                "best_iteration": self.best_iteration,
                "base": list(self.base) if self.base is not None else None,
                "config": self.config.model_dump(),
                "evals_result": self.evals_result,
            },
        )

    @classmethod
    def load(cls, directory: str | Path) -> LightGBMRanker:
        import lightgbm as lgb

        d = Path(directory)
        meta = read_json(d / "ranker.json")
        try:
            config = RankerConfig.model_validate(meta["config"])
            names = [str(x) for x in meta["feature_names"]]
            cats = [str(x) for x in meta.get("categorical_features", [])]
            best = int(meta.get("best_iteration", 0))
            base = meta.get("base")
            base = (float(base[0]), float(base[1])) if base is not None else None
        except (KeyError, TypeError, ValueError) as exc:
            raise IncompatibleBundleError(f"{d / 'ranker.json'} is invalid: {exc}") from exc
        if (base is None) != (config.base_feature is None) or (
            base is not None and config.base_feature not in names
        ):
            raise IncompatibleBundleError(f"{d / 'ranker.json'}: base and base_feature disagree")
        not_features = [c for c in cats if c not in names]
        if not_features:
            raise IncompatibleBundleError(
                f"{d / 'ranker.json'}: categorical features {not_features} are not among its features {names}"
            )
        if meta.get("objective") != config.objective:
            raise IncompatibleBundleError(f"{d / 'ranker.json'}: objective disagrees with its config")
        path = d / "ranker.txt"
        if not path.is_file():
            raise IncompatibleBundleError(f"{path} is missing")
        try:
            booster = lgb.Booster(model_file=str(path))
        except (lgb.basic.LightGBMError, ValueError, OSError) as exc:
            raise IncompatibleBundleError(f"{path} cannot be loaded by LightGBM: {exc}") from exc
        if booster.feature_name() != names:
            raise IncompatibleBundleError(
                f"{path} was trained on features {booster.feature_name()} but ranker.json lists {names}"
            )
        out = cls(config)
        out.booster, out.feature_names, out.categorical_features = booster, names, cats
        out.best_iteration = min(best, booster.current_iteration()) if best else booster.current_iteration()
        out.evals_result = meta.get("evals_result", {})
        out.base = base
        return out
