"""Would ``slotcast train`` register what the latest registered version already holds?

The same events (the data digest), the same settings (their flat dump, the run's params), the same
code (the commit of a checkout without uncommitted changes), the same other tables (products,
stream_products, users, pushes...: their files' bytes), the same users without personalization
consent and the same kind of feature reader and ranker fit give the same model:
registering it again only adds a version to compare, promote and purge. So, unless told ``again``,
train looks at the run behind the registered model's latest version before fitting anything, and
when that run had the same inputs it fits nothing, logs no run and reports that version.

Never a rerun: a checkout with uncommitted changes or no git at all (the code cannot be told
apart), and a run logged before train recorded ``git_dirty``, ``consent_digest`` and
``feature_reader``. Not compared: what the feature store holds (a features build from other data,
or with another ``--as-of``); after rebuilding only that, ``train --again``.
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
           sha: str | None, clean: bool, tables: str) -> TrainingInputs:  # fmt: skip
        params = {**settings.flat_params(), **named_inputs(unconsented, reader, tables)}
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


def named_inputs(unconsented: np.ndarray, reader: Any, tables: str) -> dict[str, str]:
    """The params train logs beside the settings so that a later run can tell its inputs apart:
    a digest of the users left without a profile (never their ids), the feature reader's kind and
    ``tables``, the digest of the data's tables other than the events (``tables_digest``: the
    events' is the run's data_digest)."""
    ids = np.sort(np.asarray(unconsented, dtype=np.int64))
    return {
        "consent_digest": hashlib.sha256(ids.tobytes()).hexdigest()[:16],
        "feature_reader": "none" if reader is None else type(reader).__name__,
        "tables_digest": tables,
    }


def tables_digest(data_dir: Path) -> str:
    """sha256 of the bytes of every table file in ``data_dir`` but the events, by name: a product's
    price, a stream's line-up, a user's sign-up or a push log that changed is other data."""
    from features.data_model import TABLES, table_path

    h = hashlib.sha256()
    for table in TABLES:
        path = table_path(data_dir, table)
        if table == "events" or not path.is_file():
            continue
        h.update(table.encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


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
