"""``slotcast train``: fit everything, then log one MLflow run and register the bundle as challenger.

Fitting happens BEFORE the run is opened: a degenerate fit raises ModelFitError and leaves the
registry untouched. Before fitting, the registry is only read: when its latest version was trained
on the same inputs, nothing is fitted or logged (training.rerun).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.data_model import read_table
from training.calibrate import first_interaction, push_calibration
from training.dataset import HistoricalReader
from training.fit import FitResult, Progress, fit_all, ranking_scores
from training.interactions import data_digest, deleted_users, load_events, unconsented_users
from training.settings import TrainSettings

if TYPE_CHECKING:
    from training.rerun import TrainingInputs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainReport:
    run_id: str
    version: str
    alias: str
    metrics: dict[str, float]
    digest: str
    wall_s: float
    label_window_hours: float  # the one used: the setting, or the default cut to fit the data
    registered: bool = True  # False: the latest version had these inputs (training.rerun)


def load_inputs(data_dir: Path, settings: TrainSettings) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Events (minus quarantined rows and deleted users), stream_products and the catalogue ids."""
    events = load_events(data_dir, deleted_users(settings.state_dir))
    sp_ = read_table(data_dir, "stream_products").to_pandas()
    products = read_table(data_dir, "products", columns=["product_id"]).column("product_id").to_numpy()
    return events, sp_, np.asarray(products, dtype=np.int64)


def _log_plots(client, run_id: str, fit: FitResult, k: int) -> None:  # type: ignore[no-untyped-def]
    from training import plots

    te = fit.data.part("test")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        plots.feature_importance(fit.ranker.feature_importance(), d / "feature_importance.png")
        plots.training_curve(fit.ranker.evals_result, d / "training_curve.png", fit.ranker.best_iteration)
        p = fit.ranker.predict(te[fit.data.feature_names])
        if fit.ranker.objective == "binary":
            c = te["candidate"].to_numpy()
            plots.calibration(te["label"].to_numpy()[c], p[c], d / "calibration.png")
        ks = [1, 3, 5, 10, 20]
        pop = (
            pd.Series(fit.popularity.scores, index=fit.popularity.product_ids)
            .reindex(te["product_id"])
            .to_numpy()
        )
        curves = {
            name: [float(np.nanmean(ranking_scores(te, s, kk)[0])) for kk in ks]
            for name, s in (("popularity", pop), ("ALS", te["als_score"].to_numpy()), ("ALS + ranker", p))
        }
        plots.metric_at_k(curves, ks, d / "ndcg_at_k.png")
        client.log_artifacts(run_id, str(d), "plots")


def _check_dask(scheduler: str, progress: Progress) -> None:
    """A scheduler address that does not answer stops the run before the data is read."""
    from training.dask_ranker import check_scheduler
    from training.settings import parse_dask_scheduler, public_address

    address, _ = parse_dask_scheduler(scheduler)
    if address is None:
        return  # local:N: a LocalCluster made for the fit
    progress(f"checking the Dask scheduler {public_address(address)}")
    workers = check_scheduler(address)
    if not workers:
        log.warning("the Dask scheduler %s has no worker yet; the fit waits for one", public_address(address))


def _registered_already(
    settings: TrainSettings, inputs: TrainingInputs, alias: str, wall_s: float
) -> TrainReport | None:
    """The report of the latest version when it was trained on ``inputs`` (nothing registered)."""
    from training.rerun import registered_already

    found = registered_already(settings, inputs, alias)
    if found is None:
        return None
    mv, run = found
    log.info(
        "version %s (run %s) was trained on the same inputs: not registered again",
        mv.version,
        run.info.run_id,
    )
    window = float(run.data.params.get("label_window_hours_used", "nan"))
    return TrainReport(run.info.run_id, str(mv.version), alias, dict(run.data.metrics), inputs.data_digest,
                       wall_s, window, registered=False)  # fmt: skip


