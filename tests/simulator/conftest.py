"""A small simulated world shared by the simulator tests (a few seconds to build, once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.simulator import SimConfig, generate

SMALL = SimConfig(users=6_000, products=1_500, days=10, seed=3)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "data"
    generate(SMALL, out)
    return out
