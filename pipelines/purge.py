"""``slotcast privacy purge``: erase the deletion ledger's users from the files they are still in.

``DELETE /users/{id}`` takes a user out of every answer at once, out of the online store, and out
of every training and evaluation run that follows (they read the ledger). The files stay as they
were written: the service's event and impression logs, the shared-events and live-pending files,
the consent changes, the feature build's offline snapshot, and the data directory's tables. This
erases the users' records from all of them (``features.erasure``), while the service runs: logs
are edited in place at the same length, tables rewritten and renamed into place under their
locks (the feature build's and the data directory's).

It also erases them from the models: every version of the registered bundle model in MLflow
(``training.registry_erasure``: the ALS factors and segment labels of bundles trained before the
deletion, rewritten where they are stored, same version and aliases) and any bundle directory
given (``--bundle``, the one ``SLOTCAST_BUNDLE_DIR`` serves). Serving forgot them in memory at the
deletion already. What it does not reach: a simulated world's ``truth/`` (the simulator's own
users, not anyone's data).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from features.data_model import TABLES, data_lock, table_path
from features.erasure import Erased, erase_jsonl, erase_parquet, jsonl_files
from features.store import FeatureBuildBusyError
from features.validation import QUARANTINE_FILE, REJECTED_FILE

if TYPE_CHECKING:
    from training.settings import TrainSettings

Progress = Callable[[str, int, int], None]
# (users, progress, failed) -> the registry's place, or None when there is no registry to purge
RegistryPurge = Callable[[set[int], Progress, list[str]], "PlaceReport | None"]

# JSON-lines files under the state directory that hold users' records (every *.jsonl below them).
STATE_LOGS = ("serving", "privacy")


@dataclass
class PlaceReport:
    place: str  # $STATE/<dir> under the state directory, else the path; or the registered model
    files: int = 0  # files, or the registry's versions
    records: int = 0  # JSON lines blanked, table rows removed, or user records of a bundle
    edited: int = 0  # JSON lines that lost some users (a push audience)


@dataclass
class PurgeReport:
    users: int
    places: list[PlaceReport] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def erased(self) -> int:
        return sum(p.records + p.edited for p in self.places)


def purge(
    state_dir: Path,
    data_dirs: Iterable[Path],
    build_lock: Callable[[], AbstractContextManager[None]],
    progress: Progress = lambda place, done, total: None,
    registry: RegistryPurge | None = None,
    bundle_dirs: Iterable[Path] = (),
) -> PurgeReport:
    """Erase every user of ``state_dir``'s deletion ledger from the state's logs, its offline
    feature snapshot (inside ``build_lock()``, the feature build's lock), each data directory, the
    registry (``registry``, see ``registry_purge``) and each bundle directory. A place that cannot be purged now (a build holds the lock) or a file that cannot be read or
    written is listed in ``skipped``; everything else is purged all the same."""
    from features.privacy import DeletionLedger

    users = DeletionLedger(state_dir).user_ids()
    report = PurgeReport(len(users))
    if not users:
        return report
    for sub in STATE_LOGS:
        report.places.append(_logs(state_dir / sub, f"$STATE/{sub}", users, progress, report.skipped))
    offline = state_dir / "features" / "offline"
    if offline.is_dir():
        try:
            with build_lock():
                paths = sorted(offline.glob("*.parquet"))
                place = _tables("$STATE/features/offline", paths, users, progress, report.skipped)
                report.places.append(place)
        except FeatureBuildBusyError as exc:  # that build leaves them out itself
            report.skipped.append(f"{offline}: {exc}")
    for data in data_dirs:
        with data_lock(data):
            paths = [table_path(data, t) for t in TABLES]
            paths += [data / QUARANTINE_FILE, data / REJECTED_FILE]
            name = f"$STATE/{data.relative_to(state_dir)}" if data.is_relative_to(state_dir) else str(data)
            paths = [p for p in paths if p.exists()]
            report.places.append(_tables(name, paths, users, progress, report.skipped))
    if registry is not None:
        models = registry(users, progress, report.skipped)
        if models is not None:
            report.places.append(models)
    for bundle_dir in bundle_dirs:
        report.places.append(_bundle(bundle_dir, users, progress, report.skipped))
    return report


def registry_purge(settings: TrainSettings) -> RegistryPurge:
    """The registry step for ``purge``: every version of ``settings.registered_model`` in the
    configured MLflow (a server by URI, else the state directory's SQLite store, skipped when that
    was never created). A server that does not answer is listed as skipped."""

    def run(users: set[int], progress: Progress, failed: list[str]) -> PlaceReport | None:
        from training.registry_erasure import erase_from_registry
        from training.tracking import TrackingUnavailableError, configure

        uri = settings.tracking_uri
        if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
            return None  # nothing was ever trained here
        place = PlaceReport(f"MLflow model '{settings.registered_model}' (versions)")
        try:
            client = configure(settings)
        except TrackingUnavailableError as exc:
            failed.append(f"{place.place}: {exc}")
            return place
        done = erase_from_registry(
            client, settings.registered_model, users, lambda i, n: progress(place.place, i, n)
        )
        place.files, place.records = done.versions, done.records
        failed.extend(done.skipped)
        return place

    return run


def _bundle(directory: Path, users: set[int], progress: Progress, failed: list[str]) -> PlaceReport:
    from models.bundle import Bundle
    from models.bundle_erasure import erase_users
    from models.errors import IncompatibleBundleError

    place = PlaceReport(str(directory), files=1)
    try:
        place.records = erase_users(Bundle.find(directory), np.fromiter(users, np.int64, len(users)))
    except (OSError, IncompatibleBundleError) as exc:
        failed.append(f"{directory}: not purged, {exc}")
    progress(place.place, 1, 1)
    return place


def _logs(
    directory: Path,
    name: str,
    users: set[int],
    progress: Progress,
    failed: list[str],
) -> PlaceReport:
    place = PlaceReport(name)
    paths = list(jsonl_files(directory))
    total = Erased()
    for i, path in enumerate(paths, 1):
        try:
            total += erase_jsonl(path, users)
        except OSError as exc:  # the others are still purged; the command exits 1 naming this one
            failed.append(f"{path}: {exc.strerror or exc}")
        progress(place.place, i, len(paths))
    place.files, place.records, place.edited = len(paths), total.records, total.edited
    return place


def _tables(
    name: str,
    paths: list[Path],
    users: set[int],
    progress: Progress,
    failed: list[str],
) -> PlaceReport:
    place = PlaceReport(name, files=len(paths))
    for i, path in enumerate(paths, 1):
        try:
            place.records += erase_parquet(path, users)
        except (OSError, pa.ArrowException) as exc:  # an unreadable table: the rest still purged
            failed.append(f"{path}: not purged, {exc}")
        progress(place.place, i, len(paths))
    return place
