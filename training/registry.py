"""The bundle as ONE registered MLflow model version with aliases ``champion`` / ``challenger``.

How (MLflow 3, no pickle, no pyfunc wrapper): the bundle directory (ALS npz, vocabularies, ranker
text model, manifest.json) is logged as plain run artifacts under ``bundle/``, and a model version
is created whose *source* is that artifact URI (``MlflowClient.create_model_version``). Then
``mlflow.artifacts.download_artifacts("models:/slotcast@champion")`` downloads exactly those files
and ``Bundle.load(Bundle.find(dir))`` opens them; serving needs nothing from training.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from models.bundle import Bundle

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
BUNDLE_ARTIFACT_PATH = "bundle"


def register_bundle(
    client: MlflowClient,
    run_id: str,
    bundle_dir: Path,
    name: str,
    alias: str | None = CHALLENGER,
    tags: dict[str, str] | None = None,
) -> ModelVersion:
    """Log ``bundle_dir`` into the run and register it as a new version of ``name`` (with ``alias``)."""
    from mlflow.exceptions import MlflowException

    client.log_artifacts(run_id, str(bundle_dir), BUNDLE_ARTIFACT_PATH)
    run = client.get_run(run_id)
    source = f"{run.info.artifact_uri.rstrip('/')}/{BUNDLE_ARTIFACT_PATH}"
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="slotcast bundle: ALS candidates + LightGBM ranker")
    mv = client.create_model_version(name, source=source, run_id=run_id, tags=tags or {})
    if alias:
        client.set_registered_model_alias(name, alias, mv.version)
    log.info("registered %s version %s (alias %s)", name, mv.version, alias)
    return mv


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version behind ``alias``, or None when the model or the alias does not exist; any other
    failure (the registry does not answer) is a TrackingUnavailableError, not "no such version"."""
    from mlflow.exceptions import MlflowException

    from features.settings import redacted
    from training.tracking import TrackingUnavailableError

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        # No model: RESOURCE_DOES_NOT_EXIST; a model without that alias: INVALID_PARAMETER_VALUE.
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise TrackingUnavailableError(
            redacted(
                f"the MLflow registry {client._registry_uri} failed to look up {name}@{alias}: {exc.message}"
            )
        ) from exc


def download_bundle(name: str, alias_or_version: str, dst: Path) -> Path:
    """Download ``models:/name@alias`` (or ``models:/name/version``) into ``dst``; the bundle directory.

    This is the same two calls serving makes; tests call it to prove that path works. The caller
    owns ``dst`` (a bundle of a million users' factors is hundreds of MB): see ``load_bundle``.
    """
    import mlflow

    from models.bundle import Bundle

    ref = (
        f"models:/{name}/{alias_or_version}"
        if alias_or_version.isdigit()
        else f"models:/{name}@{alias_or_version}"
    )
    local = mlflow.artifacts.download_artifacts(ref, dst_path=str(dst))
    return Path(Bundle.find(Path(local)))


def load_bundle(name: str, alias_or_version: str) -> Bundle:
    """The registered bundle, loaded into memory; its download is deleted before this returns
    (``Bundle.load`` reads every file whole, so nothing refers to the files afterwards)."""
    from models.bundle import Bundle

    with tempfile.TemporaryDirectory(prefix="slotcast-bundle-") as tmp:
        return Bundle.load(download_bundle(name, alias_or_version, Path(tmp)))