def train(
    data_dir: Path,
    settings: TrainSettings,
    reader: HistoricalReader | None,
    progress: Progress = lambda _: None,
    alias: str = "challenger",
    again: bool = False,
) -> TrainReport:
    """Fit on ``data_dir``, log the run, register the bundle under ``alias``; unless ``again``,
    nothing is fitted or logged when the latest version was trained on the same data, settings
    and code (training.rerun): the report names that version, ``registered`` False."""
    from models.bundle import Bundle
    from training.registry import register_bundle
    from training.rerun import TrainingInputs, features_digest, named_inputs, tables_digest, worth_looking
    from training.tracking import (
        check_reachable,
        configure,
        experiment_id,
        git_clean,
        git_sha,
        log_curves,
        log_metrics,
        log_params,
    )

    t0 = time.perf_counter()
    check_reachable(settings.tracking_uri)  # before the fit, not after it
    if settings.dask_scheduler:
        _check_dask(settings.dask_scheduler, progress)
    data_dir = Path(data_dir)
    progress(f"reading {data_dir}")
    events, stream_products, item_ids = load_inputs(data_dir, settings)
    digest, tables = data_digest(events), tables_digest(data_dir)  # hashed once, as read
    features = features_digest(reader)  # before the fit reads the tables
    sha, clean = git_sha(), git_clean()
    if not again and worth_looking(settings, sha, clean):
        progress("looking for a registered version of the same data, settings and code")
        unconsented = unconsented_users(data_dir, settings.state_dir)
        inputs = TrainingInputs.of(settings, digest, unconsented, reader, sha, clean, tables, features)
        rerun = _registered_already(settings, inputs, alias, time.perf_counter() - t0)
        if rerun is not None:
            return rerun
    fit = fit_all(events, stream_products, item_ids, settings, reader, progress)
    window_h = fit.data.label_window / pd.Timedelta(hours=1)
    progress("calibrating push conversion on the push log")
    # No profile is kept of a user without personalization consent: the bundle's ALS holds neither
    # their id nor their factors (serving never read them: their answers and push rows are not
    # personal; to offline evaluation they are unknown users, answered by popularity), and their
    # pushes do not shape the calibration. Their events still count, as everyone's, in the item
    # factors and the ranker.
    unconsented = unconsented_users(data_dir, settings.state_dir)
    # Out of sample: the served ALS was fitted on events before the test split.
    calibration = push_calibration(
        data_dir, fit.als, set(deleted_users(settings.state_dir).tolist()) | set(unconsented.tolist()),
        since=fit.data.splits.t_test, first_seen=first_interaction(events, settings.weights.per_type()),
        cold_since=fit.data.splits.t_train,  # before it, every user looks new: their history is before the log
    )  # fmt: skip
    dropped = fit.als.drop_users(unconsented)

    progress("logging to MLflow")
    client = configure(settings)
    exp = experiment_id(client, settings)
    tags = {
        "feature_service": settings.feature_service,
        "data_digest": digest,
        "data_dir": str(data_dir.resolve()),
    }
    if sha:
        tags["git_sha"] = sha
        tags["git_dirty"] = str(not clean).lower()  # a dirty checkout's runs are never reruns
    run = client.create_run(exp, run_name="train", tags=tags)
    run_id = run.info.run_id
    try:
        params = settings.flat_params()
        params.update({f"chosen.ranker.{k}": v for k, v in fit.ranker_params.items()})
        params.update(fit.data.splits.as_params())
        params.update(fit.ranker_backend)  # ranker.fit_backend=inprocess|dask, the scheduler
        params["label_window_hours_used"] = f"{window_h:g}"
        params["ranker.feature_names"] = ",".join(fit.ranker.feature_names)  # Feast's, if any, + context
        params["data_digest"] = digest
        params["n_events"] = str(len(events))
        params["users_without_personalization_consent"] = str(dropped)  # not in the bundle's ALS
        params.update(named_inputs(unconsented, reader, tables, features))  # for training.rerun's comparison
        log_params(client, run_id, params)
        log_metrics(client, run_id, fit.metrics)
        if calibration.n:
            log_metrics(client, run_id, {"push_calibration_a": calibration.a, "push_calibration_b": calibration.b,
                                         "push_base_rate": calibration.base_rate or 0.0})  # fmt: skip
        if calibration.cold_rate is not None:  # also when the map could not be fitted: the bundle holds it
            log_metrics(client, run_id, {"push_cold_rate": calibration.cold_rate,
                                         "push_unscored_pushes": float(calibration.n_cold)})  # fmt: skip
        for i, trial in enumerate(fit.hpo_trials):
            log_metrics(client, run_id, {"hpo_valid_ndcg": trial["valid_ndcg"]}, step=i)
        # The valid curve early stopping chose the tree count on (in process or post hoc after Dask).
        curves = fit.ranker.evals_result.get("valid", {})
        log_curves(client, run_id, {f"ranker_valid_{m.replace('@', '_at_')}": v for m, v in curves.items()})
        _log_plots(client, run_id, fit, settings.k)
        # Users deleted while this run fitted (it read the ledger at its start): their factors and
        # segment labels stay out of the bundle, as `slotcast privacy purge` would take them out.
        late = deleted_users(settings.state_dir)
        n_late = fit.als.drop_users(late)
        fit.popularity.drop_users(late)
        client.set_tag(run_id, "slotcast.users_deleted_during_run", str(n_late))
        bundle = Bundle.create(
            fit.als,
            fit.popularity,
            fit.ranker,
            settings.feature_service,
            data_digest=digest,
            metrics={k: v for k, v in fit.metrics.items() if np.isfinite(v)},
            mlflow_run_id=run_id,
            # serving folds users the ALS does not hold in from their newer events with these
            params={
                "push_calibration": calibration.to_dict(),
                "event_weights": settings.weights.model_dump(),
            },
        )
        with tempfile.TemporaryDirectory() as tmp:
            bundle.save(Path(tmp) / "bundle")
            mv = register_bundle(client, run_id, Path(tmp) / "bundle", settings.registered_model, alias, tags)
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    wall = time.perf_counter() - t0
    log.info("training run %s registered as version %s in %.1f s", run_id, mv.version, wall)
    return TrainReport(run_id, str(mv.version), alias, fit.metrics, digest, wall, window_h)
