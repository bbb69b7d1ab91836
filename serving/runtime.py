"""The application behind the HTTP shell, free of BentoML: wires settings to sources
(serving/app_sources.py), holds the loaded models (swapped atomically on reload:
serving/model_reload.py), and implements every endpoint as a plain method."""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
from pydantic import SecretStr

from serving.app_sources import app_sources
from serving.catalog import Catalog
from serving.catalog_reload import CatalogReload, Stamp
from serving.consents import consent_changes
from serving.deletions import DeletedUsers, delete_users, forget_users
from serving.errors import (
    BadRequestError,
    ModelUnavailableError,
    NotFoundError,
    ServingError,
    UnauthorizedError,
)
from serving.event_ids import EventIds, claim, owner_name, release
from serving.event_log import EventLog, event_records
from serving.fold_in import FoldIns, foldable
from serving.impressions import ImpressionLog
from serving.live_pending import live_pending
from serving.metrics import ServingMetrics
from serving.model_reload import ModelReload
from serving.pipeline import PipelineConfig, Recommender
from serving.reload_signal import ReloadSignal
from serving.schemas import (
    CarouselRequest,
    CarouselResponse,
    ConsentRequest,
    ConsentResponse,
    EventsRequest,
    EventsResponse,
    PushRequest,
    PushResponse,
    SegmentInfo,
    StockRequest,
    StockResponse,
    UserData,
    UserSegment,
)
from serving.segments import NO_HISTORY_SEGMENT
from serving.settings import ServingSettings
from serving.shared_events import SharedEvents
from serving.sources import FeatureSource, Models, ModelSource
from serving.stock import StockLevels
from serving.user_data import user_data

log = logging.getLogger(__name__)
T = TypeVar("T")


