"""The service behind PgBouncer in transaction pooling (`DB_TRANSACTION_POOLER=true`).

A real PostgreSQL, Debian's PgBouncer 1.18 (started here, as the HA stack's pgbouncer
router starts it) and the real service over HTTP. PgBouncer 1.18 refuses the `options`
startup parameter, and in transaction pooling a statement prepared on one server session
is unknown to the next transaction's; so the service sends neither, and PgBouncer's
`connect_query` sets the session settings. Bounds come from the service's settings.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from chaos.core.bounds import SLACK
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.routers import PgBouncer, pooler_query_wait_timeout, pooler_session_settings
from chaos.infra.service import ServiceProcess
from chaos.infra.waiting import wait_for
from tests.conftest import SERVICE_SETTINGS
from tests.helpers import claims_of, remaining_of, running_service

APP = "coupon-pooled"
SETTINGS = {**SERVICE_SETTINGS, "DB_APPLICATION_NAME": APP, "DB_TRANSACTION_POOLER": "true"}
USERS = 60
STOCK = 2 * USERS


@dataclass(frozen=True)
class Pooled:
    bouncer: PgBouncer
    service: ServiceProcess
    client: httpx.Client
    admin: PostgresAdmin


def _bouncer(database_url: str, workdir: Path, settings: dict[str, str]) -> PgBouncer:
    parts = conninfo_to_dict(database_url)
    return PgBouncer(
        upstream=f"{parts['host']}:{parts['port']}",
        database=str(parts["dbname"]),
        user=str(parts.get("user", "postgres")),
        session_settings=settings,
        workdir=workdir,
        query_wait_timeout=pooler_query_wait_timeout(SETTINGS),
    )


def _url(bouncer: PgBouncer) -> str:
    return (
        f"postgresql://{bouncer.user}@127.0.0.1:{bouncer.port}/{bouncer.database}?sslmode=disable"
    )


@pytest.fixture(scope="module")
def pooled(database_url: str) -> Iterator[Pooled]:
    with tempfile.TemporaryDirectory(prefix="chaos-pgbouncer-") as tmp:
        Path(tmp).chmod(0o755)  # PgBouncer drops to `postgres` when started as root
        bouncer = _bouncer(database_url, Path(tmp), pooler_session_settings(SETTINGS))
        try:
            bouncer.start()
            with (
                running_service(_url(bouncer), SETTINGS) as service,
                httpx.Client(base_url=service.url, timeout=30.0) as client,
                PostgresAdmin(database_url, application_name=APP) as admin,
            ):
                yield Pooled(bouncer, service, client, admin)
        finally:
            bouncer.stop()


def test_pgbouncer_refuses_the_options_startup_parameter(pooled: Pooled) -> None:
    # Why the service sends no `options` behind a transaction pooler.
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter"):
        psycopg.connect(_url(pooled.bouncer), options="-c statement_timeout=1000").close()


def test_connect_query_gives_every_server_session_the_service_settings(pooled: Pooled) -> None:
    wanted = pooler_session_settings(SETTINGS)
    with psycopg.connect(_url(pooled.bouncer), prepare_threshold=None, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", [list(wanted)]
        ).fetchall()
    assert dict(rows) == wanted


def test_a_flash_sale_through_pgbouncer_never_oversells(pooled: Pooled) -> None:
    """Sixty users, three claims each, on several server sessions at once: psycopg would
    prepare the claim after five executions, and a prepared statement is unknown to the
    next transaction's server session; nothing is prepared, so every answer is right:
    one claim per user, the repeats 409, the stock counted exactly."""
    name = f"pooled-{time.monotonic_ns()}"
    assert (
        pooled.client.post("/api/coupons", json={"name": name, "amount": STOCK}).status_code == 201
    )

    def claim(user: str) -> int:
        resp = pooled.client.post("/api/coupons/claim", json={"user_id": user, "coupon_name": name})
        return resp.status_code

    users = [f"u{i % USERS}" for i in range(USERS * 3)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = Counter(pool.map(claim, users))
    assert statuses == {200: USERS, 409: 2 * USERS}, statuses
    assert remaining_of(pooled.admin, name) == STOCK - USERS
    holders = claims_of(pooled.admin, name)
    assert len(holders) == USERS == len(set(holders))
    used = [
        r for r in pooled.bouncer.admin("SHOW SERVERS") if r["database"] == pooled.bouncer.database
    ]
    assert len(used) > 1, "one server session: prepared statements would not have been tested"


def test_the_server_statement_timeout_answers_504_before_the_deadline(pooled: Pooled) -> None:
    """A claim waiting on a row lock: the statement_timeout PgBouncer set cancels it on
    the server (504 before the request deadline), and nothing of it is left."""
    name = f"locked-{time.monotonic_ns()}"
    assert pooled.client.post("/api/coupons", json={"name": name, "amount": 1}).status_code == 201
    statement = float(SETTINGS["DB_STATEMENT_TIMEOUT"])
    deadline = float(SETTINGS["REQUEST_DEADLINE"])
    assert statement + SLACK < deadline  # else the deadline could answer first
    with pooled.admin.hold_row_lock("coupons", "name", name):
        began = time.monotonic()
        resp = pooled.client.post("/api/coupons/claim", json={"user_id": "u", "coupon_name": name})
        took = time.monotonic() - began
    assert resp.status_code == 504, resp.text
    assert statement <= took <= statement + SLACK, took
    assert claims_of(pooled.admin, name) == []
    assert remaining_of(pooled.admin, name) == 1
    # The service answers again at once, on its pooled sessions.
    ok = pooled.client.post("/api/coupons/claim", json={"user_id": "u", "coupon_name": name})
    assert ok.status_code == 200, ok.text


def test_the_service_warns_when_the_pooler_does_not_set_its_session_settings(
    database_url: str,
) -> None:
    with tempfile.TemporaryDirectory(prefix="chaos-pgbouncer-") as tmp:
        Path(tmp).chmod(0o755)
        bouncer = _bouncer(database_url, Path(tmp), {})
        try:
            bouncer.start()
            with running_service(_url(bouncer), SETTINGS) as service:
                statement_ms = pooler_session_settings(SETTINGS)["statement_timeout"]
                wanted = f"the server's statement_timeout is 0, this service's is {statement_ms}"
                wait_for(
                    lambda: wanted in service.log_tail(200),
                    timeout=float(SETTINGS["DB_STATEMENT_TIMEOUT"]),
                    what="the session-settings warning in the service's log",
                )
        finally:
            bouncer.stop()
