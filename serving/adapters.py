"""The real implementations behind the pipeline's protocols: the MLflow-registered bundle
(models/), the Feast online store (features/), the deletion ledger. Imported lazily so that the
demo world and the tests need none of them."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from features.settings import redacted
from models.calibration import PlattCalibration
from serving.errors import ModelUnavailableError
from serving.outage_log import OutageLog
from serving.settings import ServingSettings
from serving.sources import FeatureSource, Models, Policy

log = logging.getLogger(__name__)


def make_policy(settings: ServingSettings) -> Policy:
    """models.policy.SlotPolicy when present (the real rules), else the minimal built-in one."""
    try:
        from models.policy import SlotPolicy, SlotPolicyConfig
    except ImportError:
        from serving.simple_policy import SimplePolicy, SimplePolicyConfig

        return SimplePolicy(SimplePolicyConfig(epsilon=settings.epsilon, category_cap=settings.category_cap))
    return SlotPolicy(SlotPolicyConfig(epsilon=settings.epsilon, per_category_cap=settings.category_cap))


class SingleThreadRanker:
    """The bundle's LightGBM ranker, predicting the way a request needs it: one thread (OpenMP's
    all-core default costs more to wake than 100 rows take to score, and more so on a busy box)
    and straight from the float matrix serving already built in the pinned feature order.

    Same values as ``LightGBMRanker.predict`` (tests/serving/test_bundle.py checks it); a ranker
    with categorical features keeps its own ``predict``, which knows how to encode them."""

    def __init__(self, ranker: Any) -> None:
        self.inner = ranker
        self.feature_names = list(ranker.feature_names)

    def predict(self, X: pd.DataFrame) -> Any:
        if getattr(self.inner, "categorical_features", None) or len(X) == 0:
            return self.inner.predict(X)
        arr = X.loc[:, self.feature_names].to_numpy(dtype="float64", na_value=float("nan"))
        return self.predict_matrix(arr)

    def predict_matrix(self, X: Any) -> Any:
        """``predict`` from the float matrix whose columns are ``feature_names`` in order, as
        serving builds it: no DataFrame on the hot path (pipeline ``Recommender._predict``)."""
        if getattr(self.inner, "categorical_features", None) or len(X) == 0:
            return self.inner.predict(pd.DataFrame(X, columns=self.feature_names))
        fast = getattr(self.inner, "predict_matrix", None)  # models.ranker: LightGBM's C call, same values
        if fast is not None:
            return fast(X, num_threads=1)
        return self.inner.booster.predict(X, num_iteration=self.inner.best_iteration or None, num_threads=1)


def models_from_bundle(bundle: Any, version: str, policy: Policy) -> Models:
    return Models(
        version=version,
        feature_service=bundle.manifest.feature_service,
        als=bundle.als,
        ranker=SingleThreadRanker(bundle.ranker) if bundle.ranker is not None else None,
        popularity=bundle.popularity,
        policy=policy,
        push_calibration=PlattCalibration.from_dict(bundle.manifest.params.get("push_calibration")),
        event_weights=_weights(bundle.manifest.params.get("event_weights")),
    )


def _weights(value: Any) -> dict[str, float] | None:
    """The bundle's event weights, or None where it has none (written before they were kept)."""
    if not isinstance(value, dict):
        return None
    try:
        return {str(k): float(v) for k, v in value.items()}
    except (TypeError, ValueError):
        return None


class DirModelSource:
    """A bundle directory on disk (``SLOTCAST_BUNDLE_DIR``); the alias is ignored."""

    def __init__(self, path: Path, policy: Policy) -> None:
        self.path, self.policy = Path(path), policy

    def load(self, alias: str) -> Models:
        from models.bundle import Bundle

        bundle = Bundle.load(Bundle.find(self.path))
        created = bundle.manifest.created_at.strftime("%Y%m%dT%H%M%S")
        return models_from_bundle(bundle, f"dir-{created}", self.policy)


def mlflow_client_defaults(settings: ServingSettings) -> dict[str, str]:
    """Serving's MLflow HTTP client settings, set in this process's environment (where MLflow reads
    them, per request) for each variable the user has not set; returns what it set.

    With MLflow's defaults an unreachable registry holds the start for ~4 min (7 retries, backoff
    factor 2: sleeps of 4, 8 ... 120 s) before readiness can report it; docs/RELIABILITY.md."""
    wanted = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(settings.mlflow_http_max_retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(settings.mlflow_http_backoff_factor),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(settings.mlflow_http_timeout_s),
    }
    applied = {k: v for k, v in wanted.items() if k not in os.environ}
    os.environ.update(applied)
    return applied


