"""Faults on the real server, each bounded in time: reload under load, a corrupted or incompatible
champion registered in MLflow, the registry unreachable at start, and the event log's disk refusing
writes (503, nothing acknowledged is lost, all of it survives a restart)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from pipelines.service_process import free_port, running_service
from serving.event_log import read_all
from tests.reliability.conftest import BASE_ENV, LoadLoop, auth, demo_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def _carousel(c: httpx.Client, i: int) -> httpx.Response:
    return c.post("/carousel", json={"user_id": i % 300, "stream_id": i % 3, "k": 5})


def test_reload_under_load_fails_no_request(tmp_path: Path) -> None:
    with (
        running_service(env=demo_env(tmp_path), log_path=tmp_path / "service.log") as base,
        httpx.Client(base_url=base, timeout=30) as c,
        LoadLoop(base, _carousel, threads=3, seconds=10) as load,
    ):
        reloads = []
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            reloads.append(c.post("/admin/reload", headers=auth()).status_code)
            time.sleep(0.3)
    assert reloads and set(reloads) == {200}, reloads
    assert not load.result.errors, load.result.errors[:5]
    st = load.result.statuses()
    assert set(st) == {200} and st[200] >= 50, st


def _registry(tmp_path: Path, bundles: list[Path]) -> str:
    """A SQLite MLflow registry in tmp_path with each bundle registered in turn as champion."""
    from mlflow import MlflowClient

    from training.registry import register_bundle

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # never the process-wide registry
    exp = client.create_experiment("rel", artifact_location=str(tmp_path / "artifacts"))
    for b in bundles:
        register_bundle(client, client.create_run(exp).info.run_id, b, "slotcast", alias="champion")
    return uri


def _corrupt(src: Path, dst: Path, how: str) -> Path:
    shutil.copytree(src, dst)
    if how == "truncated":  # a component file cut short (a half-finished upload)
        victim = max(
            (p for p in dst.rglob("*") if p.is_file() and p.name != "manifest.json"),
            key=lambda p: p.stat().st_size,
        )
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    else:  # "incompatible": written by a library version this server cannot read
        m = dst / "manifest.json"
        doc = json.loads(m.read_text())
        doc["format_version"] = 999
        m.write_text(json.dumps(doc))
    return dst


@pytest.mark.parametrize("how", ["truncated", "incompatible"])
def test_bad_champion_is_refused_and_the_old_model_keeps_serving(
    how: str, ranked_bundle: Path, tables: dict[str, pa.Table], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    from features.data_model import write_table
    from training.registry import register_bundle

    for name, t in tables.items():  # the catalogue the bundle was fitted on
        write_table(tmp_path / "data", name, t)
    uri = _registry(tmp_path, [ranked_bundle])
    env = {
        **BASE_ENV, "SLOTCAST_STATE_DIR": str(tmp_path), "SLOTCAST_MODEL_SOURCE": "mlflow",
        "SLOTCAST_MLFLOW_TRACKING_URI": uri, "SLOTCAST_FEATURE_SOURCE": "demo",
        "SLOTCAST_DEMO_USERS": "600", "SLOTCAST_DEMO_PRODUCTS": "120", "SLOTCAST_DEMO_STREAMS": "3",
        "SLOTCAST_DEMO_PER_STREAM": "60", "SLOTCAST_SEED": "1",
    }  # fmt: skip
    log_path = tmp_path / "service.log"
    with (
        running_service(env=env, log_path=log_path) as base,
        httpx.Client(base_url=base, timeout=60) as c,
    ):
        v1 = c.get("/status").json()["model_version"]
        assert v1 == "slotcast/1"
        bad = _corrupt(ranked_bundle, tmp_path / "bad", how)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        exp = client.get_experiment_by_name("rel")
        register_bundle(
            client, client.create_run(exp.experiment_id).info.run_id, bad, "slotcast", alias="champion"
        )
        with LoadLoop(base, _carousel, threads=2, seconds=8) as load:
            time.sleep(1)
            r = c.post("/admin/reload", headers=auth())
        assert r.status_code == 503, r.text
        assert "the old model keeps serving" in r.json()["error"], r.json()
        assert c.get("/readyz").status_code == 200
        assert c.get("/status").json()["model_version"] == v1
        assert _carousel(c, 1).json()["model_version"] == v1
    assert not load.result.errors and set(load.result.statuses()) == {200}, load.result.statuses()
    assert all(b["model_version"] == v1 for _, _, b, _ in load.result.rows)
    refused = [ln for ln in log_path.read_text().splitlines() if "model reload refused" in ln]
    assert refused and "slotcast/1" in refused[0] and "Incompatible" in refused[0], refused


def test_mlflow_unreachable_at_start_is_not_ready_but_alive(
    tables: dict[str, pa.Table], tmp_path: Path
) -> None:
    """The registry is a closed loopback port: the server starts, /healthz answers, /readyz is 503
    and /status says why, within 180 s on a busy box. No MLFLOW_HTTP_* variable is set: serving's
    own client defaults (serving/settings.py) apply, where MLflow's would hold the start ~4 min.
    (running_service waits for readiness, so this one is started here.)"""
    from features.data_model import write_table

    for name, t in tables.items():
        write_table(tmp_path / "data", name, t)
    port = free_port()
    dead = f"http://127.0.0.1:{free_port()}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_REQUEST_")}, **BASE_ENV,
        "SLOTCAST_STATE_DIR": str(tmp_path), "SLOTCAST_MODEL_SOURCE": "mlflow",
        "SLOTCAST_MLFLOW_TRACKING_URI": dead, "SLOTCAST_FEATURE_SOURCE": "demo",
    }  # fmt: skip
    log_path = tmp_path / "service.log"
    with log_path.open("wb") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", "serving.service:Slotcast", "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"

            def alive() -> bool:
                try:
                    return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            # 180 s: a start takes 30-100 s on the busy 2-core box; MLflow's own retries add ~250 s.
            assert wait_until(alive, timeout=180, step=0.5), "the service never answered /healthz"
            assert httpx.get(f"{base}/readyz", timeout=10).status_code == 503
            print(f"/readyz answered 503 {time.monotonic() - t0:.1f} s after the start")  # figure, -s
            status = httpx.get(f"{base}/status", timeout=10).json()
            assert status["ready"] is False and "127.0.0.1" in status["reason"], status
            r = httpx.post(f"{base}/carousel", json={"user_id": 1, "stream_id": 0, "k": 5}, timeout=10)
            assert r.status_code == 503 and "no model" in r.json()["error"], r.text
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
    log = log_path.read_text()
    assert "Traceback" not in log
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES=2" in log, "serving's MLflow client defaults were not applied"


def test_event_log_write_failure_refuses_and_loses_nothing(tmp_path: Path) -> None:
    """Segments rotate every 1 KiB; the events directory is swapped for a plain file, so the next
    segment cannot be created (a real ENOTDIR/EEXIST from the kernel, root or not)."""
    env = demo_env(tmp_path, SLOTCAST_LOG_ROTATE_BYTES="1024")
    events_dir = tmp_path / "serving" / "events"
    acked: list[int] = []
    refused: list[int] = []

    def post(c: httpx.Client, marker: int) -> int:
        ev = {"user_id": 5, "type": "purchase", "product_id": 7, "amount": 1.0, "event_id": marker}
        r = c.post("/events", json={"events": [ev]})
        if r.status_code == 200:
            acked.append(marker)
        else:
            assert r.status_code == 503, r.text
            assert "event log" in r.json()["error"]
            refused.append(marker)
        return r.status_code

    with (
        running_service(env=env, log_path=tmp_path / "service.log") as base,
        httpx.Client(base_url=base) as c,
    ):
        for m in range(1, 11):
            assert post(c, m) == 200
        moved = tmp_path / "events-moved"
        events_dir.rename(moved)
        events_dir.write_text("not a directory\n")
        for m in range(11, 61):  # enough bytes to force at least one rotation
            post(c, m)
        assert refused, "no write was refused: the fault was not reached"
        # Once the disk is back, writes are accepted again without a restart.
        events_dir.unlink()
        moved.rename(events_dir)
        assert post(c, 1000) == 200
    # Restart on the same state: the old segments are kept and new events are appended beside them.
    with (
        running_service(env=env, log_path=tmp_path / "service2.log") as base,
        httpx.Client(base_url=base) as c,
    ):
        assert post(c, 2000) == 200
    on_disk = [e["event_id"] for e in read_all(events_dir)]
    assert sorted(on_disk) == sorted(acked), (
        sorted(set(acked) - set(on_disk)),
        sorted(set(on_disk) - set(acked)),
    )
    assert not set(refused) & set(on_disk)
