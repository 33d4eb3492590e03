"""The failure contract per SQLSTATE, against a real PostgreSQL put in each state.

The service runs on a database and a login role of its own (not a superuser, so
connection limits apply to it), so that switching that database read-only, or its role's
connection limit to zero, touches nothing else. Every request goes over HTTP; after
each fault the database must hold nothing of a refused claim, and the service must
answer 200 again within its recovery bound, without a restart. Bounds come from the
limits the service reports (chaos.core.bounds); waits are on conditions with deadlines.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from chaos.core.bounds import ACQUIRE, DEADLINE, RECOVERY
from chaos.core.limits import Limits
from chaos.infra.postgres import PostgresAdmin, PostgresCluster
from chaos.infra.probes import read_limits, read_metrics
from chaos.infra.service import ServiceProcess
from chaos.infra.waiting import wait_for
from tests.conftest import SERVICE_SETTINGS
from tests.helpers import claims_of, remaining_of, running_service

#: application_name of this module's service: its backends, and no one else's.
APP = "coupon-sqlstates"
NAME = f"sqlstates_{os.getpid()}"
SETTINGS = {**SERVICE_SETTINGS, "DB_APPLICATION_NAME": APP}
#: Admin sessions ignore the read-only default the tests give the database.
WRITABLE = "-c default_transaction_read_only=off -c default_transaction_isolation=read\\ committed"


@dataclass(frozen=True)
class Stack:
    """This module's database, its service and an admin on that database."""

    url: str
    """The superuser's URL of the database (sessions writable whatever its defaults)."""
    service: ServiceProcess
    admin: PostgresAdmin
    client: httpx.Client
    limits: Limits


@pytest.fixture(scope="module")
def stack(database_url: str) -> Iterator[Stack]:
    """A database owned by a login role of its own, the service on it as that role."""
    owner_url = make_conninfo(database_url, options=WRITABLE)
    service_url = make_conninfo(database_url, user=NAME, dbname=NAME)
    url = make_conninfo(owner_url, dbname=NAME)
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(NAME)))
        try:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(NAME), sql.Identifier(NAME)
                )
            )
            with (
                running_service(service_url, SETTINGS) as service,
                PostgresAdmin(url, application_name=APP) as admin,
                httpx.Client(base_url=service.url, timeout=30.0) as client,
            ):
                yield Stack(url, service, admin, client, read_limits(client))
        finally:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(NAME))
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(NAME)))


@pytest.fixture
def st(stack: Stack) -> Iterator[Stack]:
    """The stack on emptied tables, its database defaults and role limit restored after."""
    stack.admin.query("TRUNCATE claims, coupons RESTART IDENTITY CASCADE")
    try:
        yield stack
    finally:
        for setting in ("default_transaction_read_only", "default_transaction_isolation"):
            stack.admin.query(
                sql.SQL("ALTER DATABASE {} RESET {}")
                .format(sql.Identifier(NAME), sql.Identifier(setting))
                .as_string()
            )
        stack.admin.query(
            sql.SQL("ALTER ROLE {} CONNECTION LIMIT -1").format(sql.Identifier(NAME)).as_string()
        )
        renew_sessions(stack)


# --- helpers ---------------------------------------------------------------------------


def claim(st: Stack, user: str, coupon: str) -> httpx.Response:
    return st.client.post("/api/coupons/claim", json={"user_id": user, "coupon_name": coupon})


def create(st: Stack, coupon: str, amount: int) -> None:
    resp = st.client.post("/api/coupons", json={"name": coupon, "amount": amount})
    assert resp.status_code == 201, resp.text


def assert_unavailable(resp: httpx.Response, st: Stack, *, write_attempted: bool) -> None:
    assert resp.status_code == 503, (resp.status_code, resp.text, st.service.log_tail())
    assert resp.json() == {"error": "service unavailable"}
    assert resp.headers["retry-after"] == str(st.limits.retry_after)
    assert resp.headers["x-write-attempted"] == ("true" if write_attempted else "false")


