"""`slotcast serve`: run the BentoML service (``bentoml serve serving.service:Slotcast``)."""

from __future__ import annotations

import os
import signal
import subprocess

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""

    @app.command()
    def serve(
        port: int = typer.Option(3000, "--port", min=1, max=65535, help="TCP port to listen on."),
        host: str = typer.Option(
            "127.0.0.1", "--host", help="Address to bind; 0.0.0.0 exposes it beyond this machine."
        ),
        workers: int = typer.Option(
            1,
            "--workers",
            min=1,
            envvar="SLOTCAST_SERVICE_WORKERS",
            help="BentoML worker processes (at most 31 per replica).",
        ),
        replica: int = typer.Option(
            0,
            "--replica",
            envvar="SLOTCAST_REPLICA",
            help="This service's number among the replicas of one deployment (0 to 30), one each: "
            "it goes into the event ids its workers give.",
        ),
        demo: bool = typer.Option(
            False,
            "--demo",
            help="Serve the built-in synthetic demo world (no trained model or feature store needed).",
        ),
    ) -> None:
        """Serve carousels, community pushes, events and privacy endpoints over HTTP.

        Loads the champion bundle from the MLflow registry and reads features from the Feast online store (see docs/serving.md for every SLOTCAST_ setting). Stops with Ctrl-C.
        """
        from pipelines.service_process import REPO_ROOT, bentoml_serve_command, service_env

        env = service_env(
            {**os.environ, "SLOTCAST_SERVICE_WORKERS": str(workers), "SLOTCAST_REPLICA": str(replica)}
        )
        _check_identity(replica, workers, env)
        if demo:
            env.update(SLOTCAST_MODEL_SOURCE="demo", SLOTCAST_FEATURE_SOURCE="demo")

        proc = subprocess.Popen(bentoml_serve_command(host, port), cwd=REPO_ROOT, env=env)
        stopping = False

        def _terminate(signum: int, frame: object) -> None:
            # `kill`, systemd, docker stop: BentoML stops gracefully on SIGTERM; unforwarded, it
            # outlived this process and kept the port.
            nonlocal stopping
            stopping = True
            proc.terminate()

        previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            while True:
                try:
                    code = proc.wait()
                    break
                except KeyboardInterrupt:
                    # Ctrl-C: the server (same process group) got it too and is stopping; a second
                    # Ctrl-C kills it.
                    if stopping:
                        proc.kill()
                    stopping = True
                    proc.terminate()
        finally:
            signal.signal(signal.SIGTERM, previous)
        if not stopping and code not in (0, -2, 130):
            raise typer.Exit(1)


def _check_identity(replica: int, workers: int, env: dict[str, str]) -> None:
    """Refuse, before BentoML starts, what its workers would refuse at their start (and BentoML
    would restart, failing, until stopped): a layout the event ids cannot hold, and a replica
    number a service on the same state directory runs already (serving/event_ids.py)."""
    from pathlib import Path

    from serving.event_ids import (
        DuplicateWorkerError,
        IdLayoutError,
        check_replica,
        check_workers,
        claim,
        owner_name,
        release,
    )
    from serving.settings import DEFAULT_STATE_DIR

    try:
        check_replica(replica)
        check_workers(workers)
    except IdLayoutError as exc:
        hint = "--replica" if exc.field == "SLOTCAST_REPLICA" else "--workers"
        raise typer.BadParameter(str(exc), param_hint=f"'{hint}' / {exc.field}") from None
    state = Path(env.get("SLOTCAST_STATE_DIR") or DEFAULT_STATE_DIR)
    try:
        release(claim(state / "serving" / "workers", owner_name(replica, 1)))
    except DuplicateWorkerError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--replica' / SLOTCAST_REPLICA") from None
