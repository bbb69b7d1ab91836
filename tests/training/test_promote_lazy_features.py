"""`slotcast promote` opens the Feast store only when it compares two versions: a first promotion
(no champion yet) failed without a built feature store unless --no-features was passed, though it
compares nothing. A real comparison without a store still stops, pointing at its options."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli import main
from tests.training.conftest import fast_cli
from training.registry import CHAMPION, version_by_alias
from training.settings import TrainSettings
from training.tracking import configure

pytestmark = pytest.mark.slow


def test_a_first_promotion_needs_no_feature_store(
    world: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fast_cli(monkeypatch)
    assert not (state_dir / "features").exists()
    assert main(["train", "--data", str(world), "--no-features"]) == 0
    assert main(["promote", "--data", str(world)]) == 0  # without --no-features
    client = configure(TrainSettings())
    assert str(version_by_alias(client, "slotcast", CHAMPION).version) == "1"
    capsys.readouterr()

    # A second challenger (another candidate pool): now there is something to compare.
    assert main(["train", "--data", str(world), "--no-features", "--candidates", "15"]) == 0
    assert main(["promote", "--data", str(world)]) == 1
    err = capsys.readouterr().err
    assert "slotcast features build" in err and "pass --no-features" in err
    assert str(version_by_alias(client, "slotcast", CHAMPION).version) == "1"
