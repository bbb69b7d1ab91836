"""`slotcast features build|show` and `slotcast segments show`: the Feast feature store from the CLI."""

from __future__ import annotations

import contextlib
import io
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import typer
from rich.console import Console


def _console() -> Console:
    # Wide enough for the feature tables even when piped (rich falls back to 80 columns).
    import shutil

    return Console(width=max(120, shutil.get_terminal_size((120, 24)).columns))


def _settings(state_dir: Path | None):
    from features.settings import FeatureSettings

    return FeatureSettings(state_dir=state_dir) if state_dir else FeatureSettings()


def _parse_as_of(value: str | None) -> datetime | None:
    """The build's cut-off. A bare date means the end of that day: "as of 2026-01-05" includes
    Jan 5's events (it was read as the day's first instant, which left the whole day out); a date
    and time is taken as written, UTC when it names no zone."""
    if value is None:
        return None
    try:
        return datetime.combine(date.fromisoformat(value.strip()) + timedelta(days=1), time(), UTC)
    except ValueError:
        pass
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"expected an ISO date or datetime, got {value!r}", param_hint="--as-of"
        ) from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


STATE_OPT = typer.Option(
    None,
    "--state-dir",
    help="state directory (default: $SLOTCAST_STATE_DIR, else the repository's .slotcast)",
)


def build(
    data: Path = typer.Option(
        ..., "--data", help="directory of canonical parquet tables (users, products, events ...)"
    ),
    as_of: str = typer.Option(
        None,
        "--as-of",
        help="compute features and segments from the events before this time: a date means the end "
        "of that day (2026-01-05 includes Jan 5, the same as 2026-01-06T00:00), a date and time is taken "
        "as given, UTC unless it names a zone (default: just after the last event)",
    ),
    segments: Path = typer.Option(
        None, "--segments", help="segment rules YAML (default: features/segments.yaml)"
    ),
    state_dir: Path = STATE_OPT,
) -> None:
    """Compute the offline feature tables, `feast apply` the definitions and materialize the online store."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from features.offline import STEP_NAMES
    from features.segments import load_segment_rules
    from features.store import build_feature_store
    from features.views import VIEW_SPECS

    console = _console()
    if not data.is_dir():
        raise FileNotFoundError(f"--data {data}: not a directory")
    as_of_ts = _parse_as_of(as_of)  # before the progress bar: a bad value is a usage error, alone
    load_segment_rules(segments)  # likewise a bad rules file (the build reads it again: it is tiny)
    settings = _settings(state_dir)
    total = len(STEP_NAMES) + 1 + len(VIEW_SPECS)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("features: offline tables", total=total)

        def progress(phase: str, step: str) -> None:
            bar.update(task, advance=1, description=f"features: {phase} {step}")

        # Feast prints its own materialization banners; keep the CLI output to our summary.
        with contextlib.redirect_stdout(io.StringIO()):
            report = build_feature_store(
                data, settings, as_of=as_of_ts, segments_file=segments, progress=progress
            )
    console.print(
        f"[green]feature store built[/green] as of {report.as_of.isoformat()} in {settings.features_dir}"
    )
    for name, rows in report.offline_rows.items():
        console.print(f"  offline {name:<14} {rows:>12,} rows")
    console.print(f"  views: {', '.join(report.views)}")
    console.print(f"  services: {', '.join(report.services)}   online store: {report.online_store}")
    console.print("  seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items()))
    if report.excluded_users:
        console.print(f"  excluded {report.excluded_users} deleted user(s) (privacy ledger)")
    stale = {v: n for v, n in report.online_removed.items() if n}
    if stale:
        console.print(
            "  removed online keys no longer in the offline tables: "
            + ", ".join(f"{v} {n:,}" for v, n in stale.items())
        )
    if report.online_deletions:
        console.print(
            f"  removed the online rows of {report.online_deletions} deleted user(s) the store missed"
        )
    console.print(f"  feast CLI: feast -c features -f {report.yaml_path} ui")


def show(
    user: int = typer.Option(..., "--user", help="user id"),
    product: list[int] = typer.Option(
        None, "--product", help="product id (repeatable); default: user features only"
    ),
    stream: int = typer.Option(None, "--stream", help="stream id for live features"),
    service: str = typer.Option("ranker_v1", "--service", help="feature service"),
    state_dir: Path = STATE_OPT,
) -> None:
    """Print the online features of one user (and products) as serving would see them."""
    import pandas as pd
    from rich.table import Table

    from features.feature_services import SERVICE_SPECS
    from features.retrieval import FeastFeatureReader

    if service not in SERVICE_SPECS:
        raise typer.BadParameter(
            f"unknown feature service {service!r}; known: {', '.join(SERVICE_SPECS)}", param_hint="--service"
        )
    console = _console()
    reader = FeastFeatureReader(_settings(state_dir))
    console.print(f"user {user}: segment [bold]{reader.segment(user) or 'unknown (no features)'}[/bold]")
    if product:
        frame = reader.online(user, list(product), stream_id=stream, service=service)
    else:
        frame = reader.latest_user_features(user_ids=[user])
        if frame.empty:
            console.print("no offline snapshot for this user")
            return
    table = Table(title=f"{service if product else 'latest user snapshot'}")
    table.add_column("feature")
    for col in frame.index:
        table.add_column(str(col), justify="right")
    for feat in frame.columns:
        vals = frame[feat].tolist()
        table.add_row(
            feat, *["-" if pd.isna(v) else (f"{v:.4g}" if isinstance(v, float) else str(v)) for v in vals]
        )
    console.print(table)


def segments_show(state_dir: Path = STATE_OPT) -> None:
    """Print each segment's size and mean RFM figures (from the latest build)."""
    from rich.table import Table

    from features.retrieval import FeastFeatureReader

    console = _console()
    cols = [
        "segment",
        "recency_days",
        "frequency_90d",
        "monetary_90d",
        "avg_order_value",
        "watch_minutes_30d",
    ]
    df = FeastFeatureReader(_settings(state_dir)).latest_user_features(cols)
    summary = df.groupby("segment").agg(users=("segment", "size"), **{c: (c, "mean") for c in cols[1:]})
    summary = summary.sort_values("users", ascending=False)
    table = Table(title=f"segments ({len(df):,} users)")
    short = {
        "recency_days": "recency",
        "frequency_90d": "freq 90d",
        "monetary_90d": "money 90d",
        "avg_order_value": "AOV",
        "watch_minutes_30d": "watch min 30d",
    }
    for c in ["segment", "users", "share", *cols[1:]]:
        table.add_column(short.get(c, c), justify="left" if c == "segment" else "right", no_wrap=True)
    for seg, row in summary.iterrows():
        table.add_row(
            str(seg),
            f"{int(row['users']):,}",
            f"{row['users'] / len(df):.1%}",
            *["-" if row[c] != row[c] else f"{row[c]:.2f}" for c in cols[1:]],
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the `features` and `segments` groups to the main app."""
    features_app = typer.Typer(help="The Feast feature store: build it, look at it.", no_args_is_help=True)
    features_app.command("build")(build)
    features_app.command("show")(show)
    app.add_typer(features_app, name="features")
    segments_app = typer.Typer(
        help="User segments (RFM + behaviour; rules in features/segments.yaml).", no_args_is_help=True
    )
    segments_app.command("show")(segments_show)
    app.add_typer(segments_app, name="segments")