def alter_database(st: Stack, setting: str, value: str) -> None:
    st.admin.query(
        sql.SQL("ALTER DATABASE {} SET {} = {}")
        .format(sql.Identifier(NAME), sql.Identifier(setting), sql.Literal(value))
        .as_string()
    )


def terminate_all(st: Stack) -> None:
    """Terminate the service's backends and wait until they are gone (their FATAL
    message then waits in each idle session's socket: no statement is sent on them)."""
    for backend in st.admin.backends():
        st.admin.terminate(backend.pid)
    wait_for(
        lambda: not st.admin.backends(),
        timeout=DEADLINE.seconds(st.limits),
        what="the service's backends gone",
    )


def renew_sessions(st: Stack) -> None:
    """Terminate the service's backends and wait until its pool holds new sessions (which
    start with the database's current defaults)."""
    old = {b.pid for b in st.admin.backends()}
    for pid in old:
        st.admin.terminate(pid)

    def renewed() -> bool:
        # A request finds the dead idle connections (their FATAL waits in the socket)
        # and has them replaced; the pool alone would not look.
        st.client.get("/health")
        pids = {b.pid for b in st.admin.backends()}
        return len(pids) >= st.limits.pool_min_size and not pids & old

    wait_for(renewed, timeout=RECOVERY.seconds(st.limits), what="the pool's sessions renewed")


def recover(st: Stack, coupon: str, prefix: str) -> tuple[list[str], list[str]]:
    """Claim with fresh users until one answers 200, within the recovery bound from now;
    every answer before it must be a 503. The users refused and the one that succeeded."""
    bound = RECOVERY.seconds(st.limits)
    start = time.monotonic()
    refused: list[str] = []
    while True:
        user = f"{prefix}-{len(refused)}"
        resp = claim(st, user, coupon)
        elapsed = time.monotonic() - start
        if resp.status_code == 200:
            assert elapsed <= bound, f"first 200 after {elapsed:.2f} s, bound {bound:.2f} s"
            return refused, [user]
        assert resp.status_code == 503, (resp.status_code, resp.text, st.service.log_tail())
        refused.append(user)
        assert elapsed <= bound, f"still {resp.status_code} after {elapsed:.2f} s: {refused}"


def returns_bad(st: Stack) -> float:
    """Connections the pool took back closed (discarded and replaced)."""
    return read_metrics(st.client).get("db_pool_returns_bad_total", 0.0)


def discarded(st: Stack) -> float:
    """Times the service closed its sessions after an answer they would repeat."""
    return read_metrics(st.client)["db_sessions_discarded_total"]


@contextmanager
def in_thread(call: Callable[[], httpx.Response]) -> Iterator[Future[httpx.Response]]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(call)


def wait_blocked(st: Stack) -> int:
    """The service backend waiting on a lock with the claim statement; its pid."""
    bound = DEADLINE.seconds(st.limits)
    found = st.admin.wait_for_backend(timeout=bound, wait_event_type="Lock", query_contains="taken")
    return found[0].pid


# --- 25006 read_only_sql_transaction ---------------------------------------------------


def test_read_only_database_answers_503_discards_the_session_and_recovers(st: Stack) -> None:
    create(st, "RO", 5)
    pid = st.service.pid
    alter_database(st, "default_transaction_read_only", "on")
    renew_sessions(st)  # every pooled session is read-only now, as on a demoted primary
    bad_before, discarded_before = returns_bad(st), discarded(st)

    resp = claim(st, "ro-user", "RO")
    assert_unavailable(resp, st, write_attempted=True)
    assert claims_of(st.admin, "RO") == []
    assert remaining_of(st.admin, "RO") == 5
    # The session that answered 25006 came back to the pool closed; reads still work.
    assert returns_bad(st) == bad_before + 1
    assert discarded(st) == discarded_before + 1
    assert st.client.get("/api/coupons/RO").status_code == 200

    st.admin.query(
        sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only")
        .format(sql.Identifier(NAME))
        .as_string()
    )
    # The pool's sessions still carry the read-only default they started with: only
    # discarding them on 25006 brings writable ones.
    refused, succeeded = recover(st, "RO", "after")
    assert st.service.pid == pid, "the service restarted"
    assert claims_of(st.admin, "RO") == succeeded
    assert remaining_of(st.admin, "RO") == 5 - len(succeeded)
    for user in refused:
        assert user not in claims_of(st.admin, "RO")


