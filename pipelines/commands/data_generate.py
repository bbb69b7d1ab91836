"""`slotcast data generate`: simulate a livestream-commerce world into the canonical tables."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `data` group."""
    app.command("generate")(generate)


def generate(
    users: int = typer.Option(20_000, "--users", min=10, help="Number of users."),
    products: int = typer.Option(2_000, "--products", min=20, help="Number of products."),
    days: int = typer.Option(14, "--days", min=1, max=366, help="Days of activity to simulate."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed; the same seed gives identical tables."),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Data directory to write (default: $SLOTCAST_STATE_DIR/data; the state dir defaults to the repository's .slotcast).",
    ),
    categories: int = typer.Option(12, "--categories", min=2, help="Product categories (at most 16)."),
    slots: int = typer.Option(6, "--slots", min=1, help="Carousel slots shown per request."),
    epsilon: float = typer.Option(
        0.1, "--epsilon", min=0.0, max=1.0, help="Carousel logging policy exploration."
    ),
    push_epsilon: float = typer.Option(
        0.2, "--push-epsilon", min=0.0, max=1.0, help="Push logging exploration."
    ),
    on_air_min: int | None = typer.Option(
        None,
        "--on-air-min",
        min=1,
        help="Fewest products on air per stream segment (default: max(8, slots)).",
    ),
    on_air_max: int | None = typer.Option(
        None, "--on-air-max", min=1, help="Most products on air per stream segment (default: max(16, slots))."
    ),
    streams: bool = typer.Option(
        True,
        "--streams/--no-streams",
        help="--no-streams: a shop without live streams (no stream tables or ids).",
    ),
    drift_share: float = typer.Option(
        0.0,
        "--drift-share",
        min=0.0,
        max=1.0,
        help="Share of users whose tastes are drawn afresh once during the period (taste drift; default none).",
    ),
    drift_after: float = typer.Option(
        0.5,
        "--drift-after",
        min=0.0,
        max=0.99,
        help="Tastes change on a day after this fraction of the period (drawn per user).",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Simulate users, products, live streams, carousel impressions and community pushes.

    Writes every canonical table (users, products, streams, stream_products, communities, memberships, events, impressions, pushes) to OUT, plus OUT/truth/ with the world's latent parameters so evaluation can compute true expected values. The model is in docs/simulator.md.
    """
    from pydantic import ValidationError
    from rich.console import Console
    from rich.table import Table

    from pipelines.settings import PipelineSettings
    from pipelines.simulator import SimConfig
    from pipelines.simulator import generate as run_generate

    try:
        cfg = SimConfig(
            users=users,
            products=products,
            days=days,
            seed=seed,
            categories=categories,
            slots=slots,
            epsilon=epsilon,
            push_epsilon=push_epsilon,
            streams=streams,
            drift_share=drift_share,
            drift_after=drift_after,
            segment_products=(
                on_air_min if on_air_min is not None else max(8, slots),
                on_air_max if on_air_max is not None else max(16, slots, on_air_min or 0),
            ),
        )
    except ValidationError as exc:
        from pipelines.messages import problems

        msgs = problems(exc, lambda loc: "--" + "-".join(loc))
        # SimConfig's field is the CLI's pair of options.
        raise typer.BadParameter(msgs.replace("segment_products", "--on-air-min/--on-air-max")) from None
    target = out if out is not None else PipelineSettings().state_dir.expanduser() / "data"
    if target.exists() and not target.is_dir():
        raise typer.BadParameter(f"{target} is a file, not a data directory", param_hint="--out")
    result = run_generate(cfg, target, progress=progress)
    table = Table(title=f"simulated world in {target}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in result.rows.items():
        table.add_row(name, f"{n:,}")
    console = Console()
    console.print(table)
    console.print(
        f"{result.seconds:.1f} s, {result.events_per_second:,.0f} events/s; truth in {target / 'truth'}"
    )
