"""Feature-store fixtures: the tiny world, and one built store per online backend (built once)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from features.settings import FeatureSettings
from tests.features.world import build_world, day

AS_OF = day(31, 0)  # 2026-02-01 00:00 UTC: the last snapshot is day 30's


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_world(tmp_path_factory.mktemp("world") / "data")


def _build(state: Path, world: Path, **kw: object) -> FeatureSettings:
    from features.store import build_feature_store

    settings = FeatureSettings(state_dir=state, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_feature_store(world, settings, as_of=AS_OF)
    return settings


@pytest.fixture(scope="session")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory, world_dir: Path) -> FeatureSettings:
    return _build(tmp_path_factory.mktemp("state-sqlite"), world_dir)


@pytest.fixture(scope="session")
def redis_store(
    tmp_path_factory: pytest.TempPathFactory, world_dir: Path, redis_server: str
) -> FeatureSettings:
    return _build(
        tmp_path_factory.mktemp("state-redis"), world_dir, online_store="redis", redis_url=redis_server
    )


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.integration)])
def built_store(request: pytest.FixtureRequest) -> Iterator[FeatureSettings]:
    """The same online-store tests run against SQLite and a real redis-server."""
    yield request.getfixturevalue(f"{request.param}_store")


def own_settings(backend: str, state: Path, request: pytest.FixtureRequest, db: int) -> FeatureSettings:
    """Settings for a test's own store on ``backend``; on Redis its own database ``db`` (the
    session's built store lives in db 0)."""
    if backend != "redis":
        return FeatureSettings(state_dir=state)
    url = request.getfixturevalue("redis_server") + f"/{db}"
    return FeatureSettings(state_dir=state, online_store="redis", redis_url=url)


@pytest.fixture(autouse=True)
def _one_blas_thread() -> None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