class MlflowModelSource:
    """``models:/<name>@<alias>`` from the MLflow registry, loaded with ``Bundle.load(Bundle.find(dir))``."""

    def __init__(self, tracking_uri: str, name: str, policy: Policy) -> None:
        self.tracking_uri, self.name, self.policy = tracking_uri, name, policy

    def version(self, alias: str) -> str:
        """The version ``alias`` names now (``name/N``), the label ``load`` gives it; one registry call."""
        from mlflow import MlflowClient

        uri = self.tracking_uri
        mv = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(self.name, alias)
        return f"{self.name}/{mv.version}"

    def load(self, alias: str) -> Models:
        import mlflow
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        from models.bundle import Bundle

        # Both URIs explicitly: a process-wide registry URI set elsewhere must not pick the registry.
        uri = self.tracking_uri
        with contextlib.ExitStack() as cleanup:
            try:
                client = MlflowClient(tracking_uri=uri, registry_uri=uri)
                mv = client.get_model_version_by_alias(self.name, alias)
                # The version's storage location, not models:/ (resolved through the global registry).
                source = client.get_model_version_download_uri(self.name, mv.version)
                # Files in a local artifact store are read where they are; from a server (or object
                # storage) they are downloaded into a directory deleted once the bundle is in memory,
                # where MLflow's own temporary directory would stay behind on every reload.
                dst = None
                if urlparse(source).scheme not in ("", "file"):
                    dst = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="slotcast-bundle-"))
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=source, tracking_uri=uri, dst_path=dst
                )
            except MlflowException as exc:
                # Missing model: RESOURCE_DOES_NOT_EXIST; missing alias: INVALID_PARAMETER_VALUE.
                # Anything else (a server that does not answer) is not "no model".
                missing = exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
                what = "no model" if missing else "cannot reach the MLflow registry for"
                raise ModelUnavailableError(  # /status shows it: no credentials of the URI
                    redacted(f"{what} {self.name}@{alias} in {self.tracking_uri}: {exc.message}")
                ) from exc
            bundle = Bundle.load(Bundle.find(local))
        return models_from_bundle(bundle, f"{self.name}/{mv.version}", self.policy)


