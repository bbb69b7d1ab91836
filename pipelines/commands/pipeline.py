"""`slotcast pipeline run|steps|demo`: the end-to-end run and the newcomer's demo."""

from __future__ import annotations

from pathlib import Path

import typer

CONFIG_HELP = "pipeline config (YAML); default: the built-in demo config (pipelines/configs/demo.yaml)"


def _check_steps(from_step: str | None, until: str | None) -> None:
    """--from / --until name steps, and --until none before --from (that ran the steps up to it,
    all cached, and none it was asked for): usage errors naming the option, before any work."""
    from pipelines.steps import build_steps

    names = [s.name for s in build_steps(Path("."))]
    steps = f"steps are: {', '.join(names)}"
    for option, value in (("--from", from_step), ("--until", until)):
        if value is not None and value not in names:
            raise typer.BadParameter(f"unknown step {value!r}; {steps}", param_hint=option)
    if from_step and until and names.index(until) < names.index(from_step):
        raise typer.BadParameter(
            f"{until!r} comes before --from {from_step!r}; {steps}", param_hint="--until"
        )


def _run(config: Path | None, from_step: str | None, until: str | None) -> list:  # type: ignore[type-arg]
    from rich.console import Console
    from rich.table import Table

    from pipelines.config import load_config
    from pipelines.runner import Runner
    from pipelines.settings import PipelineSettings
    from pipelines.steps import build_steps

    _check_steps(from_step, until)
    console = Console()
    cfg = load_config(config)
    settings = PipelineSettings()
    state = settings.state_dir.resolve()
    steps = build_steps(state, lambda m: console.print(f"  [dim]{m}[/dim]"))
    runner = Runner(steps, cfg.sections(), settings.cache_dir)

    def on_step(step, status: str) -> None:  # type: ignore[no-untyped-def]
        mark = {
            "running": "[cyan]>[/cyan]",
            "cached": "[green]=[/green] cached",
            "ran": "[green]done[/green]",
        }[status]
        console.print(f"{mark} {step.name}: {step.description}")

    outcomes = runner.run(from_step=from_step, until=until, on_step=on_step)
    table = Table(title=f"pipeline {cfg.name} (state: {state})")
    for col in ("step", "status", "seconds", "figures", "outputs"):
        table.add_column(col, overflow="fold")
    for o in outcomes:
        r = o.result
        figures = ", ".join(f"{k} {v}" for k, v in (r.figures if r else {}).items() if k != "rows")
        outputs = "\n".join(f"{k}: {v}" for k, v in (r.outputs if r else {}).items())
        table.add_row(o.name, o.status, f"{o.seconds:.1f}", figures, outputs)
    console.print(table)
    return outcomes


def register(app: typer.Typer) -> None:
    """Add the `pipeline` group."""
    group = typer.Typer(help="The end-to-end pipeline: data -> validate -> features -> train -> promote -> evaluate.",
                        no_args_is_help=True)  # fmt: skip

    @group.command("run")
    def run_cmd(
        config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
        from_step: str = typer.Option(
            None,
            "--from",
            metavar="STEP",
            help="rerun from this step (and everything after it); `slotcast pipeline steps` lists them",
        ),
        until: str = typer.Option(None, "--until", metavar="STEP", help="stop after this step"),
    ) -> None:
        """Run every step; a step whose inputs and config did not change is skipped (cached)."""
        _run(config, from_step, until)

    @group.command("steps")
    def steps_cmd() -> None:
        """List the steps in order."""
        from pipelines.steps import build_steps

        for s in build_steps(Path(".")):
            typer.echo(f"{s.name:<10} {s.description}")

    @group.command("demo")
    def demo_cmd(
        config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
        serve: bool = typer.Option(True, "--serve/--no-serve", help="start the service and call it once"),
    ) -> None:
        """The newcomer's demo: run the pipeline, start the service, call /carousel and /community/push once."""
        from pipelines.demo import call_service

        outcomes = {o.name: o.result for o in _run(config, None, None)}
        if serve:
            # The run's own data and report: a config's data.dir need not be $STATE/data, and the
            # latest report under $STATE/reports may be another run's (`slotcast evaluate`).
            data, evaluated = outcomes.get("validate"), outcomes.get("evaluate")
            call_service(
                Path(data.outputs["data"]) if data else None,
                evaluated.outputs.get("report") if evaluated else None,
            )

    app.add_typer(group, name="pipeline")
