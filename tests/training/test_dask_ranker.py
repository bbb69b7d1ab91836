"""The ranker fitted across a real 2-worker Dask LocalCluster matches the single-process fit in quality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.ranker import LightGBMRanker, RankerConfig
from training.dask_ranker import _query_aligned_bounds, dask_client, fit_ranker_dask


def planted(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Conversions driven by a known logistic rule on three of five features."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 5)), columns=["affinity", "price_rel", "pop", "noise_a", "noise_b"])
    logit = 2.0 * X.affinity - 1.0 * X.price_rel + 0.5 * X["pop"] - 2.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def auc(y: np.ndarray, s: np.ndarray) -> float:
    order = np.argsort(s)
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    pos = y == 1
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


@pytest.mark.slow
@pytest.mark.integration
def test_dask_fit_matches_single_process_quality(dask_scheduler: str) -> None:
    X, y = planted(12_000, seed=1)
    Xt, yt = planted(8_000, seed=2)
    cfg = RankerConfig(n_estimators=60, num_leaves=15, early_stopping_rounds=None)
    single = LightGBMRanker(cfg).fit(X, y)
    with dask_client(dask_scheduler) as client:
        dist = fit_ranker_dask(X, y, cfg, client=client)
        g = np.full(len(X) // 20, 20)
        rank = fit_ranker_dask(
            X, y, RankerConfig(objective="lambdarank", n_estimators=40), group=g, client=client
        )
    a_single, a_dist = auc(yt, single.predict(Xt)), auc(yt, dist.predict(Xt))
    # The rule is learnable: both clear a floor far above chance, and agree within noise.
    assert a_single > 0.78 and a_dist > 0.78
    assert abs(a_single - a_dist) < 0.015
    assert dist.feature_names == list(X.columns)
    # Lambdarank across partitions (queries of 20 candidates) learns the same rule.
    assert auc(yt, rank.predict(Xt)) > 0.75


def test_partitions_never_cut_a_query() -> None:
    g = np.array([3, 5, 2, 7, 1, 4])
    bounds = _query_aligned_bounds(g, 3)
    ends = set(np.cumsum(g).tolist()) | {0}
    assert bounds[0][0] == 0 and bounds[-1][1] == g.sum()
    assert all(a in ends and b in ends for a, b in bounds)
    assert all(b0 == a1 for (_, b0), (a1, _) in zip(bounds, bounds[1:], strict=False))


def _fit_while_a_worker_is(sig: int, socket_timeout_min: int = 10) -> tuple[str, float]:
    """Fit 20,000 trees on a cluster of its own (the session's is not to be broken), send ``sig`` to
    one worker once both are fitting; the error the fit raised and the seconds from the signal."""
    import os
    import signal
    import threading
    import time

    from distributed import Client, LocalCluster

    from training.dask_ranker import DaskUnavailableError, fit_ranker_dask_early_stopped

    X, y = planted(20_000, seed=3)
    cfg = RankerConfig(n_estimators=20_000, num_leaves=15)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
    ):
        pids = client.run(os.getpid)
        hit: list[tuple[int, float]] = []

        def signal_once_both_are_fitting() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                busy = [
                    w for w, keys in client.processing().items() if any("_train_part" in str(k) for k in keys)
                ]
                if len(busy) == 2:
                    time.sleep(1.0)  # LightGBM's network is up: trees are being fitted
                    os.kill(pids[busy[0]], sig)
                    hit.append((pids[busy[0]], time.monotonic()))
                    return
                time.sleep(0.1)

        sender = threading.Thread(target=signal_once_both_are_fitting, daemon=True)
        sender.start()
        try:
            with pytest.raises(DaskUnavailableError) as raised:
                fit_ranker_dask_early_stopped(
                    X, y, cfg, None, (X.iloc[:100], y[:100], None), scheduler=cluster.scheduler_address,
                    socket_timeout_min=socket_timeout_min,
                )  # fmt: skip
            after = time.monotonic() - hit[0][1] if hit else float("nan")
        finally:
            sender.join(5)
            for pid, _ in hit:
                if sig == signal.SIGSTOP:
                    os.kill(pid, signal.SIGCONT)  # the cluster can close
        assert hit, "the fit ended before both workers were fitting"
    return str(raised.value), after


@pytest.mark.slow
@pytest.mark.integration
def test_a_worker_killed_mid_fit_fails_the_fit_at_once_with_a_clear_error() -> None:
    """A worker process dies (SIGKILL: an OOM kill, a pre-empted node) while LightGBM's trees are
    being fitted: every worker takes part in each tree, so the fit cannot go on. It fails at once
    (the peers' sockets are reset) with an error that says a worker was lost, not LightGBM's bare
    socket message; 20,000 trees would otherwise run for minutes."""
    import signal

    message, after = _fit_while_a_worker_is(signal.SIGKILL)
    assert "worker was lost during the ranker fit" in message
    assert after < 60, after


@pytest.mark.slow
@pytest.mark.integration
def test_a_worker_cut_off_without_a_reset_fails_the_fit_after_the_socket_time_out() -> None:
    """A worker that stops answering without its connections being reset (SIGSTOP stands in for a
    network partition or a frozen VM): its peers wait in a socket read. Before, that was LightGBM's
    default of 120 minutes; now ``dask_socket_timeout_min`` (1 here, 10 by default)."""
    import signal

    message, after = _fit_while_a_worker_is(signal.SIGSTOP, socket_timeout_min=1)
    assert "sent nothing for 1 min (SLOTCAST_DASK_SOCKET_TIMEOUT_MIN)" in message
    assert 55 < after < 180, after
