"""MLflow tracking: a local SQLite store + file artifacts under the state directory by default, or a
real server when ``SLOTCAST_MLFLOW_TRACKING_URI`` says so. mlflow is imported inside functions so
that importing training stays cheap."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.settings import TrainSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)


DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")  # mlflow.store.db.db_types


def _database_store(uri: str) -> bool:
    """sqlite:///..., postgresql+psycopg2://... : a store MLflow opens itself, without a server."""
    return uri.partition(":")[0].split("+")[0] in DATABASE_SCHEMES


class TrackingUnavailableError(RuntimeError):
    """The MLflow tracking server (or registry) does not answer."""

    exit_code = 1


def check_reachable(uri: str, timeout_s: float = 10.0) -> None:
    """Raise TrackingUnavailableError when an http(s) tracking URI does not answer at all.

    MLflow's own client retries a dead server for ~4 min (7 retries, backoff factor 2) and then
    reports whatever the caller makes of the failure; train would have fitted everything first.
    Any HTTP answer (even 401 or 404: a proxy, no /health) counts as reachable."""
    import base64
    import urllib.error
    import urllib.request
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    # user:password@ is MLflow's basic auth (requests reads it off the URL); urllib would take it
    # for part of the host name, so it goes into a header instead.
    userinfo, _, host = parts.netloc.rpartition("@")
    url = urlunsplit((parts.scheme, host, f"{parts.path.rstrip('/')}/health", "", ""))
    headers = {}
    if userinfo:
        token = base64.b64encode(unquote(userinfo).encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s):
            pass
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        from training.settings import public_address

        raise TrackingUnavailableError(
            f"the MLflow tracking server {public_address(uri)} does not answer ({reason}); start it "
            "or correct SLOTCAST_MLFLOW_TRACKING_URI"
        ) from exc


def configure(settings: TrainSettings) -> MlflowClient:
    """Point mlflow at the configured store and return a client for tracking and registry; a
    tracking server that does not answer is a TrackingUnavailableError at once."""
    import mlflow
    from mlflow import MlflowClient

    uri = settings.tracking_uri
    check_reachable(uri)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if _database_store(uri):  # experiment_id puts artifacts there
        settings.artifact_root.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(client: MlflowClient, settings: TrainSettings) -> str:
    """The experiment's id, creating it (with artifacts under the state dir for a database store)."""
    exp = client.get_experiment_by_name(settings.experiment_name)
    if exp is not None:
        return str(exp.experiment_id)
    # A database store without a server would put them in MLflow's ./mlruns, under whatever
    # directory the command ran in; a server (or a file store) has its own place for them.
    location = settings.artifact_root.as_uri() if _database_store(settings.tracking_uri) else None
    return str(client.create_experiment(settings.experiment_name, artifact_location=location))


def _git(*args: str, cwd: Path | None = None) -> str | None:
    """git's output in the checkout holding this package, or None outside one (an installed package)."""
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=cwd or Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def git_sha(cwd: Path | None = None) -> str | None:
    """The current commit, or None outside a git checkout (an installed package)."""
    return (_git("rev-parse", "HEAD", cwd=cwd) or "").strip() or None


def git_clean(cwd: Path | None = None) -> bool:
    """Whether no tracked file differs from the current commit (False outside a git checkout):
    only then does the commit say which code ran."""
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
    return status is not None and not status.strip()


def log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    """Log params in batches (MLflow caps a batch at 100 params and a value at 6000 chars)."""
    from mlflow.entities import Param

    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i : i + 100])


def log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    """Log finite metrics in one batch; NaN/inf are skipped with a warning (MLflow rejects them)."""
    import math
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch, skipped = [], []
    for k, v in metrics.items():
        if v is None or not math.isfinite(float(v)):
            skipped.append(k)
            continue
        batch.append(Metric(k, float(v), now, step))
    if skipped:
        log.debug("metrics not logged (not finite): %s", ", ".join(skipped))
    for i in range(0, len(batch), 1000):
        client.log_batch(run_id, metrics=batch[i : i + 1000])


def log_curves(client: MlflowClient, run_id: str, curves: dict[str, list[float]]) -> None:
    """Per-iteration curves as stepped metrics (step = trees), in batches of 1000 points."""
    import math
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [
        Metric(key, float(v), now, step)
        for key, values in curves.items()
        for step, v in enumerate(values, start=1)
        if math.isfinite(float(v))
    ]
    for i in range(0, len(batch), 1000):
        client.log_batch(run_id, metrics=batch[i : i + 1000])
