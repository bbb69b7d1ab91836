"""Would ``slotcast train`` register what the latest registered version already holds?

The same events (the data digest), the same settings (their flat dump, the run's params), the same
code (the commit of a checkout without uncommitted changes), the same other tables (products,
stream_products, users, pushes...: their files' bytes), the same feature store (what the last
``features build`` computed its offline tables from: features.offline_inputs), the same users
without personalization consent and the same kind of feature reader and ranker fit give the same
model: registering it again only adds a version to compare, promote and purge. So, unless told
``again``, train looks at the run behind the registered model's latest version before fitting
anything, and when that run had the same inputs it fits nothing, logs no run and reports that
version.

Never a rerun: a checkout with uncommitted changes or no git at all (the code cannot be told
apart), and a run logged before train recorded ``git_dirty``, ``consent_digest``,
``feature_reader`` and ``features_digest``. A features build from other data or with another
``--as-of`` is another feature store; an unchanged rebuild is the same one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from training.settings import TrainSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion


@dataclass(frozen=True)
class TrainingInputs:
    """What decides the model a training run registers, as its run logs it."""

    data_digest: str
    code: str | None  # the commit, when no tracked file differs from it; else None
    params: dict[str, str]  # the params that name the inputs (settings, consent, reader, backend)

    @classmethod
    def of(cls, settings: TrainSettings, data_digest: str, unconsented: np.ndarray, reader: Any,
           sha: str | None, clean: bool, tables: str, features: str) -> TrainingInputs:  # fmt: skip
        params = {**settings.flat_params(), **named_inputs(unconsented, reader, tables, features)}
        params["ranker.fit_backend"] = "dask" if settings.dask_scheduler else "inprocess"
        return cls(data_digest, sha if clean else None, params)

    def match(self, run: Run) -> bool:
        """Whether ``run`` was trained on these inputs."""
        tags, params = run.data.tags, run.data.params
        return (
            self.code is not None
            and tags.get("git_sha") == self.code
            and tags.get("git_dirty") == "false"
            and tags.get("data_digest") == self.data_digest
            and all(params.get(k) == v for k, v in self.params.items())
        )


def named_inputs(unconsented: np.ndarray, reader: Any, tables: str, features: str) -> dict[str, str]:
    """The params train logs beside the settings so that a later run can tell its inputs apart:
    a digest of the users left without a profile (never their ids), the feature reader's kind,
    ``tables``, the digest of the data's tables other than the events (``tables_digest``: the
    events' is the run's data_digest) and ``features``, what the reader reads (``features_digest``)."""
    ids = np.sort(np.asarray(unconsented, dtype=np.int64))
    return {
        "consent_digest": hashlib.sha256(ids.tobytes()).hexdigest()[:16],
        "feature_reader": "none" if reader is None else type(reader).__name__,
        "tables_digest": tables,
        "features_digest": features,
    }


def tables_digest(data_dir: Path) -> str:
    """sha256 of the bytes of every table file in ``data_dir`` but the events, by name: a product's
    price, a stream's line-up, a user's sign-up or a push log that changed is other data."""
    from features.data_model import TABLES, files_digest, table_path

    return files_digest((t, table_path(data_dir, t)) for t in TABLES if t != "events")


def features_digest(reader: Any) -> str:
    """The digest of the offline feature tables a Feast reader reads (features.offline_inputs:
    what the last build computed them from); 'none' without a feature store (``--no-features``,
    or a reader of no state dir)."""
    from features.offline_inputs import offline_digest
    from features.settings import FeatureSettings

    settings = getattr(reader, "settings", None)
    return offline_digest(settings) if isinstance(settings, FeatureSettings) else "none"


def worth_looking(settings: TrainSettings, sha: str | None, clean: bool) -> bool:
    """False when no version can match: the code cannot be told apart (no git, uncommitted
    changes) or the local SQLite store is not created yet (looking would create it)."""
    uri = settings.tracking_uri
    store = not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).exists()
    return sha is not None and clean and store


def registered_already(
    settings: TrainSettings, inputs: TrainingInputs, alias: str | None
) -> tuple[ModelVersion, Run] | None:
    """The latest version of the registered model and its run, when that run had ``inputs``;
    ``alias`` is moved onto it if it is elsewhere, as registering it anew would have done."""
    from mlflow.exceptions import MlflowException

    from training.registry import version_by_alias
    from training.tracking import configure

    if inputs.code is None:
        return None
    client: MlflowClient = configure(settings)
    name = settings.registered_model
    latest = client.search_model_versions(f"name='{name}'", max_results=1, order_by=["version_number DESC"])
    mv = latest[0] if latest else None
    if mv is None or not mv.run_id:
        return None
    try:
        run = client.get_run(mv.run_id)
    except MlflowException:  # its run was deleted: nothing to compare with
        return None
    if not inputs.match(run):
        return None
    if alias:
        held = version_by_alias(client, name, alias)
        if held is None or str(held.version) != str(mv.version):
            client.set_registered_model_alias(name, alias, mv.version)
    return mv, run
