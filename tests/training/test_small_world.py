"""A simulated week trains: the default label window shrinks to fit its short splits, and an
explicit window that cannot fit is refused before anything is fitted, naming the settings.

Regression: `slotcast data generate --users 3000 --days 7` then `slotcast train` failed with "the
valid split has no ranker rows": the 24 h label window was longer than the 16.8 h valid split, so
no query could keep its window inside the split.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from models.errors import ModelFitError
from tests.training.conftest import fast_settings
from training.fit import fit_all
from training.run import load_inputs

pytestmark = pytest.mark.slow


def test_a_simulated_week_trains_with_a_window_that_fits(week_world: Path, tmp_path: Path) -> None:
    s = fast_settings(tmp_path)
    ev, sp_, items = load_inputs(week_world, s)
    fit = fit_all(ev, sp_, items, s, reader=None)
    data = fit.data
    shortest = min(data.splits.hours(name) for name in ("train", "valid", "test"))
    assert shortest < 24  # the data the old fixed 24 h window could not fit
    assert data.label_window == pd.Timedelta(hours=0.75 * shortest)
    for name in ("train", "valid", "test"):
        lo, hi = data.splits.bounds(name)
        part = data.part(name, candidates_only=True)
        assert part["label"].sum() > 0 and (part["ts"] >= lo).all()
        assert (part["ts"] + data.label_window < hi).all()
    assert fit.metrics["test_queries"] > 0 and len(fit.per_query["als_ranker"]) > 0


def test_an_explicit_window_too_long_for_a_split_is_refused_before_any_fit(
    week_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.fit as fit_module

    def no_fit(*a: object, **k: object) -> None:
        raise AssertionError("ALS was fitted although the label window cannot fit a split")

    monkeypatch.setattr(fit_module, "fit_als", no_fit)
    s = fast_settings(tmp_path, label_window_hours=24)
    ev, sp_, items = load_inputs(week_world, s)
    with pytest.raises(ModelFitError) as err:
        fit_all(ev, sp_, items, s, reader=None)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(
        "label_window_hours=24 is not shorter than the valid split (16.8 h: split.valid=0.1"
    )
    assert "lower label_window_hours" in msg and "raise split.valid and lower split.history (now 0.5)" in msg
