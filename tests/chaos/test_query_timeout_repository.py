"""AC2 at the repository level: pg_sleep through the service's own pool and deadline code.

Expected behaviour: the caller gets TimedOut (504) within its bound, whichever limit
fires (the server's statement_timeout, or the request deadline with a server-side
cancel); the statement does not go on running on the server, and a transaction that had
written is rolled back: no claim, stock unchanged, no backend idle in transaction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from app import repository
from app.db import Conn, Database, WorkState
from app.errors import TimedOut
from app.settings import Settings
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.stack import CHAOS_SERVICE_SETTINGS, Stack
from chaos.scenarios.model import SLACK

pytestmark = pytest.mark.chaos

APP_NAME = "coupon-repository-test"
#: The server-side cancel and rollback are awaited this long at most.
CLEANUP_BOUND = 10.0
#: The request deadline the stack's service settings name.
DEADLINE = float(CHAOS_SERVICE_SETTINGS["REQUEST_DEADLINE"])


def settings_for(stack: Stack, **overrides: Any) -> Settings:
    values: dict[str, Any] = {k.lower(): v for k, v in CHAOS_SERVICE_SETTINGS.items()}
    values.update(
        database_url=stack.endpoints.proxied_database_url,
        db_application_name=APP_NAME,
        **overrides,
    )
    return Settings.model_validate(values)


def run_on_pool(settings: Settings, work: Callable[[Database], Awaitable[None]]) -> None:
    async def main() -> None:
        db = Database(settings)
        await db.open()
        try:
            await work(db)
        finally:
            await db.close()

    asyncio.run(main())


def sleep_work(seconds: float) -> Callable[[Conn, WorkState], Awaitable[None]]:
    async def work(conn: Conn, state: WorkState) -> None:
        state.write_attempted = True
        await conn.execute("SELECT pg_sleep(%s)", (seconds,))

    return work


@pytest.fixture
def admin(chaos_stack: Stack) -> Iterator[PostgresAdmin]:
    with PostgresAdmin(chaos_stack.endpoints.database_url, application_name=APP_NAME) as adm:
        yield adm


def test_statement_timeout_answers_504_and_cancels_on_the_server(
    chaos_stack: Stack, admin: PostgresAdmin
) -> None:
    settings = settings_for(chaos_stack)
    assert settings.db_statement_timeout < settings.request_deadline
    took: list[float] = []

    async def work(db: Database) -> None:
        started = time.monotonic()
        with pytest.raises(TimedOut):
            await db.run(sleep_work(30))
        took.append(time.monotonic() - started)

    run_on_pool(settings, work)
    assert took[0] <= settings.db_statement_timeout + SLACK
    # Cancelled on the server: no backend still running it. pg_stat_activity keeps a
    # backend's last query after it ends, and a closed pool's backends leave it a moment
    # later (sooner or later with the machine's load), so the state is what tells.
    running = admin.scalar(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE query LIKE 'SELECT pg_sleep%%' AND state = 'active'"
    )
    assert running == 0


def test_deadline_answers_504_and_the_server_side_statement_is_cancelled(
    chaos_stack: Stack, admin: PostgresAdmin
) -> None:
    # statement_timeout at the largest value the settings allow (the deadline itself, which
    # starts earlier): the deadline and its server-side cancel act first.
    settings = settings_for(chaos_stack, db_statement_timeout=DEADLINE)
    took: list[float] = []

    async def work(db: Database) -> None:
        started = time.monotonic()
        with pytest.raises(TimedOut):
            await db.run(sleep_work(60))
        took.append(time.monotonic() - started)
        # The abandoned work's cleanup (the cancel) is tracked and bounded.
        await db.drain_cleanups(timeout=CLEANUP_BOUND)
        assert db.pending_cleanups == 0
        assert not [b for b in admin.backends() if "pg_sleep" in b.query and b.state == "active"]

    run_on_pool(settings, work)
    assert took[0] <= settings.request_deadline + SLACK


def test_a_transaction_that_wrote_is_rolled_back_on_timeout(
    chaos_stack: Stack, admin: PostgresAdmin
) -> None:
    settings = settings_for(chaos_stack, db_statement_timeout=DEADLINE)
    direct = PostgresAdmin(chaos_stack.endpoints.database_url)
    coupon = f"REPO-{time.monotonic_ns()}"
    direct.query(
        "INSERT INTO coupons (name, amount, remaining_amount) VALUES (%s, 5, 5)", (coupon,)
    )

    async def claim_then_sleep(conn: Conn, state: WorkState) -> None:
        state.write_attempted = True
        async with conn.transaction():
            outcome, left = await repository.claim(conn, "sleeper", coupon)
            assert (outcome, left) == (repository.ClaimOutcome.CLAIMED, 4)
            await conn.execute("SELECT pg_sleep(60)")

    async def work(db: Database) -> None:
        with pytest.raises(TimedOut):
            await db.run(claim_then_sleep)
        await db.drain_cleanups(timeout=CLEANUP_BOUND)
        assert db.pending_cleanups == 0

    try:
        run_on_pool(settings, work)
        assert direct.scalar("SELECT remaining_amount FROM coupons WHERE name = %s", (coupon,)) == 5
        assert direct.scalar("SELECT count(*) FROM claims WHERE coupon_name = %s", (coupon,)) == 0
        assert not [b for b in admin.backends() if b.state == "idle in transaction"]
    finally:
        direct.close()
