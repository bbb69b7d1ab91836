"""Every package's settings default to the same state directory, wherever the command is run from."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.settings import FeatureSettings
from pipelines.importers.settings import ImportSettings
from pipelines.settings import PipelineSettings
from serving.settings import ServingSettings
from training.settings import TrainSettings


def test_default_state_dir_is_shared_outside_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLOTCAST_STATE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # a user running slotcast from another directory
    state = FeatureSettings().state_dir
    assert TrainSettings().state_dir == ServingSettings().state_dir == state
    # `slotcast pipeline run` and `data generate` used ./.slotcast: data the service never saw.
    assert PipelineSettings().state_dir.resolve() == state
    assert ImportSettings().data_dir.resolve() == state / "data"


def test_a_relative_state_dir_reaches_the_service_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.service_process import service_env

    # The service runs with cwd = the repository: "state" must still mean ./state of the caller.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLOTCAST_STATE_DIR", "state")
    assert service_env()["SLOTCAST_STATE_DIR"] == str(tmp_path.resolve() / "state")
    monkeypatch.delenv("SLOTCAST_STATE_DIR")
    assert "SLOTCAST_STATE_DIR" not in service_env()


def test_the_service_has_no_download_progress_bar_unless_asked() -> None:
    """Every load from an MLflow server wrote tqdm's "Downloading artifacts" lines into the log."""
    from pipelines.service_process import service_env

    assert service_env({})["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
    assert (
        service_env({"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "true"})["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"]
        == "true"
    )
