"""training.as_trained on logged params (no MLflow): what the gate takes from the challenger's run."""

from __future__ import annotations

from pathlib import Path

from training.as_trained import as_trained, measured_by
from training.settings import TrainSettings


def test_logged_params_replace_this_process_settings(tmp_path: Path) -> None:
    here = TrainSettings(state_dir=tmp_path, k=10, candidates_n=50, label_window_hours=6)
    logged = TrainSettings(state_dir=tmp_path, label="cart", k=4, candidates_n=30, seed=7, max_queries=500)
    got = as_trained(here, logged.flat_params())
    assert (got.label, got.k, got.candidates_n, got.seed, got.max_queries) == ("cart", 4, 30, 7, 500)
    assert got.label_window_hours is None  # logged as "None": the default window, not this 6 h
    assert got.split == logged.split and got.bootstrap_samples == here.bootstrap_samples


def test_a_run_without_the_params_keeps_this_process_settings(tmp_path: Path) -> None:
    here = TrainSettings(state_dir=tmp_path, k=10, candidates_n=50)
    assert as_trained(here, None) is here  # the run was deleted
    older = {"label": "click", "split.history": "0.5"}  # logged before k, candidates_n, the split
    got = as_trained(here, older)
    assert (got.label, got.k, got.candidates_n, got.split) == ("click", 10, 50, here.split)


def test_both_versions_measures_are_recorded() -> None:
    chall, champ = {"k": "8", "candidates_n": "25"}, {"k": "5"}
    assert measured_by(chall, champ, "1") == {
        "challenger.k": "8",
        "challenger.candidates_n": "25",
        "champion.k": "5",
        "champion.candidates_n": "unknown",
    }
    assert measured_by(chall, None, None) == {"challenger.k": "8", "challenger.candidates_n": "25"}
