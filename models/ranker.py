"""The LightGBM conversion ranker with its feature list pinned in the artifact.

Saved as LightGBM's own text model plus a small JSON (feature names and order, objective,
categorical features, config): no pickle, readable with any LightGBM 4.x
(``models/ranker_persistence.py``). The data checks live in ``models/ranker_dataset.py``, the
hyperparameters in ``models/ranker_config.py``, serving's C API fast path in
``models/ranker_capi.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.errors import FeatureMismatchError, ModelFitError
from models.ranker_capi import raw_predict_for_mat
from models.ranker_config import Objective, RankerConfig
from models.ranker_dataset import (
    check_groups,
    check_labels,
    pinned_categoricals,
    pinned_names,
    select_features,
)
from models.ranker_persistence import FILES as RANKER_FILES
from models.ranker_persistence import SavedRanker, load_ranker, save_ranker

log = logging.getLogger(__name__)

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

        names = pinned_names(X)
        self.feature_names = names
        self.categorical_features = pinned_categoricals(X, names, self.config.categorical_features)
        Xt = select_features(X, self.feature_names, self.categorical_features)
        yt = check_labels(y, len(Xt), "y", self.objective)
        gt = check_groups(group, len(Xt), "group", self.objective)
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
            Xv = select_features(valid[0], self.feature_names, self.categorical_features)
            yv = check_labels(valid[1], len(Xv), "valid y", self.objective)
            gv = check_groups(valid[2] if len(valid) > 2 else None, len(Xv), "valid group", self.objective)
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

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """P(convert) for the binary objective, the raw ranking score for lambdarank.

        Columns are taken by name in the pinned order; extra columns are ignored; a missing one
        raises FeatureMismatchError naming it.
        """
        if not self.is_fitted:
            raise ModelFitError("the ranker is not fitted or loaded")
        Xp = select_features(X, self.feature_names, self.categorical_features)
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
        call = raw_predict_for_mat()
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

    # ----- persistence (models/ranker_persistence.py) -----------------------------------------
    FILES = RANKER_FILES

    def save(self, directory: str | Path) -> None:
        if not self.is_fitted:
            raise ModelFitError("the ranker is not fitted")
        saved = SavedRanker(self.config, self.booster, self.feature_names, self.categorical_features,
                            self.best_iteration, self.base, self.evals_result)  # fmt: skip
        save_ranker(directory, saved)

    @classmethod
    def load(cls, directory: str | Path) -> LightGBMRanker:
        saved = load_ranker(directory)
        out = cls(saved.config)
        out.booster = saved.booster
        out.feature_names, out.categorical_features = saved.feature_names, saved.categorical_features
        out.best_iteration, out.evals_result, out.base = saved.best_iteration, saved.evals_result, saved.base
        return out
