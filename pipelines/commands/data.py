"""`slotcast data ...`: data entering the system (simulated worlds, imported logs, validation)."""

from __future__ import annotations

import typer

from pipelines.commands import data_events, data_generate, data_import


def register(app: typer.Typer) -> None:
    """Add the `data` group to the main app."""
    data_app = typer.Typer(help="Generate, import and validate the canonical tables.", no_args_is_help=True)
    data_generate.register(data_app)
    data_import.register(data_app)
    data_app.command("append-events")(data_events.append_events_command)
    app.add_typer(data_app, name="data")
