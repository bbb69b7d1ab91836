"""``slotcast privacy purge``: erase the deletion ledger's users from the files they are still in.

``DELETE /users/{id}`` takes a user out of every answer at once, out of the online store, and out
of every training and evaluation run that follows (they read the ledger). The files stay as they
were written: the service's event and impression logs, the shared-events and live-pending files,
the consent changes, the feature build's offline snapshot, and the data directory's tables. This
erases the users' records from all of them (``features.erasure``), while the service runs: logs
are edited in place at the same length, tables rewritten and renamed into place under their
locks (the feature build's and the data directory's).

What it does not reach: the ALS factors in bundles registered before the deletion (MLflow
artifacts; serving zeroes them in memory and the next training run leaves the users out), and a
simulated world's ``truth/`` (the simulator's own users, not anyone's data).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from features.data_model import TABLES, data_lock, table_path
from features.erasure import Erased, erase_jsonl, erase_parquet, jsonl_files
from features.store import FeatureBuildBusyError
from features.validation import QUARANTINE_FILE, REJECTED_FILE

# JSON-lines files under the state directory that hold users' records (every *.jsonl below them).
STATE_LOGS = ("serving", "privacy")


@dataclass
class PlaceReport:
    place: str  # $STATE/<dir> under the state directory, else the data directory's path
    files: int = 0
    records: int = 0  # JSON lines blanked, or table rows removed
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
    progress: Callable[[str, int, int], None] = lambda place, done, total: None,
) -> PurgeReport:
    """Erase every user of ``state_dir``'s deletion ledger from the state's logs, its offline
    feature snapshot (inside ``build_lock()``, the feature build's lock) and each data directory.
    A place that cannot be purged now (a build holds the lock) or a file that cannot be read or
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
    return report


def _logs(
    directory: Path,
    name: str,
    users: set[int],
    progress: Callable[[str, int, int], None],
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
    progress: Callable[[str, int, int], None],
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