# --- 53300 too_many_connections --------------------------------------------------------


def test_connection_limit_reached_answers_503_nothing_written_and_recovers(st: Stack) -> None:
    create(st, "FULL", 5)
    st.admin.query(
        sql.SQL("ALTER ROLE {} CONNECTION LIMIT 0").format(sql.Identifier(NAME)).as_string()
    )
    terminate_all(st)

    started = time.monotonic()
    resp = claim(st, "full-user", "FULL")
    elapsed = time.monotonic() - started
    assert_unavailable(resp, st, write_attempted=False)
    assert elapsed <= ACQUIRE.seconds(st.limits), f"answered after {elapsed:.2f} s"
    assert claims_of(st.admin, "FULL") == []
    assert remaining_of(st.admin, "FULL") == 5

    st.admin.query(
        sql.SQL("ALTER ROLE {} CONNECTION LIMIT -1").format(sql.Identifier(NAME)).as_string()
    )
    _, succeeded = recover(st, "FULL", "after")
    assert claims_of(st.admin, "FULL") == succeeded
    assert remaining_of(st.admin, "FULL") == 4


# --- 57P01 admin_shutdown --------------------------------------------------------------


def test_backend_terminated_mid_statement_answers_503_write_attempted(st: Stack) -> None:
    create(st, "KILL", 5)
    with (
        st.admin.hold_row_lock("coupons", "name", "KILL"),
        in_thread(lambda: claim(st, "victim", "KILL")) as answer,
    ):
        st.admin.terminate(wait_blocked(st))
        resp = answer.result(timeout=DEADLINE.seconds(st.limits))
    assert_unavailable(resp, st, write_attempted=True)
    assert claims_of(st.admin, "KILL") == []
    assert remaining_of(st.admin, "KILL") == 5
    _, succeeded = recover(st, "KILL", "after")
    assert claims_of(st.admin, "KILL") == succeeded


# --- 40001 serialization_failure -------------------------------------------------------


def test_serialization_failure_answers_503_rolled_back_session_kept(st: Stack) -> None:
    create(st, "SER", 5)
    alter_database(st, "default_transaction_isolation", "repeatable read")
    renew_sessions(st)
    bad_before, discarded_before = returns_bad(st), discarded(st)
    with st.admin.lock_connection() as other:
        other.execute("BEGIN")
        other.execute("UPDATE coupons SET amount = amount + 1 WHERE name = 'SER'")
        with in_thread(lambda: claim(st, "ser-user", "SER")) as answer:
            wait_blocked(st)
            # The claim's snapshot predates this commit: it cannot update the new version.
            other.execute("COMMIT")
            resp = answer.result(timeout=DEADLINE.seconds(st.limits))
    assert_unavailable(resp, st, write_attempted=True)
    assert claims_of(st.admin, "SER") == []
    assert remaining_of(st.admin, "SER") == 5
    assert st.admin.scalar("SELECT amount FROM coupons WHERE name = 'SER'") == 6
    assert returns_bad(st) == bad_before, "a healthy session was discarded"
    assert discarded(st) == discarded_before
    # Without a conflict, the same sessions serve claims.
    assert claim(st, "next", "SER").status_code == 200
    assert claims_of(st.admin, "SER") == ["next"]


