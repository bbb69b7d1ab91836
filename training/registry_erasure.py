"""Erasing deleted users from every registered bundle version (``slotcast privacy purge``).

A bundle registered before a user's deletion still holds their ALS factors and their segment label
(``models.bundle_erasure``). Serving forgets them in memory at once and the next training run
leaves them out, but the registry keeps every version for rollback and audit, so each version's
files are rewritten where they are: the same version number and aliases, now without those users.

Per version, only the two id files are fetched first (``USER_FILES``, a few MB at a million users);
the whole bundle is fetched, edited and written back only when they name one of the users, so a
purge that finds nothing new costs two small downloads per version. The edited files go back
before the manifest: a reader that catches a version half-written fails the checksum check (serving
then keeps the model it holds) instead of loading a mix. The version gets a tag saying how many
user records were erased and when (never whose).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlflow import MlflowClient

ERASURE_TAG = "slotcast.erased_user_records"


@dataclass
class RegistryErasure:
    versions: int = 0  # versions looked at
    rewritten: int = 0  # versions whose files were rewritten
    records: int = 0  # user records erased (ALS rows plus segment entries)
    skipped: list[str] = field(default_factory=list)  # "<name> version <v>: <why>"


def erase_from_registry(
    client: MlflowClient,
    name: str,
    user_ids: set[int],
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> RegistryErasure:
    """Erase ``user_ids`` from every version of the registered model ``name``. A version that
    cannot be read or written is listed in ``skipped`` and the others are purged all the same."""
    from mlflow.exceptions import MlflowException

    from models.errors import IncompatibleBundleError

    out = RegistryErasure()
    if not user_ids:
        return out
    ids = np.fromiter(user_ids, np.int64, len(user_ids))
    versions = sorted(client.search_model_versions(f"name='{name}'"), key=lambda mv: int(mv.version))
    out.versions = len(versions)
    for i, mv in enumerate(versions, 1):
        try:
            uri = client.get_model_version_download_uri(name, mv.version).rstrip("/")
            erased = _erase_version(uri, ids)
            if erased:
                stamp = datetime.now(UTC).isoformat(timespec="seconds")
                client.set_model_version_tag(name, mv.version, ERASURE_TAG, _tag(mv.tags, erased, stamp))
                out.rewritten += 1
                out.records += erased
        except (MlflowException, IncompatibleBundleError, OSError) as exc:
            out.skipped.append(f"{name} version {mv.version}: {exc}")
        progress(i, len(versions))
    return out


def _erase_version(uri: str, ids: np.ndarray) -> int:
    """Erase ``ids`` from the bundle stored at artifact ``uri``; the user records erased."""
    import mlflow
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from models.bundle import MANIFEST, Bundle
    from models.bundle_erasure import USER_FILES, erase_users, held_users

    with tempfile.TemporaryDirectory(prefix="slotcast-erase-") as tmp:
        ids_dir = Path(tmp) / "ids"
        for rel in USER_FILES:
            into = ids_dir / Path(rel).parent
            into.mkdir(parents=True, exist_ok=True)
            mlflow.artifacts.download_artifacts(artifact_uri=f"{uri}/{rel}", dst_path=str(into))
        if not np.isin(held_users(ids_dir), ids).any():
            return 0
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(Path(tmp) / "full")))
        bundle = Bundle.find(local)
        erased = erase_users(bundle, ids)
        if erased:
            repo = get_artifact_repository(uri)
            prefix = bundle.relative_to(local)
            for sub in ("als", "popularity"):
                repo.log_artifacts(str(bundle / sub), _join(prefix, sub))
            repo.log_artifact(str(bundle / MANIFEST), _join(prefix) or None)
        return erased


def _join(prefix: Path, *parts: str) -> str:
    return Path(prefix, *parts).as_posix().removeprefix(".").lstrip("/")


def _tag(tags: dict[str, str] | None, erased: int, stamp: str) -> str:
    """The running total of records erased from this version, and the last time."""
    before = (tags or {}).get(ERASURE_TAG, "0").split(" ")[0]
    total = erased + (int(before) if before.isdigit() else 0)
    return f"{total} (last {stamp})"
