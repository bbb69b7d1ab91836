"""The champion from a real MLflow registry (SQLite backend in a temp dir), as serving loads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.adapters import MlflowModelSource, make_policy
from serving.errors import ModelUnavailableError
from serving.settings import ServingSettings

pytestmark = pytest.mark.slow


def test_champion_is_loaded_by_alias_and_a_missing_one_is_a_clear_error(
    bundle_dir: Path, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    from training.registry import register_bundle

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("t", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(exp)
    register_bundle(client, run.info.run_id, bundle_dir, "slotcast", alias="champion")
    source = MlflowModelSource(uri, "slotcast", make_policy(ServingSettings()))
    models = source.load("champion")
    assert models.version == "slotcast/1" and models.feature_service == "ranker_v1"
    assert source.version("champion") == models.version  # named without loading (a reload's check)
    with pytest.raises(ModelUnavailableError, match="slotcast@challenger"):
        source.load("challenger")


def test_a_registry_that_does_not_answer_is_not_a_missing_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reload with the MLflow server down said "no model slotcast@champion in http://...", as if
    the champion were gone; the cause was further down the line."""
    from pipelines.service_process import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    source = MlflowModelSource(uri, "slotcast", make_policy(ServingSettings()))
    with pytest.raises(ModelUnavailableError) as err:
        source.load("champion")
    assert str(err.value).startswith(f"cannot reach the MLflow registry for slotcast@champion in {uri}")


def test_the_registrys_credentials_never_reach_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The load error is what `/status` shows to anyone: a tracking URI with ``user:password@``
    (and MLflow's own message, which repeats the URL) is masked."""
    from pipelines.service_process import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    port = free_port()
    source = MlflowModelSource(
        f"http://ops:hunter2@127.0.0.1:{port}", "slotcast", make_policy(ServingSettings())
    )
    with pytest.raises(ModelUnavailableError) as err:
        source.load("champion")
    assert f"in http://***@127.0.0.1:{port}" in str(err.value)
    assert "hunter2" not in str(err.value) and "ops:" not in str(err.value)
