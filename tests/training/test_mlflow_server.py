"""A real MLflow tracking server by URI (``mlflow server``, SQLite backend, proxied artifacts): train
registers a challenger there, promote makes it champion, serving loads it by alias over HTTP, and no
download stays on disk (serving reloads for as long as it runs); a purge rewrites the version there."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, stop_process
from tests.training.conftest import fast_settings

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(tracking URI, the server's artifact directory) of an ``mlflow server`` on a free port."""
    port, root = free_port(), tmp_path / "server"
    root.mkdir()
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    cmd = [str(mlflow_cli), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
           "--artifacts-destination", str(root / "artifacts")]  # fmt: skip
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # ~16 s on a quiet 2-core box
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield uri, root / "artifacts"
    finally:
        stop_process(proc, 20)
        log.close()


def test_train_promote_and_serve_through_a_tracking_server(
    mlflow_server: tuple[str, Path], world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.adapters import MlflowModelSource, make_policy
    from serving.settings import ServingSettings
    from training.promote import promote
    from training.registry import CHAMPION, load_bundle, version_by_alias
    from training.run import train
    from training.tracking import configure

    uri, server_artifacts = mlflow_server
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    state = tmp_path / "state"
    s = fast_settings(state, mlflow_tracking_uri=uri)
    assert s.tracking_uri == uri

    trained = train(world, s, reader=None)
    report = promote(s, world, open_reader=None)
    assert report.promoted and "no champion" in report.result.reason
    client = configure(s)
    assert str(version_by_alias(client, "slotcast", CHAMPION).version) == trained.version
    # Everything went to the server: its run, its artifact store; nothing under the local state dir.
    assert client.get_run(trained.run_id).data.params["feature_service"] == "ranker_v1"
    assert list(server_artifacts.rglob("manifest.json")), "the bundle is not in the server's store"
    assert not (state / "mlflow").exists()

    scratch = tmp_path / "scratch"  # every temporary download lands here, and must be gone after
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    source = MlflowModelSource(uri, "slotcast", make_policy(ServingSettings()))
    for _ in range(2):  # a reload downloads again
        models = source.load("champion")
        assert models.version == f"slotcast/{trained.version}" and models.feature_service == "ranker_v1"
    bundle = load_bundle("slotcast", "champion")  # promote's and evaluate's path
    assert bundle.manifest.mlflow_run_id == trained.run_id
    assert not list(scratch.iterdir()), "downloads left behind"

    # `slotcast privacy purge` rewrites the version on the server without a deleted user.
    from features.privacy import DeletionLedger
    from pipelines.cli import main

    gone = int(bundle.als.users.ids[0])
    DeletionLedger(state).add(gone)
    monkeypatch.setenv("SLOTCAST_STATE_DIR", str(state))
    monkeypatch.setenv("SLOTCAST_MLFLOW_TRACKING_URI", uri)
    assert main(["privacy", "purge"]) == 0
    after = load_bundle("slotcast", "champion")
    assert gone not in after.als.users and len(after.als.users) == len(bundle.als.users) - 1
    assert source.load("champion").version == f"slotcast/{trained.version}"
    assert not list(scratch.iterdir()), "the purge left downloads behind"
