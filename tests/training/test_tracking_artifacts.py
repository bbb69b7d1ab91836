"""Where a new experiment keeps its artifacts: under the state directory for any database store
(SQLite, and PostgreSQL / MySQL without a tracking server), the server's choice for a server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from training.settings import TrainSettings
from training.tracking import experiment_id


class _Client:
    """The two calls experiment_id makes, recorded."""

    def __init__(self) -> None:
        self.created: list[tuple[str, Any]] = []

    def get_experiment_by_name(self, name: str) -> None:
        return None

    def create_experiment(self, name: str, artifact_location: Any = None) -> str:
        self.created.append((name, artifact_location))
        return "1"


@pytest.mark.parametrize(
    ("uri", "under_state"),
    [
        (None, True),  # the default: SQLite under the state directory
        ("postgresql://mlflow@db.internal/mlflow", True),  # was MLflow's ./mlruns in the working directory
        ("mysql+pymysql://mlflow@db.internal/mlflow", True),
        ("http://mlflow.internal:5000", False),  # the server decides (mlflow-artifacts:)
        ("file:///srv/mlruns", False),  # a file store keeps them in its own root
    ],
)
def test_artifacts_of_a_database_store_go_under_the_state_dir(
    uri: str | None, under_state: bool, tmp_path: Path
) -> None:
    s = TrainSettings(state_dir=tmp_path, mlflow_tracking_uri=uri)
    client = _Client()
    assert experiment_id(client, s) == "1"  # type: ignore[arg-type]
    expected = s.artifact_root.as_uri() if under_state else None
    assert client.created == [("slotcast", expected)]
