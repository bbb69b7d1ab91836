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