class SlotcastApp(ModelReload, CatalogReload):
    def __init__(
        self,
        settings: ServingSettings,
        model_source: ModelSource,
        features: FeatureSource,
        catalog: Catalog | None,
        ledger: Any,
        catalog_error: str | None = None,
        worker: int | None = None,
        catalog_stamp: Stamp | None = None,
    ) -> None:
        """``worker``: this process's index among its replica's workers (BentoML's, 1-based), with
        ``settings.replica`` the tag of the event ids it gives (serving/event_ids.py); None: the
        process id. A worker holds its name on the state directory for its life."""
        self.settings = settings
        owner = owner_name(settings.replica, worker)
        self.event_ids = EventIds(worker, settings.replica)  # refuses what the tags cannot hold
        self._claim = claim(settings.serving_dir / "workers", owner) if worker is not None else None
        self.model_source = model_source
        self.features = features
        self._owner = owner
        self.catalog = catalog
        self.catalog_stamp = catalog_stamp
        self.consents = consent_changes(settings.state_dir)
        self.catalog_error = catalog_error
        self.ledger = ledger
        self.metrics = ServingMetrics()
        self.event_log = EventLog(settings.events_dir, settings.log_rotate_bytes, owner)
        self.impressions = ImpressionLog(settings.impressions_dir, settings.log_rotate_bytes)
        self.fold_ins = FoldIns.shared_under(
            settings, f"{owner}-{os.getpid()}-{time.time_ns()}", lambda: self.deleted.current(),
            self.consents.withdrawn_at,
        )  # fmt: skip
        self.deleted = DeletedUsers(ledger, self._forget)
        if catalog is not None:
            self._attach_catalog(catalog)
        self._models = None
        self.load_error = None
        self._reload_lock = threading.Lock()
        self.reload_signal = ReloadSignal(settings.serving_dir / "reload.requested", self.reload)
        self.live = live_pending(
            features, settings.serving_dir / "live_pending", owner, self.event_ids, self.deleted.current,
            settings.live_retry_interval_s, settings.serving_dir / "workers",
        )  # fmt: skip
        self.config = PipelineConfig(
            challenger_share=settings.challenger_share,
            variant_salt=settings.variant_salt,
            candidates_per_request=settings.candidates_per_request,
            rerank_shortlist=settings.rerank_shortlist,
            rerank_on_air=settings.rerank_on_air,
            bought_recently_days=settings.bought_recently_days,
            push_cap=settings.push_cap,
            push_cap_days=settings.push_cap_days,
            quiet_hours=(settings.quiet_hours_start, settings.quiet_hours_end),
            quiet_hours_tz=settings.quiet_hours_tz,
            push_batch_size=settings.push_batch_size,
        )
        self.recommender = self._recommender_for(catalog) if catalog is not None else None

    def _attach_catalog(self, catalog: Catalog) -> set[int]:
        """What a worker adds to the catalogue it reads: consent changes, the live events and stock
        levels every worker shares, and deleted users' purchases left out (the users returned)."""
        catalog.consent_changes = self.consents
        settings, owner = self.settings, self._owner
        catalog.shared_events = SharedEvents(
            settings.serving_dir / "shared_events", f"{owner}-{os.getpid()}-{time.time_ns()}",
            {"push_sent": settings.push_cap_days, "purchase": settings.bought_recently_days},
            catalog.history_event_ids, lambda: self.deleted.current(),
        )  # fmt: skip
        # Stock levels set since the products table, every worker's (serving/stock.py).
        catalog.stock_levels = StockLevels(
            catalog, settings.serving_dir / "shared_events", f"{owner}-{os.getpid()}-{time.time_ns()}"
        )
        deleted = set(self.deleted.current())  # a copy: a deletion adds to the live set
        for user_id in deleted:
            catalog.forget_purchases(user_id)
        return deleted

    def _recommender_for(self, catalog: Catalog) -> Recommender:
        fold_in = self.settings.fold_in
        return Recommender(
            self._current, self.features, catalog, self.impressions, self.config,
            is_deleted=self.is_deleted,
            on_fallback=self.metrics.fallback,
            deleted_mask=self.deleted_mask,
            folded_users=self.fold_ins.held if fold_in else None,
            user_vectors=self.folded_in_many if fold_in else None,
        )  # fmt: skip

    @classmethod
    def from_settings(cls, settings: ServingSettings, worker: int | None = None) -> SlotcastApp:
        """Build the app; a store or registry that cannot be reached leaves it running but not ready."""
        logging.getLogger("serving").setLevel(settings.log_level)
        src = app_sources(settings)  # serving/app_sources.py
        app = cls(
            settings, src.model_source, src.features, src.catalog, src.ledger, src.catalog_error, worker,
            src.catalog_stamp,
        )  # fmt: skip
        if app.feeds_open:
            log.warning(
                "POST /events and POST /products/stock take requests from anyone who reaches the "
                "service (forged events, stock levels set to 0): set SLOTCAST_FEED_TOKEN to require a token"
            )
        with contextlib.suppress(ModelUnavailableError):  # logged; it starts not ready (/status: why)
            app.reload()
        if app.live is not None and app.live.retry():  # live events a predecessor could not push
            app.live.sweep()  # and those of workers that stopped for good (serving/live_pending.py)
        return app

    # --- readiness (the model pair and its reload: serving/model_reload.py) ---------------------
    def ready(self) -> tuple[bool, str]:
        self.reload_signal.poll()  # readiness probes reach idle workers too
        if self._models is None:
            return False, f"models not loaded: {self.load_error}"
        if self.catalog is None:
            return False, self.catalog_error or "no catalogue"
        if not self.features.ping():
            return False, "the online feature store does not answer"
        if self.live is not None:
            self.live.retry_in_background()  # the store answers: live events waiting may go
        return True, "ready"

    # --- endpoints ------------------------------------------------------------------------------
    def _timed(self, endpoint: str, fn: Callable[[], T]) -> T:
        t = time.perf_counter()
        try:
            return fn()
        except ServingError as exc:
            self.metrics.errors.labels(endpoint=endpoint, status=str(exc.http_status)).inc()
            raise
        finally:
            self.metrics.observe(endpoint, time.perf_counter() - t)

    def _rec(self) -> Recommender:
        if self.recommender is None:
            raise ModelUnavailableError(self.catalog_error or "no catalogue loaded")
        return self.recommender

    def carousel(self, req: CarouselRequest) -> CarouselResponse:
        def run() -> CarouselResponse:
            if req.at is not None:  # a past ``at`` is a replay; a future one only within the skew
                self._not_ahead(req.at, "at", datetime.now(UTC))
            return self._rec().carousel(req)

        return self._timed("carousel", run)

    def _not_ahead(self, t: datetime, field: str, now: datetime) -> None:
        """Refuse a time further ahead of this clock than ``max_clock_skew_s`` (422 naming it)."""
        if (t - now).total_seconds() > self.settings.max_clock_skew_s:
            raise BadRequestError(
                f"invalid {field}: {t.isoformat()} lies more than {self.settings.max_clock_skew_s:g} s "
                "ahead of the service's clock (SLOTCAST_MAX_CLOCK_SKEW_S)",
                field=field,
            )

    def push(self, req: PushRequest) -> PushResponse:
        if req.max_users > self.settings.max_users_limit:
            req = req.model_copy(update={"max_users": self.settings.max_users_limit})

        def run() -> PushResponse:
            if req.at is not None:  # a past ``at`` is a replay; a future one only within the skew
                self._not_ahead(req.at, "at", datetime.now(UTC))
            return self._rec().push(req)

        return self._timed("push", run)

    def events(self, req: EventsRequest) -> EventsResponse:
        def run() -> EventsResponse:
            now = datetime.now(UTC)
            for i, e in enumerate(req.events):  # before anything is logged: all or none
                if e.ts is not None:
                    self._not_ahead(e.ts, f"events.{i}.ts", now)
            records = event_records(req.events, self.event_ids.take(len(req.events)), now)
            self.event_log.append(records)  # raises 503 before anything is acknowledged
            catalog = self.catalog  # one read: a reload may swap it meanwhile
            if catalog is not None:
                catalog.apply_events(records)
                if self.settings.fold_in:
                    self.fold_ins.take(records, self._to_fold_in)
            # Live totals: a failed push is retried later (serving/live_pending.py).
            online = self.live.push(records) if self.live is not None else True
            return EventsResponse(accepted=len(records), online=online)

        return self._timed("events", run)

    def set_stock(self, req: StockRequest) -> StockResponse:
        """Absolute stock levels, recorded for every worker and replica (fsynced) before the answer,
        in force in this worker at once; newer than another level of the same product when taken
        later (the id given now orders them: serving/stock.py)."""

        def run() -> StockResponse:
            levels = self._catalog().stock_levels
            order = self.event_ids.take(1)[0]
            now_us = int(datetime.now(UTC).timestamp() * 1e6)
            return StockResponse(
                updated=levels.set([(i.product_id, i.stock) for i in req.items], order, now_us)
            )

        return self._timed("stock", run)

    def segments(self) -> list[SegmentInfo]:
        cat = self._catalog()
        return [SegmentInfo(**s) for s in cat.segments(self.deleted_mask)]

    def user_segment(self, user_id: int) -> UserSegment:
        cat = self._catalog()
        if self.is_deleted(user_id):  # a deleted user's segment is derived from their history: not shown
            return UserSegment(user_id=user_id, segment=NO_HISTORY_SEGMENT, known=False)
        return UserSegment(user_id=user_id, segment=cat.segment(user_id), known=cat.knows_user(user_id))

    def _catalog(self) -> Catalog:
        if self.catalog is None:
            raise ModelUnavailableError(self.catalog_error or "no catalogue loaded")
        return self.catalog

    def check_token(self, authorization: str | None) -> None:
        """Bearer token check in constant time; no token configured means no admin access at all."""
        if not _secret(self.settings.admin_token):
            raise UnauthorizedError(
                "admin endpoints are disabled: SLOTCAST_ADMIN_TOKEN is not set", field="authorization"
            )
        if not _bearer_matches(authorization, self.settings.admin_token):
            raise UnauthorizedError("missing or wrong bearer token", field="authorization")

    @property
    def feeds_open(self) -> bool:
        """Whether ``POST /events`` and ``POST /products/stock`` take requests without a token."""
        return not _secret(self.settings.feed_token)

    def check_feed_token(self, authorization: str | None) -> None:
        """The feeds' bearer token (``SLOTCAST_FEED_TOKEN``), or the admin token: an admin may do
        what a feed may. No feed token configured: the feeds are open (``feeds_open``)."""
        if self.feeds_open:
            return
        if not _bearer_matches(authorization, self.settings.feed_token, self.settings.admin_token):
            raise UnauthorizedError(
                "missing or wrong bearer token (SLOTCAST_FEED_TOKEN or SLOTCAST_ADMIN_TOKEN)",
                field="authorization",
            )

    def is_deleted(self, user_id: int) -> bool:
        """Deleted through this process or any other worker or replica (serving/deletions.py)."""
        return user_id in self.deleted

    def deleted_mask(self, user_ids: np.ndarray) -> np.ndarray:
        """``is_deleted`` for many users at once (a push audience can be a million): one ``isin``."""
        return self.deleted.mask(user_ids)

    def user_data(self, user_id: int) -> UserData:
        return user_data(
            self._catalog(), user_id, self.is_deleted(user_id), getattr(self.features, "user_features", None),
            self.settings.push_cap_days, self.fold_ins.events_of(user_id),
            self._models or (), self.settings.serving_dir,
        )  # fmt: skip

    def _forget(self, user_ids: set[int]) -> None:
        """Deleted users: nothing learnt from them stays in this process (models, folded events)."""
        forget_users(self._models or (), user_ids)
        self.fold_ins.drop(user_ids)

    def _to_fold_in(self, user_id: int) -> bool:
        """Whether to keep a user's events to fold in (serving/fold_in.py: ``foldable``)."""
        return self.catalog is not None and foldable(
            self.catalog, self._models, self.is_deleted(user_id), user_id
        )

    def folded_in(self, models: Models, user_id: int) -> np.ndarray | None:
        """The user's factors with the events they sent since training folded in, or None."""
        return self.fold_ins.vector(models.als, models.event_weights, user_id)

    def folded_in_many(
        self, models: Models, user_ids: np.ndarray, before_us: int | None = None
    ) -> list[np.ndarray | None]:
        """``folded_in`` for many users, solved together (only their events before ``before_us``)."""
        return self.fold_ins.vectors(models.als, models.event_weights, user_ids, before_us)

    def set_consent(self, user_id: int, req: ConsentRequest) -> ConsentResponse:
        """Record a consent change (the ledger first: every worker and replica honours it within a
        second, this one at once) and answer the consent now in force."""
        cat = self._catalog()
        self.consents.add(user_id, req.personalization, req.marketing)
        pers, mark = cat.consent(user_id)
        if not pers:  # the events kept to fold them in are no longer theirs to use
            self.fold_ins.drop([user_id])
        return ConsentResponse(user_id=user_id, personalization=pers, marketing=mark)

    def delete_user(self, user_id: int) -> dict[str, Any]:
        if self.delete_users([user_id])["unknown"]:
            raise NotFoundError(f"unknown user {user_id}", field="user_id")
        return {"user_id": user_id, "deleted": True}

    def delete_users(self, user_ids: list[int]) -> dict[str, list[int]]:
        """Many deletions at once (serving/deletions.py: ``delete_users``)."""
        return delete_users(self._catalog(), self.deleted, self.features, self.settings.state_dir, user_ids)

    def close(self) -> None:
        self.event_log.close()
        self.impressions.close()
        release(self._claim)
        self._claim = None


def _secret(token: SecretStr | None) -> str:
    return token.get_secret_value() if token is not None else ""


def _bearer_matches(authorization: str | None, *tokens: SecretStr | None) -> bool:
    """Whether ``authorization`` is ``Bearer <one of tokens>`` (unset or empty ones match nothing).
    Compared in constant time, with each configured token every time: how long it takes says
    neither how much of a token matched nor which one did."""
    header = authorization or ""
    given = header.removeprefix("Bearer ").strip().encode() if header.startswith("Bearer ") else b""
    matched = False
    for token in tokens:
        if expected := _secret(token):
            matched |= hmac.compare_digest(given, expected.encode())
    return matched
