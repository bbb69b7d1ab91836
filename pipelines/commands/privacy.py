"""`slotcast privacy delete|purge`: deleting users without the service, and erasing deleted users
from the files on disk (``pipelines/purge.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the `privacy` group to the main app."""
    privacy_app = typer.Typer(help="The right to erasure, on disk.", no_args_is_help=True)
    privacy_app.command("delete")(delete_command)
    privacy_app.command("purge")(purge_command)
    app.add_typer(privacy_app, name="privacy")


def purge_command(
    data: list[Path] = typer.Option(
        None,
        "--data",
        "-d",
        help="a data directory to purge too (repeat for more; default: $SLOTCAST_STATE_DIR/data when it exists)",
    ),
    bundle: list[Path] = typer.Option(
        None,
        "--bundle",
        "-b",
        help="a bundle directory to purge too, such as the one SLOTCAST_BUNDLE_DIR serves (repeat for more)",
    ),
) -> None:
    """Erase every user in the deletion ledger from the files they are still in.

    The service's logs (events, impressions, shared events, live events waiting, events kept for fold-in) and the consent changes are edited in place while the service runs; the feature build's offline snapshot and the data directories' tables (quarantine included) are rewritten without the users' rows; every registered bundle version in MLflow (and each --bundle directory) is rewritten without their ALS factors, training rows and segment labels, same version and aliases.

    Run it after deletions (for example daily): `DELETE /users/{id}` already takes the user out of every answer, the online store, training and evaluation; this takes them off the disk. Exit 1 when something was left (a running feature build held the offline snapshot, a file or a registered version could not be read or written, the MLflow server did not answer): each is named, everything else is purged; run it again afterwards.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    from features.settings import FeatureSettings
    from features.store import build_lock
    from pipelines.purge import purge, registry_purge
    from training.settings import TrainSettings

    settings = FeatureSettings()
    dirs = list(data or [])
    for d in dirs:
        if not d.is_dir():
            raise typer.BadParameter(f"{d} is not a data directory", param_hint="--data")
    for b in bundle or []:
        if not b.is_dir():
            raise typer.BadParameter(f"{b} is not a bundle directory", param_hint="--bundle")
    if not dirs and (settings.state_dir / "data").is_dir():
        dirs = [settings.state_dir / "data"]
    # MLflow's download bars (three a registered version) among the purge's own progress and table.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    console = Console()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=True) as bar:  # fmt: skip
        tasks: dict[str, object] = {}

        def on_file(place: str, done: int, total: int) -> None:
            if place not in tasks:
                tasks[place] = bar.add_task(place, total=total)
            bar.update(tasks[place], completed=done)  # type: ignore[arg-type]

        report = purge(settings.state_dir, dirs, lambda: build_lock(settings), on_file,
                       registry=registry_purge(TrainSettings()), bundle_dirs=bundle or [])  # fmt: skip
    if not report.users:
        console.print("the deletion ledger is empty: nothing to purge", markup=False)
        return
    table = Table(title=f"purged {report.users:,} deleted user(s) ($STATE: {settings.state_dir})")
    table.add_column("place", overflow="fold")
    for col in ("files", "records / rows erased", "records edited"):
        table.add_column(col, justify="right")
    for p in report.places:
        table.add_row(p.place, f"{p.files:,}", f"{p.records:,}", f"{p.edited:,}")
    console.print(table)
    for note in report.skipped:
        console.print(f"skipped {note}", markup=False, soft_wrap=True)
    if report.skipped:
        raise typer.Exit(1)


def _user_ids(values: list[str], path: Path | None) -> list[int]:
    """User ids from the command line and a file (one per line; blank lines and # comments skipped)."""
    items = [(v, "USER_IDS") for v in values]
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--file") from None
        for n, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if line:
                items.append((line, f"--file {path}:{n}"))
    ids = []
    for value, where in items:
        try:
            uid = int(value)
        except ValueError:
            raise typer.BadParameter(f"not a user id: {value[:40]!r}", param_hint=where) from None
        if uid < 0:
            raise typer.BadParameter(f"not a user id: {uid} (negative)", param_hint=where)
        ids.append(uid)
    if not ids:
        raise typer.BadParameter("no user id given (arguments or --file)", param_hint="USER_IDS")
    return list(dict.fromkeys(ids))


def delete_command(
    user_ids: list[str] = typer.Argument(None, metavar="USER_IDS", help="user ids to delete"),
    file: Path = typer.Option(
        None, "--file", "-f", help="a file of user ids, one per line (# comments allowed)"
    ),
) -> None:
    """Delete users without going through the service: a compliance batch, or the service is down.

    Does what `DELETE /users/{id}` does: the users go to the deletion ledger first (every running worker honours it within a second: no personal answer, no push; training and evaluation leave them out), then their rows leave the online store. With the online store unreachable they are left to the next `slotcast features build` (exit 1). Then run `slotcast privacy purge` to erase them from the files on disk.
    """
    from rich.console import Console

    from features.privacy import DeletionLedger, delete_user_online, pending_online_deletions
    from features.settings import FeatureSettings
    from features.store import open_store

    ids = _user_ids(user_ids or [], file)
    settings = FeatureSettings()
    console = Console()
    new = DeletionLedger(settings.state_dir).add_many(ids)
    console.print(f"{len(new):,} user(s) added to the deletion ledger ({len(ids) - len(new):,} were in it)",
                  markup=False)  # fmt: skip
    if not settings.registry_path.exists():
        console.print(
            "no feature store built in this state directory: no online rows to remove", markup=False
        )
        return
    try:
        removed = delete_user_online(open_store(settings), set(ids))
    except Exception as exc:  # noqa: BLE001 - the ledger holds them; the next build removes the rows
        pending_online_deletions(settings.state_dir).add_many(ids)
        console.print(f"the online store failed ({type(exc).__name__}: {exc}); their rows are left to the next "
                      "`slotcast features build`", markup=False, soft_wrap=True)  # fmt: skip
        raise typer.Exit(1) from None
    console.print(f"{removed:,} online row(s) removed; next: slotcast privacy purge", markup=False)
