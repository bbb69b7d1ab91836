"""`slotcast train --dask-scheduler`: the ranker fitted on a real 2-worker Dask cluster, its tree count
chosen afterwards on the valid split, registered like an in-process one; a dead scheduler stops
the command before anything is read or registered."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines.cli import main
from tests.training.conftest import fast_settings
from training.dask_ranker import DaskUnavailableError, check_scheduler
from training.settings import TrainSettings, default_ranker, parse_dask_scheduler, public_address

# fast_settings, as an operator would set them: in the environment.
FAST_ENV = {
    "SLOTCAST_CANDIDATES_N": "20",
    "SLOTCAST_ALS__FACTORS": "16",
    "SLOTCAST_ALS__ITERATIONS": "8",
    "SLOTCAST_ALS__NUM_THREADS": "1",
    "SLOTCAST_RANKER__NUM_THREADS": "1",
    "SLOTCAST_RANKER__N_ESTIMATORS": "120",
    "SLOTCAST_RANKER__EARLY_STOPPING_ROUNDS": "20",
    "SLOTCAST_BOOTSTRAP_SAMPLES": "500",
}


def logloss(y: np.ndarray, p: np.ndarray) -> float:
    """LightGBM's binary_logloss of probabilities."""
    return float(np.mean(-np.log(np.maximum(np.where(y > 0, p, 1 - p), 1e-15))))


@pytest.mark.slow
@pytest.mark.integration
def test_train_on_dask_registers_a_ranker_stopped_on_the_valid_split(
    world: Path, dask_scheduler: str, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from models.bundle import Bundle
    from training.fit import build_data, fit_final_ranker
    from training.registry import version_by_alias
    from training.run import load_inputs
    from training.tracking import configure

    for k, v in FAST_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    assert main(["train", "--data", str(world), "--no-features", "--dask-scheduler", dask_scheduler]) == 0
    s = TrainSettings()
    # The environment changes the default ranker's thread and tree counts, not the rest of it.
    ranker = default_ranker().model_copy(
        update={"num_threads": 1, "n_estimators": 120, "early_stopping_rounds": 20}
    )
    assert s == fast_settings(state_dir, ranker=ranker)

    client = configure(s)
    mv = version_by_alias(client, s.registered_model, "challenger")
    assert mv is not None
    run = client.get_run(mv.run_id)
    params, metrics = run.data.params, run.data.metrics
    assert params["ranker.fit_backend"] == "dask"
    assert params["ranker.dask_scheduler"] == dask_scheduler and params["ranker.dask_workers"] == "2"
    assert metrics["ranker_trees_fitted"] == 120

    # The logged valid curve: its minimum is the kept tree count (stopped 20 rounds after it).
    history = sorted(
        client.get_metric_history(mv.run_id, "ranker_valid_binary_logloss"), key=lambda m: m.step
    )
    curve = np.array([m.value for m in history])
    best = int(metrics["ranker_best_iteration"])
    assert [m.step for m in history] == list(range(1, len(curve) + 1))
    assert best == 1 + int(np.argmin(curve)) and len(curve) == min(120, best + 20)
    assert 1 < best < 120

    # The registered ranker is that cut model, and carries the same curve.
    mlflow.set_tracking_uri(s.tracking_uri)
    local = mlflow.artifacts.download_artifacts(f"models:/{s.registered_model}@challenger")
    ranker = Bundle.load(Bundle.find(local)).ranker
    assert ranker is not None
    assert ranker.best_iteration == best and ranker.booster.current_iteration() == best
    np.testing.assert_allclose(ranker.evals_result["valid"]["binary_logloss"], curve, rtol=1e-12)

    # Quality: on the same (rebuilt, seeded) valid split, within a hair of the in-process fit.
    ev, sp_, items = load_inputs(world, s)
    data, *_ = build_data(ev, sp_, items, s, reader=None)
    va = data.part("valid", candidates_only=True)
    y = va["label"].to_numpy()
    dask_ll = logloss(y, ranker.predict(va[data.feature_names]))
    assert dask_ll == pytest.approx(curve[best - 1], rel=1e-6)  # the split the curve was computed on
    inproc, _, where = fit_final_ranker(data, s.ranker, s)
    assert where == {"ranker.fit_backend": "inprocess"}
    inproc_ll = inproc.evals_result["valid"]["binary_logloss"][inproc.best_iteration - 1]
    assert dask_ll < inproc_ll * 1.01, (dask_ll, inproc_ll)
    assert metrics["test_auc"] > 0.72  # test_fit's floor for the in-process ranker on this world


def test_an_unreachable_scheduler_stops_train_at_once_and_registers_nothing(
    world: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t0 = time.monotonic()
    code = main(["train", "--data", str(world), "--no-features", "--dask-scheduler", "tcp://127.0.0.1:1"])
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith("error: the Dask scheduler tcp://127.0.0.1:1 does not answer within 5 s")
    assert "\n" not in err and "Traceback" not in err
    assert elapsed < 15
    assert not (state_dir / "mlflow").exists()  # no run, no registry: it stopped before the data


def test_a_port_that_is_not_a_dask_scheduler_fails_within_the_timeout() -> None:
    # A listener that never answers (an HTTP server does the same): a distributed Client hangs there.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        t0 = time.monotonic()
        with pytest.raises(DaskUnavailableError, match="does not answer"):
            check_scheduler(address, timeout_s=1.0)
        assert time.monotonic() - t0 < 5


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("tcp://10.0.0.5:8786", ("tcp://10.0.0.5:8786", 0)), ("localhost:8786", ("localhost:8786", 0)),
     ("local:3", (None, 3))],
)  # fmt: skip
def test_scheduler_addresses(value: str, parsed: tuple[str | None, int]) -> None:
    assert parse_dask_scheduler(value) == parsed


@pytest.mark.parametrize("value", ["local", "local:0", "local:two", "http://h:8786", "tcp://", "scheduler"])
def test_bad_scheduler_addresses_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="local:N|scheme"):
        parse_dask_scheduler(value)


def test_the_scheduler_address_is_logged_without_credentials(tmp_path: Path) -> None:
    assert public_address("tls://ops:s3cret@sched.internal:8786?x=1") == "tls://sched.internal:8786"
    s = fast_settings(tmp_path, dask_scheduler="tls://ops:s3cret@sched.internal:8786")
    assert not any("s3cret" in v or k == "dask_scheduler" for k, v in s.flat_params().items())
    assert fast_settings(tmp_path, dask_scheduler=" ").dask_scheduler is None  # empty env: in process
