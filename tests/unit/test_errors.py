"""The failure contract's mapping of database errors (pure logic)."""

from __future__ import annotations

import psycopg
import psycopg.errors
import psycopg_pool
import pytest

from app.errors import (
    ConnectionLost,
    PoolExhausted,
    ServiceError,
    TimedOut,
    Unavailable,
    translate_db_error,
)


@pytest.mark.parametrize(
    ("exc", "kind", "status"),
    [
        (psycopg_pool.PoolTimeout("no conn"), PoolExhausted, 503),
        (psycopg_pool.TooManyRequests("queue full"), PoolExhausted, 503),
        (psycopg_pool.PoolClosed("closed"), Unavailable, 503),
        (psycopg.errors.QueryCanceled("statement timeout"), TimedOut, 504),
        (psycopg.errors.LockNotAvailable("lock timeout"), TimedOut, 504),
        (psycopg.errors.AdminShutdown("terminated"), ConnectionLost, 503),
        (psycopg.OperationalError("server closed the connection"), ConnectionLost, 503),
        (psycopg.InterfaceError("the connection is closed"), ConnectionLost, 503),
        (psycopg.errors.SyntaxError("oops"), ServiceError, 500),
    ],
)
def test_translation(exc: Exception, kind: type[ServiceError], status: int) -> None:
    err = translate_db_error(exc, write_attempted=True)
    assert type(err) is kind
    assert err.status_code == status


def test_pool_errors_are_matched_before_operational_error() -> None:
    assert issubclass(psycopg_pool.PoolTimeout, psycopg.OperationalError)
    err = translate_db_error(psycopg_pool.PoolTimeout("x"), write_attempted=True)
    assert err.write_attempted is False


def test_unavailable_headers_say_whether_a_write_was_attempted() -> None:
    lost = translate_db_error(psycopg.OperationalError("x"), write_attempted=True)
    assert lost.headers(2) == {"Retry-After": "2", "X-Write-Attempted": "true"}
    exhausted = translate_db_error(psycopg_pool.PoolTimeout("x"), write_attempted=True)
    assert exhausted.headers(1) == {"Retry-After": "1", "X-Write-Attempted": "false"}


def test_500_never_carries_internals() -> None:
    err = translate_db_error(
        psycopg.errors.SyntaxError("SELECT secret FROM dsn"), write_attempted=False
    )
    assert err.message == "internal server error"
    assert err.detail is not None
    assert "secret" in err.detail
