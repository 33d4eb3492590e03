"""HTTP layer: the app factory, its lifespan (the pool), thin routes and the error answers."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.answers import error_body, log_service_error, loggable
from app.db import Database
from app.errors import BodyTooLarge, CouponNotFound, ServiceError
from app.fastpath import CLAIM_PATH, ClaimEndpoint
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
from app.validation import (
    parse_claim,
    parse_create_coupon,
    possible_coupon_name,
    require_json_content_type,
)

__all__ = ["CLIENT_CLOSED_REQUEST", "create_app"]

log = logging.getLogger("app.api")

#: A client's X-Request-Id is echoed only when it is this tame.
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")

#: Status counted (never sent) for a client that went away before its request was read
#: (nginx's convention).
CLIENT_CLOSED_REQUEST = 499

_INTERNAL_ERROR = error_body("internal server error")


class _Guard:
    """Pure ASGI middleware: request id, body size limit, request metrics, the 500 of last
    resort; and the lean endpoints (`fast`, by method and path) in front of FastAPI's."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        metrics_of: Callable[[], Metrics | None],
        fast: dict[tuple[str, str], ASGIApp],
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.metrics_of = metrics_of
        self.fast = fast

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
        started_response = False

        async def tracking_send(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        metrics: Metrics | None = self.metrics_of()
        started = time.perf_counter()
        # The scrape itself is not counted in flight, so a probe can read zero.
        in_flight = metrics.in_flight if metrics and scope["path"] != "/metrics" else None
        if in_flight is not None:
            in_flight.inc()
        endpoint = self.fast.get((scope["method"], scope["path"]), self.app)
        try:
            await endpoint(scope, limited_receive, tracking_send)
        except ClientDisconnect:
            # Not a failure of ours: nobody is left to answer.
            status = CLIENT_CLOSED_REQUEST
            log.info(
                "request %s %s %s: client went away before sending its whole body",
                request_id,
                scope["method"],
                loggable(scope["path"]),
            )
        except Exception as exc:
            # Here, inside the middleware, so the 500 carries X-Request-Id and is counted.
            log.error(
                "request %s %s %s failed",
                request_id,
                scope["method"],
                loggable(scope["path"]),
                exc_info=exc,
            )
            if not started_response:
                await tracking_send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(_INTERNAL_ERROR)).encode()),
                        ],
                    }
                )
                await tracking_send({"type": "http.response.body", "body": _INTERNAL_ERROR})
        finally:
            if in_flight is not None:
                in_flight.dec()
            if metrics is not None:
                route = getattr(scope.get("route"), "path", "unmatched")
                metrics.requests.labels(route, scope["method"], str(status)).inc()
                took = time.perf_counter() - started
                metrics.latency.labels(route).observe(took)
                if status == 503 and route != "/health":  # health has its own timeout
                    metrics.refusal_latency.observe(took)


def _service(request: Request) -> CouponService:
    # Read straight from the app state: a FastAPI dependency costs a resolution per request.
    svc: CouponService = request.app.state.service
    return svc


async def _json_body(request: Request) -> bytes:
    """The body of a request whose Content-Type is JSON; anything else is a 400."""
    require_json_content_type(request.headers.get("content-type"))
    return await request.body()


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
        service = CouponService(db)
        app.state.service = service
        state["metrics"] = Metrics(db, service.sold_out)
        try:
            yield
        finally:
            state.pop("metrics", None)
            await db.close()

    # No slash redirects: a 307 would build its Location from the client's Host header.
    app = FastAPI(
        title="coupon-service",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
        # Our metrics are Prometheus'; FastAPI's OpenTelemetry hooks would look the
        # providers up on every request (7 % of a claim's CPU, measured).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_openapi(app)

    @app.exception_handler(ServiceError)
    async def on_service_error(request: Request, exc: ServiceError) -> JSONResponse:
        log_service_error(request.state.request_id, request.method, request.url.path, exc)
        return _error(exc.status_code, exc.message, exc.headers(settings.retry_after))

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, "invalid request body")

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail).lower(), dict(exc.headers or {}))

    @app.post(
        "/api/coupons",
        status_code=201,
        response_class=Response,
        responses=CREATE_RESPONSES,
        openapi_extra=CREATE_EXTRA,
    )
    async def create_coupon(request: Request) -> Response:
        body = parse_create_coupon(await _json_body(request))
        await _service(request).create(body.name, body.amount)
        return Response(status_code=201)

    # Served by ClaimEndpoint (app/fastpath.py); declared here for OpenAPI, same answers.
    @app.post(
        CLAIM_PATH,
        response_class=Response,
        responses=CLAIM_RESPONSES,
        openapi_extra=CLAIM_EXTRA,
    )
    async def claim_coupon(request: Request) -> Response:
        body = parse_claim(await _json_body(request))
        await _service(request).claim(body.user_id, body.coupon_name)
        return Response(status_code=200)

    @app.get("/api/coupons/{name}", responses=GET_COUPON_RESPONSES, openapi_extra=GET_COUPON_EXTRA)
    async def get_coupon(name: str, request: Request) -> JSONResponse:
        if not possible_coupon_name(name):
            raise CouponNotFound(detail=f"impossible name of {len(name)} characters")
        row = await _service(request).get(name)
        return JSONResponse(
            {
                "name": row.name,
                "amount": row.amount,
                "remaining_amount": row.remaining_amount,
                "claimed_by": row.claimed_by,
            }
        )

    @app.get("/health", responses=HEALTH_RESPONSES)
    async def health(request: Request) -> JSONResponse:
        if await _service(request).healthy(settings.health_timeout):
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

    claim_route = next(r for r in app.routes if getattr(r, "path", None) == CLAIM_PATH)
    app.add_middleware(
        _Guard,
        max_body=settings.max_body_bytes,
        metrics_of=lambda: state.get("metrics"),
        fast={
            ("POST", CLAIM_PATH): ClaimEndpoint(retry_after=settings.retry_after, route=claim_route)
        },
    )
    return app
