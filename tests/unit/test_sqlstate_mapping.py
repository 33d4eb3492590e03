"""The failure contract's answer per SQLSTATE (pure logic: app.errors).

The integration suite puts a real server in each state (tests/integration/test_sqlstates.py);
here every row of the table in docs/design.md, "Failure contract", with psycopg's own
exception classes.
"""

from __future__ import annotations

import psycopg
import psycopg.errors
import psycopg_pool
import pytest

from app.errors import (
    ConnectionLost,
    ConnectionRefused,
    PoolExhausted,
    ReadOnly,
    ServiceError,
    TimedOut,
    TransactionAborted,
    discards_connection,
    sqlstate_of,
    translate_db_error,
)

#: SQLSTATE, psycopg's class, the domain error, whether X-Write-Attempted follows the
#: request (else always false), whether the session is discarded.
TABLE = [
    ("25006", psycopg.errors.ReadOnlySqlTransaction, ReadOnly, True, True),
    ("57P01", psycopg.errors.AdminShutdown, ConnectionLost, True, False),
    ("57P03", psycopg.errors.CannotConnectNow, ConnectionRefused, False, False),
    ("53300", psycopg.errors.TooManyConnections, ConnectionRefused, False, False),
    ("40001", psycopg.errors.SerializationFailure, TransactionAborted, True, False),
    ("40P01", psycopg.errors.DeadlockDetected, TransactionAborted, True, False),
]


@pytest.mark.parametrize(("sqlstate", "cls", "kind", "follows", "discard"), TABLE)
@pytest.mark.parametrize("write_attempted", [True, False])
def test_each_sqlstate_has_its_answer(
    sqlstate: str,
    cls: type[psycopg.Error],
    kind: type[ServiceError],
    follows: bool,
    discard: bool,
    write_attempted: bool,
) -> None:
    exc = cls("server message")
    assert exc.sqlstate == sqlstate
    err = translate_db_error(exc, write_attempted=write_attempted)
    assert type(err) is kind
    assert err.status_code == 503
    assert err.message == "service unavailable"
    assert err.write_attempted is (write_attempted and follows)
    assert err.headers(3) == {
        "Retry-After": "3",
        "X-Write-Attempted": "true" if err.write_attempted else "false",
    }
    assert err.detail is not None
    assert f"[{sqlstate}]" in err.detail
    assert discards_connection(exc) is discard


def test_read_only_is_not_an_operational_error_yet_answers_503() -> None:
    # 25006 is an InternalError: before its row in the table it fell through to 500.
    assert not issubclass(psycopg.errors.ReadOnlySqlTransaction, psycopg.OperationalError)
    err = translate_db_error(psycopg.errors.ReadOnlySqlTransaction("x"), write_attempted=True)
    assert err.status_code == 503


@pytest.mark.parametrize(
    ("message", "sqlstate"),
    [
        ("FATAL:  sorry, too many clients already", "53300"),
        ('FATAL:  too many connections for role "svc"', "53300"),
        ('FATAL:  too many connections for database "db"', "53300"),
        (
            "FATAL:  remaining connection slots are reserved for roles with the SUPERUSER "
            "attribute",
            "53300",
        ),
        ("FATAL:  the database system is starting up", "57P03"),
        ("FATAL:  the database system is shutting down", "57P03"),
        ("FATAL:  the database system is in recovery mode", "57P03"),
        ("FATAL:  the database system is not yet accepting connections", "57P03"),
        ("FATAL:  terminating connection due to administrator command", "57P01"),
        ('FATAL:  database "nope" does not exist', None),
    ],
)
def test_refusals_at_connect_time_are_known_by_their_message(
    message: str, sqlstate: str | None
) -> None:
    # libpq reports a refused connection without its SQLSTATE, as a plain OperationalError.
    exc = psycopg.OperationalError(f"connection failed: connection to server failed: {message}")
    assert exc.sqlstate is None
    assert sqlstate_of(exc) == sqlstate
    err = translate_db_error(exc, write_attempted=True)
    if sqlstate in ("53300", "57P03"):
        assert type(err) is ConnectionRefused
        assert err.write_attempted is False
    else:
        assert type(err) is ConnectionLost


def test_a_pool_timeout_names_the_last_connection_failure() -> None:
    err = translate_db_error(
        psycopg_pool.PoolTimeout("couldn't get a connection after 1.00 sec"),
        write_attempted=True,
        connect_failure="[53300] FATAL: sorry, too many clients already",
    )
    assert type(err) is PoolExhausted
    assert err.write_attempted is False
    assert err.detail is not None
    assert "after 1.00 sec" in err.detail
    assert "last connection attempt failed: [53300]" in err.detail


def test_other_errors_keep_their_answers() -> None:
    assert type(translate_db_error(psycopg.errors.QueryCanceled("x"), write_attempted=True)) is (
        TimedOut
    )
    err = translate_db_error(psycopg.errors.UndefinedTable("x"), write_attempted=False)
    assert type(err) is ServiceError
    assert err.status_code == 500
    assert err.detail is not None
    assert "[42P01]" in err.detail
    assert not discards_connection(psycopg.errors.UndefinedTable("x"))
