"""Small worlds and fast settings shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.als import ALSConfig
from models.ranker import RankerConfig
from tests.training.world import make_world
from training.settings import TrainSettings


def fast_settings(state_dir: Path, **kw: object) -> TrainSettings:
    base = {
        "state_dir": state_dir,
        "candidates_n": 20,
        "als": ALSConfig(factors=16, iterations=8, num_threads=1),
        "ranker": RankerConfig(num_threads=1, n_estimators=120, early_stopping_rounds=20),
        "bootstrap_samples": 500,
    }
    base.update(kw)
    return TrainSettings(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="session")
def shuffled_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("shuffled"), shuffle_purchases=True)
