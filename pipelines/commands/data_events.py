"""`slotcast data append-events`: the events the service accepted into a data directory.

``POST /events`` appends every accepted event to a durable log under ``$STATE/serving/events/``
(``serving.event_log``) and pushes it to the online store's live-session features. The next
training run learns from a data directory, so this command appends the logged events to its
``events.parquet``: idempotent (an event id already there is not appended again), and never for a
user in the deletion ledger. Run ``slotcast data validate`` after it, as after an import: the
referential checks (unknown users, products, streams) apply to served events too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import typer


class EventLogError(ValueError):
    """A record of the service's event log that cannot become an events row."""

    exit_code = 2


@dataclass(frozen=True)
class AppendReport:
    logged: int  # complete records in the log
    appended: int
    already_there: int  # events the data directory holds already (same id and content: an earlier run)
    deleted_users: int  # events of users in the deletion ledger, left out
    events_after: int
    # Left out although new: their event id belongs to another event (in the table or earlier in
    # the log): an id a client reused, or, in logs written before serving tagged its ids with the
    # worker (serving/event_ids.py), an id two workers gave in the same microsecond.
    id_clashes: int = 0


def append_served_events(log_dir: Path, data_dir: Path, deleted: set[int]) -> AppendReport:
    """Append the log's events that ``data_dir``'s events table lacks (by event id), leaving out
    the users in ``deleted``; the table is rewritten once, in its canonical schema."""
    from features.data_model import data_lock

    with data_lock(data_dir):  # a purge or validation rewriting the table meanwhile would be undone
        return _append_served_events(log_dir, data_dir, deleted)


def _append_served_events(log_dir: Path, data_dir: Path, deleted: set[int]) -> AppendReport:
    import pandas as pd
    import pyarrow as pa

    from features.data_model import SCHEMAS, read_table, write_table
    from serving.event_log import read_all

    records = list(read_all(log_dir))
    current = read_table(data_dir, "events")
    if not records:
        return AppendReport(0, 0, 0, 0, current.num_rows)
    columns = [f.name for f in SCHEMAS["events"]]
    frame = pd.DataFrame.from_records(records).reindex(columns=columns)
    try:
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:  # pandas' message runs over four lines of advice
        reason = str(exc).splitlines()[0].removesuffix(" You might want to try:")
        raise EventLogError(
            f"{log_dir}: a logged event's ts does not parse ({reason}); nothing appended"
        ) from None
    gone = frame["user_id"].isin(sorted(deleted)).to_numpy()
    frame = frame[~gone]
    held = current.column("event_id").to_numpy(zero_copy_only=False)
    there = np.isin(frame["event_id"].to_numpy(np.int64), held)
    fresh = frame[~there].drop_duplicates("event_id")
    clash = _id_clashes(frame, there, current)
    if len(fresh):
        added = pa.Table.from_pandas(fresh, preserve_index=False).cast(SCHEMAS["events"])
        write_table(data_dir, "events", pa.concat_tables([current.cast(SCHEMAS["events"]), added]))
    return AppendReport(
        logged=len(records),
        appended=len(fresh),
        already_there=int((there & ~clash).sum()),
        deleted_users=int(gone.sum()),
        events_after=current.num_rows + len(fresh),
        id_clashes=int(clash.sum()),
    )


_CONTENT = ["event_id", "ts", "user_id", "type", "product_id", "stream_id"]


def _id_clashes(frame, there: np.ndarray, current) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Per log record: its event id is taken by a different event, one earlier in the log or a
    row of the table with other content (the same id and content is a repeat, not a clash)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    log = frame[_CONTENT].assign(ts=frame["ts"].dt.as_unit("us"))
    clash = (log.duplicated("event_id") & ~log.duplicated(_CONTENT)).to_numpy()
    if there.any():
        ids = log["event_id"][there].unique()
        stored = current.filter(
            pc.is_in(current.column("event_id"), value_set=pa.array(np.asarray(ids, np.int64)))
        )
        stored = stored.to_pandas()[_CONTENT]
        stored = stored.assign(ts=stored["ts"].dt.as_unit("us")).drop_duplicates()
        same = log[there].merge(stored, on=_CONTENT, how="left", indicator=True)  # keeps the left order
        clash[np.flatnonzero(there)] |= (same["_merge"] == "left_only").to_numpy()
    return clash


def append_events_command(
    data: Path | None = typer.Option(
        None, "--data", "-d", help="Data directory to append to (default: $SLOTCAST_STATE_DIR/data)."
    ),
    log: Path | None = typer.Option(
        None, "--log", help="The service's event log (default: $SLOTCAST_STATE_DIR/serving/events)."
    ),
) -> None:
    """Append the events the service accepted (POST /events) to the data directory's events table.

    Events already in the table (same event id) are not appended again, and events of users in the deletion ledger are left out. Validate afterwards: `slotcast data validate`.
    """
    from rich.console import Console

    from features.data_model import table_path
    from features.privacy import DeletionLedger
    from pipelines.importers.settings import ImportSettings

    settings = ImportSettings()
    target = data if data is not None else settings.data_dir
    source = log if log is not None else settings.data_dir.parent / "serving" / "events"
    if not table_path(target, "events").exists():
        raise typer.BadParameter(f"{target} holds no events table to append to", param_hint="--data")
    console = Console()
    if log is None and not source.exists():  # the service has accepted no event under this state dir
        console.print(f"no event log at {source} (the service has accepted no event yet): nothing appended",
                      soft_wrap=True, markup=False)  # fmt: skip
        return
    if not source.is_dir():
        raise typer.BadParameter(f"{source} is not a directory (no event log)", param_hint="--log")
    report = append_served_events(source, target, DeletionLedger(settings.state_dir).user_ids())
    console.print(
        f"{report.logged:,} events in the log: {report.appended:,} appended, "
        f"{report.already_there:,} already in {target}, {report.deleted_users:,} of deleted users left out; "
        f"{report.events_after:,} events now",
        soft_wrap=True,
        markup=False,
    )
    if report.id_clashes:
        console.print(
            f"warning: {report.id_clashes:,} logged events were left out because their event id "
            "belongs to another event (an id reused by a client, or, in a log written before "
            "serving tagged ids with its worker, given by two workers in the same microsecond)",
            soft_wrap=True,
            markup=False,
        )
    if report.appended:
        console.print("next: slotcast data validate", markup=False)