class FeastFeatureSource:
    """``features.retrieval`` behind the pipeline's FeatureSource protocol: the fast online reader
    when the features package has one (same values, less overhead), else the plain Feast reader."""

    def __init__(self, state_dir: Path, ledger: Any = None, outage_log_interval_s: float = 10.0) -> None:
        from features.retrieval import NO_USER
        from features.settings import FeatureSettings

        settings = FeatureSettings(state_dir=state_dir)  # type: ignore[call-arg]  # the rest from SLOTCAST_*
        self.ledger = ledger
        self.no_user = NO_USER
        try:
            from features.online_fast import FastOnlineReader

            self.reader: Any = FastOnlineReader(settings)
        except ImportError:
            from features.retrieval import FeastFeatureReader

            self.reader = FeastFeatureReader(settings)
        self._fail_fast = False
        # A lookup may wait on the network (Redis), not only on the CPU and a local file (SQLite).
        self.networked = settings.online_store != "sqlite"
        # Lookups and readiness probes share it: an outage is one line, then one per interval.
        self.outage = OutageLog("online store", log, outage_log_interval_s)

    def _redis_fails_fast(self) -> None:
        """One connection attempt and short socket timeouts for Feast's Redis client.

        redis-py retries a refused connection 3 times with exponential backoff: with Redis down,
        every lookup took 3-12 s before the pipeline could answer degraded (tests/reliability/
        test_fault_redis.py). A lookup that fails must fail in milliseconds; the next request
        tries again, so recovery is still automatic."""
        if self._fail_fast:
            return
        store = self.reader.store
        config = store.config.online_store
        if getattr(config, "type", None) != "redis":
            self._fail_fast = True
            return
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = store._get_provider().online_store._get_client(config)
        client.set_retry(Retry(NoBackoff(), 0))
        kwargs = client.connection_pool.connection_kwargs
        kwargs["socket_connect_timeout"] = kwargs.get("socket_connect_timeout") or 0.5
        kwargs["socket_timeout"] = kwargs.get("socket_timeout") or 2.0
        self._fail_fast = True

    def online(
        self,
        user_id: int | None,
        product_ids: Sequence[int],
        stream_id: int | None,
        service: str,
        at: datetime | None = None,
    ) -> pd.DataFrame:
        out: pd.DataFrame = self._lookup(self.reader.online, user_id, product_ids, stream_id, service, at)
        return out

    def online_matrix(
        self,
        user_id: int | None,
        product_ids: Sequence[int],
        stream_id: int | None,
        service: str,
        at: datetime | None = None,
    ) -> tuple[Any, tuple[str, ...]]:
        """``online``'s values as a float matrix (rows in the order asked) and its column names:
        the carousel's hot path (``serving.ranker_input.matrix_array``), no DataFrame between."""
        fast = getattr(self.reader, "online_matrix", None)
        if fast is not None:
            out: tuple[Any, tuple[str, ...]] = self._lookup(
                fast, user_id, product_ids, stream_id, service, at
            )
            return out
        frame = self.online(user_id, product_ids, stream_id, service, at)
        return frame.to_numpy(dtype="float64", na_value=float("nan")), tuple(map(str, frame.columns))

    def _lookup(
        self,
        read: Any,
        user_id: int | None,
        product_ids: Sequence[int],
        stream_id: int | None,
        service: str,
        at: datetime | None,
    ) -> Any:
        uid = self.no_user if user_id is None else user_id  # no one: no personal feature is read
        started = self.outage.clock()
        try:
            self._redis_fails_fast()
            out = read(uid, list(product_ids), stream_id=stream_id, service=service, at=at)
        except Exception as exc:
            self.outage.failed(exc, started)
            raise  # the pipeline answers degraded (flagged)
        self.outage.ok(started)
        return out

    def ping(self) -> bool:
        """The online store answers a real lookup: no user (nothing personal is read) in stream 0,
        whose key is read whether or not the stream exists (a lookup with no user and no stream
        reads nothing from the store and would say nothing about it)."""
        try:
            self.online(None, [0], stream_id=0, service="ranker_v1")
            return True
        except Exception:  # noqa: BLE001 - readiness reports, never raises; online() logged it
            return False

    def user_features(self, user_id: int) -> dict[str, Any]:
        """The user's latest feature snapshot (what the store holds about them)."""
        df = self.reader.latest_user_features(user_ids=[int(user_id)])
        return {} if df.empty else {k: v for k, v in df.iloc[0].to_dict().items() if v == v}

    def delete_users(self, user_ids: list[int]) -> None:
        """Remove the users' online rows: one pass over the store's keys for all of them."""
        from features.privacy import delete_user_online

        delete_user_online(self.reader.store, {int(u) for u in user_ids})

    def ingest(self, events: Any) -> None:
        """Add live events (dicts or a frame) to the live-session totals; raises when the store
        does not take them (serving/live_pending.py keeps them)."""
        from features.live import ingest_live_events

        self._redis_fails_fast()  # a push may come before any lookup (the retry at start)
        ingest_live_events(self.reader, events, ledger=self.ledger)

    def built_at(self) -> float | None:
        """When the last features build finished writing the online store (epoch seconds)."""
        try:
            return float(self.reader.settings.materialized_stamp.stat().st_mtime)
        except OSError:
            return None


def deletion_ledger(state_dir: Path) -> Any:
    """The deletion ledger training reads too (features.privacy): one file for the whole deployment."""
    from features.privacy import DeletionLedger

    return DeletionLedger(state_dir)


def pending_online_deletions(state_dir: Path) -> Any:
    """Users whose online rows a deletion could not remove (store down); the next build does."""
    from features.privacy import pending_online_deletions as pending

    return pending(state_dir)


def feature_segments(features: FeatureSource) -> dict[int, str] | None:
    """The features package's segments (segments.yaml rules, latest snapshot), so that serving and
    the popularity model agree on the labels; None (the catalogue's own activity rule) when absent."""
    fn = getattr(getattr(features, "reader", None), "segments", None)
    if fn is None:
        return None
    try:
        series = fn()
    except Exception as exc:  # noqa: BLE001 - an unbuilt store falls back to the built-in rule
        log.warning("segments from the feature store unavailable (%s); using the activity rule", exc)
        return None
    return {int(k): str(v) for k, v in series.dropna().items()}
