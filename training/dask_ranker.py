"""Fit the LightGBM ranker across a Dask cluster with LightGBM's own Dask interface.

For ranker training sets that outgrow one machine: the rows are split into Dask partitions, each
worker trains on its share and LightGBM's socket-based data-parallel learner combines them. The
result is an ordinary ``models.ranker.LightGBMRanker`` (same pinned feature list, same text
format), so the bundle, serving and evaluation cannot tell how it was fitted.

A scheduler address (``tcp://host:8786``) points at a real cluster; with none, a LocalCluster of
``n_workers`` single-threaded processes is started for the call and shut down afterwards.
LightGBM's Dask estimators do not support early stopping: ``fit_ranker_dask`` fits the number of
trees it is given, and ``fit_ranker_dask_early_stopped`` (what ``slotcast train`` uses) fits
``n_estimators`` and then picks the tree count on the validation split in process
(``training.posthoc_stopping``).
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.errors import ModelFitError
from models.ranker import LightGBMRanker, RankerConfig
from models.ranker_dataset import check_groups, check_labels, select_features

log = logging.getLogger(__name__)

WORKERS_WAIT_S = 60.0  # how long a fit waits for a scheduler with no worker to get one


class DaskUnavailableError(RuntimeError):
    """The Dask scheduler does not answer, is not a Dask scheduler, or has no worker to fit on."""

    exit_code = 1


def check_scheduler(address: str, timeout_s: float = 5.0) -> int:
    """The number of workers of the scheduler at ``address``; DaskUnavailableError within about
    ``timeout_s`` when nothing answers there as a Dask scheduler.

    A distributed Client retries a refused connection until its timeout and, connected to a port
    that is not a Dask scheduler (an HTTP server), waits for its handshake for ever: so a bare
    connection and one ``identity`` call under one deadline, the way ``training.tracking`` probes
    MLflow before the fit rather than after it."""
    import asyncio

    from training.settings import public_address

    async def identity() -> dict[str, Any]:
        from distributed.comm import connect

        comm = await connect(address, timeout=timeout_s)
        try:
            await comm.write({"op": "identity", "n_workers": 0, "reply": True})
            return dict(await comm.read())
        finally:
            comm.abort()

    where = public_address(address)
    hint = "start it or correct --dask-scheduler / SLOTCAST_DASK_SCHEDULER"
    try:
        info = asyncio.run(asyncio.wait_for(identity(), timeout_s))
    except OSError as exc:  # TimeoutError too
        # One message whether the connection was refused or timed out (which one comes back
        # depends on the load: a refused port retried until the deadline under CI's).
        reason = f" ({str(exc).replace(address, where)})" if str(exc) else ""
        raise DaskUnavailableError(
            f"the Dask scheduler {where} does not answer within {timeout_s:g} s{reason}; {hint}"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - whatever a non-Dask server makes the protocol raise
        raise DaskUnavailableError(
            f"{where} does not answer as a Dask scheduler ({type(exc).__name__}); {hint}"
        ) from exc
    if info.get("type") != "Scheduler":
        raise DaskUnavailableError(f"{where} is a Dask {info.get('type')}, not a scheduler; {hint}")
    return int(info.get("n_workers", 0))


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, n_workers: int = 2, timeout_s: float = 10.0) -> Iterator[Any]:
    """A distributed Client: connected to ``scheduler``, or to a LocalCluster made for the call."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler, timeout=timeout_s) as client:
            yield client
        return
    # HTTP on a random loopback port: by default it takes 8787, or warns where another cluster has it.
    with (
        LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def fit_ranker_dask(
    X: pd.DataFrame,
    y: npt.ArrayLike,
    config: RankerConfig | None = None,
    group: npt.ArrayLike | None = None,
    n_estimators: int | None = None,
    scheduler: str | None = None,
    n_workers: int = 2,
    client: Any = None,
    socket_timeout_min: int = 10,
) -> LightGBMRanker:
    """Fit a ``LightGBMRanker`` on a Dask cluster; its feature order is ``X``'s column order.

    For lambdarank, ``group`` gives the query sizes in row order; queries are never split across
    partitions. Pass ``client`` to reuse a connected Dask client. ``socket_timeout_min``: how long
    a worker waits on a peer that sends nothing before the fit fails (LightGBM's ``time_out``).
    """
    import dask.array as da
    import dask.dataframe as dd
    import lightgbm as lgb
    from distributed import KilledWorker

    config = config or RankerConfig()
    ranker = LightGBMRanker(config)
    if X.shape[0] == 0:
        raise ModelFitError("cannot fit the ranker on an empty frame")
    # Reuse the single-process checks (labels, groups, categorical columns) before shipping data.
    ranker.feature_names = [str(c) for c in X.columns]
    ranker.categorical_features = [c for c in ranker.feature_names if c in set(config.categorical_features)]
    Xt = select_features(X, ranker.feature_names, ranker.categorical_features)
    yt = check_labels(y, len(Xt), "y", config.objective)
    gt = check_groups(group, len(Xt), "group", config.objective)
    if config.base_feature is not None:
        from models.ranker import fit_base

        if config.base_feature not in ranker.feature_names:
            raise ModelFitError(f"base_feature {config.base_feature!r} is not a column of X")
        ranker.base = fit_base(Xt[config.base_feature].to_numpy(np.float64), yt)
    margin = ranker.base_margin(Xt)

    params = config.lgb_params()
    params.pop("metric", None)
    params.pop("eval_at", None)
    params.pop("num_threads", None)
    params.pop("deterministic", None)
    params["time_out"] = int(socket_timeout_min)
    trees = int(n_estimators or config.n_estimators)
    with (
        contextlib.nullcontext(client) if client is not None else dask_client(scheduler, n_workers) as client,
        warnings.catch_warnings(),
    ):
        # The Dask estimators pass their own n_jobs=None on to the check that warns about it.
        warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
        parts = max(1, len(client.scheduler_info().get("workers", {})) or n_workers)
        if config.objective == "lambdarank":
            assert gt is not None
            bounds = _query_aligned_bounds(gt, parts)
            dX = dd.concat([dd.from_pandas(Xt.iloc[a:b], npartitions=1) for a, b in bounds])
            dy = dd.concat([dd.from_pandas(pd.Series(yt[a:b]), npartitions=1) for a, b in bounds])
            starts = np.concatenate([[0], np.cumsum(gt)])
            q = np.searchsorted(starts, [a for a, _ in bounds] + [len(Xt)])
            dg = da.concatenate([da.from_array(gt[q[i] : q[i + 1]]) for i in range(len(bounds))])
            est: Any = lgb.DaskLGBMRanker(client=client, n_estimators=trees, **params)
            fit_kw = {"group": dg}
            if margin is not None:
                fit_kw["init_score"] = dd.concat(
                    [dd.from_pandas(pd.Series(margin[a:b]), npartitions=1) for a, b in bounds]
                )
        else:
            dX = dd.from_pandas(Xt, npartitions=parts)
            dy = dd.from_pandas(pd.Series(yt), npartitions=parts)
            est, fit_kw = lgb.DaskLGBMClassifier(client=client, n_estimators=trees, **params), {}
            if margin is not None:
                fit_kw["init_score"] = dd.from_pandas(pd.Series(margin), npartitions=parts)
        try:
            est.fit(dX, dy, **fit_kw)
        except lgb.basic.LightGBMError as exc:
            if "socket" in str(exc).lower():  # a peer's connection reset or silent past the time-out
                raise DaskUnavailableError(_lost_worker(exc, socket_timeout_min)) from exc
            raise ModelFitError(f"LightGBM's Dask fit failed: {exc}") from exc
        except KilledWorker as exc:  # the scheduler gave up on a task whose workers kept dying
            raise DaskUnavailableError(_lost_worker(exc, socket_timeout_min)) from exc
        booster = est.to_local().booster_
    ranker.booster = booster
    ranker.best_iteration = booster.current_iteration()
    if booster.feature_name() != ranker.feature_names:
        raise ModelFitError(
            f"the Dask fit named its features {booster.feature_name()}, expected {ranker.feature_names}"
        )
    log.info("dask ranker fitted: %d rows on %d partitions, %d trees", len(Xt), parts, ranker.best_iteration)
    return ranker


def fit_ranker_dask_early_stopped(
    X: pd.DataFrame,
    y: npt.ArrayLike,
    config: RankerConfig,
    group: npt.ArrayLike | None,
    valid: tuple[pd.DataFrame, npt.ArrayLike, npt.ArrayLike | None],
    scheduler: str | None = None,
    n_workers: int = 2,
    socket_timeout_min: int = 10,
) -> tuple[LightGBMRanker, dict[str, float]]:
    """``config.n_estimators`` trees fitted on the cluster, then cut to the best iteration on
    ``valid`` in process (``training.posthoc_stopping.choose_iteration``); also returns figures
    of the fit (trees fitted, workers, seconds on the cluster and choosing the tree count)."""
    from training.posthoc_stopping import choose_iteration
    from training.settings import public_address

    where = public_address(scheduler) if scheduler else f"local:{n_workers}"
    t0 = time.perf_counter()
    try:
        with dask_client(scheduler, n_workers) as client:
            try:
                client.wait_for_workers(1, timeout=WORKERS_WAIT_S)
            except TimeoutError as exc:
                raise DaskUnavailableError(
                    f"the Dask scheduler {where} has had no worker for {WORKERS_WAIT_S:g} s: start `dask worker`"
                ) from exc
            workers = len(client.scheduler_info().get("workers", {}))
            ranker = fit_ranker_dask(
                X, y, config, group=group, client=client, socket_timeout_min=socket_timeout_min
            )
    except OSError as exc:  # the scheduler gone since the check, a connection to a worker lost
        raise DaskUnavailableError(f"the ranker fit on Dask ({where}) failed: {exc}") from exc
    t1 = time.perf_counter()
    fitted = ranker.booster.current_iteration()
    choose_iteration(ranker, *valid)
    figures = {
        "ranker_trees_fitted": float(fitted),
        "ranker_dask_workers": float(workers),
        "ranker_dask_fit_s": t1 - t0,
        "ranker_stopping_s": time.perf_counter() - t1,
    }
    return ranker, figures


def _lost_worker(exc: BaseException, socket_timeout_min: int) -> str:
    return (
        f"a Dask worker was lost during the ranker fit, or sent nothing for {socket_timeout_min} min "
        f"(SLOTCAST_DASK_SOCKET_TIMEOUT_MIN) ({type(exc).__name__}: {exc}); every worker takes part "
        "in each tree, so the fit cannot go on without it: nothing was registered, run it again "
        "once the cluster is whole"
    )


def _query_aligned_bounds(group: np.ndarray, parts: int) -> list[tuple[int, int]]:
    """Row ranges for ``parts`` partitions that never cut a query in two."""
    ends = np.cumsum(group)
    total = int(ends[-1])
    bounds, start = [], 0
    for i in range(1, parts):
        cut = int(ends[np.searchsorted(ends, total * i / parts)])
        if start < cut < total:
            bounds.append((start, cut))
            start = cut
    bounds.append((start, total))
    return bounds
