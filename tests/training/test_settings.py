"""TrainSettings from the environment: a nested variable changes that field and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.settings import TrainSettings, default_ranker


def test_one_ranker_variable_keeps_the_default_ranker_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SLOTCAST_RANKER__NUM_THREADS=1 (docs/training.md advises it on a shared machine) built the
    ranker from RankerConfig's bare defaults: not boosted from popularity, 31 leaves, no L2; the
    ranker that lost to popularity (benchmarks/results/training.md), silently."""
    monkeypatch.setenv("SLOTCAST_RANKER__NUM_THREADS", "1")
    monkeypatch.setenv("SLOTCAST_RANKER__LEARNING_RATE", "0.1")
    s = TrainSettings(state_dir=tmp_path)
    assert s.ranker == default_ranker().model_copy(update={"num_threads": 1, "learning_rate": 0.1})
    assert s.flat_params()["ranker.base_feature"] == "popularity_score"


def test_a_ranker_given_whole_is_taken_as_it_is(tmp_path: Path) -> None:
    from models.ranker import RankerConfig

    bare = RankerConfig(num_threads=1)
    assert TrainSettings(state_dir=tmp_path, ranker=bare).ranker == bare
    assert TrainSettings(state_dir=tmp_path).ranker == default_ranker()