# --- 40P01 deadlock_detected -----------------------------------------------------------


def test_deadlock_answers_503_rolled_back_session_kept(st: Stack) -> None:
    create(st, "DEAD", 5)
    bad_before, discarded_before = returns_bad(st), discarded(st)
    with st.admin.lock_connection() as other, ThreadPoolExecutor(max_workers=1) as pool:
        # This session never runs the deadlock check first: the service's backend does.
        other.execute("SET deadlock_timeout = '60s'")
        other.execute("BEGIN")
        other.execute("INSERT INTO claims (user_id, coupon_name) VALUES ('dl-user', 'DEAD')")
        with in_thread(lambda: claim(st, "dl-user", "DEAD")) as answer:
            # The claim took the coupon's row lock, then waits on the uncommitted claim.
            wait_blocked(st)
            mine = pool.submit(
                other.execute,
                "UPDATE coupons SET remaining_amount = remaining_amount WHERE name = 'DEAD'",
            )
            resp = answer.result(timeout=DEADLINE.seconds(st.limits))
            mine.result(timeout=DEADLINE.seconds(st.limits))
        other.execute("ROLLBACK")
    assert_unavailable(resp, st, write_attempted=True)
    assert claims_of(st.admin, "DEAD") == []
    assert remaining_of(st.admin, "DEAD") == 5
    assert returns_bad(st) == bad_before, "a healthy session was discarded"
    assert discarded(st) == discarded_before
    assert claim(st, "dl-user", "DEAD").status_code == 200
    assert claims_of(st.admin, "DEAD") == ["dl-user"]


# --- 57P03 cannot_connect_now ----------------------------------------------------------


def test_server_shutting_down_answers_503_nothing_written_and_recovers() -> None:
    """A smart shutdown refuses new sessions with 57P03 while old ones last: the pool
    cannot replace its connections, claims are refused without a write; after the
    server is back, claims succeed within the recovery bound."""
    cluster = PostgresCluster(dbname="cannot_connect")
    try:
        cluster.start()
        with (
            running_service(cluster.url, SETTINGS) as service,
            PostgresAdmin(cluster.url, application_name=APP) as admin,
            httpx.Client(base_url=service.url, timeout=30.0) as client,
        ):
            limits = read_limits(client)
            st = Stack(cluster.url, service, admin, client, limits)
            create(st, "DOWN", 5)
            # The admin's session (opened now) keeps the smart shutdown waiting.
            assert len(admin.backends()) >= limits.pool_min_size
            cluster._pg_ctl("stop", "-m", "smart", "--no-wait", timeout=DEADLINE.seconds(limits))

            def refused_new_session() -> bool:
                # Refusals at connect time carry no SQLSTATE in libpq, only the message.
                try:
                    psycopg.connect(cluster.url, connect_timeout=2).close()
                except psycopg.OperationalError as exc:
                    return "shutting down" in str(exc)
                return False

            wait_for(refused_new_session, timeout=DEADLINE.seconds(limits), what="57P03")
            terminate_all(st)
            resp = claim(st, "down-user", "DOWN")
            assert_unavailable(resp, st, write_attempted=False)
            # The first 503 of a fresh service is logged at once, with the refusal's SQLSTATE.
            wait_for(
                lambda: "[57P03]" in service.log_tail(20),
                timeout=ACQUIRE.seconds(limits),
                what="the 503's detail naming 57P03",
            )
            assert claims_of(admin, "DOWN") == []
            admin.close()  # the last session: the server stops
            wait_for(
                lambda: cluster.postmaster_pid() is None,
                timeout=DEADLINE.seconds(limits),
                what="the server stopped",
            )
            cluster.start_server()
            _, succeeded = recover(st, "DOWN", "after")
            assert claims_of(admin, "DOWN") == succeeded
            assert remaining_of(admin, "DOWN") == 4
    finally:
        cluster.stop()
