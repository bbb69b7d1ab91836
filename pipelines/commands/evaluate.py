"""`slotcast evaluate`: offline A/B evaluation (replay on held-out time + off-policy estimates).

Policies: popular, random (no model needed), als, als+ranker (the champion bundle, or --bundle),
champion, challenger (MLflow model `slotcast` by alias). The logging policy's own value is always
reported from the logs (`--policies logging` reports it alone, without replay). A policy that cannot
be built is skipped with the reason, never silently.
When DATA holds a simulator truth (DATA/truth), every policy's true value on the logged requests
is reported beside its estimates.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from pipelines.commands.evaluate_policies import (
    DEFAULT_POLICIES,
    KNOWN_POLICIES,
    REWARD_MODEL_ORDER,
    Bundles,
    PolicyUnavailable,
    build_policy,
    parse_policies,
    seen_window_notes,
)
from pipelines.commands.evaluate_summary import print_summary
from pipelines.commands.evaluate_truth import simulator_truth


def _service_impressions(state_dir: Path, events: Any, deleted: Any) -> Any:
    """The service's carousel impression log as an impressions table (clicks / purchases from
    events), without the answers to users in ``deleted``."""
    from serving.impressions import read_impressions
    from training.evaluation.logs import impressions_from_service

    directory = Path(state_dir) / "serving" / "impressions"
    if not directory.is_dir():
        raise typer.BadParameter(
            f"no impression log at {directory} (the service writes it)", param_hint="--service-log"
        )
    gone = {int(u) for u in deleted}
    records = (r for r in read_impressions(directory) if r.get("user_id") not in gone)
    table = impressions_from_service(records, events)
    if table.empty:
        replayed = table.attrs.get("replayed_records", 0)
        why = (
            f" (only {replayed} replays, answers to requests with `at`, that nobody was shown)"
            if replayed
            else ""
        )
        raise typer.BadParameter(
            f"{directory} holds no carousel impressions{why}", param_hint="--service-log"
        )
    return table


def register(app: typer.Typer) -> None:
    """Add `slotcast evaluate` to the main app."""

    @app.command("evaluate")
    def evaluate_cmd(
        data: Path = typer.Option(None, "--data", help="directory of canonical parquet tables (default $SLOTCAST_STATE_DIR/data)"),
        policies: str = typer.Option(DEFAULT_POLICIES, "--policies", help=f"comma-separated, from: {', '.join(KNOWN_POLICIES)}"),
        split: str = typer.Option("time", "--split", help="how to hold data out; only 'time' (the last --test-fraction of the span)"),
        test_fraction: float = typer.Option(0.2, "--test-fraction", min=0.01, max=0.9, help="share of the time span held out; a bundle fitted on part of it is named, with the share it did not see (training holds out 0.1)"),
        k: int = typer.Option(10, "--k", min=1, help="list length for the replay metrics"),
        out: Path = typer.Option(None, "--out", help="report directory (default $SLOTCAST_STATE_DIR/reports/<UTC time>)"),
        reward: str = typer.Option("purchased", "--reward", help="logged outcome to value: purchased | clicked"),
        max_weight: float = typer.Option(1000.0, "--max-weight", min=1.0, help="propensity clipping: cap on pi/propensity"),
        n_boot: int = typer.Option(400, "--n-boot", min=50, help="bootstrap replicates for the 95% intervals"),
        max_users: int = typer.Option(5000, "--max-users", min=10, help="replay on at most this many test users (sampled)"),
        max_requests: int = typer.Option(20000, "--max-requests", min=100,
                                         help="off-policy estimates on about this many held-out logged requests per log "
                                              "(whole users sampled)"),
        bundle: Path = typer.Option(None, "--bundle", help="bundle directory for als / als+ranker (default: the champion)"),
        truth: bool = typer.Option(True, "--truth/--no-truth", help="report simulator true values when DATA/truth exists"),
        mlflow: bool = typer.Option(True, "--mlflow/--no-mlflow", help="log the report as an MLflow evaluation run"),
        seed: int = typer.Option(0, "--seed", help="seed of the bootstrap and of the user samples (--max-users, --max-requests)"),
        service_log: bool = typer.Option(False, "--service-log/--table-log",
                                         help="carousels from the service's impression log ($SLOTCAST_STATE_DIR/serving/"
                                              "impressions, rewards joined from DATA's events) instead of DATA's impressions table"),
    ) -> None:  # fmt: skip
        """Evaluate policies offline: replay metrics on held-out time, IPS/SNIPS/DR on the logged carousels and pushes, champion vs challenger with a verdict; writes an HTML report + metrics.json."""
        from rich.console import Console

        from training.evaluation.report import log_to_mlflow, write_report
        from training.evaluation.run import EvalConfig, NothingToEvaluate, evaluate, read_tables
        from training.settings import TrainSettings

        if split != "time":
            raise typer.BadParameter(f"{split!r}: only 'time' is supported", param_hint="--split")
        if reward not in ("purchased", "clicked"):
            raise typer.BadParameter(f"{reward!r} is not purchased or clicked", param_hint="--reward")
        names = parse_policies(policies)
        settings = TrainSettings()  # type: ignore[call-arg]
        data = data if data is not None else settings.state_dir / "data"
        if not data.is_dir():
            raise typer.BadParameter(f"{data} is not a directory", param_hint="--data")
        if bundle is not None and not bundle.exists():
            raise typer.BadParameter(f"{bundle} does not exist", param_hint="--bundle")
        if out is None:
            out = settings.state_dir / "reports" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        elif out.exists() and not out.is_dir():  # refused before the work, not once the report is written
            raise typer.BadParameter(f"{out} is a file, not a report directory", param_hint="--out")
        console, err = Console(), Console(stderr=True)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

        from training.interactions import deleted_users

        gone = deleted_users(settings.state_dir)  # evaluation, like training, reads no deleted user
        tables = read_tables(data, gone)
        if tables["events"].empty:
            raise typer.BadParameter(f"{data}/events.parquet holds no events", param_hint="--data")
        notes: list[str] = []
        if service_log:
            tables["impressions"] = _service_impressions(settings.state_dir, tables["events"], gone)
            if bad := tables["impressions"].attrs.get("malformed_records", 0):
                notes.append(f"service impression log: {bad} malformed carousel records left out")
            if replayed := tables["impressions"].attrs.get("replayed_records", 0):
                notes.append(
                    f"service impression log: {replayed} replayed carousels (requests with `at`) left out: "
                    "nobody was shown them"
                )
        from training.evaluation.policies import PopularPolicy
        from training.evaluation.replay import time_split

        cut = time_split(tables["events"], test_fraction)[1]["ts"].min()
        bundles = Bundles(settings, bundle)
        specs: dict[str, Any] = {}
        for name in names:
            if name == "logging":
                continue  # always reported: its value is read off the logs
            try:
                specs[name] = build_policy(name, bundles, settings, cut, PopularPolicy.from_events, notes)
            except PolicyUnavailable as exc:
                msg = f"policy {name!r} skipped: {exc}"
                notes.append(msg)
                err.print(f"[yellow]{msg}[/yellow]")
        for note in seen_window_notes(bundles, tables["events"], cut):
            notes.append(note)
            err.print(f"[yellow]{note}[/yellow]")
        if not specs and "logging" not in names:
            raise typer.BadParameter(
                "none of the requested policies can be evaluated here", param_hint="--policies"
            )
        built_names = list(specs)
        if "champion" in specs and "challenger" in specs:
            comparisons = [("champion", "challenger")]
        else:
            comparisons = [(built_names[0], built_names[-1])] if len(built_names) > 1 else []
        truth_fn = None
        if truth and (data / "truth").is_dir():
            truth_fn = simulator_truth(data, reward)
        cfg = EvalConfig(k=k, test_fraction=test_fraction, reward=reward, max_weight=max_weight, n_boot=n_boot,
                         seed=seed, max_users=max_users, max_requests=max_requests)  # fmt: skip
        with console.status("evaluating") as status:
            try:
                result = evaluate(tables, specs, cfg, comparisons=comparisons, truth=truth_fn, notes=notes,
                                  reward_policies=REWARD_MODEL_ORDER,
                                  progress=lambda msg: status.update(msg))  # fmt: skip
            except NothingToEvaluate as exc:  # the logging policy alone, and no held-out log to read it off
                raise typer.BadParameter(str(exc), param_hint="--policies") from exc
            status.update("writing the report")
            paths = write_report(result, out)
            run_id = None
            if mlflow:
                status.update("logging to MLflow")
                run_id = log_to_mlflow(result, out, settings)
        print_summary(console, result, k)
        console.print(
            f"report: {paths['html']}  metrics: {paths['json']}"
            + (f"  MLflow run {run_id}" if run_id else "")
        )
