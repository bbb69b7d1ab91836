"""The repo works with the plain `feast` CLI, as any Feast repo does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_feast_apply_registers_the_repo(tmp_path: Path) -> None:
    feast = Path(sys.executable).with_name("feast")
    env = {**os.environ, "SLOTCAST_STATE_DIR": str(tmp_path)}
    before = sorted(p.name for p in (REPO / "features").iterdir())
    run = subprocess.run(
        [str(feast), "-c", str(REPO / "features"), "apply"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "features" / "registry.db").exists()  # ${SLOTCAST_STATE_DIR} expanded by Feast
    listed = subprocess.run(
        [str(feast), "-c", str(REPO / "features"), "feature-services", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "ranker_v1" in listed.stdout and "serving_context_v1" in listed.stdout
    after = sorted(p.name for p in (REPO / "features").iterdir() if p.name != "__pycache__")
    assert after == [n for n in before if n != "__pycache__"]  # wrote nothing into the source tree
