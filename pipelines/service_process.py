"""Start the BentoML service as a child process and always take it down again.

Used by the demo and by tests that need the real server. The child runs in its own process group
so that BentoML's worker processes go with it; the group is terminated on normal exit, on an
exception and on SIGINT/SIGTERM, so an interrupted demo leaves no stray processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx


class ServiceStartError(RuntimeError):
    exit_code = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVICE = "serving.service:Slotcast"
REPO_ROOT = Path(__file__).resolve().parents[1]


def bentoml_serve_command(host: str, port: int) -> list[str]:
    """The command line that serves slotcast (run it with ``cwd=REPO_ROOT``)."""
    return [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host, "--port", str(port)]


def service_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a service child, which runs in REPO_ROOT: a relative (or ``~``)
    SLOTCAST_STATE_DIR is made absolute here, so the service reads the state this process wrote.
    MLflow's download progress bar is off unless asked for: in a server log it was a dozen tqdm
    lines per worker at every load from an MLflow server."""
    env = dict(os.environ if base is None else base)
    env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if env.get("SLOTCAST_STATE_DIR"):
        env["SLOTCAST_STATE_DIR"] = str(Path(env["SLOTCAST_STATE_DIR"]).expanduser().resolve())
    return env


def _kill_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@contextlib.contextmanager
def running_service(
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    ready_timeout: float = 180.0,
    workers: int = 1,
) -> Iterator[str]:
    """Run ``bentoml serve serving.service:Slotcast`` on 127.0.0.1 and yield its base URL once /readyz answers 200."""
    port = port or free_port()
    cmd = bentoml_serve_command("127.0.0.1", port)
    child_env = service_env({**os.environ, **(env or {}), "SLOTCAST_SERVICE_WORKERS": str(workers)})
    out: Any = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        env=child_env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def _on_signal(signum: int, frame: object) -> None:
        _kill_group(proc)
        raise KeyboardInterrupt

    for s in previous:
        signal.signal(s, _on_signal)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        last = "no answer yet"
        while True:
            if proc.poll() is not None:
                raise ServiceStartError(
                    f"the service exited with code {proc.returncode} before it was ready"
                    + (f"; see {log_path}" if log_path else "")
                )
            try:
                r = httpx.get(f"{base}/readyz", timeout=2.0)
                if r.status_code == 200:
                    break
                last = f"/readyz answered {r.status_code}: {r.text[:200]}"
            except httpx.HTTPError as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise ServiceStartError(f"the service was not ready within {ready_timeout:.0f} s ({last})")
            time.sleep(0.5)
        yield base
    finally:
        _kill_group(proc)
        for s, h in previous.items():
            signal.signal(s, h)
        if out is not subprocess.DEVNULL:
            out.close()
