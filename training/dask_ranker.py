"""Fit the LightGBM ranker across a Dask cluster with LightGBM's own Dask interface.

For ranker training sets that outgrow one machine: the rows are split into Dask partitions, each
worker trains on its share and LightGBM's socket-based data-parallel learner combines them. The
result is an ordinary ``models.ranker.LightGBMRanker`` (same pinned feature list, same text
format), so the bundle, serving and evaluation cannot tell how it was fitted.

A scheduler address (``tcp://host:8786``) points at a real cluster; with none, a LocalCluster of
``n_workers`` single-threaded processes is started for the call and shut down afterwards.
LightGBM's Dask estimators do not support early stopping, so the caller passes the number of
trees (for example the best iteration of a single-process fit on a sample).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.errors import ModelFitError
from models.ranker import LightGBMRanker, RankerConfig

log = logging.getLogger(__name__)


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, n_workers: int = 2) -> Iterator[Any]:
    """A distributed Client: connected to ``scheduler``, or to a LocalCluster made for the call."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
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
) -> LightGBMRanker:
    """Fit a ``LightGBMRanker`` on a Dask cluster; its feature order is ``X``'s column order.

    For lambdarank, ``group`` gives the query sizes in row order; queries are never split across
    partitions. Pass ``client`` to reuse a connected Dask client.
    """
    import dask.array as da
    import dask.dataframe as dd
    import lightgbm as lgb

    config = config or RankerConfig()
    ranker = LightGBMRanker(config)
    if X.shape[0] == 0:
        raise ModelFitError("cannot fit the ranker on an empty frame")
    # Reuse the single-process checks (labels, groups, categorical columns) before shipping data.
    ranker.feature_names = [str(c) for c in X.columns]
    ranker.categorical_features = [c for c in ranker.feature_names if c in set(config.categorical_features)]
    Xt = ranker._prepare(X)
    yt = ranker._labels(y, len(Xt), "y")
    gt = ranker._groups(group, len(Xt), "group")

    params = config.lgb_params()
    params.pop("metric", None)
    params.pop("eval_at", None)
    params.pop("num_threads", None)
    params.pop("deterministic", None)
    trees = int(n_estimators or config.n_estimators)
    with (
        contextlib.nullcontext(client) if client is not None else dask_client(scheduler, n_workers) as client
    ):
        parts = max(1, len(client.scheduler_info().get("workers", {})) or n_workers)
        if config.objective == "lambdarank":
            assert gt is not None
            bounds = _query_aligned_bounds(gt, parts)
            dX = dd.concat([dd.from_pandas(Xt.iloc[a:b], npartitions=1) for a, b in bounds])
            dy = dd.concat([dd.from_pandas(pd.Series(yt[a:b]), npartitions=1) for a, b in bounds])
            starts = np.concatenate([[0], np.cumsum(gt)])
            q = np.searchsorted(starts, [a for a, _ in bounds] + [len(Xt)])
            dg = da.concatenate([da.from_array(gt[q[i] : q[i + 1]]) for i in range(len(bounds))])
            est = lgb.DaskLGBMRanker(client=client, n_estimators=trees, **params)
            est.fit(dX, dy, group=dg)
        else:
            dX = dd.from_pandas(Xt, npartitions=parts)
            dy = dd.from_pandas(pd.Series(yt), npartitions=parts)
            est = lgb.DaskLGBMClassifier(client=client, n_estimators=trees, **params)
            est.fit(dX, dy)
        booster = est.to_local().booster_
    ranker.booster = booster
    ranker.best_iteration = booster.current_iteration()
    if booster.feature_name() != ranker.feature_names:
        raise ModelFitError(
            f"the Dask fit named its features {booster.feature_name()}, expected {ranker.feature_names}"
        )
    log.info("dask ranker fitted: %d rows on %d partitions, %d trees", len(Xt), parts, ranker.best_iteration)
    return ranker


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
