"""Platt calibration: a two-parameter logistic map from an uncalibrated score to a probability.

ALS scores order users and products well but are not probabilities. Where an answer needs a level
(a push's P(purchase) and its expected value), training fits ``p = sigmoid(a * score + b)`` on
logged outcomes (the push log: was a pushed product bought?) and the bundle carries ``a`` and
``b``. With no calibration, ``apply`` falls back to the plain logistic link (a=1, b=0).

A push to a user the model has no profile of has no score. How often such pushes were bought is
kept beside the map (``with_cold_outcomes``): ``cold_rate``, the posterior mean of that rate under
a Jeffreys prior, ``(bought + 0.5) / (pushes + 1)`` over ``n_cold`` such pushes of the log, None
when the log had none (and in bundles made before it was kept).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from models.errors import ModelFitError


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


@dataclass(frozen=True)
class PlattCalibration:
    a: float = 1.0
    b: float = 0.0
    n: int = 0  # outcomes it was fitted on (0: the identity link, never fitted)
    base_rate: float | None = None
    cold_rate: float | None = None  # P(purchase | pushed) where the model gave no score
    n_cold: int = 0  # the unscored pushes it was measured on

    def apply(self, scores: npt.ArrayLike) -> np.ndarray:
        """Calibrated probabilities; NaN scores (unknown user or product) stay NaN."""
        s = np.asarray(scores, dtype=np.float64)
        return _sigmoid(self.a * s + self.b)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> PlattCalibration:
        return cls(**d) if d else cls()

    @classmethod
    def fit(
        cls, scores: npt.ArrayLike, labels: npt.ArrayLike, iterations: int = 50, l2: float = 1e-6
    ) -> PlattCalibration:
        """Maximum-likelihood ``a, b`` by Newton's method on the logistic log-likelihood, over the
        finite scores (NaN: no score, left out)."""
        s = np.asarray(scores, dtype=np.float64).ravel()
        y = np.asarray(labels, dtype=np.float64).ravel()
        keep = np.isfinite(s)
        if s.size != y.size or not keep.any():
            raise ModelFitError(
                f"calibration needs scores and labels of one length, some scored, got {keep.sum()} "
                f"scored of {s.size} and {y.size} labels"
            )
        s, y = s[keep], y[keep]
        pos = float(y.sum())
        if pos == 0 or pos == y.size:
            raise ModelFitError(f"calibration needs both outcomes; got {int(pos)} positives of {y.size}")
        X = np.column_stack([s, np.ones_like(s)])
        w = np.array([0.0, np.log(pos / (y.size - pos))])
        for _ in range(iterations):
            p = _sigmoid(X @ w)
            grad = X.T @ (p - y) + l2 * w
            h = (X * (p * (1 - p))[:, None]).T @ X + l2 * np.eye(2)
            step = np.linalg.solve(h, grad)
            w -= step
            if np.max(np.abs(step)) < 1e-9:
                break
        if not np.all(np.isfinite(w)):
            raise ModelFitError("calibration diverged (scores perfectly separate the outcomes?)")
        return cls(a=float(w[0]), b=float(w[1]), n=int(y.size), base_rate=pos / y.size)

    def with_cold_outcomes(self, labels: npt.ArrayLike) -> PlattCalibration:
        """This map with ``cold_rate`` measured on ``labels``, the outcomes (bought or not) of
        pushes to users the model had no profile of; none: no rate."""
        y = np.asarray(labels, dtype=np.float64).ravel()
        rate = (float(y.sum()) + 0.5) / (y.size + 1) if y.size else None
        return replace(self, cold_rate=rate, n_cold=int(y.size))
