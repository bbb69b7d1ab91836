"""Small worlds and fast settings shared by the training tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from models.als import ALSConfig
from models.ranker import RankerConfig
from tests.training.world import make_world
from training.settings import TrainSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from training.promote import PromotionReport
    from training.run import TrainReport


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


def fast_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings close to fast_settings for `slotcast train` / `promote` run in process (SLOTCAST_*)."""
    for key, value in {"CANDIDATES_N": "20", "ALS__FACTORS": "16", "ALS__ITERATIONS": "8",
                       "RANKER__NUM_THREADS": "1", "RANKER__N_ESTIMATORS": "120"}.items():  # fmt: skip
        monkeypatch.setenv(f"SLOTCAST_{key}", value)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@dataclass(frozen=True)
class FirstChampion:
    settings: TrainSettings
    trained: TrainReport
    promotion: PromotionReport  # the first promotion: the test asserts it promoted
    client: MlflowClient


@pytest.fixture()
def first_champion(world: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> FirstChampion:
    """``world`` trained with fast_settings (no Feast features) and promoted with no champion to beat."""
    from training.promote import promote
    from training.run import train
    from training.tracking import configure

    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    s = fast_settings(state_dir)
    trained = train(world, s, reader=None)
    promotion = promote(s, world, open_reader=None)
    return FirstChampion(s, trained, promotion, configure(s))


class OneFeature:
    """A feature reader with one point-in-time feature (what a built Feast store gives, in small)."""

    def historical(self, entity_df: pd.DataFrame, service: str = "ranker_v1") -> pd.DataFrame:
        return pd.DataFrame({"row_id": entity_df["row_id"], "user_bucket": (entity_df["user_id"] % 3) * 1.0})


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="session")
def week_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated week of 3,000 users (`slotcast data generate --users 3000 --days 7`, ~2 s): too
    short for a 24 h label window inside a 0.1 split (16.8 h)."""
    from pipelines.simulator import SimConfig, generate

    out = tmp_path_factory.mktemp("week") / "data"
    generate(SimConfig(users=3_000, days=7, seed=0), out)
    return out


@pytest.fixture(scope="session")
def shuffled_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("shuffled"), shuffle_purchases=True)


@pytest.fixture(scope="session")
def dask_scheduler() -> Iterator[str]:
    """The address of a real Dask LocalCluster of 2 single-threaded worker processes (started once:
    worker processes take seconds to start and import LightGBM on a busy box)."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
    ) as cluster:
        yield str(cluster.scheduler_address)
