"""The BentoML shell: decorator config, loading in ``__init__``, typed ``@bentoml.api`` methods for
the POST endpoints, and a mounted FastAPI app for the GET/DELETE routes with path parameters.
Every method maps HTTP to ``serving.runtime.SlotcastApp`` and its errors to status codes.

Run: ``bentoml serve serving.service:Slotcast`` (or ``slotcast serve``). /healthz, /readyz and
/metrics are BentoML's own routes, fed by ``__is_ready__`` and ``__metrics__`` below."""

from __future__ import annotations

import logging
import os
import re
from typing import Annotated, Any

import bentoml
from fastapi import FastAPI, Header, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from serving.asgi_guard import JsonRefusalGuard
from serving.errors import ServingError
from serving.event_ids import check_workers
from serving.outage_log import OutageLog
from serving.runtime import SlotcastApp
from serving.schemas import (
    CarouselRequest,
    CarouselResponse,
    ConsentRequest,
    ConsentResponse,
    DeleteUsersRequest,
    DeleteUsersResponse,
    EventsRequest,
    EventsResponse,
    NoopResponse,
    PushRequest,
    PushResponse,
    ReloadResponse,
    SegmentInfo,
    StockRequest,
    StockResponse,
    UserData,
    UserSegment,
)
from serving.settings import ServingSettings
from serving.token_guard import TokenGuard

log = logging.getLogger("serving")
web = FastAPI(title="slotcast", description="Livestream carousels and community pushes")


def _error(exc: ServingError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.http_status)


