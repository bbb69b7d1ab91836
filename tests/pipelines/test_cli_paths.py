"""State directories with awkward names: spaces and quotes in the path."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli import main
from tests.features.world import build_world


def test_a_quote_in_the_state_dir_path_builds_and_reads_the_feature_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # DuckDB SQL took the path as '...': "o'brien" ended the string (a ParserException traceback).
    data = build_world(tmp_path / "data")
    state = tmp_path / "o'brien's state" / "st"
    assert (
        main(["features", "build", "--data", str(data), "--as-of", "2026-02-01", "--state-dir", str(state)])
        == 0
    )
    assert main(["segments", "show", "--state-dir", str(state)]) == 0
    assert main(["features", "show", "--user", "1", "--state-dir", str(state)]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_validate_given_a_file_says_it_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "events.parquet"
    table.write_bytes(b"PAR1")
    assert main(["data", "validate", "--data", str(table)]) == 2
    assert f"{table}: a file, not a data directory" in capsys.readouterr().err  # was "no such data directory"


def test_a_tilde_in_slotcast_state_dir_means_home_for_every_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Unexpanded (a .env file, a systemd unit): generate wrote under $HOME, features build under ./~
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("SLOTCAST_STATE_DIR", "~/state")
    assert main(["segments", "show"]) == 1  # nothing built yet: the message names the state dir it read
    assert f"{home / 'state' / 'features'}" in capsys.readouterr().err
    assert not (cwd / "~").exists()


def test_every_settings_class_expands_a_tilde_in_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only the CLI reads SLOTCAST_STATE_DIR: `bentoml serve serving.service:Slotcast` and code
    that builds the settings itself got a literal ./~ directory."""
    from features.settings import FeatureSettings
    from pipelines.settings import PipelineSettings
    from serving.settings import ServingSettings
    from training.settings import TrainSettings

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SLOTCAST_STATE_DIR", "~/state")
    for cls in (FeatureSettings, PipelineSettings, ServingSettings, TrainSettings):
        assert cls().state_dir == tmp_path / "state", cls.__name__
