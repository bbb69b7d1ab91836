"""`slotcast data import` and `slotcast data validate`: real logs in, bad rows into quarantine.

Both print ``read = accepted + quarantined`` and exit 1 only when the quarantined share passes
``--max-quarantine-share``; input that is not of the stated format at all exits 2 with the file and
line. The work lives in ``pipelines.importers`` and ``features.validation``; this is the shell.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from enum import StrEnum
from pathlib import Path

import typer


class LogFormatName(StrEnum):
    movielens = "movielens"
    taobao = "taobao"
    retailrocket = "retailrocket"
    yoochoose = "yoochoose"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `data` group."""
    app.command("import")(import_command)
    app.command("validate")(validate_command)


def _parse_day(value: str | None, option: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        day = dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2000-01-01", param_hint=option) from None
    return day if day.tzinfo else day.replace(tzinfo=dt.UTC)


def _share_option() -> float | None:
    return typer.Option(
        None,
        "--max-quarantine-share",
        min=0.0,
        max=1.0,
        help="Fail (exit 1) when a larger share of rows is quarantined (default: $SLOTCAST_MAX_QUARANTINE_SHARE or 0.05).",
    )


def import_command(
    format: LogFormatName = typer.Option(
        ..., "--format", "-f", case_sensitive=False, help="The log's format."
    ),
    input: Path = typer.Option(
        ...,
        "--input",
        "-i",
        help="The log file, or a directory holding it (.gz/.bz2/.zst/.zip are read as they are).",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Data directory to write (default: $SLOTCAST_STATE_DIR/data)."
    ),
    max_quarantine_share: float | None = _share_option(),
    allow_truncated: bool = typer.Option(
        False, "--allow-truncated", help="Quarantine a cut-off last line instead of failing."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the canonical tables already in OUT."),
    min_ts: str | None = typer.Option(
        None, "--min-ts", help="Earliest plausible timestamp (default: 2000-01-01; movielens 1995-01-01)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Import a real interaction log into the canonical tables (users, products, events).

    Formats and their mapping are documented in docs/data-model.md. Lines that cannot be used go to OUT/quarantine.parquet with their line number, reason and text.

    Exit codes: 0 ok; 1 too many lines quarantined (then only OUT/quarantine.rejected.parquet is written); 2 not a FORMAT file, a file cut short, or OUT already holding data.
    """
    from rich.console import Console

    from features.validation import ValidationRules
    from pipelines.importers import get_format
    from pipelines.importers.driver import import_logs
    from pipelines.importers.settings import ImportSettings

    settings = ImportSettings()
    fmt = get_format(format.value)
    files = fmt.find_files(input)
    lower = _parse_day(min_ts, "--min-ts") or fmt.min_ts
    share = settings.max_quarantine_share if max_quarantine_share is None else max_quarantine_share
    target = out if out is not None else settings.data_dir
    console = Console(stderr=True)
    with _bytes_progress(console, files, enabled=progress) as advance:
        report = import_logs(
            fmt,
            input,
            target,
            max_quarantine_share=share,
            allow_truncated=allow_truncated,
            overwrite=overwrite,
            rules=ValidationRules(min_ts=lower),
            on_progress=advance,
        )
    _print_import(report)
    # Errors carry exit_code (1 here, 2 for bad input); the CLI's main prints them, escaped for rich.
    report.raise_for_threshold()


def _bytes_progress(console, files: list[Path], enabled: bool):  # type: ignore[no-untyped-def]
    """A rich bar over the input's bytes (no total for compressed input, whose size says little)."""

    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    @contextlib.contextmanager
    def bar():  # type: ignore[no-untyped-def]
        if not enabled:
            yield lambda n: None
            return
        plain = all(p.suffix.lower() not in (".gz", ".bz2", ".zst", ".lz4", ".zip") for p in files)
        total = sum(p.stat().st_size for p in files) if plain else None
        with Progress(
            TextColumn("importing"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as p:
            task = p.add_task("import", total=total)
            yield lambda n: p.advance(task, n)

    return bar()


def _print_import(report) -> None:  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{report.format} import into {report.out_dir}")
    for col in ("file", "read", "accepted", "quarantined"):
        table.add_column(col, justify="left" if col == "file" else "right")
    for f in report.files:
        table.add_row(f.path.name, f"{f.read:,}", f"{f.accepted:,}", f"{f.quarantined:,}")
    console = Console()
    console.print(table)
    # Plain lines (not table cells) so that file:line stays whole and greppable at any width.
    console.print(
        f"read = accepted + quarantined: {report.read:,} = {report.accepted:,} + {report.quarantined:,} lines "
        f"({report.share:.2%} quarantined)",
        soft_wrap=True,
    )
    for f in report.files:
        if f.first_bad:
            console.print(
                f"first bad line: {f.path.name}:{f.first_bad[0]}: {f.first_bad[1]}",
                soft_wrap=True,
                markup=False,
            )
    if report.written:
        console.print(f"wrote {report.events:,} events, {report.users:,} users, {report.products:,} products")
    for reason, n in report.reasons.most_common(5):
        console.print(f"  {n:,} x {reason}", soft_wrap=True, markup=False)


def validate_command(
    data: Path | None = typer.Option(
        None, "--data", "-d", help="Data directory to check (default: $SLOTCAST_STATE_DIR/data)."
    ),
    max_quarantine_share: float | None = _share_option(),
    min_ts: str | None = typer.Option(
        None,
        "--min-ts",
        help="Earliest plausible timestamp (default: 2000-01-01; give 1995-01-01 for a movielens import).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report; rewrite nothing."),
) -> None:
    """Validate every canonical table in a data directory and quarantine the bad rows.

    Checks ids, event types, prices and amounts, timestamps, duplicate keys and references between tables.

    Within the threshold the tables are rewritten with their accepted rows and the rest appended to DATA/quarantine.parquet; above it (exit 1) nothing is rewritten and the rejected rows go to DATA/quarantine.rejected.parquet.
    """
    from rich.console import Console
    from rich.table import Table

    from features.validation import QuarantineThresholdError, ValidationRules, validate_dir
    from pipelines.importers.settings import ImportSettings

    settings = ImportSettings()
    share = settings.max_quarantine_share if max_quarantine_share is None else max_quarantine_share
    target = data if data is not None else settings.data_dir
    lower = _parse_day(min_ts, "--min-ts")
    rules = ValidationRules(min_ts=lower) if lower else ValidationRules()
    with Console(stderr=True).status("validating") as status:
        report = validate_dir(
            target, share, rules=rules, write=not dry_run, on_table=lambda t: status.update(f"validating {t}")
        )
    table = Table(title=f"validation of {target}")
    for col in ("table", "read", "accepted", "quarantined", "share", "top reason"):
        table.add_column(col, justify="left" if col in ("table", "top reason") else "right")
    for name, c in report.tables.items():
        top = next(iter(c.reasons.items()), None)
        table.add_row(
            name,
            f"{c.read:,}",
            f"{c.accepted:,}",
            f"{c.quarantined:,}",
            f"{c.share:.2%}",
            f"{top[1]:,} x {top[0]}" if top else "",
        )
    console = Console()
    console.print(table)
    for name, c in report.tables.items():
        console.print(
            f"{name}: read = accepted + quarantined: {c.read:,} = {c.accepted:,} + {c.quarantined:,}"
        )
    if report.quarantine_path and report.ok:
        console.print(f"quarantined rows appended to {report.quarantine_path}")
    if dry_run:
        console.print("dry run: nothing rewritten")
    if not report.ok:
        raise QuarantineThresholdError(
            f"quarantined share above {share:.2%} in {', '.join(report.over_threshold)}; "
            f"the tables were left unchanged; rejected rows: {report.quarantine_path or '(dry run: not written)'}"
        )
