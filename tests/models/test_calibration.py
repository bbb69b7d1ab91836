"""Platt calibration recovers a known logistic link and keeps the logged base rate."""

from __future__ import annotations

import numpy as np
import pytest

from models.calibration import PlattCalibration
from models.errors import ModelFitError


def test_recovers_a_planted_link_and_the_base_rate() -> None:
    rng = np.random.default_rng(3)
    s = rng.normal(0.0, 1.0, 200_000)
    true_a, true_b = 1.7, -5.0  # rare outcomes, like push purchases
    y = rng.random(s.size) < 1 / (1 + np.exp(-(true_a * s + true_b)))
    cal = PlattCalibration.fit(s, y)
    assert cal.a == pytest.approx(true_a, abs=0.1) and cal.b == pytest.approx(true_b, abs=0.15)
    assert cal.apply(s).mean() == pytest.approx(y.mean(), rel=0.02)
    assert PlattCalibration.from_dict(cal.to_dict()) == cal


def test_the_uncalibrated_default_is_the_plain_logistic_link_and_nan_stays_nan() -> None:
    p = PlattCalibration().apply([0.0, np.nan, 50.0, -50.0])
    assert p[0] == 0.5 and np.isnan(p[1]) and p[2] == pytest.approx(1.0) and p[3] == pytest.approx(0.0)


def test_degenerate_outcomes_are_refused() -> None:
    with pytest.raises(ModelFitError, match="both outcomes"):
        PlattCalibration.fit([0.1, 0.2, 0.3], [0, 0, 0])
    with pytest.raises(ModelFitError):
        PlattCalibration.fit([], [])


def test_pushes_without_a_score_give_the_cold_rate() -> None:
    """A push to a user the model holds no factors for has a NaN score: it does not shape the map,
    its outcome is counted in ``cold_rate`` (Jeffreys posterior mean) instead. Before, such
    pushes were dropped and serving gave those users 0."""
    rng = np.random.default_rng(4)
    s = rng.normal(0.0, 1.0, 100_000)
    y = rng.random(s.size) < 1 / (1 + np.exp(-(1.5 * s - 4.0)))
    cold_y = rng.random(40_000) < 0.004  # the planted rate of the unscored pushes
    scores, labels = np.concatenate([s, np.full(cold_y.size, np.nan)]), np.concatenate([y, cold_y])
    cal = PlattCalibration.fit(scores, labels)
    assert cal.n == s.size and cal.n_cold == cold_y.size
    assert cal.cold_rate == pytest.approx((cold_y.sum() + 0.5) / (cold_y.size + 1))
    assert cal.cold_rate == pytest.approx(0.004, rel=0.2)
    assert (cal.a, cal.b) == (PlattCalibration.fit(s, y).a, PlattCalibration.fit(s, y).b)
    assert PlattCalibration.from_dict(cal.to_dict()) == cal
    # None pushed that way: no figure, rather than a made-up one. A bundle made before the field
    # existed loads with none too.
    assert PlattCalibration.fit(s, y).cold_rate is None
    old = {"a": 1.2, "b": -3.0, "n": 10, "base_rate": 0.1}
    assert PlattCalibration.from_dict(old).cold_rate is None
    # Nothing scored at all: refused, whatever the unscored pushes say.
    with pytest.raises(ModelFitError, match="scored"):
        PlattCalibration.fit([np.nan, np.nan], [1, 0])
