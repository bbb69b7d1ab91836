"""A tracking server that does not answer: train, promote and evaluate say so at once, naming the
URI. MLflow's client retried for ~4 min; promote then reported "model 'slotcast' has no
'challenger' version; run `slotcast train` first", and train found out only after its whole fit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipelines.service_process import free_port
from training.settings import TrainSettings
from training.tracking import TrackingUnavailableError


@pytest.fixture
def dead_uri(monkeypatch: pytest.MonkeyPatch) -> str:
    # MLflow's own retries short, so the old behaviour fails the test in seconds, not minutes.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def test_configure_refuses_a_server_that_does_not_answer(dead_uri: str, tmp_path: Path) -> None:
    from training.tracking import configure

    t0 = time.monotonic()
    with pytest.raises(TrackingUnavailableError, match=f"{dead_uri} does not answer"):
        configure(TrainSettings(state_dir=tmp_path, mlflow_tracking_uri=dead_uri))
    assert time.monotonic() - t0 < 15


def test_the_error_names_the_server_without_its_credentials(dead_uri: str) -> None:
    from training.tracking import check_reachable

    with_credentials = dead_uri.replace("http://", "http://ops:hunter2@")
    with pytest.raises(TrackingUnavailableError, match=f"{dead_uri} does not answer") as exc:
        check_reachable(with_credentials, timeout_s=5)
    assert "hunter2" not in str(exc.value) and "ops" not in str(exc.value)
    from mlflow import MlflowClient

    from training.registry import version_by_alias

    client = MlflowClient(tracking_uri=with_credentials, registry_uri=with_credentials)
    with pytest.raises(TrackingUnavailableError, match="slotcast@challenger") as exc:
        version_by_alias(client, "slotcast", "challenger")  # MLflow's message repeats the URL
    assert "hunter2" not in str(exc.value)


def test_an_unreachable_registry_is_not_a_missing_version(dead_uri: str) -> None:
    from mlflow import MlflowClient

    from training.registry import version_by_alias

    client = MlflowClient(tracking_uri=dead_uri, registry_uri=dead_uri)
    with pytest.raises(TrackingUnavailableError, match="slotcast@challenger"):
        version_by_alias(client, "slotcast", "challenger")


def test_a_missing_model_or_alias_is_none(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from training.registry import version_by_alias

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert version_by_alias(client, "slotcast", "challenger") is None  # no model
    client.create_registered_model("slotcast")
    assert version_by_alias(client, "slotcast", "challenger") is None  # no such alias


def test_train_and_promote_stop_before_any_work(dead_uri: str, tmp_path: Path) -> None:
    from training.promote import promote
    from training.run import train

    s = TrainSettings(state_dir=tmp_path, mlflow_tracking_uri=dead_uri)
    missing = tmp_path / "no-data-here"  # train would fail on it, were the server checked later
    with pytest.raises(TrackingUnavailableError, match=dead_uri):
        train(missing, s, reader=None)
    with pytest.raises(TrackingUnavailableError, match=dead_uri):
        promote(s, missing, open_reader=None)


def test_a_live_server_named_with_credentials_is_reachable() -> None:
    """user:password@ in the URI (requests, so MLflow, sends it as basic auth) was taken by urllib as
    part of the host name: a server that answered was refused as "does not answer"."""
    import http.server
    import threading

    from training.tracking import check_reachable

    seen: list[tuple[str, str | None]] = []

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        check_reachable(f"http://ops:hunter2@127.0.0.1:{server.server_port}/", timeout_s=5)
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [("/health", "Basic b3BzOmh1bnRlcjI=")]  # base64 of ops:hunter2
