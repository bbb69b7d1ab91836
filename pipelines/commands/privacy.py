"""`slotcast privacy purge`: erase deleted users from the files on disk (``pipelines/purge.py``)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the `privacy` group to the main app."""
    privacy_app = typer.Typer(help="The right to erasure, on disk.", no_args_is_help=True)
    privacy_app.command("purge")(purge_command)
    app.add_typer(privacy_app, name="privacy")


def purge_command(
    data: list[Path] = typer.Option(
        None,
        "--data",
        "-d",
        help="a data directory to purge too (repeat for more; default: $SLOTCAST_STATE_DIR/data when it exists)",
    ),
) -> None:
    """Erase every user in the deletion ledger from the files they are still in.

    The service's logs (events, impressions, shared events, live events waiting) and the consent changes are edited in place while the service runs; the feature build's offline snapshot and the data directories' tables (quarantine included) are rewritten without the users' rows.

    Run it after deletions (for example daily): `DELETE /users/{id}` already takes the user out of every answer, the online store, training and evaluation; this takes them off the disk. Exit 1 when something was left (a running feature build held the offline snapshot, a file could not be read or written): each is named, everything else is purged; run it again afterwards.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    from features.settings import FeatureSettings
    from features.store import build_lock
    from pipelines.purge import purge

    settings = FeatureSettings()
    dirs = list(data or [])
    for d in dirs:
        if not d.is_dir():
            raise typer.BadParameter(f"{d} is not a data directory", param_hint="--data")
    if not dirs and (settings.state_dir / "data").is_dir():
        dirs = [settings.state_dir / "data"]
    console = Console()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=True) as bar:  # fmt: skip
        tasks: dict[str, object] = {}

        def on_file(place: str, done: int, total: int) -> None:
            if place not in tasks:
                tasks[place] = bar.add_task(place, total=total)
            bar.update(tasks[place], completed=done)  # type: ignore[arg-type]

        report = purge(settings.state_dir, dirs, lambda: build_lock(settings), on_file)
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
