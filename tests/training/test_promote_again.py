"""Promoting again once the challenger is champion is a no-op (exit 0), not a failure: it was
"version N is already both champion and challenger" with exit 1, which also failed
`slotcast pipeline run --from promote` after any successful promotion."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.conftest import FirstChampion
from training.promote import promote
from training.registry import CHAMPION, version_by_alias

pytestmark = pytest.mark.slow


def test_promoting_the_champion_again_changes_nothing_and_exits_0(
    world: Path, first_champion: FirstChampion
) -> None:
    from pipelines.cli import main

    s, trained, client = first_champion.settings, first_champion.trained, first_champion.client
    assert first_champion.promotion.promoted
    runs_before = len(client.search_runs([client.get_experiment_by_name("slotcast").experiment_id]))

    again = promote(s, world, open_reader=None)
    assert not again.promoted
    assert again.champion_version == again.challenger_version == trained.version
    assert "already the champion" in again.result.reason
    assert str(version_by_alias(client, "slotcast", CHAMPION).version) == trained.version
    # Nothing was compared, so nothing is recorded: no promote run, no new gate tags.
    assert again.run_id is None
    assert len(client.search_runs([client.get_experiment_by_name("slotcast").experiment_id])) == runs_before
    assert client.get_model_version("slotcast", trained.version).tags["gate.promote"] == "True"

    assert main(["promote", "--data", str(world), "--no-features"]) == 0