def _validation_body(errors: list[Any]) -> dict[str, Any]:
    detail = [
        {"loc": [str(x) for x in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]
    if detail and detail[0]["type"] == "json_invalid":
        # FastAPI locates a decode error at ("body", <character position>): the body is at fault.
        field: str | None = "body"
        why = (errors[0].get("ctx") or {}).get("error")
        detail[0]["msg"] = f"{detail[0]['msg']}: {why}" if why else detail[0]["msg"]
    else:
        field = (
            ".".join(x for x in detail[0]["loc"] if x not in ("body", "path", "query", "header"))
            if detail
            else None
        )
        if not field and detail and detail[0]["loc"][:1] == ["body"]:
            field = "body"  # the body as a whole: missing, or not an object
    return {
        "error": f"invalid {field or 'request'}: {detail[0]['msg'] if detail else 'bad input'}",
        "field": field or None,
        "detail": detail,
    }


@web.exception_handler(RequestValidationError)
async def _on_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(_validation_body(list(exc.errors())), status_code=422)


@web.exception_handler(StarletteHTTPException)
async def _on_http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Unmatched paths and methods: a JSON reason like every other refusal, not Starlette's text."""
    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)


# A user id in a path: bounded so that an id beyond int64 is a 422, not a numpy overflow (500).
UserId = Annotated[int, Path(ge=0, le=2**63 - 1)]
_USER_PATH = re.compile(r"/users/[^/\s,)]+")


class _NoUserIdsInAccessLog(logging.Filter):
    """BentoML's access log prints each request's path at INFO: /users/<id>/... would put user ids
    in the logs. Keep the route, drop the id."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "/users/" in msg:
            record.msg, record.args = _USER_PATH.sub("/users/{id}", msg), ()
        return True


@web.exception_handler(ServingError)
async def _on_serving_error(_: Request, exc: ServingError) -> JSONResponse:
    return _error(exc)


class _QuietValidation(logging.Filter):
    """BentoML logs a full traceback (with the offending input) for every schema violation; a bad
    request is the caller's problem, so keep one line without the input (no user ids in logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ValidationError):
            exc = record.exc_info[1]
            record.msg, record.args = (
                "refused a request: %d validation error(s) in %s",
                (exc.error_count(), exc.title),
            )
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _service_config() -> dict[str, Any]:
    """BentoML's per-service config. Read from the environment when the class is defined, because
    the decorator needs it then (``SLOTCAST_SERVICE_WORKERS`` and the two switches below).

    Per request, BentoML's defaults cost more CPU than a no-op answer needs (demo world, 2-core box,
    benchmarks/results/serving.md): its OpenTelemetry ASGI middleware ~1 ms even with no exporter
    configured (slotcast configures none), its access log ~0.4 ms and one log line. Both are off
    unless asked for; /metrics (Prometheus latency per endpoint) stays on."""
    cfg: dict[str, Any] = {
        # Refused here, before any worker starts, when the event ids cannot tell them apart.
        "workers": check_workers(int(os.environ.get("SLOTCAST_SERVICE_WORKERS", "1"))),
        "traffic": {"timeout": 60},
        "logging": {"access": {"enabled": _flag("SLOTCAST_ACCESS_LOG")}},
    }
    if not _flag("SLOTCAST_TRACING"):
        cfg["tracing"] = {"excluded_urls": ["."]}  # a regex every URL matches: no span is started
    return cfg


# /noop/carousel's answer: eight slots with values like a real carousel's (JSON of the same size).
NOOP_CAROUSEL = CarouselResponse.model_validate(
    {
        "request_id": "0" * 32,
        "slots": [
            {"product_id": 100 + i, "slot": i, "score": 0.8352148532867432 - i / 10,
             "p_convert": 0.6615993710150802 - i / 20, "expected_value": 58.829416070660926 - i, "reason": "ranked"}
            for i in range(8)
        ],
        "model_version": "noop", "variant": "champion", "personalized": True, "fallback": None, "degraded": False,
    }
)  # fmt: skip


def carousel_on_loop(runs_on: str, features: Any) -> bool:
    """Whether /carousel runs on the worker's event loop (``ServingSettings.carousel_runs_on``):
    "auto" keeps it off the loop only when its feature lookups can wait on the network."""
    if runs_on == "auto":
        return not getattr(features, "networked", False)
    return runs_on == "loop"


class NotReady(Exception):
    """Why /readyz answers 503 (the reason SlotcastApp.ready gives)."""


def readiness_log(interval_s: float) -> OutageLog:
    return OutageLog("readiness", log, interval_s, consequence="/readyz answers 503")


def check_ready(app: SlotcastApp, outage: OutageLog) -> bool:
    """The readiness probe: a balancer asks every few seconds, so a long not-ready spell (a start
    waiting on MLflow) is one WARNING, then a count per interval, then one line when ready, instead
    of a WARNING per probe (113 lines in one 5.5-minute start)."""
    ok, why = app.ready()
    if ok:
        outage.ok()
    else:
        outage.failed(NotReady(why))
    return ok


@bentoml.service(name="slotcast", **_service_config())
@bentoml.asgi_app(web, path="/")
class Slotcast:
    def __init__(self) -> None:
        logging.getLogger("bentoml._internal.server.http_app").addFilter(_QuietValidation())
        logging.getLogger("bentoml.access").addFilter(_NoUserIdsInAccessLog())
        settings = ServingSettings()
        # The worker's index (1-based) and SLOTCAST_REPLICA tag the event ids it gives.
        self.app = SlotcastApp.from_settings(settings, worker=bentoml.server_context.worker_index)
        self._readiness = readiness_log(settings.outage_log_interval_s)
        self._on_loop = carousel_on_loop(settings.carousel_runs_on, self.app.features)
        log.info("/carousel runs on the %s", "event loop" if self._on_loop else "thread pool")

    def __is_ready__(self) -> bool:
        return check_ready(self.app, self._readiness)

    async def __metrics__(self, content: str) -> str:
        return content + self.app.metrics.render()

    @bentoml.api(route="/carousel", input_spec=CarouselRequest)
    async def carousel(self, **fields: Any) -> CarouselResponse:
        return await self._where_carousels_run(self._carousel, fields)

    async def _where_carousels_run(self, fn: Any, fields: dict[str, Any]) -> CarouselResponse:
        """``fn(fields)`` on the event loop or in the thread pool (``carousel_on_loop``)."""
        if self._on_loop:
            out: CarouselResponse = fn(fields)
            return out
        return await run_in_threadpool(fn, fields)

    def _carousel(self, fields: dict[str, Any]) -> CarouselResponse:
        try:
            return self.app.carousel(CarouselRequest.model_construct(**fields))
        except ServingError as exc:
            return _error(exc)  # type: ignore[return-value]

    @bentoml.api(route="/community/push", input_spec=PushRequest)
    def community_push(self, **fields: Any) -> PushResponse:
        try:
            # model_validate re-runs the cross-field checks that input_spec's IO model skips.
            return self.app.push(PushRequest.model_validate(fields))
        except ValidationError as exc:
            return JSONResponse(_validation_body(exc.errors()), status_code=422)  # type: ignore[return-value]
        except ServingError as exc:
            return _error(exc)  # type: ignore[return-value]

    @bentoml.api(route="/noop")
    async def noop(self, x: int = 0) -> NoopResponse:
        """Does nothing, on the event loop (BentoML's cheapest endpoint): the baseline the
        carousel's throughput is compared with."""
        return NoopResponse(x=x)

    @bentoml.api(route="/noop/carousel", input_spec=CarouselRequest)
    async def noop_carousel(self, **fields: Any) -> CarouselResponse:
        """The carousel's HTTP shape without its work: the same request model and validation, the
        same place to run (loop or thread) and a response of the same shape and size (a fixed
        8-slot answer, built once). The second baseline: what BentoML and the schemas cost a
        carousel request."""
        return await self._where_carousels_run(self._noop_carousel, fields)

    @staticmethod
    def _noop_carousel(fields: dict[str, Any]) -> CarouselResponse:
        CarouselRequest.model_construct(**fields)
        return NOOP_CAROUSEL

    @web.post("/events", response_model=EventsResponse)
    def events(self, body: EventsRequest, authorization: str | None = Header(None)) -> EventsResponse:
        """Live events; with SLOTCAST_FEED_TOKEN set, only with it (or the admin token)."""
        self.app.check_feed_token(authorization)
        return self.app.events(body)

    @web.post("/products/stock", response_model=StockResponse)
    def products_stock(self, body: StockRequest, authorization: str | None = Header(None)) -> StockResponse:
        """Absolute stock levels from the brand's inventory system, in force in every worker and
        replica within a second (serving/stock.py); with SLOTCAST_FEED_TOKEN set, only with it (or
        the admin token)."""
        self.app.check_feed_token(authorization)
        return self.app.set_stock(body)

    @web.post("/admin/reload", response_model=ReloadResponse)
    def admin_reload(self, authorization: str | None = Header(None)) -> ReloadResponse:
        self.app.check_token(authorization)
        return self.app.admin_reload()

    @web.get("/status")
    def status(self) -> dict[str, Any]:
        """Why /readyz says what it says (BentoML's /readyz has no room for a reason)."""
        ok, why = self.app.ready()
        pair = self.app._models
        return {
            "ready": ok,
            "reason": why,
            "model_version": pair[0].version if pair else None,
            "challenger_version": pair[1].version if pair and pair[1] else None,
            # POST /events and POST /products/stock take requests without a token (no SLOTCAST_FEED_TOKEN).
            "feeds_open": self.app.feeds_open,
        }

    @web.get("/segments", response_model=list[SegmentInfo])
    def segments(self) -> list[SegmentInfo]:
        return self.app.segments()

    @web.get("/users/{user_id}/segment", response_model=UserSegment)
    def user_segment(self, user_id: UserId) -> UserSegment:
        return self.app.user_segment(user_id)

    @web.get("/users/{user_id}/data", response_model=UserData)
    def user_data(self, user_id: UserId, authorization: str | None = Header(None)) -> UserData:
        self.app.check_token(authorization)
        return self.app.user_data(user_id)

    @web.delete("/users/{user_id}")
    def delete_user(self, user_id: UserId, authorization: str | None = Header(None)) -> dict[str, Any]:
        self.app.check_token(authorization)
        return self.app.delete_user(user_id)

    @web.put("/users/{user_id}/consent", response_model=ConsentResponse)
    def set_consent(
        self, user_id: UserId, body: ConsentRequest, authorization: str | None = Header(None)
    ) -> ConsentResponse:
        """A consent change from the brand's app, in force in every worker within a second."""
        self.app.check_token(authorization)
        return self.app.set_consent(user_id, body)

    @web.post("/users/delete", response_model=DeleteUsersResponse)
    def delete_users(
        self, body: DeleteUsersRequest, authorization: str | None = Header(None)
    ) -> DeleteUsersResponse:
        """Many deletions at once (a compliance batch): one ledger write, one pass over the online
        store's keys for all of them."""
        self.app.check_token(authorization)
        return DeleteUsersResponse(**self.app.delete_users(body.user_ids))


# The routes that take a bearer token ("feed": SLOTCAST_FEED_TOKEN or the admin token; "admin":
# SLOTCAST_ADMIN_TOKEN). Their handlers check it; TokenGuard checks it first, before the body is read
# (tests/serving/test_token_first.py holds this list to the routes with an Authorization header).
TOKEN_ROUTES = [
    ("POST", "/events", "feed"),
    ("POST", "/products/stock", "feed"),
    ("POST", "/admin/reload", "admin"),
    ("GET", "/users/{user_id}/data", "admin"),
    ("DELETE", "/users/{user_id}", "admin"),
    ("PUT", "/users/{user_id}/consent", "admin"),
    ("POST", "/users/delete", "admin"),
]


def check_route_token(kind: str, authorization: str | None) -> None:
    """TokenGuard's check, by the running service instance's settings (LookupError: none yet)."""
    try:
        service = bentoml.get_current_service()
    except bentoml.exceptions.BentoMLException as exc:
        raise LookupError("no service instance") from exc
    app: SlotcastApp | None = getattr(service, "app", None)
    if app is None:
        raise LookupError("the service instance is still starting")
    (app.check_feed_token if kind == "feed" else app.check_token)(authorization)


# The token first (the outer middleware): a caller without it learns nothing else about the request.
Slotcast.add_asgi_middleware(TokenGuard, routes=TOKEN_ROUTES, check=check_route_token)  # type: ignore[attr-defined]
# Every refusal is JSON: paths no route can match (control characters) are answered before routing,
# and the outer router's plain-text 404/405 get a JSON body (serving/asgi_guard.py).
Slotcast.add_asgi_middleware(JsonRefusalGuard)  # type: ignore[attr-defined]
