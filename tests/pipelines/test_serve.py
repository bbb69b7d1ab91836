"""`slotcast serve` takes its BentoML server down with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pipelines.service_process import free_port


@pytest.mark.integration
@pytest.mark.slow
def test_sigterm_stops_the_server_and_frees_the_port(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SLOTCAST_STATE_DIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "pipelines.cli", "serve", "--demo", "--port", str(port)]
    # Its own session, so the cleanup below can take the whole group whatever happens.
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/readyz"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, "slotcast serve exited before the service was ready"
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the service was not ready in 180 s"
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)  # to slotcast only, as `kill PID` or a supervisor does
        assert proc.wait(timeout=60) == 0
        deadline = time.monotonic() + 30
        while True:  # the server went with it: nothing answers on the port
            try:
                httpx.get(url, timeout=1)
            except httpx.ConnectError:
                break
            assert time.monotonic() < deadline, "the BentoML server outlived slotcast serve"
            time.sleep(0.5)
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the group and wait for it to empty, then SIGKILL: a BentoML server killed at once
    leaves its workers (in sessions of their own) behind."""
    for sig, grace in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 5.0)):
        deadline = time.monotonic() + grace
        try:
            os.killpg(proc.pid, sig)
            while time.monotonic() < deadline:
                proc.poll()  # reap slotcast itself, or the group never looks empty
                os.killpg(proc.pid, 0)
                time.sleep(0.2)
        except ProcessLookupError:
            return


class _FakeServer:
    """What `slotcast serve` starts, recorded instead of run."""

    env: dict[str, str] = {}

    def __init__(self, cmd: list[str], cwd: object = None, env: dict[str, str] | None = None) -> None:
        _FakeServer.env = dict(env or {})

    def wait(self) -> int:
        return 0


@pytest.mark.parametrize(
    ("args", "env_workers", "expected"),
    [([], None, "1"), ([], "3", "3"), (["--workers", "2"], "3", "2")],
)
def test_workers_come_from_the_option_else_slotcast_service_workers(
    monkeypatch: pytest.MonkeyPatch, args: list[str], env_workers: str | None, expected: str, state_dir: Path
) -> None:
    """docs/scaling.md's switch is SLOTCAST_SERVICE_WORKERS=N: `slotcast serve` overwrote it with its
    --workers default (1), so the variable alone started one worker."""
    from pipelines.cli import main

    monkeypatch.setattr(subprocess, "Popen", _FakeServer)
    if env_workers is None:
        monkeypatch.delenv("SLOTCAST_SERVICE_WORKERS", raising=False)
    else:
        monkeypatch.setenv("SLOTCAST_SERVICE_WORKERS", env_workers)
    assert main(["serve", *args]) == 0
    assert _FakeServer.env["SLOTCAST_SERVICE_WORKERS"] == expected


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--replica", "31"], "--replica"),
        (["--workers", "32"], "--workers"),
        (["--replica", "-1"], "--replica"),
    ],
)
def test_a_layout_the_event_ids_cannot_hold_is_refused_before_the_server_starts(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    named: str,
    state_dir: Path,
) -> None:
    """Event ids tag each worker with 32 x replica + worker (serving/event_ids.py): 31 replicas of
    31 workers. Beyond that two workers would share a tag; serve says so, naming the option."""
    from pipelines.cli import main

    monkeypatch.setattr(subprocess, "Popen", _FakeServer)
    _FakeServer.env = {}
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err
    assert named in err and "event ids have room for" in err
    assert _FakeServer.env == {}  # nothing started


def test_the_replica_number_reaches_the_service(monkeypatch: pytest.MonkeyPatch, state_dir: Path) -> None:
    from pipelines.cli import main

    monkeypatch.setattr(subprocess, "Popen", _FakeServer)
    monkeypatch.setenv("SLOTCAST_REPLICA", "4")
    assert main(["serve"]) == 0
    assert _FakeServer.env["SLOTCAST_REPLICA"] == "4"
    assert main(["serve", "--replica", "7"]) == 0
    assert _FakeServer.env["SLOTCAST_REPLICA"] == "7"


def test_a_replica_number_running_on_the_state_dir_is_refused_before_the_server_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Its workers would refuse to start, and BentoML would restart them, failing, until stopped."""
    import serving.event_ids as event_ids
    from pipelines.cli import main
    from serving.event_ids import claim, release

    monkeypatch.setattr(event_ids, "CLAIM_WAIT_S", 0.2)  # how long it waits before refusing
    monkeypatch.setattr(subprocess, "Popen", _FakeServer)
    monkeypatch.setenv("SLOTCAST_STATE_DIR", str(tmp_path))
    running = claim(tmp_path / "serving" / "workers", "r0w1")  # worker 1 of replica 0, running
    try:
        _FakeServer.env = {}
        assert main(["serve"]) == 2
        assert "r0w1 already runs" in capsys.readouterr().err and _FakeServer.env == {}
        assert main(["serve", "--replica", "1"]) == 0
    finally:
        release(running)
    assert main(["serve"]) == 0
