"""The key-value test service: versioned keys, one write per writer and key.

Every database call runs through the coupon service's `Database.run` (deadline, admission,
503/504 translation, background cleanup) and every error is answered by the same
handlers, so the failure contract, `/health` and `/metrics` are the coupon service's.
A write inserts its row and bumps the key's version in one transaction: for every key,
version == its number of writes, whatever the faults.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg.errors
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from app import repository
from app.answers import log_service_error
from app.api import _Guard
from app.db import Conn, Database, WorkState
from app.errors import InvalidRequest, ServiceError, TimedOut, Unavailable
from app.metrics import Metrics
from app.settings import Settings
from app.validation import (
    _text_field,
    parse_json_object,
    possible_coupon_name,
    require_json_content_type,
)

__all__ = [
    "APPLICATION_NAME",
    "KeyExists",
    "KeyNotFound",
    "KvSettings",
    "WriterAlreadyWrote",
    "create_app",
]

APPLICATION_NAME = "kv-service"
"""The default `application_name` of the service's backends (DB_APPLICATION_NAME)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv_keys (name text PRIMARY KEY, version bigint NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS kv_writes (
    key text NOT NULL REFERENCES kv_keys (name),
    writer text NOT NULL,
    value bigint NOT NULL,
    PRIMARY KEY (key, writer)
);
"""

_BIGINT = range(-(2**63), 2**63)


class KvSettings(Settings):
    """The coupon service's settings (same variables); only application_name differs."""

    db_application_name: str = APPLICATION_NAME


class KeyNotFound(ServiceError):
    status_code = 404
    message = "key not found"


class KeyExists(ServiceError):
    status_code = 409
    message = "key exists"


class WriterAlreadyWrote(ServiceError):
    status_code = 409
    message = "writer already wrote"


async def _object(request: Request) -> dict[str, Any]:
    require_json_content_type(request.headers.get("content-type"))
    return parse_json_object(await request.body())


def _value(obj: dict[str, Any]) -> int:
    value = obj.get("value")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest("invalid request: value must be an integer")
    if value not in _BIGINT:
        raise InvalidRequest("invalid request: value is out of range")
    return value


async def _create_tables(db: Database) -> None:
    """Create the service's tables, retried (as Database.open retries) until start-up ends."""

    async def work(conn: Conn, state: WorkState) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('kv-service schema'))")
            await conn.execute(SCHEMA)

    async for attempt in AsyncRetrying(
        stop=stop_after_delay(db.settings.startup_timeout),
        wait=wait_exponential(multiplier=0.1, max=2.0),
        retry=retry_if_exception_type((Unavailable, TimedOut)),
        reraise=True,
    ):
        with attempt:
            await db.run(work)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service; the pool opens (and the tables are made) in the lifespan."""
    settings = settings or KvSettings()
    state: dict[str, Metrics] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings)
        await db.open()
        try:
            await _create_tables(db)
            app.state.db = db
            state["metrics"] = Metrics(db)
            yield
        finally:
            state.pop("metrics", None)
            await db.close()

    app = FastAPI(
        title="kv-service",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
    )

    def db_of(request: Request) -> Database:
        db: Database = request.app.state.db
        return db

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(ServiceError)
    async def on_service_error(request: Request, exc: ServiceError) -> JSONResponse:
        log_service_error(request.state.request_id, request.method, request.url.path, exc)
        return error(exc.status_code, exc.message, exc.headers(settings.retry_after))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail).lower(), dict(exc.headers or {}))

    @app.post("/kv", status_code=201)
    async def create(request: Request) -> JSONResponse:
        key = _text_field(await _object(request), "key")

        async def work(conn: Conn, state: WorkState) -> None:
            state.write_attempted = True
            try:
                await conn.execute("INSERT INTO kv_keys (name) VALUES (%s)", (key,))
            except psycopg.errors.UniqueViolation as exc:
                raise KeyExists from exc

        await db_of(request).run(work)
        return JSONResponse({"key": key, "version": 0}, status_code=201)

    @app.put("/kv/{key:path}")
    async def write(key: str, request: Request) -> JSONResponse:
        obj = await _object(request)
        writer, value = _text_field(obj, "writer"), _value(obj)
        if not possible_coupon_name(key):
            raise KeyNotFound(detail=f"impossible key of {len(key)} characters")

        async def work(conn: Conn, state: WorkState) -> int:
            state.write_attempted = True
            try:
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO kv_writes (key, writer, value) VALUES (%s, %s, %s)",
                        (key, writer, value),
                    )
                    cur = await conn.execute(
                        "UPDATE kv_keys SET version = version + 1 WHERE name = %s "
                        "RETURNING version",
                        (key,),
                    )
                    row = await cur.fetchone()
                    if row is None:
                        raise KeyNotFound
                    return int(row[0])
            except psycopg.errors.ForeignKeyViolation as exc:
                raise KeyNotFound from exc
            except psycopg.errors.UniqueViolation as exc:
                raise WriterAlreadyWrote from exc

        version = await db_of(request).run(work)
        return JSONResponse({"key": key, "version": version})

    @app.get("/kv/{key:path}")
    async def read(key: str, request: Request) -> JSONResponse:
        if not possible_coupon_name(key):
            raise KeyNotFound(detail=f"impossible key of {len(key)} characters")

        async def work(conn: Conn, state: WorkState) -> tuple[int, int]:
            cur = await conn.execute(
                "SELECT version, (SELECT count(*) FROM kv_writes WHERE key = name) "
                "FROM kv_keys WHERE name = %s",
                (key,),
            )
            row = await cur.fetchone()
            if row is None:
                raise KeyNotFound
            return int(row[0]), int(row[1])

        version, writes = await db_of(request).run(work)
        return JSONResponse({"key": key, "version": version, "writes": writes})

    @app.get("/health")
    async def health(request: Request) -> JSONResponse:
        async def work(conn: Conn, state: WorkState) -> None:
            await repository.ping(conn)

        try:
            await db_of(request).run(work, deadline=time.monotonic() + settings.health_timeout)
        except ServiceError:
            return JSONResponse(
                {"status": "unhealthy", "error": "database connection failed"},
                status_code=503,
                headers={"Retry-After": str(settings.retry_after)},
            )
        return JSONResponse({"status": "healthy"})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(state["metrics"].registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(
        _Guard, max_body=settings.max_body_bytes, metrics_of=lambda: state.get("metrics"), fast={}
    )
    return app
