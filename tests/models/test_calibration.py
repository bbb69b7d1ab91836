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


def test_the_outcomes_of_pushes_to_users_without_a_profile_give_the_cold_rate() -> None:
    """Scores that are NaN (no profile) do not shape the map; the outcomes of the pushes to such
    users give ``cold_rate``, the Jeffreys posterior mean. Before, serving gave those users 0."""
    rng = np.random.default_rng(4)
    s = rng.normal(0.0, 1.0, 100_000)
    y = rng.random(s.size) < 1 / (1 + np.exp(-(1.5 * s - 4.0)))
    cold_y = rng.random(40_000) < 0.004  # the planted rate of the pushes to users without a profile
    fitted = PlattCalibration.fit(
        np.concatenate([s, np.full(cold_y.size, np.nan)]), np.concatenate([y, cold_y])
    )
    assert fitted == PlattCalibration.fit(s, y) and fitted.cold_rate is None
    cal = fitted.with_cold_outcomes(cold_y)
    assert (cal.a, cal.b, cal.n, cal.n_cold) == (fitted.a, fitted.b, s.size, cold_y.size)
    assert cal.cold_rate == pytest.approx((cold_y.sum() + 0.5) / (cold_y.size + 1))
    assert cal.cold_rate == pytest.approx(0.004, rel=0.2)
    assert PlattCalibration.from_dict(cal.to_dict()) == cal
    # None pushed that way: no figure, rather than a made-up one. A bundle made before the field
    # existed loads with none too.
    assert fitted.with_cold_outcomes([]).cold_rate is None
    old = {"a": 1.2, "b": -3.0, "n": 10, "base_rate": 0.1}
    assert PlattCalibration.from_dict(old).cold_rate is None
    # Nothing scored at all: refused.
    with pytest.raises(ModelFitError, match="some scored"):
        PlattCalibration.fit([np.nan, np.nan], [1, 0])
