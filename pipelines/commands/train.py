"""`slotcast train` and `slotcast promote`: fit and register a challenger; gate it into champion."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer


def _settings(**overrides: Any) -> Any:
    from training.settings import TrainSettings

    s = TrainSettings()
    updates = {k: v for k, v in overrides.items() if v is not None}
    return s.model_copy(update=updates) if updates else s


def _reader(settings: Any, data_dir: Path, use_features: bool) -> Any:
    """The Feast historical reader over the built feature store, or None for context-only features."""
    if not use_features:
        return None
    from features.retrieval import FeastFeatureReader
    from features.settings import FeatureSettings
    from features.store import FeatureStoreNotBuiltError

    fs = FeatureSettings(state_dir=settings.state_dir)  # type: ignore[call-arg]
    if not fs.registry_path.exists():
        raise FeatureStoreNotBuiltError(
            f"no feature store under {fs.features_dir}; run `slotcast features build --data {data_dir}` first "
            "(or pass --no-features)"
        )
    return FeastFeatureReader(fs)


def _phases() -> tuple[Any, Any]:
    """A rich spinner whose description follows the training phases."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True
    )
    task = progress.add_task("starting", total=None)
    return progress, lambda msg: progress.update(task, description=msg)


def register(app: typer.Typer) -> None:
    """Add `train` and `promote` to the main app."""

    @app.command("train")
    def train_cmd(
        data: Path = typer.Option(..., "--data", help="directory of canonical parquet tables"),
        # Defaults come from TrainSettings (so SLOTCAST_* can set them); the help names them, and the
        # ranges are TrainSettings' own (model_copy below does not validate).
        label: str = typer.Option(None, help="what the ranker predicts: purchase | click | cart "
                                  "(default: purchase, or $SLOTCAST_LABEL)"),
        objective: str = typer.Option(None, help="ranker objective: binary | lambdarank "
                                      "(default: binary, or $SLOTCAST_RANKER__OBJECTIVE)"),
        trials: int = typer.Option(None, "--trials", min=0, help="optuna trials on the validation split, 0 = none "
                                   "(default: 0, or $SLOTCAST_HPO_TRIALS)"),
        max_queries: int = typer.Option(None, min=10, help="cap on ranker queries (train+valid+test) "
                                        "(default: 20000, or $SLOTCAST_MAX_QUERIES)"),
        candidates: int = typer.Option(None, min=1, help="ALS candidates per query "
                                       "(default: 50, or $SLOTCAST_CANDIDATES_N)"),
        features: bool = typer.Option(True, "--features/--no-features",
                                      help="use the Feast ranker_v1 features (built by `slotcast features build`)"),
        dask_scheduler: str = typer.Option(None, "--dask-scheduler", metavar="ADDRESS",
                                           help="fit the ranker's trees on a Dask cluster: tcp://host:8786, or local:N "
                                           "for N local worker processes; the tree count is then chosen on the "
                                           "validation split in process, and --trials stay in process "
                                           "(default: in process, or $SLOTCAST_DASK_SCHEDULER)"),
        again: bool = typer.Option(False, "--again", help="train and register a new version even when the latest "
                                   "one was trained on the same data, settings and code"),
    ) -> None:  # fmt: skip
        """Fit ALS + the LightGBM ranker on DATA, log an MLflow run and register the bundle as `challenger`.

        When the latest registered version was trained on the same data (digest), settings and code (a commit without uncommitted changes), nothing is fitted or logged: that version is named, exit 0.
        """
        from rich.console import Console
        from rich.table import Table

        from training.run import train

        if not data.is_dir():
            raise typer.BadParameter(f"{data} is not a directory", param_hint="--data")
        if label is not None and label not in ("purchase", "click", "cart"):
            raise typer.BadParameter(f"{label!r} is not one of purchase, click, cart", param_hint="--label")
        if dask_scheduler is not None:
            from training.settings import parse_dask_scheduler

            try:
                parse_dask_scheduler(dask_scheduler)
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="--dask-scheduler") from None
        s = _settings(label=label, hpo_trials=trials, max_queries=max_queries, candidates_n=candidates,
                      dask_scheduler=dask_scheduler.strip() if dask_scheduler else None)  # fmt: skip
        if objective is not None:
            if objective not in ("binary", "lambdarank"):
                raise typer.BadParameter(
                    f"{objective!r} is not binary or lambdarank", param_hint="--objective"
                )
            s = s.model_copy(update={"ranker": s.ranker.model_copy(update={"objective": objective})})
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        progress, say = _phases()
        with progress:
            report = train(data, s, _reader(s, data, features), say, again=again)
        m = report.metrics
        done = "registered" if report.registered else "already registered: nothing trained,"
        t = Table(
            title=f"{done} {s.registered_model} v{report.version} @{report.alias} (run {report.run_id[:8]})"
        )
        t.add_column("test split", style="bold")
        for col in (f"nDCG@{s.k}", f"recall@{s.k}", f"MAP@{s.k}"):
            t.add_column(col, justify="right")
        for name, key in (("popularity", "popularity"), ("ALS only", "als"), ("ALS + ranker", "als_ranker")):
            t.add_row(
                name,
                *(
                    f"{m.get(f'test_{key}_{x}_at_{s.k}', float('nan')):.4f}"
                    for x in ("ndcg", "recall", "map")
                ),
            )
        console = Console()
        console.print(t)
        extra = "  ".join(f"{k} {m[k]:.4f}" for k in ("test_auc", "test_logloss") if k in m)
        if "ranker_trees_fitted" in m:  # fitted on Dask, cut afterwards on the valid split
            extra += (f"  ranker on Dask ({m['ranker_dask_workers']:.0f} workers): best iteration "
                      f"{m['ranker_best_iteration']:.0f} of {m['ranker_trees_fitted']:.0f} trees")  # fmt: skip
        console.print(f"{extra}  queries train/valid/test {m['train_queries']:.0f}/{m['valid_queries']:.0f}/"
                      f"{m['test_queries']:.0f}  label window {report.label_window_hours:.3g} h  "
                      f"data digest {report.digest}  {report.wall_s:.1f} s")  # fmt: skip
        if not report.registered:
            console.print(f"v{report.version} was trained on the same data, settings and code; "
                          "`slotcast train --again` registers a new version anyway")  # fmt: skip

    @app.command("promote")
    def promote_cmd(
        data: Path = typer.Option(
            None,
            "--data",
            help="data whose test split both models are scored on (needed once there is a champion)",
        ),
        force: bool = typer.Option(
            False, "--force", help="promote the challenger whatever the comparison says"
        ),
        features: bool = typer.Option(True, "--features/--no-features",
                                      help="use the Feast features (opened only to compare with a champion)"),
    ) -> None:  # fmt: skip
        """Make the challenger champion if it beats the champion on the test split (paired bootstrap 95% CI > 0).

        With no champion yet, the first challenger is promoted. A kept champion is a normal outcome (exit 0).
        """
        from rich.console import Console

        if data is not None and not data.is_dir():
            raise typer.BadParameter(f"{data} is not a directory", param_hint="--data")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        progress, say = _phases()
        with progress:
            # The imports alone (the model layer's libraries, then mlflow's) take seconds: on the spinner.
            say("loading the training code")
            s = _settings()
            from training.promote import promote

            # Opened only if there is a champion to compare with: a first promotion needs no store.
            rep = promote(s, data, lambda: _reader(s, data, features), force=force, progress=say)
        r = rep.result
        console = Console()
        console.print(
            f"challenger v{rep.challenger_version} vs champion v{rep.champion_version or '-'}: {r.reason}"
        )
        if rep.champion_version is not None and r.n_queries:
            console.print(f"{r.metric}: champion {r.champion_mean:.4f}, challenger {r.challenger_mean:.4f}, "
                          f"gain {r.mean_diff:+.4f} [95% CI {r.ci_low:+.4f}, {r.ci_high:+.4f}] over {r.n_queries} queries")  # fmt: skip
        console.print("[green]promoted[/green]" if rep.promoted else "[yellow]champion kept[/yellow]")
