"""HTTP layer: the app factory, its lifespan (the pool), thin routes and the error answers."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db import Database
from app.errors import BodyTooLarge, ServiceError
from app.metrics import Metrics
from app.openapi import (
    CLAIM_EXTRA,
    CLAIM_RESPONSES,
    CREATE_EXTRA,
    CREATE_RESPONSES,
    GET_COUPON_EXTRA,
    GET_COUPON_RESPONSES,
    HEALTH_RESPONSES,
    METRICS_RESPONSES,
    install_openapi,
)
from app.service import CouponService
from app.settings import Settings
from app.validation import parse_claim, parse_create_coupon, validate_path_name

__all__ = ["create_app"]

log = logging.getLogger("app.api")

#: A client's X-Request-Id is echoed only when it is this tame.
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")


class _Guard:
    """Pure ASGI middleware: request id, body size limit, request metrics."""

    def __init__(
        self, app: ASGIApp, *, max_body: int, metrics_of: Callable[[], Metrics | None]
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.metrics_of = metrics_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"")
        request_id = given.decode() if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        declared = headers.get(b"content-length")
        too_large = declared is not None and declared.isdigit() and int(declared) > self.max_body
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if too_large or seen > self.max_body:
                    raise BodyTooLarge(detail=f"body over {self.max_body} bytes")
            return message

        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        metrics: Metrics | None = self.metrics_of()
        started = time.perf_counter()
        # The scrape itself is not counted in flight, so a probe can read zero.
        in_flight = metrics.in_flight if metrics and scope["path"] != "/metrics" else None
        if in_flight is not None:
            in_flight.inc()
        try:
            await self.app(scope, limited_receive, tracking_send)
        finally:
            if in_flight is not None:
                in_flight.dec()
            if metrics is not None:
                route = getattr(scope.get("route"), "path", "unmatched")
                metrics.requests.labels(route, scope["method"], str(status)).inc()
                metrics.latency.labels(route).observe(time.perf_counter() - started)


async def _service(request: Request) -> CouponService:
    # async on purpose: FastAPI runs a sync dependency in a worker thread.
    svc: CouponService = request.app.state.service
    return svc


ServiceDep = Annotated[CouponService, Depends(_service)]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service; the pool opens in the lifespan and closes with it."""
    settings = settings or Settings()
    # The middleware is built before the lifespan runs; it finds the metrics here.
    state: dict[str, Metrics] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings)
        await db.open()
        app.state.service = CouponService(db)
        state["metrics"] = Metrics(db)
        try:
            yield
        finally:
            state.pop("metrics", None)
            await db.close()

    app = FastAPI(title="coupon-service", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_openapi(app)
    app.add_middleware(
        _Guard,
        max_body=settings.max_body_bytes,
        metrics_of=lambda: state.get("metrics"),
    )

    @app.exception_handler(ServiceError)
    async def on_service_error(request: Request, exc: ServiceError) -> JSONResponse:
        if exc.status_code >= 500:
            log.warning(
                "request %s %s %s answered %d: %s",
                request.state.request_id,
                request.method,
                request.url.path,
                exc.status_code,
                exc.detail or exc.message,
            )
        return _error(exc.status_code, exc.message, exc.headers(settings.retry_after))

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, "invalid request body")

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail).lower(), dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "request %s %s %s failed",
            getattr(request.state, "request_id", "-"),
            request.method,
            request.url.path,
            exc_info=exc,
        )
        return _error(500, "internal server error")

    @app.post(
        "/api/coupons",
        status_code=201,
        response_class=Response,
        responses=CREATE_RESPONSES,
        openapi_extra=CREATE_EXTRA,
    )
    async def create_coupon(request: Request, svc: ServiceDep) -> Response:
        body = parse_create_coupon(await request.body())
        await svc.create(body.name, body.amount)
        return Response(status_code=201)

    @app.post(
        "/api/coupons/claim",
        response_class=Response,
        responses=CLAIM_RESPONSES,
        openapi_extra=CLAIM_EXTRA,
    )
    async def claim_coupon(request: Request, svc: ServiceDep) -> Response:
        body = parse_claim(await request.body())
        await svc.claim(body.user_id, body.coupon_name)
        return Response(status_code=200)

    @app.get("/api/coupons/{name}", responses=GET_COUPON_RESPONSES, openapi_extra=GET_COUPON_EXTRA)
    async def get_coupon(name: str, svc: ServiceDep) -> JSONResponse:
        row = await svc.get(validate_path_name(name))
        return JSONResponse(
            {
                "name": row.name,
                "amount": row.amount,
                "remaining_amount": row.remaining_amount,
                "claimed_by": row.claimed_by,
            }
        )

    @app.get("/health", responses=HEALTH_RESPONSES)
    async def health(svc: ServiceDep) -> JSONResponse:
        if await svc.healthy(settings.health_timeout):
            return JSONResponse({"status": "healthy"})
        return JSONResponse(
            {"status": "unhealthy", "error": "database connection failed"},
            status_code=503,
            headers={"Retry-After": str(settings.retry_after)},
        )

    @app.get("/metrics", response_class=PlainTextResponse, responses=METRICS_RESPONSES)
    async def metrics() -> Response:
        m = state["metrics"]
        return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)

    return app
